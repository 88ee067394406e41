"""moto's ``CompleteMultipartUpload`` for the local stack, assembled without a copy in memory.

S3 assembles a multipart upload on its side, where it costs the uploader
nothing but the request.  moto 5.2 assembles it in Python and, on the way,
holds the object in memory several times over: the parts extended into one
buffer, a second buffer for the default full-object checksum, and a
``bytes`` copy of each (tracemalloc: 84 MB for a 20 MiB object).  Measured
on the local stack (2 cores): completing a 100 MiB upload took 0.35-0.49 s
and a 1 GiB one about 6 s, longer than the API's own S3 timeout (the commit
then answered ``503`` while moto was still assembling).

:func:`assemble_by_streaming` makes moto copy the parts once, block by
block, into a spooled file: ``FakeMultipart.complete`` returns that file
(:class:`AssembledParts`) instead of the bytes, and ``FakeKey``'s value
setter, given it, takes the file over as the object's value.  (moto
disposes of the parts before it stores the object, so they can't be read
later.)  The checksum is the one moto computes, over the same bytes
(incrementally, with the same algorithm and the same fallbacks).
Everything moto answers is the same: the bytes, the ETag (the MD5 of the
parts' MD5s, ``-N``), the checksum and its type, and the errors
(``InvalidPart`` for a missing part or a wrong ETag, ``EntityTooSmall`` for
a small part that is not the last, ``MalformedXML`` for none).
``tests/functional/test_moto_multipart.py`` holds the two implementations
to the same answers.  Only the local stack's moto server
(:mod:`sealbox_tools.moto_server`) applies it; AWS is never affected.
"""

from __future__ import annotations

import binascii
import hashlib
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any, cast

__all__ = ["AssembledParts", "assemble_by_streaming", "complete_by_parts"]

_BLOCK = 1024 * 1024


def _blocks(part: Any) -> Iterator[memoryview]:
    """A part's bytes in blocks of one reused buffer (under the part's lock)."""
    buffer = bytearray(_BLOCK)
    view = memoryview(buffer)
    with part.lock:
        source = part._value_buffer
        source.seek(0)
        while got := source.readinto(buffer):
            yield view[:got]


class _Running:
    """An incremental form of moto's ``compute_checksum`` for one algorithm.

    The same choices as moto's (``moto.s3.utils.compute_checksum``): SHA1;
    CRC32C (CRC32 when the ``crc32c`` package is missing); CRC32; CRC64NVME
    (CRC32 when ``awscrt`` is missing); SHA256 for anything else.
    """

    def __init__(self, algorithm: str) -> None:
        from moto.core.compat import HAS_CRT

        self._crc: Callable[[Any, int], int] | None = None
        self._width = 4
        self._hash: Any = None
        self._value = 0
        if algorithm == "SHA1":
            self._hash = hashlib.sha1(usedforsecurity=False)
        elif algorithm == "CRC32C":
            try:
                import crc32c  # type: ignore[import-not-found]

                self._crc = crc32c.crc32c
            except ImportError:
                self._crc = binascii.crc32
        elif algorithm == "CRC32":
            self._crc = binascii.crc32
        elif algorithm == "CRC64NVME" and HAS_CRT:
            from awscrt import checksums  # type: ignore[import-not-found]

            self._crc, self._width = checksums.crc64nvme, 8
        elif algorithm == "CRC64NVME":
            self._crc = binascii.crc32
        else:
            self._hash = hashlib.sha256(usedforsecurity=False)

    def update(self, data: memoryview | bytes) -> None:
        if self._crc is not None:
            self._value = self._crc(data, self._value)
        else:
            self._hash.update(data)

    def digest(self) -> bytes:
        if self._crc is not None:
            return self._value.to_bytes(self._width, "big")
        return bytes(self._hash.digest())


