"""Encrypt and decrypt: header, MAC, payload, and the streaming objects."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

from client_sim import _hazmat
from client_sim.age._format import (
    Stanza,
    parse_header,
    serialize_header_without_mac,
    serialize_mac_line,
)
from client_sim.age._io import ByteSource, Readable
from client_sim.age._stream import CHUNK_SIZE, StreamDecryptor, StreamEncryptor
from client_sim.age.errors import DecryptionError, NoIdentityMatch

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

    from client_sim.age.armor import ArmorWriter

# Armor, the hybrid and the passphrase types are imported where they are
# used: a plain X25519 `sealbox age` never needs them, and every module it
# imports is start-up time (tests/unit/test_cli_imports.py).

#: The decrypting side's default ceiling for a scrypt stanza's work factor
#: (4 GiB of scrypt memory, age's default); the scrypt module re-exports it.
DEFAULT_MAX_WORK_FACTOR = 22

__all__ = [
    "AgeReader",
    "AgeWriter",
    "BatchSink",
    "Identity",
    "Recipient",
    "RecipientWithLabels",
    "decrypt",
    "decrypt_bytes",
    "decrypt_reader",
    "encrypt",
    "encrypt_bytes",
    "encrypt_writer",
    "rewrap_header",
]

FILE_KEY_SIZE = 16
_NONCE_SIZE = 16
_HEADER_INFO = b"header"
_PAYLOAD_INFO = b"payload"
# Plaintext is read 16 chunks at a time: the writer seals every chunk but
# the last of each read straight from the read buffer (that one waits, and
# is copied, until it is known not to be the final chunk).  With chunks
# sealed into lent buffers, ``sealbox age -r`` on 256 MiB measured 1 MiB
# reads about 1.5 % less CPU than 256 KiB ones (bench.age_throughput's
# command), for 0.8 MiB more peak RSS.
_COPY_SIZE = 16 * CHUNK_SIZE
_SEALED_CHUNK_SIZE = CHUNK_SIZE + _hazmat.CHACHA20_POLY1305_TAG_SIZE


@runtime_checkable
class Recipient(Protocol):
    """Something a file can be encrypted to (one method, like age's)."""

    def wrap(self, file_key: bytes) -> list[Stanza]:
        """Stanzas that carry ``file_key`` to this recipient."""
        ...


@runtime_checkable
class RecipientWithLabels(Protocol):
    """Optional extension of :class:`Recipient`.

    :func:`encrypt` succeeds only if every recipient reports the same label
    set (the empty set for plain recipients).  Hybrid recipients report
    ``{"postquantum"}`` so they can't be mixed with classic ones; a scrypt
    recipient reports a unique label so it can only be used alone.
    """

    def wrap_with_labels(self, file_key: bytes) -> tuple[list[Stanza], frozenset[str]]:
        """Stanzas plus this recipient's labels."""
        ...


@runtime_checkable
class Identity(Protocol):
    """Something that can open stanzas (one method, like age's)."""

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes:
        """The 16-byte file key from whichever stanza this identity opens.

        Must raise :class:`NoIdentityMatch` when none is addressed to it and
        :class:`DecryptionError` when a stanza of its type is malformed.
        """
        ...


@runtime_checkable
class BatchSink(Protocol):
    """A destination that lends the buffers it writes (optional, for speed).

    :class:`AgeWriter` seals chunks straight into the buffer that
    ``claim_batch`` returns, instead of a fresh bytes object per chunk, and
    hands it back filled with ``submit_batch(size)``.  The buffer is the
    writer's from the claim until the submit (claiming again before
    submitting returns the same buffer), and the sink's after it: the writer
    never touches a submitted buffer, and the sink never reads one before it
    is submitted.  Bytes reach the destination in order, whether written
    with ``write`` or submitted.  :class:`client_sim.pipeline.WriteBehind`
    is one.
    """

    def write(self, data: ReadableBuffer, /) -> int:
        """Write ``data`` (the header goes this way)."""
        ...

    def claim_batch(self) -> memoryview:
        """A writable buffer of at least one sealed chunk (65,552 bytes)."""
        ...

    def submit_batch(self, size: int) -> None:
        """Write the first ``size`` bytes of the claimed buffer."""
        ...


@runtime_checkable
class _SeededRecipient(Protocol):
    # The private test seam: native recipients can draw their randomness
    # from an injected ``rand`` so vectors are reproducible.
    def _wrap_with_labels(
        self, file_key: bytes, rand: _hazmat.Rand
    ) -> tuple[list[Stanza], frozenset[str]]: ...


def _wrap_all(recipients: Sequence[Recipient], file_key: bytes, rand: _hazmat.Rand) -> list[Stanza]:
    if isinstance(recipients, (str, bytes)) or not isinstance(recipients, Sequence):
        raise TypeError("recipients must be a sequence of Recipient objects")
    if not recipients:
        raise ValueError("no recipients given")
    stanzas: list[Stanza] = []
    label_sets: list[frozenset[str]] = []
    for recipient in recipients:
        if isinstance(recipient, _SeededRecipient):
            wrapped, labels = recipient._wrap_with_labels(file_key, rand)
        elif isinstance(recipient, RecipientWithLabels):
            wrapped, labels = recipient.wrap_with_labels(file_key)
        elif isinstance(recipient, Recipient):
            wrapped, labels = recipient.wrap(file_key), frozenset()
        else:
            raise TypeError(f"not a Recipient: {type(recipient).__name__}")
        if not wrapped or not all(isinstance(s, Stanza) for s in wrapped):
            raise TypeError("a recipient must return a non-empty list of Stanza")
        stanzas.extend(wrapped)
        label_sets.append(frozenset(labels))
    if any(labels != label_sets[0] for labels in label_sets):
        from client_sim.age.pq import POSTQUANTUM_LABEL

        if any(POSTQUANTUM_LABEL in labels for labels in label_sets):
            raise ValueError(
                "incompatible recipients: can't mix post-quantum and classic recipients"
            )
        raise ValueError("incompatible recipients: a passphrase recipient must be used alone")
    if len(stanzas) > 1 and any(s.type == "scrypt" for s in stanzas):
        raise ValueError("incompatible recipients: a passphrase recipient must be used alone")
    return stanzas


class AgeWriter(io.BufferedIOBase):
    """Encrypts what is written to it; :meth:`close` seals the final chunk.

    The header was written to the destination when the writer was made.
    Plaintext is buffered one chunk (64 KiB) at a time, so memory does not
    depend on the amount written.  ``close()`` does not close the
    destination.  Used as a context manager, an exception inside the block
    *aborts* instead: no final chunk is written, so the truncated output
    fails to decrypt rather than passing for a complete shorter file.  A
    writer that is garbage-collected without ``close()`` is aborted the same
    way.  A destination that is a :class:`BatchSink` gets the sealed chunks
    in the buffers it lends, a batch at a time (an abort drops the batch
    not yet submitted); any other gets one ``bytes`` object per chunk.
    """

    def __init__(
        self, out: BinaryIO | ArmorWriter, encryptor: StreamEncryptor, dst: BinaryIO
    ) -> None:
        super().__init__()
        self._out = out
        self._dst = dst
        self._encryptor = encryptor
        self._buf = bytearray()
        self._finished = False
        # A sink that lends buffers gets chunks sealed into them, a batch
        # at a time (no allocation per chunk); any other output gets one
        # bytes object per chunk, which it may keep.
        self._sink = out if isinstance(out, BatchSink) else None
        self._batch: memoryview | None = None
        self._filled = 0

    def _seal(self, chunk: bytes | bytearray | memoryview, *, last: bool) -> None:
        """Seal one chunk to the output (into the current batch, if any)."""
        sink = self._sink
        if sink is None:
            self._out.write(self._encryptor.seal(chunk, last=last))
            return
        if self._batch is not None and len(self._batch) - self._filled < _SEALED_CHUNK_SIZE:
            self._submit()
        if self._batch is None:
            batch = sink.claim_batch()
            if len(batch) < _SEALED_CHUNK_SIZE:
                raise ValueError("a batch must hold at least one sealed chunk")
            self._batch, self._filled = batch, 0
        self._filled += self._encryptor.seal_into(chunk, self._batch[self._filled :], last=last)
        if last:
            self._submit()

    def _submit(self) -> None:
        batch, filled = self._batch, self._filled
        self._batch, self._filled = None, 0
        if batch is not None and filled and self._sink is not None:
            self._sink.submit_batch(filled)

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer, /) -> int:
        """Buffer ``data``, emitting each full chunk once more data follows it.

        Raises:
            ValueError: the writer is closed.
        """
        if self.closed:
            raise ValueError("write to a closed AgeWriter")
        view = memoryview(data).cast("B")
        total = len(view)
        pos = 0
        while pos < total:
            if len(self._buf) == CHUNK_SIZE:
                # More data follows a full buffer, so it is not the last chunk.
                self._seal(self._buf, last=False)
                self._buf.clear()
            if not self._buf and total - pos > CHUNK_SIZE:
                # Whole chunks that are certainly not the last are sealed
                # straight from the caller's buffer, without a copy.
                self._seal(view[pos : pos + CHUNK_SIZE], last=False)
                pos += CHUNK_SIZE
                continue
            take = min(CHUNK_SIZE - len(self._buf), total - pos)
            self._buf += view[pos : pos + take]
            pos += take
        return total

    def write_from(self, src: Readable) -> int:
        """Encrypt everything readable from ``src``; returns the bytes taken.

        Reads into one preallocated buffer when ``src`` has ``readinto``
        (a fresh megabyte per read costs more than sealing it), so most
        chunks are sealed straight from that buffer without a copy.  The
        writer stays open: :meth:`close` still seals the final chunk.

        Raises:
            ValueError: the writer is closed.
        """
        buffer = bytearray(_COPY_SIZE)
        view = memoryview(buffer)
        readinto = getattr(src, "readinto", None)
        total = 0
        while True:
            if readinto is not None:
                n = readinto(buffer)
                if not n:
                    break
                self.write(view[:n])
            else:
                block = src.read(_COPY_SIZE)
                if not block:
                    break
                n = len(block)
                self.write(block)
            total += n
        return total

    def close(self) -> None:
        """Seal the final chunk (and the armor trailer); idempotent."""
        if self.closed:
            return
        try:
            if not self._finished:
                self._finished = True
                self._seal(self._buf, last=True)
                self._buf.clear()
                if self._out is not self._dst:
                    # The armor layer: close() writes its trailer, not dst's.
                    self._out.close()
                if hasattr(self._dst, "flush"):
                    self._dst.flush()
        finally:
            super().close()

    def abort(self) -> None:
        """Stop without sealing the final chunk (the output stays invalid).

        Chunks sealed into a batch that was not submitted yet are dropped.
        """
        self._finished = True
        self._buf.clear()
        self._drop_batch()
        super().close()

    def _drop_batch(self) -> None:
        # Never submitted: the sink hands the same buffer out again.
        self._batch, self._filled = None, 0

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # Never finalize from the garbage collector: a forgotten close() must
        # leave a truncated (undecryptable) file, not a valid shorter one.
        if not getattr(self, "_finished", True):
            self._finished = True
            self._buf.clear()
            self._drop_batch()


