"""A small buffered reader over any binary file object.

The header parser needs lines and a look-ahead, the STREAM reader needs exact
reads and a one-byte peek, and neither may assume the source is seekable
(stdin, sockets, an armor decoder).  :class:`ByteSource` gives both over a
plain ``read(n)`` with a bounded buffer.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["BlockSource", "ByteSource", "Readable"]

_READ_SIZE = 64 * 1024
# BlockSource reads up to this much per call once a stream proves long.
_BLOCK_SIZE = 1024 * 1024


class Readable(Protocol):
    """Anything with a binary ``read(n)`` (files, BytesIO, our readers)."""

    def read(self, size: int = -1, /) -> bytes: ...


class ByteSource:
    """Buffered reads, peeks and bounded line reads over ``src``.

    The buffer never holds more than the largest single request plus one
    read block, so memory does not depend on the size of the input.
    """

    __slots__ = ("_buf", "_eof", "_pos", "_src")

    def __init__(self, src: Readable) -> None:
        self._src = src
        self._buf = bytearray()
        self._pos = 0
        self._eof = False

    def _available(self) -> int:
        return len(self._buf) - self._pos

    def _fill(self, want: int) -> None:
        """Read until ``want`` bytes are buffered or the source is exhausted."""
        if self._pos and self._pos >= len(self._buf) // 2:
            del self._buf[: self._pos]
            self._pos = 0
        while self._available() < want and not self._eof:
            chunk = self._src.read(max(_READ_SIZE, want - self._available()))
            if not chunk:
                self._eof = True
                break
            self._buf += chunk

    def peek(self, n: int) -> bytes:
        """Up to ``n`` upcoming bytes, without consuming them (fewer only at EOF)."""
        self._fill(n)
        return bytes(self._buf[self._pos : self._pos + n])

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at EOF)."""
        available = self._available()
        if available == 0 and not self._eof:
            # Fast path for chunk-sized reads: skip the buffer entirely when
            # the source hands over everything at once (files usually do).
            data = self._src.read(n)
            if len(data) == n:
                return data
            if not data:
                self._eof = True
                return b""
            self._buf = bytearray(data)
            self._pos = 0
            available = len(data)
        if 0 < available < n and not self._eof:
            # Take what is buffered and read exactly the rest, so the buffer
            # empties and the next chunk-sized reads take the fast path
            # (after the header, the buffer is otherwise never drained and
            # every chunk would be copied through it twice).
            head = bytes(self._buf[self._pos :])
            self._buf.clear()
            self._pos = 0
            return head + self._read_exactly(n - available)
        self._fill(n)
        out = bytes(self._buf[self._pos : self._pos + n])
        self._pos += len(out)
        return out

    def _read_exactly(self, n: int) -> bytes:
        """``n`` bytes straight from the source (fewer only at EOF)."""
        parts = []
        while n and not self._eof:
            data = self._src.read(n)
            if not data:
                self._eof = True
                break
            parts.append(data)
            n -= len(data)
        return b"".join(parts)

    def detach(self) -> tuple[bytes, Readable, bool]:
        """Hand over what is buffered, the source and whether it ended.

        For a reader that takes over the rest of the stream (the payload's
        :class:`BlockSource`); this object must not be read again.
        """
        rest = bytes(self._buf[self._pos :])
        self._buf = bytearray()
        self._pos = 0
        return rest, self._src, self._eof

    def skip(self, n: int) -> None:
        """Consume ``n`` bytes that a :meth:`peek` already returned."""
        self._pos += n

    def read_line(self, limit: int) -> bytes | None:
        """The next line including its ``\\n``; at EOF the unterminated rest.

        Returns ``None`` when no ``\\n`` occurs within ``limit`` bytes, so a
        hostile input can't make us buffer an unbounded line.
        """
        start = 0
        while True:
            index = self._buf.find(b"\n", self._pos + start, self._pos + limit)
            if index >= 0:
                out = bytes(self._buf[self._pos : index + 1])
                self._pos = index + 1
                return out
            start = self._available()
            if start >= limit:
                return None
            if self._eof:
                out = bytes(self._buf[self._pos :])
                self._pos = len(self._buf)
                return out
            self._fill(start + 1)


class BlockSource:
    """Reads of at most ``max_request`` bytes, served as views of one buffer.

    For the long run of equal reads that is an age payload: the source is
    read up to a block (1 MiB) per call -- with ``readinto`` straight into
    the buffer when the source has it (files, sockets) -- instead of once per
    64 KiB chunk, and nothing is copied on the way out.  What the header's
    reads brought along is served first (for a small file, often all of
    it); the first fill makes a buffer of two requests, which grows to a
    block once a fill finds it too small for what the source has, and is
    never resized afterwards, so memory stays flat in the stream's length.

    A view returned by :meth:`read_view` is valid only until the next call
    on this object, which may overwrite it.
    """

    __slots__ = ("_buf", "_end", "_eof", "_long", "_max", "_readinto", "_src", "_start", "_view")

    def __init__(self, head: bytes, src: Readable, eof: bool, *, max_request: int) -> None:
        self._src = src
        self._readinto = getattr(src, "readinto", None)
        self._max = max_request
        # What the header's reads brought along: often the whole payload of
        # a small file, served from here without another buffer.
        self._buf = bytearray(head)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = len(head)
        self._eof = eof
        self._long = False

    def read_view(self, n: int) -> memoryview:
        """Up to ``n`` (at most ``max_request``) bytes; fewer only at the end."""
        if n > self._max:
            raise ValueError("read larger than the reader's max_request")
        if self._end - self._start < n and not self._eof:
            self._fill(n)
        start = self._start
        self._start = min(start + n, self._end)
        return self._view[start : self._start]

    def at_end(self) -> bool:
        """True when nothing follows what was read."""
        if self._start == self._end and not self._eof:
            self._fill(1)
        return self._start == self._end

    def _fill(self, want: int) -> None:
        rest = self._end - self._start
        # Two requests at first; a block once a fill found that too small.
        size = _BLOCK_SIZE + self._max if self._long else 2 * self._max
        if len(self._buf) < size:
            first = b""
            if not self._long:
                # Still on what came with the header: a small file has often
                # ended there, which the source says without a new buffer.
                first = self._src.read(self._max)
                if not first:
                    self._eof = True
                    return
            bigger = bytearray(max(size, rest + len(first)))
            bigger[:rest] = self._view[self._start : self._end]
            bigger[rest : rest + len(first)] = first
            rest += len(first)
            self._buf, self._view = bigger, memoryview(bigger)
        elif self._start:
            self._view[:rest] = self._view[self._start : self._end]
        self._start, self._end = 0, rest
        while self._end < want and not self._eof:
            room = self._view[self._end :]
            if self._readinto is not None:
                got = self._readinto(room) or 0
            else:
                data = self._src.read(len(room))
                got = len(data)
                room[:got] = data
            if not got:
                self._eof = True
            self._end += got
        self._long = self._end == len(self._buf)