class AssembledParts:
    """A completed upload's bytes in a file of their own, ready to become an
    object's value: what moto's ``FakeKey`` value setter (patched by
    :func:`assemble_by_streaming`) takes over instead of copying bytes.

    moto disposes of the parts' files before it stores the object, so the
    parts are copied here, once, block by block, while their checksum is
    computed.
    """

    def __init__(self, spool: IO[bytes], size: int) -> None:
        self._spool: IO[bytes] | None = spool
        self.size = size

    def __len__(self) -> int:
        return self.size

    def hand_to(self, key: Any) -> None:
        """Make the file ``key``'s value (once).

        Raises:
            RuntimeError: the file was already handed to a key.
        """
        if self._spool is None:
            raise RuntimeError("assembled parts already stored")
        spool, self._spool = self._spool, None
        previous = key._value_buffer
        key._value_buffer = spool
        key.contentsize = self.size
        previous.close()


def complete_by_parts(
    multipart: Any, body: Iterator[tuple[int, str]]
) -> tuple[AssembledParts, str, tuple[str, str, int]]:
    """What ``FakeMultipart.complete`` returns, with the bytes in a file.

    ``body`` is the request's (part number, ETag) pairs in order.  Returns
    the assembled bytes, the object's ETag, and (checksum type, checksum,
    part count).

    Raises:
        InvalidPart, EntityTooSmall, MalformedXML: as moto does, before
            anything is read.
    """
    from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
    from moto.s3.utils import compute_checksum
    from moto.settings import S3_UPLOAD_PART_MIN_SIZE, get_s3_default_key_buffer_size

    parts: list[Any] = []
    md5s = bytearray()
    for number, etag in body:
        part = multipart.parts.get(number)
        if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
            raise InvalidPart()
        if parts and parts[-1].contentsize < S3_UPLOAD_PART_MIN_SIZE:
            raise EntityTooSmall()
        md5s.extend(bytes.fromhex(part.etag.replace('"', "")))
        parts.append(part)
    if not parts:
        raise MalformedXML

    # The same rule as moto's MultipartChecksumBuilder: CRC64NVME over the
    # whole object unless the upload named an algorithm; COMPOSITE (a
    # checksum of the parts' checksums) by default for any other algorithm.
    algorithm = multipart.metadata.get("x-amz-checksum-algorithm") or "CRC64NVME"
    kind = multipart.metadata.get("x-amz-checksum-type") or (
        "FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE"
    )
    # Spooled like the file of any new object (moto's FakeKey default).
    spool = tempfile.SpooledTemporaryFile(get_s3_default_key_buffer_size())  # noqa: SIM115
    whole = _Running(algorithm)
    per_part: list[bytes] = []
    size = 0
    for part in parts:
        running = _Running(algorithm) if kind == "COMPOSITE" else whole
        for block in _blocks(part):
            spool.write(block)
            running.update(block)
            size += len(block)
        if kind == "COMPOSITE":
            per_part.append(running.digest())
    if kind == "COMPOSITE":
        value = compute_checksum(b"".join(per_part), algorithm).decode()
        checksum = (kind, value, len(parts))
    else:
        checksum = (kind, binascii.b2a_base64(whole.digest(), newline=False).decode(), 1)
    # moto 5.2.6 keeps the parts' sizes for GetObject's PartNumber and
    # PartsCount (5.2.5 has no such attribute and ignores it).
    multipart.completed_part_sizes = [part.size for part in parts]
    etag = hashlib.md5(bytes(md5s), usedforsecurity=False).hexdigest()
    return AssembledParts(spool, size), f"{etag}-{len(parts)}", checksum


def assemble_by_streaming() -> None:
    """Make moto complete multipart uploads with :func:`complete_by_parts` (idempotent)."""
    from moto.s3.models import FakeKey, FakeMultipart

    if getattr(FakeMultipart.complete, "sealbox_streaming", False):
        return
    # The property object itself (FakeKey.value on the class is the property).
    original = cast(property, vars(FakeKey)["value"])

    def complete(
        self: Any, body: Iterator[tuple[int, str]]
    ) -> tuple[AssembledParts, str, tuple[str, str, int]]:
        return complete_by_parts(self, body)

    def set_value(self: Any, new_value: Any) -> None:
        if isinstance(new_value, AssembledParts):
            new_value.hand_to(self)
        else:
            original.fset(self, new_value)  # type: ignore[misc]

    complete.sealbox_streaming = True  # type: ignore[attr-defined]
    FakeKey.value = property(original.fget, set_value)  # type: ignore[method-assign,assignment]
    FakeMultipart.complete = complete  # type: ignore[method-assign,assignment]
