"""Rotation-signature and safety-number vectors (tests/vectors/data/sealbox/rotations.json).

Part of :mod:`tests.vectors.gen_sealbox` (which writes the file and checks it
is reproduced byte for byte); kept apart so that module stays small.  Keys
come from the same fixed seeds, and Ed25519 signing is deterministic, so the
output is a pure function of this file.

Each vector gives the previous card, the new card and a rotation signature
(or null); a conforming verifier (``chalicelib.wire.cards.verify_rotation``)
accepts the valid ones and refuses each invalid one with its ``code``.
"""

from __future__ import annotations

from typing import Any

from chalicelib.wire.b64 import b64url_encode
from chalicelib.wire.binary import lp16
from chalicelib.wire.cards import card_id_from_str, rotation_message
from chalicelib.wire.safety import safety_number
from client_sim.identity import KeyBundle
from tests.vectors.gen_sealbox import ALICE, ALICE1, BOB, CAROL, Vector, document, make_bundle, seed

# Ed25519's group order: S + L verifies under lax implementations only.
_L = 2**252 + 27742317777372353535851907851572529189


def _other_bundle(identity: str, previous: str | None, created_at: int, tag: str) -> KeyBundle:
    return KeyBundle._from_seeds(
        identity,
        ed25519_seed=seed(identity, tag, "ed25519"),
        x25519_secret=seed(identity, tag, "x25519"),
        pq_seed=seed(identity, tag, "pq"),
        created_at=created_at,
        previous_card_id=previous,
    )


def rotation_vectors() -> dict[str, Any]:
    vectors: list[Vector] = []

    def add(
        comment: str,
        previous: KeyBundle,
        new: KeyBundle,
        signature: bytes | None,
        *,
        code: str | None = None,
    ) -> None:
        vector: Vector = {
            "comment": comment,
            "previous": previous.card.to_json(),
            "new": new.card.to_json(),
            "rotation_signature": None if signature is None else b64url_encode(signature),
        }
        if code is None:
            vector["message"] = rotation_message(previous.card, new.card).hex()
            vector["result"] = "valid"
        else:
            vector["result"] = "invalid"
            vector["code"] = code
        vectors.append(vector)

    alice2 = make_bundle("alice", 2)
    good = ALICE.sign_rotation(ALICE1.card)
    add("alice rotates once", ALICE, ALICE1, good)
    add("alice rotates again", ALICE1, alice2, ALICE1.sign_rotation(alice2.card))

    bad = "bad_rotation_signature"
    add("no rotation signature", ALICE, ALICE1, None, code="rotation_signature_required")
    message = rotation_message(ALICE.card, ALICE1.card)
    add("signed by the new card's key", ALICE, ALICE1, ALICE1.sign(message), code=bad)
    add("signed by another identity's key", ALICE, ALICE1, BOB.sign(message), code=bad)
    swapped = b"".join(
        (
            lp16(b"sealbox/v1/card-rotation"),
            lp16(card_id_from_str(ALICE1.card_id)),
            lp16(card_id_from_str(ALICE.card_id)),
        )
    )
    add("card ids swapped in the signed message", ALICE, ALICE1, ALICE.sign(swapped), code=bad)
    wrong_label = lp16(b"sealbox/v1/card-rotatioN") + message[2 + 24 :]
    add("wrong label", ALICE, ALICE1, ALICE.sign(wrong_label), code=bad)
    add(
        "the card self-signature message signed instead",
        ALICE,
        ALICE1,
        ALICE.sign(ALICE1.card.content.signing_message()),
        code=bad,
    )
    lifted_onto = _other_bundle("alice", ALICE.card_id, ALICE1.card.created_at, "thief")
    add("a genuine signature lifted onto another new card", ALICE, lifted_onto, good, code=bad)
    flipped = bytearray(good)
    flipped[0] ^= 1
    add("R bit flipped", ALICE, ALICE1, bytes(flipped), code=bad)
    s = int.from_bytes(good[32:], "little") + _L
    add("S + L (not reduced)", ALICE, ALICE1, good[:32] + s.to_bytes(32, "little"), code=bad)
    add("63-byte signature", ALICE, ALICE1, good[:63], code="card_wrong_length")
    add("65-byte signature", ALICE, ALICE1, good + b"\x00", code="card_wrong_length")

    mismatch = "card_rotation_mismatch"
    add("new card names no previous card", ALICE, BOB, ALICE.sign(message), code=mismatch)
    add("skips a generation", ALICE, alice2, ALICE.sign(message), code=mismatch)
    add("same card", ALICE, ALICE, ALICE.sign(message), code=mismatch)
    other_identity = _other_bundle("bob", ALICE.card_id, ALICE1.card.created_at, "other")
    add("names alice's card but is bob's", ALICE, other_identity, good, code=mismatch)
    older = _other_bundle("alice", ALICE.card_id, ALICE.card.created_at - 1, "older")
    add("older than the previous card", ALICE, older, good, code=mismatch)

    numbers = [
        {
            "comment": f"{a.identity} and {b.identity}",
            "identity_a": a.identity,
            "card_id_a": a.card_id,
            "identity_b": b.identity,
            "card_id_b": b.card_id,
            "safety_number": safety_number(a.identity, a.card_id, b.identity, b.card_id),
        }
        for a, b in ((ALICE, BOB), (BOB, ALICE), (ALICE1, BOB), (CAROL, ALICE))
    ]
    return document(
        "Sealbox card rotation signatures (by the previous card's key) and safety numbers.",
        vectors,
        safety_numbers=numbers,
    )
