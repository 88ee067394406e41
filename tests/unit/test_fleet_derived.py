"""Derived plaintexts: deliveries checked without a central ledger (Locust workers)."""

from __future__ import annotations

import pytest

from sealbox_tools.fleet.derived import HEADER, Judgement, derive, judge, message_id


def test_any_worker_rederives_the_same_plaintext() -> None:
    mid = message_id("alice-1", 7, 500)
    plaintext = derive("seed-1", mid)
    assert len(plaintext) == 500
    assert plaintext.startswith(HEADER + b"alice-1/7/500\n")
    assert derive("seed-1", mid) == plaintext
    assert derive("seed-2", mid) != plaintext
    assert judge("seed-1", plaintext, "alice-1") == (Judgement.DELIVERED, mid)


def test_a_flipped_byte_is_a_content_mismatch() -> None:
    plaintext = bytearray(derive("s", message_id("alice-1", 0, 300)))
    plaintext[-1] ^= 1
    assert judge("s", bytes(plaintext), "alice-1")[0] is Judgement.MISMATCH_CONTENT


def test_a_message_signed_by_someone_else_is_a_sender_mismatch() -> None:
    # Mallory re-sends Alice's exact plaintext under her own signature.
    plaintext = derive("s", message_id("alice-1", 0, 300))
    assert judge("s", plaintext, "mallory")[0] is Judgement.MISMATCH_SENDER


def test_a_run_with_another_seed_does_not_verify() -> None:
    plaintext = derive("other", message_id("alice-1", 0, 300))
    assert judge("s", plaintext, "alice-1")[0] is Judgement.MISMATCH_CONTENT


@pytest.mark.parametrize(
    "plaintext",
    [
        b"hello",
        HEADER + b"alice-1/0/300",  # no end of line
        HEADER + b"alice-1/00/300\n" + b"x" * 300,  # not canonical
        HEADER + b"Alice/0/300\n" + b"x" * 300,  # not an identity
        HEADER + b"alice-1/0/3\n",  # a size below the header's
        HEADER + b"alice-1/0/x\n",
        HEADER + b"\xff/0/30\n",
    ],
)
def test_anything_else_is_unknown(plaintext: bytes) -> None:
    assert judge("s", plaintext, "alice-1") == (Judgement.MISMATCH_UNKNOWN, None)


@pytest.mark.parametrize(
    ("sender", "number", "size"), [("A B", 0, 100), ("a", -1, 100), ("abc", 0, 5)]
)
def test_bad_ids_are_refused(sender: str, number: int, size: int) -> None:
    with pytest.raises(ValueError, match=r"sender|size"):
        message_id(sender, number, size)
