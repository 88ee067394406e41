"""Checkpoints, note keys and log leaves: Sealbox's rules on top of the C2SP formats."""

from __future__ import annotations

import base64

import pytest

from chalicelib.wire import checkpoint, ktleaf, merkle, note
from tests.identities import bundle

ORIGIN = "sealbox.test/kt"
SIGNER = note.NoteSigner.from_seed(ORIGIN, bytes(range(32)))
ROOT = merkle.leaf_hash(b"r")


# --- note keys ------------------------------------------------------------------


def test_signer_never_prints_its_seed() -> None:
    text = repr(SIGNER) + str(SIGNER)
    assert SIGNER.verifier.vkey in text
    assert bytes(range(32)).hex() not in text
    assert base64.b64encode(b"\x01" + bytes(range(32))).decode() not in text
    assert "PRIVATE" not in text


def test_signer_key_round_trip_and_refusals() -> None:
    assert note.parse_signer_key(SIGNER.skey) == SIGNER
    assert note.parse_verifier_key(SIGNER.verifier.vkey) == SIGNER.verifier
    for bad in (
        SIGNER.verifier.vkey,  # a public key is no signer key
        SIGNER.skey.replace(ORIGIN, "sealbox.test/other"),  # key ID no longer matches
        SIGNER.skey[:-4],
        "PRIVATE+KEY+a b+00000000+AQ==",
    ):
        with pytest.raises(note.NoteKeyInvalid) as info:
            note.parse_signer_key(bad)
        assert SIGNER.skey not in str(info.value)


def test_generated_signers_differ() -> None:
    a, b = note.generate_signer(ORIGIN), note.generate_signer(ORIGIN)
    assert a.verifier != b.verifier


# --- checkpoints ------------------------------------------------------------------


def test_checkpoint_round_trip() -> None:
    signed = checkpoint.sign_checkpoint(ORIGIN, 5, ROOT, 1_700_000_000, SIGNER)
    assert signed.startswith(f"{ORIGIN}\n5\n{base64.b64encode(ROOT).decode()}\n")
    assert "sealbox/v1/checkpoint-time 1700000000\n\n— sealbox.test/kt " in signed
    cp = checkpoint.open_log_checkpoint(signed, SIGNER.verifier, origin=ORIGIN)
    assert (cp.origin, cp.size, cp.root, cp.timestamp, cp.note) == (
        ORIGIN,
        5,
        ROOT,
        1_700_000_000,
        signed,
    )


def test_a_checkpoint_signed_by_another_key_is_refused() -> None:
    other = note.generate_signer(ORIGIN)
    signed = checkpoint.sign_checkpoint(ORIGIN, 5, ROOT, 1, other)
    with pytest.raises(note.NoteError):
        checkpoint.open_log_checkpoint(signed, SIGNER.verifier, origin=ORIGIN)


def test_an_edited_checkpoint_is_refused() -> None:
    signed = checkpoint.sign_checkpoint(ORIGIN, 5, ROOT, 1, SIGNER)
    with pytest.raises(note.NoteBadSignature):
        checkpoint.open_log_checkpoint(
            signed.replace("\n5\n", "\n6\n"), SIGNER.verifier, origin=ORIGIN
        )


def test_another_logs_checkpoint_is_refused() -> None:
    other = note.NoteSigner.from_seed("sealbox.test/other", bytes(range(32)))
    signed = checkpoint.sign_checkpoint("sealbox.test/other", 5, ROOT, 1, other)
    with pytest.raises(checkpoint.CheckpointOriginMismatch):
        checkpoint.open_log_checkpoint(signed, other.verifier, origin=ORIGIN)


@pytest.mark.parametrize(
    "text",
    [
        "o\n5\n",  # no root
        "o\n05\n{root}\nsealbox/v1/checkpoint-time 1\n",  # leading zero
        "o\n-1\n{root}\nsealbox/v1/checkpoint-time 1\n",
        "o\n5\nAAAA\nsealbox/v1/checkpoint-time 1\n",  # not 32 bytes
        "o\n5\n{root}\n",  # no time line
        "o\n5\n{root}\nsealbox/v1/checkpoint-time 01\n",
        "o\n5\n{root}\nsealbox/v1/checkpoint-time 1\nextra\n",
        "o\n5\n{root}\nsealbox/v1/checkpoint-time\n",
        "o\n\n5\n{root}\nsealbox/v1/checkpoint-time 1\n",  # empty line
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    signer = note.NoteSigner.from_seed("o", bytes(32))
    signed = note.sign_note(text.format(root=base64.b64encode(ROOT).decode()), signer)
    with pytest.raises((checkpoint.CheckpointMalformed, note.NoteMalformed)):
        checkpoint.open_log_checkpoint(signed, signer.verifier, origin="o")


# --- leaves -------------------------------------------------------------------------


def test_leaves_round_trip_for_every_kind() -> None:
    first, second = bundle("kt-alice", 0), bundle("kt-alice", 1)
    rotation = first.sign_rotation(second.card)
    leaves = [
        ktleaf.LogLeaf.publish(first.card, time=10, rotation_signature=None),
        ktleaf.LogLeaf.publish(second.card, time=11, rotation_signature=rotation),
        ktleaf.LogLeaf.revoke("kt-alice", second.card_id, time=12),
    ]
    assert [leaf.kind for leaf in leaves] == list(ktleaf.LeafKind)
    for leaf in leaves:
        assert ktleaf.decode_leaf(leaf.encode()) == leaf


def test_leaf_rules() -> None:
    first, second = bundle("kt-bob", 0), bundle("kt-bob", 1)
    with pytest.raises(ktleaf.InvalidLeaf):  # a rotation without its signature
        ktleaf.LogLeaf.publish(second.card, time=1, rotation_signature=None)
    with pytest.raises(ktleaf.InvalidLeaf):  # a first card with one
        ktleaf.LogLeaf.publish(first.card, time=1, rotation_signature=b"\0" * 64)
    with pytest.raises(ktleaf.InvalidLeaf):  # the card is another identity's
        ktleaf.LogLeaf(ktleaf.LeafKind.PUBLISH, "kt-carol", first.card_id, 1, first.card)
    with pytest.raises(ktleaf.InvalidLeaf):
        ktleaf.LogLeaf(ktleaf.LeafKind.REVOKE, "kt-bob", first.card_id, 1, first.card)


def test_malformed_leaf_bytes_are_refused() -> None:
    good = ktleaf.LogLeaf.publish(bundle("kt-dan", 0).card, time=1, rotation_signature=None)
    raw = good.encode()
    label_end = 2 + len(ktleaf.KT_LEAF_LABEL)
    bad_inputs = [
        raw[:-1],
        raw + b"\0",
        raw[:label_end] + b"\x02" + raw[label_end + 1 :],  # version 2
        raw[:label_end] + b"\x01\x09" + raw[label_end + 2 :],  # unknown kind
        b"\x00\x01x" + raw[label_end:],  # wrong label
        b"\0" * (ktleaf.MAX_LEAF_SIZE + 1),
    ]
    # Flip one bit inside the logged card: its self-signature no longer holds.
    flipped = bytearray(raw)
    flipped[-80] ^= 1
    bad_inputs.append(bytes(flipped))
    for data in bad_inputs:
        with pytest.raises(ktleaf.InvalidLeaf):
            ktleaf.decode_leaf(data)
