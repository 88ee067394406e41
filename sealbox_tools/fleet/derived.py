"""Plaintexts anyone can re-derive: delivery checks without a central ledger.

A fleet in one process judges deliveries against its ledger.  Across
processes and machines (Locust workers) there is no shared ledger, so every
sent plaintext is *derived* from the run's seed and the message id, and the
message id travels inside the ciphertext::

    sealbox-derived/v1 <message id>\\n<filler>

The message id is ``<sender>/<number>/<size>``: a recipient on any worker
reads it from the plaintext it decrypted, re-derives the whole plaintext
from the seed (SHAKE-256 of the seed and the id -- filler, not a secret),
compares the SHA-256 of both, and checks that the signer the SDK verified
is the sender the id names.  Any difference is a mismatch.
"""

from __future__ import annotations

import enum
import hashlib

from chalicelib.wire.identity import is_identity

__all__ = ["HEADER", "Judgement", "derive", "judge", "message_id"]

#: Versioned, so a later layout can't be confused with this one.
HEADER = b"sealbox-derived/v1 "
_MAX_SIZE = 16 * 1024 * 1024


class Judgement(enum.Enum):
    DELIVERED = "delivered"
    MISMATCH_UNKNOWN = "mismatch_unknown"  # no header, or a malformed id
    MISMATCH_SENDER = "mismatch_sender"  # signed by someone else than the id says
    MISMATCH_CONTENT = "mismatch_content"  # not the bytes the seed derives


def message_id(sender: str, number: int, size: int) -> str:
    """The id of ``sender``'s ``number``-th message of ``size`` bytes.

    Raises:
        ValueError: a sender that is not an identity, a negative number, or a
            size too small for the header or above 16 MiB.
    """
    if not is_identity(sender) or number < 0:
        raise ValueError("bad sender or number")
    mid = f"{sender}/{number}/{size}"
    if not len(HEADER) + len(mid) + 1 <= size <= _MAX_SIZE:
        raise ValueError(f"size must be from {len(HEADER) + len(mid) + 1} to {_MAX_SIZE}")
    return mid


def derive(seed: str, mid: str) -> bytes:
    """The plaintext of message ``mid`` in the run seeded ``seed``.

    Raises:
        ValueError: ``mid`` is not a message id.
    """
    _sender, size = _parse(mid)
    head = HEADER + mid.encode("ascii") + b"\n"
    filler = hashlib.shake_256(f"{seed}\n{mid}".encode()).digest(size - len(head))
    return head + filler


def judge(seed: str, plaintext: bytes, signed_by: str) -> tuple[Judgement, str | None]:
    """Judge a decrypted plaintext and its SDK-verified signer: (verdict, message id)."""
    if not plaintext.startswith(HEADER):
        return Judgement.MISMATCH_UNKNOWN, None
    line, newline, _ = plaintext[len(HEADER) : len(HEADER) + 200].partition(b"\n")
    try:
        mid = line.decode("ascii")
        sender, _size = _parse(mid)
    except (UnicodeDecodeError, ValueError):
        return Judgement.MISMATCH_UNKNOWN, None
    if not newline:
        return Judgement.MISMATCH_UNKNOWN, None
    if sender != signed_by:
        return Judgement.MISMATCH_SENDER, mid
    expected = derive(seed, mid)
    if hashlib.sha256(plaintext).digest() != hashlib.sha256(expected).digest():
        return Judgement.MISMATCH_CONTENT, mid
    return Judgement.DELIVERED, mid


def _parse(mid: str) -> tuple[str, int]:
    sender, number, size = mid.split("/")
    if not (is_identity(sender) and number.isdigit() and size.isdigit()):
        raise ValueError("not a message id")
    if message_id(sender, int(number), int(size)) != mid:  # checks the size bounds
        raise ValueError("not a canonical message id")
    return sender, int(size)