class AgeReader(io.BufferedIOBase):
    """Decrypted plaintext of an age file, read one authenticated chunk at a time.

    Every read raises :class:`DecryptionError` if the payload is damaged,
    truncated, reordered or followed by trailing data; such problems surface
    at the latest when the end is reached, and no unauthenticated byte is
    ever returned.  Once raised, the error repeats on every later read.
    ``close()`` does not close the source.
    """

    def __init__(self, decryptor: StreamDecryptor) -> None:
        super().__init__()
        self._decryptor = decryptor
        self._chunk = b""
        self._offset = 0
        self._failed = False

    def readable(self) -> bool:
        return True

    def _fetch(self) -> bool:
        """Load the next chunk; False at the end of the plaintext."""
        if self._failed:
            raise DecryptionError
        while self._offset >= len(self._chunk):
            if self._decryptor.done:
                return False
            try:
                self._chunk = self._decryptor.next_chunk()
            except DecryptionError:
                self._failed = True
                raise
            self._offset = 0
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        """Up to ``size`` bytes (all remaining when ``size`` is negative or
        None); fewer only at the end.

        Raises:
            DecryptionError: the payload failed authentication.
        """
        if self.closed:
            raise ValueError("read from a closed AgeReader")
        if size is None or size < 0:
            parts = []
            while self._fetch():
                parts.append(self._chunk[self._offset :])
                self._offset = len(self._chunk)
            return b"".join(parts)
        out = bytearray()
        while len(out) < size and self._fetch():
            take = min(size - len(out), len(self._chunk) - self._offset)
            out += self._chunk[self._offset : self._offset + take]
            self._offset += take
        return bytes(out)

    def read1(self, size: int = -1, /) -> bytes:
        """At most one chunk's worth: bytes already decrypted, or the next chunk."""
        if self.closed:
            raise ValueError("read from a closed AgeReader")
        if not self._fetch():
            return b""
        end = len(self._chunk) if size < 0 else min(len(self._chunk), self._offset + size)
        out = self._chunk[self._offset : end]
        self._offset = end
        return out

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        """Fill ``buffer`` like :meth:`read` would; the number of bytes.

        Whole chunks are opened straight into ``buffer`` (no chunk is
        allocated or copied) while it has room for one.  When a chunk fails
        after others filled the buffer in this call, those authentic bytes
        are returned and the next read raises; the failed chunk's bytes are
        zeros, never unauthenticated plaintext.

        Raises:
            DecryptionError: the payload failed authentication.
        """
        if self.closed:
            raise ValueError("read from a closed AgeReader")
        view = memoryview(buffer).cast("B")
        if self._offset < len(self._chunk) or len(view) < CHUNK_SIZE:
            # Plaintext already opened goes first; a small buffer takes part of a chunk.
            data = self.read(len(view))
            view[: len(data)] = data
            return len(data)
        if self._failed:
            raise DecryptionError
        filled = 0
        while len(view) - filled >= CHUNK_SIZE and not self._decryptor.done:
            try:
                filled += self._decryptor.next_chunk_into(view[filled:])
            except DecryptionError:
                self._failed = True
                if filled:
                    return filled
                raise
        return filled


