"""The age payload: STREAM over ChaCha20-Poly1305 in 64 KiB chunks.

Each chunk is sealed under the payload key with the 12-byte nonce
``counter (11 bytes, big-endian) || last flag (0x00, or 0x01 on the final
chunk)``.  The flag makes truncation at a chunk boundary detectable, the
counter makes reordering detectable, and plaintext is released one
authenticated chunk at a time, so memory stays at about one chunk whatever
the file size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from client_sim import _hazmat
from client_sim.age._io import BlockSource, ByteSource
from client_sim.age.errors import DecryptionError

__all__ = ["CHUNK_SIZE", "ENCRYPTED_CHUNK_SIZE", "StreamDecryptor", "StreamEncryptor"]

CHUNK_SIZE = 64 * 1024
_TAG_SIZE = _hazmat.CHACHA20_POLY1305_TAG_SIZE
ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + _TAG_SIZE
# The counter has 11 bytes; a file would need 2**88 chunks to wrap it, but we
# refuse rather than ever reuse a nonce.
_MAX_COUNTER = (1 << 88) - 1
_R = TypeVar("_R")


def _nonce(counter: int, last: bool) -> bytes:
    if counter > _MAX_COUNTER:
        raise OverflowError("age STREAM counter exhausted")
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class StreamEncryptor:
    """Seals chunks in order.  The caller decides which chunk is the last."""

    __slots__ = ("_cipher", "_counter", "_done")

    def __init__(self, key: bytes) -> None:
        # One cipher for the whole payload: setting the key up per chunk
        # cost a measurable share of the throughput (bench.age_throughput).
        self._cipher = _hazmat.ChaCha20Poly1305Key(key)
        self._counter = 0
        self._done = False

    def _next_nonce(self, size: int, last: bool) -> bytes:
        if self._done:
            raise ValueError("the final chunk was already sealed")
        if size > CHUNK_SIZE or (not last and size != CHUNK_SIZE):
            raise ValueError("non-final chunks are exactly 64 KiB")
        if last and not size and self._counter:
            raise ValueError("only an empty payload has an empty final chunk")
        return _nonce(self._counter, last)

    def seal(self, chunk: bytes | bytearray | memoryview, *, last: bool) -> bytes:
        """Encrypt one chunk (exactly CHUNK_SIZE unless ``last``).

        Raises:
            ValueError: the final chunk was sealed already, or a size rule
                is broken.
        """
        out = self._cipher.seal(self._next_nonce(len(chunk), last), chunk)
        self._counter += 1
        self._done = last
        return out

    def seal_into(
        self, chunk: bytes | bytearray | memoryview, out: memoryview, *, last: bool
    ) -> int:
        """:meth:`seal` into the start of ``out``; returns the bytes written
        (``len(chunk) + 16``).  ``out`` must not overlap ``chunk``.

        Raises:
            ValueError: as for :meth:`seal`, or ``out`` is too small.
        """
        size = len(chunk) + _TAG_SIZE
        nonce = self._next_nonce(len(chunk), last)
        if len(out) < size:
            raise ValueError("no room for the sealed chunk")
        self._cipher.seal_into(nonce, chunk, out[:size])
        self._counter += 1
        self._done = last
        return size


class StreamDecryptor:
    """Opens chunks from a :class:`ByteSource` positioned after the nonce.

    Raises :class:`DecryptionError` for a wrong tag, a truncated stream (EOF
    before a valid final chunk), reordered chunks, an empty final chunk in a
    non-empty payload, and any byte after the final chunk.  Every chunk it
    returns has authenticated at its position; when a problem shows only
    after an authentic chunk (the stream ends without a final chunk, or data
    follows the final chunk), that chunk is returned and the next call
    raises.  This is exactly what the CCTV vectors expect an API to release.

    The decryptor takes the rest of the stream over from ``src`` (which
    must not be read again): the payload is read a block at a time and each
    chunk is opened from a view of that block (:class:`BlockSource`).
    """

    __slots__ = ("_cipher", "_counter", "_done", "_src", "_trailing")

    def __init__(self, key: bytes, src: ByteSource) -> None:
        self._cipher = _hazmat.ChaCha20Poly1305Key(key)
        head, raw, eof = src.detach()
        self._src = BlockSource(head, raw, eof, max_request=ENCRYPTED_CHUNK_SIZE)
        self._counter = 0
        self._done = False
        self._trailing = False

    @property
    def done(self) -> bool:
        """True once the final chunk has been authenticated and nothing follows."""
        return self._done and not self._trailing

    def _open(self, data: memoryview, last: bool) -> bytes | None:
        try:
            return self._cipher.open(_nonce(self._counter, last), data)
        except _hazmat.InvalidTag:
            return None

    def next_chunk(self) -> bytes:
        """The next authenticated plaintext chunk; ``b""`` once the end has
        been reached (and for the one chunk of an empty payload)."""
        return self._next(self._open, b"")

    def next_chunk_into(self, out: memoryview) -> int:
        """Open the next chunk into ``out`` (at least CHUNK_SIZE bytes); its
        length, 0 once the end has been reached (and for the one chunk of an
        empty payload).  Same errors and order as :meth:`next_chunk`; when a
        chunk fails, the part of ``out`` it was opened into holds zeros."""

        def open_into(data: memoryview, last: bool) -> int | None:
            try:
                return self._cipher.open_into(_nonce(self._counter, last), data, out)
            except _hazmat.InvalidTag:
                return None

        if len(out) < CHUNK_SIZE:
            raise ValueError("the output buffer must hold a whole chunk")
        return self._next(open_into, 0)

    def _next(self, open_one: Callable[[memoryview, bool], _R | None], end: _R) -> _R:
        if self._trailing:
            raise DecryptionError
        if self._done:
            return end
        plain: _R | None
        with self._src.read_view(ENCRYPTED_CHUNK_SIZE) as data:
            if len(data) < ENCRYPTED_CHUNK_SIZE:
                # A short chunk ended at EOF, so it can only be the final one; it
                # is empty only when the whole payload is (and EOF right after a
                # non-final chunk is a truncation).
                if len(data) < _TAG_SIZE or (len(data) == _TAG_SIZE and self._counter):
                    raise DecryptionError
                last = True
                plain = open_one(data, True)
            else:
                # A full-size chunk is normally not the last; if it does not
                # authenticate as such, it may be a full-size final chunk.
                last = False
                plain = open_one(data, False)
                if plain is None:
                    last = True
                    plain = open_one(data, True)
        if plain is None:
            raise DecryptionError
        self._counter += 1
        if last:
            self._done = True
            # Anything after the final chunk is an error, reported by the
            # next call (after this authentic chunk has been released).
            self._trailing = not self._src.at_end()
        return plain
