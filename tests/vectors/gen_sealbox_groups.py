"""Group vectors (tests/vectors/data/sealbox/groups.json): epochs, chains, wraps.

Part of :mod:`tests.vectors.gen_sealbox` (which writes the file and checks it
is reproduced byte for byte).  Keys come from the same fixed seeds and
Ed25519 signing is deterministic, so the epochs are a pure function of this
file.  HPKE draws its ephemeral key inside ``cryptography`` (no seam), so
the wrap bodies can't be recomputed: the generator keeps the bodies already
stored when they still open to the expected secret, and makes fresh ones
only for new or broken vectors.

Most vectors are failures, each with the stable ``code`` (epochs, wraps
objects) or the error (``DecryptionFailed``) a conforming reader raises.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from chalicelib.wire.cards import card_id_from_str
from chalicelib.wire.group_delta import encode_delta
from chalicelib.wire.group_history import decode_share, verify_share_signature
from chalicelib.wire.group_wraps import build_wraps
from chalicelib.wire.groups import (
    KIND_MLKEM768X25519,
    KIND_X25519,
    Epoch,
    Member,
    changes_between,
    encode_roster,
    roster_hash,
    sign_epoch,
)
from client_sim.errors import DecryptionFailed
from client_sim.group_history import make_share, open_share
from client_sim.group_keys import EpochSecret, open_wrap, wrap_secret
from client_sim.identity import KeyBundle
from tests.vectors.gen_sealbox import (
    ALICE,
    BOB,
    CAROL,
    OUT,
    Vector,
    document,
    make_bundle,
    seed,
)

BOB1 = make_bundle("bob", 1)

GROUP_ID = seed("group", "id")[:16]
PEOPLE = {"alice": ALICE, "bob": BOB, "carol": CAROL}


def _member(who: KeyBundle, admin: bool = False) -> Member:
    return Member(who.identity, card_id_from_str(who.card_id), admin)


def _secret(number: int, kind: int = KIND_MLKEM768X25519) -> EpochSecret:
    return EpochSecret(seed("group", "secret", number), group_id=GROUP_ID, number=number, kind=kind)


def _epoch(
    number: int,
    previous: tuple[Epoch, tuple[Member, ...]] | None,
    signer: KeyBundle,
    members: list[Member],
) -> tuple[Epoch, tuple[Member, ...]]:
    after = tuple(sorted(members))
    before: tuple[Member, ...] = () if previous is None else previous[1]
    epoch = Epoch(
        group_id=GROUP_ID,
        number=number,
        previous_hash=b"" if previous is None else previous[0].hash,
        created_at_ms=1_700_000_000_000 + number,
        signer_card_id=card_id_from_str(signer.card_id),
        # The epoch vectors check the epoch alone; a fixed digest stands in
        # for a wraps object (wraps have vectors of their own below).
        wraps_digest=seed("group", "wraps", number),
        kind=KIND_MLKEM768X25519,
        key_id=_secret(number).key_id(),
        roster_hash=roster_hash(GROUP_ID, after),
        member_count=len(after),
        changes=changes_between(before, after),
    )
    return sign_epoch(epoch, signer.sign), after


def _epoch_vectors() -> list[Vector]:
    vectors: list[Vector] = []
    e0 = _epoch(0, None, ALICE, [_member(ALICE, True), _member(BOB), _member(CAROL)])
    e1 = _epoch(1, e0, ALICE, [_member(ALICE, True), _member(BOB)])

    def add(
        comment: str,
        epoch: bytes,
        previous: tuple[Epoch, tuple[Member, ...]] | None,
        signer: str,
        code: str | None = None,
        stage: str | None = None,
        roster: tuple[Member, ...] | None = None,
    ) -> None:
        before = roster if roster is not None else (() if previous is None else previous[1])
        vector: Vector = {
            "comment": comment,
            "previous": None if previous is None else previous[0].encoded.hex(),
            "roster": encode_roster(before).hex() if before else None,
            "epoch": epoch.hex(),
            "signer": signer,
        }
        if code is None:
            vector["result"] = "valid"
        else:
            vector.update(result="invalid", stage=stage, code=code)
        vectors.append(vector)

    add("creation by its admin", e0[0].encoded, None, "alice")
    add("removal of carol by the admin", e1[0].encoded, e0, "alice")
    bob_leaves = _epoch(1, e0, BOB, [_member(ALICE, True), _member(CAROL)])
    add("bob (not an admin) leaves", bob_leaves[0].encoded, e0, "bob")
    bob_rotated = _epoch(1, e0, ALICE, [_member(ALICE, True), _member(BOB1), _member(CAROL)])
    add("bob re-wrapped to his rotated card", bob_rotated[0].encoded, e0, "alice")

    body = e0[0].encoded
    add("truncated", body[:-1], None, "alice", "truncated", "decode")
    add("trailing byte", body + b"\x00", None, "alice", "trailing_data", "decode")
    add("wrong magic", b"SBGEPOCX" + body[8:], None, "alice", "bad_magic", "decode")
    add("version 2", body[:8] + b"\x02" + body[9:], None, "alice", "unsupported_version",
        "decode")  # fmt: skip
    flagged = bytearray(body)
    flagged[-65] |= 0x02
    add("reserved member flag", bytes(flagged), None, "alice", "reserved_flag", "decode")
    unsorted = bytearray(body)
    # alice/bob -> blice/aob: the changes are no longer ascending.
    first = body.index(b"\x05alice") + 1
    second = body.index(b"\x03bob") + 1
    unsorted[first], unsorted[second] = unsorted[second], unsorted[first]
    add("changes not sorted by identity", bytes(unsorted), None, "alice", "changes_not_sorted",
        "decode")  # fmt: skip
    upper = body.replace(b"\x05alice", b"\x05Alice")
    add("identity not canonical", upper, None, "alice", "invalid_identity", "decode")
    op = bytearray(body)
    op[body.index(b"\x05alice") - 1] = 3
    add("unknown change operation", bytes(op), None, "alice", "unknown_op", "decode")

    promoted = dataclasses.replace(
        e0[0], changes=tuple(dataclasses.replace(c, admin=True) for c in e0[0].changes)
    )
    add("operator made everyone admin", promoted.encoded, None, "alice", "bad_signature",
        "signature")  # fmt: skip
    dropped = dataclasses.replace(e1[0], changes=())
    add("operator dropped the removal", dropped.encoded, e0, "alice", "bad_signature",
        "signature")  # fmt: skip
    add("signed by another card than named", e0[0].encoded, None, "bob", "bad_signature",
        "signature")  # fmt: skip
    dave = _member(make_bundle("dave"))
    add("served roster lacks carol, whom the epoch removes", e1[0].encoded, e0, "alice",
        "bad_changes", "chain", roster=tuple(sorted((*e1[1], dave))))  # fmt: skip
    add("served roster has an extra member", e1[0].encoded, e0, "alice", "roster_mismatch",
        "chain", roster=tuple(sorted((*e0[1], dave))))  # fmt: skip
    by_bob = _epoch(1, e0, BOB, [_member(ALICE, True), _member(BOB)])
    add("non-admin removes carol", by_bob[0].encoded, e0, "bob", "not_an_admin", "chain")
    bob_admin = _epoch(1, e0, BOB, [_member(ALICE, True), _member(BOB, True), _member(CAROL)])
    add("non-admin promotes himself", bob_admin[0].encoded, e0, "bob", "not_an_admin", "chain")
    created_by_bob = _epoch(0, None, BOB, [_member(ALICE, True), _member(BOB)])
    add("created by a non-admin", created_by_bob[0].encoded, None, "bob", "not_an_admin", "chain")
    e2 = _epoch(2, e1, ALICE, [_member(ALICE, True)])
    add("skips an epoch", e2[0].encoded, e0, "alice", "stale_epoch", "chain")
    add("same number again", e1[0].encoded, e1, "alice", "stale_epoch", "chain")
    fork = _epoch(2, bob_leaves, ALICE, [_member(ALICE, True)])
    add("built on a rival epoch 1", fork[0].encoded, e1, "alice", "broken_chain", "chain")
    add("epoch 1 with no predecessor", e1[0].encoded, None, "alice", "not_genesis", "chain")
    return vectors


def _stored_wraps() -> dict[str, str]:
    path = OUT / "groups.json"
    if not path.exists():
        return {}
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {v["comment"]: v["body"] for v in doc.get("wraps", [])}


def _wrap_vectors() -> list[Vector]:
    stored = _stored_wraps()
    vectors: list[Vector] = []
    secret = _secret(5)

    def body_for(comment: str, make: Callable[[], bytes], check: Callable[[bytes], bool]) -> bytes:
        kept = stored.get(comment)
        if kept is not None and check(bytes.fromhex(kept)):
            return bytes.fromhex(kept)
        return make()

    def opens(who: KeyBundle) -> Any:
        def check(body: bytes) -> bool:
            try:
                got = open_wrap(body, who, group_id=GROUP_ID, number=5, epoch_kind=secret.kind)
            except DecryptionFailed:
                return False
            return got.to_bytes() == secret.to_bytes()

        return check

    def add(comment: str, body: bytes, opener: str, number: int, ok: bool) -> None:
        vectors.append(
            {
                "comment": comment,
                "opener": opener,
                "group_id": GROUP_ID.hex(),
                "epoch": number,
                "body": body.hex(),
                "result": "valid" if ok else "invalid",
                **({"secret": secret.to_bytes().hex()} if ok else {"error": "DecryptionFailed"}),
            }
        )

    pq = body_for("post-quantum wrap for bob", lambda: wrap_secret(secret, BOB.card), opens(BOB))
    add("post-quantum wrap for bob", pq, "bob", 5, True)
    add("bob's wrap opened by carol", pq, "carol", 5, False)
    add("bob's wrap for epoch 5 offered as epoch 6", pq, "bob", 6, False)
    add("truncated", pq[:-1], "bob", 5, False)
    add("ciphertext bit flipped", pq[:-1] + bytes([pq[-1] ^ 1]), "bob", 5, False)
    add("unknown kind", b"\x02" + pq[1:], "bob", 5, False)
    add("kind byte says x25519", b"\x00" + pq[1:81], "bob", 5, False)
    add("low-order x25519 share", bytes([KIND_X25519]) + bytes(80), "bob", 5, False)
    return vectors


def _wraps_object_vectors() -> list[Vector]:
    vectors: list[Vector] = []
    bodies = {
        card_id_from_str(who.card_id): bytes([KIND_X25519])
        + seed("wrap", who.identity) * 2
        + bytes(16)
        for who in PEOPLE.values()
    }
    data = build_wraps(GROUP_ID, 3, bodies)

    def add(comment: str, blob: bytes, code: str | None) -> None:
        vector: Vector = {"comment": comment, "data": blob.hex()}
        if code is None:
            vector.update(result="valid", entries=len(bodies))
        else:
            vector.update(result="invalid", code=code)
        vectors.append(vector)

    add("three wraps", data, None)
    add("bad magic", b"SBGWRAPX" + data[8:], "bad_magic")
    add("version 2", data[:8] + b"\x02" + data[9:], "unsupported_version")
    add("ends inside the index", data[:60], "truncated")
    add("one byte too many", data + b"\x00", "bad_offset")
    add("zero wraps", data[:33] + b"\x00\x00", "invalid_roster_size")
    swapped = bytearray(data)
    swapped[35:67], swapped[73:105] = data[73:105], data[35:67]
    add("index not ascending", bytes(swapped), "index_not_sorted")
    gap = bytearray(data)
    gap[67:71] = (int.from_bytes(data[67:71], "big") + 1).to_bytes(4, "big")
    add("first offset leaves a gap", bytes(gap), "bad_offset")
    odd = bytearray(data)
    odd[71:73] = (50).to_bytes(2, "big")
    add("wrap length of no kind", bytes(odd), "invalid_wrap")
    return vectors


def _delta_vectors() -> list[Vector]:
    """Deltas (docs/spec/groups.md, "Delta"): what a member that holds
    ``previous`` rebuilds with the epoch's key id (from its own wrap)."""
    vectors: list[Vector] = []
    e0 = _epoch(0, None, ALICE, [_member(ALICE, True), _member(BOB), _member(CAROL)])
    e1 = _epoch(1, e0, ALICE, [_member(ALICE, True), _member(BOB)])
    dave = make_bundle("dave")
    e1_add = _epoch(1, e0, ALICE, [*e0[1], _member(dave, True)])

    def add(comment: str, delta: bytes, epoch: Epoch, code: str | None, stage: str) -> None:
        vector: Vector = {
            "comment": comment,
            "previous": e0[0].encoded.hex(),
            "roster": encode_roster(e0[1]).hex(),
            "key_id": epoch.key_id.hex(),
            "delta": delta.hex(),
        }
        if code is None:
            vector.update(result="valid", epoch=epoch.encoded.hex())
        else:
            vector.update(result="invalid", stage=stage, code=code)
        vectors.append(vector)

    removal = encode_delta(e1[0], e0[1])
    add("removal of carol (113 bytes)", removal, e1[0], None, "")
    add("adds dave as an admin", encode_delta(e1_add[0], e0[1]), e1_add[0], None, "")
    add("version 2", b"\x02" + removal[1:], e1[0], "unsupported_version", "decode")
    add("truncated", removal[:-1], e1[0], "truncated", "decode")
    add("trailing byte", removal + b"\x00", e1[0], "trailing_data", "decode")
    add("signer index past the roster", removal[:9] + b"\x00\x03" + removal[11:], e1[0],
        "not_a_member", "decode")  # fmt: skip
    add("unknown change operation", removal[:46] + b"\x03" + removal[47:], e1[0], "unknown_op",
        "decode")  # fmt: skip
    add("signer index names bob", removal[:9] + b"\x00\x01" + removal[11:], e1[0],
        "bad_signature", "signature")  # fmt: skip
    add("removes bob instead of carol", removal[:47] + b"\x00\x01" + removal[49:], e1[0],
        "bad_signature", "signature")  # fmt: skip
    add("removes alice, the last admin", removal[:47] + b"\x00\x00" + removal[49:], e1[0],
        "no_admin", "rebuild")  # fmt: skip
    other_key = dataclasses.replace(e1[0], key_id=_secret(7).key_id())
    add("a wrap of another secret (key id)", removal, other_key, "bad_signature", "signature")
    return vectors