def _encrypt_writer(
    dst: BinaryIO, recipients: Sequence[Recipient], *, armor: bool, rand: _hazmat.Rand
) -> AgeWriter:
    # The private seam behind encrypt_writer: ``rand`` supplies the file key,
    # the payload nonce and (for native recipients) ephemeral keys and salts.
    file_key = rand(FILE_KEY_SIZE)
    stanzas = _wrap_all(recipients, file_key, rand)
    header = serialize_header_without_mac(stanzas)
    mac_key = _hazmat.hkdf_sha256(file_key, salt=b"", info=_HEADER_INFO)
    mac = _hazmat.hmac_sha256(mac_key, header)
    nonce = rand(_NONCE_SIZE)
    out: BinaryIO | ArmorWriter = dst
    if armor:
        from client_sim.age.armor import ArmorWriter

        out = ArmorWriter(dst)
    out.write(header + serialize_mac_line(mac) + nonce)
    payload_key = _hazmat.hkdf_sha256(file_key, salt=nonce, info=_PAYLOAD_INFO)
    return AgeWriter(out, StreamEncryptor(payload_key), dst)


def encrypt_writer(
    dst: BinaryIO, recipients: Sequence[Recipient], *, armor: bool = False
) -> AgeWriter:
    """Start an age file on ``dst``; returns a writer for the plaintext.

    The header is written immediately; call ``close()`` (or leave a ``with``
    block normally) to seal the last chunk.  ``dst`` is never closed.

    Raises:
        ValueError: no recipients, or recipients that can't be combined
            (a passphrase with anything else, post-quantum with classic).
        TypeError: something in ``recipients`` is not a :class:`Recipient`.
    """
    return _encrypt_writer(dst, recipients, armor=armor, rand=_hazmat.random_bytes)


