"""Big-endian integers and length-prefixed fields, parsed strictly.

Sealbox's own binary formats (cards, the sealed-message framing, the
keystore, backups and private key bundles) are built from the same three
pieces: fixed-size big-endian integers, fixed-size byte strings, and
``lp16`` fields (a 2-byte big-endian length followed by that many bytes).
Each format lists its fields in one fixed order, so an encoding is a pure
function of the values and can be parsed back in exactly one way.

:class:`Reader` never reads past its buffer and never skips anything: a short
buffer raises :class:`Truncated`, and :meth:`Reader.finish` raises
:class:`TrailingData` when bytes are left over.  Both are ``ValueError``
subclasses that the format modules turn into their own error types.
"""

from __future__ import annotations

MAX_LP16 = 0xFFFF


class Truncated(ValueError):
    """The input ended inside a field."""


class TrailingData(ValueError):
    """Bytes are left after the last field."""


def lp16(data: bytes) -> bytes:
    """``data`` preceded by its length as 2 big-endian bytes.

    Raises:
        ValueError: ``data`` is longer than 65535 bytes.
    """
    if len(data) > MAX_LP16:
        raise ValueError("field is too long for a 2-byte length prefix")
    return len(data).to_bytes(2, "big") + data


def u8(value: int) -> bytes:
    """``value`` as one byte.  Raises ValueError when out of range."""
    return value.to_bytes(1, "big")


def u16(value: int) -> bytes:
    """``value`` as 2 big-endian bytes.  Raises OverflowError when out of range."""
    return value.to_bytes(2, "big")


def u32(value: int) -> bytes:
    """``value`` as 4 big-endian bytes.  Raises OverflowError when out of range."""
    return value.to_bytes(4, "big")


def u64(value: int) -> bytes:
    """``value`` as 8 big-endian bytes.  Raises OverflowError when out of range."""
    return value.to_bytes(8, "big")


class Reader:
    """A cursor over an immutable buffer; every method consumes what it returns."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        """How many bytes are left."""
        return len(self._data) - self._pos

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes.  Raises :class:`Truncated` when fewer are left."""
        if n < 0 or self.remaining < n:
            raise Truncated("input ends inside a field")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def u8(self) -> int:
        """The next byte as an integer."""
        return self.take(1)[0]

    def u16(self) -> int:
        """The next 2 bytes as a big-endian integer."""
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        """The next 4 bytes as a big-endian integer."""
        return int.from_bytes(self.take(4), "big")

    def u64(self) -> int:
        """The next 8 bytes as a big-endian integer."""
        return int.from_bytes(self.take(8), "big")

    def lp16(self) -> bytes:
        """The next length-prefixed field's contents."""
        return self.take(self.u16())

    def rest(self) -> bytes:
        """Everything that is left."""
        return self.take(self.remaining)

    def finish(self) -> None:
        """Raise :class:`TrailingData` unless the whole buffer was consumed."""
        if self.remaining:
            raise TrailingData("unexpected bytes after the last field")