def _share_vectors() -> list[Vector]:
    """History shares (docs/spec/groups.md, "History"): decode, signature, wrap.
    The valid share's HPKE wrap is random: the stored one is kept while it
    still verifies and opens to the expected secrets."""
    path = OUT / "groups.json"
    stored = {}
    if path.exists():
        doc = json.loads(path.read_text(encoding="utf-8"))
        stored = {v["comment"]: v["share"] for v in doc.get("shares", [])}
    secrets = [_secret(1), _secret(2)]
    comment = "epochs 1 and 2 for bob, by alice at epoch 3"

    def fits(raw: bytes) -> bool:
        try:
            share = decode_share(raw)
            verify_share_signature(share, ALICE.card.ed25519_public_key)
            return open_share(share, BOB) == [s.to_bytes() for s in secrets]
        except Exception:
            return False

    kept = stored.get(comment)
    good = bytes.fromhex(kept) if kept is not None and fits(bytes.fromhex(kept)) else b""
    if not good:
        good = make_share(ALICE, _member(BOB), BOB.card, at=3, secrets=secrets).encoded
    vectors: list[Vector] = []

    def add(text: str, raw: bytes, signer: str, opener: str, code: str | None, stage: str) -> None:
        vector: Vector = {"comment": text, "share": raw.hex(), "signer": signer, "opener": opener}
        if code is None:
            vector.update(result="valid", secrets=[s.to_bytes().hex() for s in secrets])
        else:
            vector.update(result="invalid", stage=stage, code=code)
        vectors.append(vector)

    add(comment, good, "alice", "bob", None, "")
    add("opened by carol", good, "alice", "carol", "bad_share", "open")
    add("claims bob signed it", good, "bob", "bob", "bad_signature", "signature")
    shifted = bytearray(good)
    shifted[108] -= 1  # first 1 -> 0
    shifted[116] -= 1  # last 2 -> 1: the same count, another range
    add("range relabelled 0 to 1", bytes(shifted), "alice", "bob", "bad_signature", "signature")
    add("truncated", good[:-1], "alice", "bob", "truncated", "decode")
    add("trailing byte", good + b"\x00", "alice", "bob", "trailing_data", "decode")
    add("wrong magic", b"SBGSHARX" + good[8:], "alice", "bob", "bad_magic", "decode")
    add("version 2", good[:8] + b"\x02" + good[9:], "alice", "bob", "unsupported_version",
        "decode")  # fmt: skip
    early = bytearray(good)
    early[32] = 1  # at 3 -> 1: before the last epoch shared
    add("made before the last epoch it shares", bytes(early), "alice", "bob", "invalid_range",
        "decode")  # fmt: skip
    return vectors


def group_vectors() -> dict[str, Any]:
    epochs = _epoch_vectors()
    doc = document(
        "Sealbox group epochs (decode, signature, chain), epoch wraps and wraps objects.",
        epochs,
        group_id=GROUP_ID.hex(),
        cards={name: who.card.to_json() for name, who in {**PEOPLE, "bob1": BOB1}.items()},
        wraps=_wrap_vectors(),
        wraps_objects=_wraps_object_vectors(),
        deltas=_delta_vectors(),
        shares=_share_vectors(),
    )
    return doc