def _unwrap_file_key(
    stanzas: Sequence[Stanza], identities: Sequence[Identity], max_scrypt_work_factor: int
) -> bytes:
    # A passphrase stanza must be alone (c2sp.org/age); checked here for
    # every identity type, not only by the scrypt identity.
    if len(stanzas) != 1 and any(s.type == "scrypt" for s in stanzas):
        raise DecryptionError
    from client_sim.age.scrypt import ScryptIdentity  # decrypting only (start-up)

    for identity in identities:
        if isinstance(identity, ScryptIdentity):
            identity = identity._capped(max_scrypt_work_factor)
        try:
            file_key = identity.unwrap(stanzas)
        except NoIdentityMatch:
            continue
        if not isinstance(file_key, bytes) or len(file_key) != FILE_KEY_SIZE:
            raise DecryptionError
        return file_key
    raise NoIdentityMatch


def _check_identities(identities: Sequence[Identity], max_scrypt_work_factor: int) -> None:
    if isinstance(identities, (str, bytes)) or not isinstance(identities, Sequence):
        raise TypeError("identities must be a sequence of Identity objects")
    if not identities:
        raise ValueError("no identities given")
    for identity in identities:
        if not isinstance(identity, Identity):
            raise TypeError(f"not an Identity: {type(identity).__name__}")
    if isinstance(max_scrypt_work_factor, bool) or not isinstance(max_scrypt_work_factor, int):
        raise TypeError("max_scrypt_work_factor must be an int")
    if not 1 <= max_scrypt_work_factor <= _hazmat.SCRYPT_MAX_LOG_N:
        raise ValueError(f"max_scrypt_work_factor must be 1..{_hazmat.SCRYPT_MAX_LOG_N}")


