"""The ciphertext side of an upload: age encryption produced as it is read.

:class:`EncryptingReader` turns a plaintext stream of known size into its
age file, chunk by chunk, with the exact size known before the first byte
(so it can be reserved and sent as a Content-Length); :func:`ciphertext_of`
gives that ciphertext as often as a retry needs it, spooling a stream of
unknown size (a pipe) encrypted first.  Used by :mod:`client_sim.blobs`
(plain age files) and :mod:`client_sim.transfers` (sealed files).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, BinaryIO, cast

from client_sim import age
from client_sim.errors import SourceChanged
from client_sim.files import sized_source
from client_sim.transport import Readable

__all__ = [
    "EncryptingReader",
    "Restart",
    "Window",
    "age_file_size",
    "ciphertext_of",
    "spooled_ciphertext",
]

_CHUNK = 64 * 1024
_TAG = 16
# Plaintext is read in blocks of 16 chunks: large enough that the age
# writer seals most chunks straight from the block, small enough that the
# buffered ciphertext stays around a megabyte.
_PLAINTEXT_BLOCK = 16 * _CHUNK
# A spooled ciphertext stays in memory up to this size, then moves to disk.
_SPOOL_IN_MEMORY = 1024 * 1024


def age_file_size(prefix_length: int, plaintext_size: int) -> int:
    """Size of an age file whose header plus nonce take ``prefix_length``
    bytes and whose plaintext is ``plaintext_size`` bytes: 64 KiB chunks,
    each with a 16-byte tag, and at least one (possibly empty) chunk."""
    chunks = max(1, math.ceil(plaintext_size / _CHUNK))
    return prefix_length + plaintext_size + chunks * _TAG


class _Chunks:
    """Where the age writer puts ciphertext until the reader takes it."""

    def __init__(self) -> None:
        self._parts: deque[bytes] = deque()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        block = data if isinstance(data, bytes) else bytes(data)
        if block:
            self._parts.append(block)
            self.size += len(block)
        return len(block)

    def flush(self) -> None:
        """Nothing to flush (the age writer calls it when sealing)."""

    def take(self, n: int) -> bytes:
        parts: list[bytes] = []
        taken = 0
        while self._parts and taken < n:
            part = self._parts.popleft()
            room = n - taken
            if len(part) > room:
                self._parts.appendleft(part[room:])
                part = part[:room]
            parts.append(part)
            taken += len(part)
        self.size -= taken
        # One join (or none for a single part): the ciphertext is copied once.
        return parts[0] if len(parts) == 1 else b"".join(parts)


class EncryptingReader:
    """The age encryption of ``source``, produced as it is read.

    ``size`` is known before anything is read, so it can be reserved and
    sent as a Content-Length.  Memory stays at about one plaintext block
    (1 MiB) whatever the file size.

    Raises (from :meth:`read`):
        SourceChanged: ``source`` ended before ``plaintext_size`` bytes, or
            had more; the ciphertext is then never completed (no final
            chunk), so a partial upload can't pass for a shorter file.
    """

    def __init__(
        self, source: Readable, plaintext_size: int, recipients: Sequence[age.Recipient]
    ) -> None:
        if plaintext_size < 0:
            raise ValueError("plaintext_size must not be negative")
        self._source = source
        self._left = plaintext_size
        self._sink = _Chunks()
        # The header, its MAC and the payload nonce are written right away.
        self._writer = age.encrypt_writer(cast(BinaryIO, self._sink), recipients)
        self.size = age_file_size(self._sink.size, plaintext_size)
        self._done = False

    def read(self, size: int = -1, /) -> bytes:
        want = size if size >= 0 else 1 << 62
        try:
            while self._sink.size < want and not self._done:
                self._pump()
        except BaseException:
            self._writer.abort()
            raise
        return self._sink.take(want)

    def _pump(self) -> None:
        if self._left == 0:
            if self._source.read(1):
                raise SourceChanged("the file grew while it was being uploaded")
            self._writer.close()  # seals the final chunk
            self._done = True
            return
        block = self._source.read(min(self._left, _PLAINTEXT_BLOCK))
        if not block:
            raise SourceChanged("the file shrank while it was being uploaded")
        self._left -= len(block)
        self._writer.write(block)

    def close(self) -> None:
        if not self._done:
            self._writer.abort()
            self._done = True


class Window:
    """At most ``length`` bytes of ``source`` (one multipart part)."""

    def __init__(self, source: Readable, length: int) -> None:
        self._source = source
        self._left = length

    def read(self, size: int = -1, /) -> bytes:
        want = self._left if size < 0 else min(size, self._left)
        data = self._source.read(want) if want else b""
        self._left -= len(data)
        return data


#: Gives the ciphertext from its start, with its exact size, each time it is called.
Restart = Callable[[], tuple[Readable, int]]


@contextlib.contextmanager
def ciphertext_of(
    source: str | os.PathLike[str] | IO[bytes] | Readable,
    *,
    size: int | None,
    reader: Callable[[Readable, int], EncryptingReader],
    encrypt: Callable[[Readable, BinaryIO], None],
) -> Iterator[Restart]:
    """The ciphertext of ``source``, in constant memory, as often as a retry needs it.

    Yields a :data:`Restart`: each call returns the ciphertext from its
    start and its exact size.  When the plaintext size is known (``size``,
    or measured by :func:`~client_sim.files.sized_source`) the ciphertext is
    produced as it is read (``reader(stream, plaintext_size)``), and a
    restart rewinds the source and encrypts it afresh.  Otherwise the source
    is encrypted whole (``encrypt(stream, spool)``) into a spooled temporary
    file first -- only ciphertext, never plaintext, can touch the disk --
    and a restart rewinds the spool.

    Raises (from a restart):
        ValueError: a second pass over a stream that can't seek.
    """
    with sized_source(source) as (stream, measured):
        plaintext_size = size if size is not None else measured
        if plaintext_size is None:
            with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
                encrypt(stream, cast(BinaryIO, spool))
                total = spool.tell()

                def rewind() -> tuple[Readable, int]:
                    spool.seek(0)
                    return cast(Readable, spool), total

                yield rewind
            return
        start = _position(stream)
        made: list[EncryptingReader] = []

        def reencrypt() -> tuple[Readable, int]:
            if made:
                made[-1].close()
                if start is None:
                    raise ValueError("a stream that can't seek can't be sent twice")
                stream.seek(start)
            encrypting = reader(stream, plaintext_size)
            made.append(encrypting)
            return encrypting, encrypting.size

        try:
            yield reencrypt
        finally:
            if made:
                made[-1].close()


class _Counting:
    """A reader that counts the bytes it hands out."""

    def __init__(self, inner: Readable) -> None:
        self._inner = inner
        self.count = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        self.count += len(data)
        return data


@contextlib.contextmanager
def spooled_ciphertext(
    source: str | os.PathLike[str] | IO[bytes] | Readable,
    encrypt: Callable[[Readable, BinaryIO], None],
) -> Iterator[Restart]:
    """The ciphertext of ``source``, encrypted whole (``encrypt(stream, spool)``)
    into a spooled temporary file first, in constant memory: for a format
    whose size isn't known before it is written (group content, whose
    sealer syncs the group first).  Only ciphertext can touch the disk, and
    a restart (each attempt of the upload) rewinds the spool.

    Raises:
        SourceChanged: a file or seekable stream that gave more or fewer
            bytes than it measured when it was opened (nothing is yielded).
    """
    with (
        sized_source(source) as (stream, measured),
        tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool,
    ):
        counting = _Counting(stream)
        encrypt(counting, cast(BinaryIO, spool))
        if measured is not None and counting.count != measured:
            raise SourceChanged(
                f"the file changed while it was being encrypted: {counting.count} bytes "
                f"read, {measured} expected"
            )
        total = spool.tell()

        def rewind() -> tuple[Readable, int]:
            spool.seek(0)
            return cast(Readable, spool), total

        yield rewind


def _position(stream: Any) -> int | None:
    try:
        return int(stream.tell())
    except (OSError, AttributeError, ValueError):
        return None
