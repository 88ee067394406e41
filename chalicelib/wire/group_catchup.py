"""The catch-up frame: one binary reply that moves a following member on.

A member that holds epoch ``after`` asks ``GET /v1/groups/{id}/catchup``
and receives, in one ``application/octet-stream`` body, the deltas of the
epochs after it with its own wrap of each inline, and a check of the roster
the server holds (docs/spec/groups.md, "Catch-up")::

    frame  = u8(1) || u8(n) || u8(status) || [roster check (8), when status = 00]
             || n x (u16(len) || delta || u16(len) || wrap)
    status = 00: the last entry (``after`` itself when n = 0) is the server's head
           | 01: the server has more epochs after the last entry

    roster check = first 8 bytes of SHA-256(lp16("sealbox/v1/group-roster-check")
                                            || nonce (16) || roster hash (32))

The nonce is the device's, fresh for each request, so the server's roster
is checked against the roster hash the device's verified chain leads to
without the server sending the 32-byte hash itself: an operator who edited
the stored roster can't search offline for another roster that passes,
because the value it would have to match depends on a nonce chosen after
the edit.

Epoch ``after + i`` is entry ``i`` (from 1).  Nothing in a frame is trusted:
the device rebuilds every epoch from its delta and the key id its own wrap
gives, and checks it exactly as a full epoch (``client_sim.groups``).

Pure: no chalice, no boto3, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from chalicelib import crypto
from chalicelib.wire.binary import Reader, Truncated, lp16, u8, u16
from chalicelib.wire.groups import HASH_SIZE, InvalidGroupObject

__all__ = [
    "CATCHUP_VERSION",
    "MAX_CATCHUP_EPOCHS",
    "MAX_CATCHUP_SIZE",
    "MAX_PART",
    "NONCE_SIZE",
    "ROSTER_CHECK_LABEL",
    "ROSTER_CHECK_SIZE",
    "CatchUp",
    "CatchUpEntry",
    "decode_catchup",
    "encode_catchup",
    "roster_check",
]

CATCHUP_VERSION: Final = 1
#: At most this many epochs in one frame (the device asks again for more).
MAX_CATCHUP_EPOCHS: Final = 32
#: The server stops adding entries once a frame reaches this size (a frame
#: always carries at least one entry when there is one to carry).
MAX_CATCHUP_SIZE: Final = 512 * 1024
NONCE_SIZE: Final = 16
ROSTER_CHECK_SIZE: Final = 8
ROSTER_CHECK_LABEL: Final = b"sealbox/v1/group-roster-check"
STATUS_AT_HEAD: Final = 0
STATUS_MORE: Final = 1
#: A delta or wrap longer than this can't be put in a frame (its length is a
#: u16): the server stops the frame before such an epoch.
MAX_PART: Final = 0xFFFF


@dataclass(frozen=True)
class CatchUpEntry:
    """One epoch of a frame: its delta and the caller's wrap of it (untrusted bytes)."""

    delta: bytes
    wrap: bytes


@dataclass(frozen=True)
class CatchUp:
    """A parsed frame.  ``roster_check`` is set exactly when ``at_head``."""

    entries: tuple[CatchUpEntry, ...]
    at_head: bool
    roster_check: bytes | None


def roster_check(nonce: bytes, roster_hash: bytes) -> bytes:
    """The 8-byte check of ``roster_hash`` under the device's ``nonce``.

    Raises:
        ValueError: a nonce or hash of the wrong size.
    """
    if len(nonce) != NONCE_SIZE or len(roster_hash) != HASH_SIZE:
        raise ValueError("roster check inputs have fixed sizes")
    digest = crypto.sha256(lp16(ROSTER_CHECK_LABEL) + nonce + roster_hash)
    return digest[:ROSTER_CHECK_SIZE]


def encode_catchup(entries: Sequence[CatchUpEntry], check: bytes | None) -> bytes:
    """A frame of ``entries``; ``check`` (the roster check) when the last entry
    is the head, None when the server has more.

    Raises:
        ValueError: too many entries, a part over 65535 bytes, a bad check.
    """
    if len(entries) > MAX_CATCHUP_EPOCHS:
        raise ValueError("too many epochs for one frame")
    if check is not None and len(check) != ROSTER_CHECK_SIZE:
        raise ValueError("the roster check is 8 bytes")
    out = bytearray(u8(CATCHUP_VERSION) + u8(len(entries)))
    out += u8(STATUS_MORE) if check is None else u8(STATUS_AT_HEAD) + check
    for entry in entries:
        for part in (entry.delta, entry.wrap):
            if not 0 < len(part) <= MAX_PART:
                raise ValueError("a frame part is 1 to 65535 bytes")
            out += u16(len(part)) + part
    return bytes(out)


def decode_catchup(data: bytes) -> CatchUp:
    """Parse a frame exactly (its parts are checked by their own decoders later).

    Raises:
        InvalidGroupObject: codes ``unsupported_version``, ``truncated``,
            ``trailing_data``, ``invalid_length`` (more than
            :data:`MAX_CATCHUP_EPOCHS` entries, an empty part), ``unknown_status``.
    """
    reader = Reader(bytes(data))
    try:
        if reader.u8() != CATCHUP_VERSION:
            raise InvalidGroupObject("unsupported catch-up version", "unsupported_version")
        count = reader.u8()
        if count > MAX_CATCHUP_EPOCHS:
            raise InvalidGroupObject("too many epochs in one frame", "invalid_length")
        status = reader.u8()
        if status not in (STATUS_AT_HEAD, STATUS_MORE):
            raise InvalidGroupObject("unknown catch-up status", "unknown_status")
        check = reader.take(ROSTER_CHECK_SIZE) if status == STATUS_AT_HEAD else None
        entries = []
        for _ in range(count):
            delta_length = reader.u16()
            delta = reader.take(delta_length)
            wrap_length = reader.u16()
            wrap = reader.take(wrap_length)
            if not delta or not wrap:
                raise InvalidGroupObject("an empty part", "invalid_length")
            entries.append(CatchUpEntry(delta, wrap))
        if reader.remaining:
            raise InvalidGroupObject("bytes after the last entry", "trailing_data")
    except Truncated as exc:
        raise InvalidGroupObject("the catch-up frame is truncated", "truncated") from exc
    return CatchUp(tuple(entries), status == STATUS_AT_HEAD, check)