def decrypt_reader(
    src: Readable,
    identities: Sequence[Identity],
    *,
    max_scrypt_work_factor: int = DEFAULT_MAX_WORK_FACTOR,
) -> AgeReader:
    """Open an age file (binary or armored, detected) for reading.

    The header is read and authenticated before this returns; the payload is
    authenticated chunk by chunk as it is read.

    Raises:
        NoIdentityMatch: no identity opens any stanza.
        DecryptionError: anything else wrong with the header, the armor or
            the nonce (the payload raises later, from the reader).
        ValueError, TypeError: bad arguments.
    """
    _check_identities(identities, max_scrypt_work_factor)
    from client_sim.age import armor  # decrypting only (start-up of encryption)

    source = ByteSource(src)
    if armor.looks_armored(source):
        source = ByteSource(armor.ArmorReader(source))
    header = parse_header(source)
    file_key = _unwrap_file_key(header.stanzas, identities, max_scrypt_work_factor)
    mac_key = _hazmat.hkdf_sha256(file_key, salt=b"", info=_HEADER_INFO)
    if not _hazmat.hmac_sha256_verify(mac_key, header.mac_input, header.mac):
        raise DecryptionError
    nonce = source.read(_NONCE_SIZE)
    if len(nonce) != _NONCE_SIZE:
        raise DecryptionError
    payload_key = _hazmat.hkdf_sha256(file_key, salt=nonce, info=_PAYLOAD_INFO)
    return AgeReader(StreamDecryptor(payload_key, source))


