"""The wraps object of a group epoch, and the context group content is sealed with.

One write-once object per epoch holds the epoch secret HPKE-wrapped for
every member card, behind an index, so that each member reads only the
index entry's range it is told and its own wrap (docs/spec/groups.md)::

    wraps = "SBGWRAPS" || u8(1) || group id (16) || u64(epoch) || u16(n)
            || n x (card id (32) || u32(offset) || u16(length)), ascending by card id
            || the wrap bodies, in index order, back to back

Pure (no chalice, no boto3, no I/O): the backend parses the index of an
uploaded object to serve each member its range; tests and auditors parse
the whole object.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from chalicelib.wire.binary import Reader, Truncated, u8, u16, u32, u64
from chalicelib.wire.groups import (
    CARD_ID_SIZE,
    GROUP_CONTEXT_LABEL,
    GROUP_ID_BYTES,
    MAX_EPOCH,
    MAX_GROUP_MEMBERS,
    WRAP_SIZES,
    InvalidGroupObject,
    group_id_from_str,
    group_id_to_str,
)

__all__ = [
    "MAX_WRAPS_SIZE",
    "WRAPS_MAGIC",
    "WrapsIndex",
    "build_wraps",
    "group_context",
    "parse_group_context",
    "parse_wraps_index",
    "split_wraps",
]

WRAPS_MAGIC: Final = b"SBGWRAPS"
WRAPS_VERSION: Final = 1
_WRAPS_FIXED: Final = len(WRAPS_MAGIC) + 1 + GROUP_ID_BYTES + 8 + 2
_INDEX_ENTRY: Final = CARD_ID_SIZE + 4 + 2
#: The largest wraps object: a post-quantum wrap for every member of the largest group.
MAX_WRAPS_SIZE: Final = _WRAPS_FIXED + MAX_GROUP_MEMBERS * (_INDEX_ENTRY + max(WRAP_SIZES.values()))


@dataclass(frozen=True)
class WrapsIndex:
    """The index at the head of a wraps object: where each card's wrap is."""

    group_id: bytes
    number: int
    entries: Mapping[bytes, tuple[int, int]]  # card id -> (offset, length)

    @property
    def header_size(self) -> int:
        return _WRAPS_FIXED + _INDEX_ENTRY * len(self.entries)


def build_wraps(group_id: bytes, number: int, wraps: Mapping[bytes, bytes]) -> bytes:
    """The wraps object for ``wraps`` (card id -> wrap body).

    Raises:
        InvalidGroupObject: no wraps, too many, or a wrap body of the wrong size.
    """
    if not 1 <= len(wraps) <= MAX_GROUP_MEMBERS:
        raise InvalidGroupObject("a wraps object has 1 to 4096 wraps", "invalid_roster_size")
    order = sorted(wraps)
    offset = _WRAPS_FIXED + _INDEX_ENTRY * len(order)
    index = bytearray()
    for card_id in order:
        body = wraps[card_id]
        _check_wrap_body(body)
        if len(card_id) != CARD_ID_SIZE:
            raise InvalidGroupObject("a card id is 32 bytes", "invalid_length")
        index += card_id + u32(offset) + u16(len(body))
        offset += len(body)
    head = WRAPS_MAGIC + u8(WRAPS_VERSION) + group_id + u64(number) + u16(len(order))
    return bytes(head + index) + b"".join(wraps[card_id] for card_id in order)


def _check_wrap_body(body: bytes) -> None:
    if not body or body[0] not in WRAP_SIZES or len(body) != WRAP_SIZES[body[0]]:
        raise InvalidGroupObject("a wrap body has the wrong kind or size", "invalid_wrap")


def parse_wraps_index(data: bytes, *, total_size: int | None = None) -> WrapsIndex:
    """Parse the index at the start of a wraps object (``data`` may hold more).

    The entries must be strictly ascending by card id, their bodies back to
    back from the end of the index; with ``total_size`` the last one must end
    exactly there.

    Raises:
        InvalidGroupObject: codes ``bad_magic``, ``unsupported_version``,
            ``truncated``, ``index_not_sorted``, ``bad_offset``, ``invalid_wrap``.
    """
    reader = Reader(bytes(data))
    try:
        if reader.take(len(WRAPS_MAGIC)) != WRAPS_MAGIC:
            raise InvalidGroupObject("not a wraps object", "bad_magic")
        if reader.u8() != WRAPS_VERSION:
            raise InvalidGroupObject("unsupported wraps version", "unsupported_version")
        group_id = reader.take(GROUP_ID_BYTES)
        number = reader.u64()
        count = reader.u16()
        if not 1 <= count <= MAX_GROUP_MEMBERS:
            raise InvalidGroupObject("a wraps object has 1 to 4096 wraps", "invalid_roster_size")
        expected = _WRAPS_FIXED + _INDEX_ENTRY * count
        entries: dict[bytes, tuple[int, int]] = {}
        previous = b""
        for _ in range(count):
            card_id = reader.take(CARD_ID_SIZE)
            offset = reader.u32()
            length = reader.u16()
            if card_id <= previous:
                raise InvalidGroupObject("index not ascending by card id", "index_not_sorted")
            previous = card_id
            if offset != expected:
                raise InvalidGroupObject("wrap bodies are back to back", "bad_offset")
            if length not in WRAP_SIZES.values():
                raise InvalidGroupObject("a wrap body has the wrong size", "invalid_wrap")
            entries[card_id] = (offset, length)
            expected += length
    except Truncated as exc:
        raise InvalidGroupObject("the wraps index is truncated", "truncated") from exc
    if total_size is not None and total_size != expected:
        raise InvalidGroupObject("the wraps object has the wrong size", "bad_offset")
    return WrapsIndex(group_id, number, entries)


def split_wraps(data: bytes) -> tuple[WrapsIndex, dict[bytes, bytes]]:
    """A whole wraps object as its index and card id -> wrap body.

    Raises:
        InvalidGroupObject: as :func:`parse_wraps_index`, for the whole object.
    """
    index = parse_wraps_index(data, total_size=len(data))
    bodies = {card: data[off : off + length] for card, (off, length) in index.entries.items()}
    for body in bodies.values():
        _check_wrap_body(body)
    return index, bodies


# --- group content -------------------------------------------------------------------


def group_context(group_id: bytes, number: int, suffix: bytes = b"") -> bytes:
    """The sealed-header context of content for epoch ``number`` of a group.

    ``sealbox/v1/group/<group id>/<epoch>``, then ``suffix`` (``/app/<app
    context>`` or ``/blob/<blob id>``) if any.
    """
    return (
        GROUP_CONTEXT_LABEL
        + b"/"
        + group_id_to_str(group_id).encode("ascii")
        + b"/"
        + str(number).encode("ascii")
        + suffix
    )


_CONTEXT_RE: Final = re.compile(
    re.escape(GROUP_CONTEXT_LABEL) + rb"/([A-Za-z0-9_-]{22})/(0|[1-9][0-9]{0,18})(/.*)?"
)


def parse_group_context(context: bytes) -> tuple[bytes, int, bytes] | None:
    """``(group id, epoch, suffix)`` of a group content context, or None."""
    match = _CONTEXT_RE.fullmatch(context)
    if match is None:
        return None
    try:
        group_id = group_id_from_str(match.group(1).decode("ascii"))
    except InvalidGroupObject:
        return None
    number = int(match.group(2))
    if number > MAX_EPOCH:
        return None
    return group_id, number, match.group(3) or b""