def encrypt(
    src: Readable, dst: BinaryIO, recipients: Sequence[Recipient], *, armor: bool = False
) -> None:
    """Encrypt everything readable from ``src`` to ``dst`` (streaming).

    Raises:
        ValueError, TypeError: as for :func:`encrypt_writer`.
    """
    with encrypt_writer(dst, recipients, armor=armor) as writer:
        writer.write_from(src)


def decrypt(
    src: Readable,
    dst: BinaryIO,
    identities: Sequence[Identity],
    *,
    max_scrypt_work_factor: int = DEFAULT_MAX_WORK_FACTOR,
) -> None:
    """Decrypt ``src`` to ``dst`` (streaming).

    Plaintext reaches ``dst`` one authenticated chunk at a time, so when the
    payload turns out to be damaged, ``dst`` already holds the chunks before
    the damage: write to a temporary file and keep it only on success (the
    CLI does this).

    Raises:
        NoIdentityMatch, DecryptionError: as for :func:`decrypt_reader`.
    """
    reader = decrypt_reader(src, identities, max_scrypt_work_factor=max_scrypt_work_factor)
    while chunk := reader.read1(CHUNK_SIZE):
        dst.write(chunk)


def encrypt_bytes(data: bytes, recipients: Sequence[Recipient], *, armor: bool = False) -> bytes:
    """Encrypt ``data`` in memory; returns the age file."""
    out = io.BytesIO()
    encrypt(io.BytesIO(data), out, recipients, armor=armor)
    return out.getvalue()


def decrypt_bytes(
    data: bytes,
    identities: Sequence[Identity],
    *,
    max_scrypt_work_factor: int = DEFAULT_MAX_WORK_FACTOR,
) -> bytes:
    """Decrypt an age file held in memory; returns the plaintext.

    Raises:
        NoIdentityMatch, DecryptionError: as for :func:`decrypt_reader`.
    """
    reader = decrypt_reader(
        io.BytesIO(data), identities, max_scrypt_work_factor=max_scrypt_work_factor
    )
    return reader.read()


def rewrap_header(
    header: bytes,
    identities: Sequence[Identity],
    recipients: Sequence[Recipient],
    *,
    max_scrypt_work_factor: int = DEFAULT_MAX_WORK_FACTOR,
) -> bytes:
    """Re-encrypt the file key of a binary age header to ``recipients``.

    ``header`` is exactly the header of an age file: the version line
    through the MAC line.  The result is a new header, for the new
    recipients, under the same file key; the file's payload (nonce and
    STREAM) is unchanged, so ``rewrap_header(h) + file[len(h):]`` is a valid
    age file that the new recipients can open -- and that identities not
    among them can no longer open from this header.  Sharing a stored file
    this way sends only the header, never the payload.

    Raises:
        NoIdentityMatch: no identity opens the header.
        DecryptionError: the header is malformed, its MAC fails, or bytes
            follow it.
        ValueError, TypeError: as for :func:`encrypt_writer` (recipients)
            and :func:`decrypt_reader` (identities).
    """
    if not isinstance(header, bytes):
        raise TypeError("header must be bytes")
    _check_identities(identities, max_scrypt_work_factor)
    source = ByteSource(io.BytesIO(header))
    parsed = parse_header(source)
    if source.read(1):
        raise DecryptionError
    file_key = _unwrap_file_key(parsed.stanzas, identities, max_scrypt_work_factor)
    mac_key = _hazmat.hkdf_sha256(file_key, salt=b"", info=_HEADER_INFO)
    if not _hazmat.hmac_sha256_verify(mac_key, parsed.mac_input, parsed.mac):
        raise DecryptionError
    stanzas = _wrap_all(recipients, file_key, _hazmat.random_bytes)
    new_header = serialize_header_without_mac(stanzas)
    return new_header + serialize_mac_line(_hazmat.hmac_sha256(mac_key, new_header))
