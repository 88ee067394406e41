"""Encrypted blob storage, device side: stream a file up, stream it back down.

The file is encrypted with age on the device while it is being uploaded,
and decrypted while it is being downloaded; neither direction holds the
file in memory, and no plaintext ever leaves the device::

    blobs = BlobClient(transport, access_token=lambda: session.access_token())
    info = blobs.upload("report.pdf", to=["bob"],
                        recipients=[my_identity.recipient(), bobs_recipient])
    blobs.download(info.blob_id, "copy.pdf", identities=[my_identity])

``to`` names who the server lets download (identities); ``recipients`` are
the age keys the file is encrypted to.  They usually describe the same
people (plus the uploader's own key, so it can read its file back); a
``resolver`` given to the client turns identities into recipients (from
their cards) when ``recipients`` is left out.

How an upload goes: the age header is made first, which fixes the exact
ciphertext size (header, nonce, then 64 KiB chunks each 16 bytes longer);
the blob is reserved for that size; then the ciphertext is produced chunk by
chunk straight into the presigned PUT (or into each part of a multipart
upload), and the blob is committed.  A source whose size can't be known in
advance (a pipe) is encrypted into a spooled temporary file first -- the
ciphertext, never the plaintext, touches the disk.  Tiny files go inline
through the API instead (one request less).

Downloads write to a temporary file next to the destination and rename it
into place only once the whole file authenticated, so a damaged or
truncated download never leaves a partial plaintext behind.

Presigned URLs are bearer credentials: they are never printed (``repr``
hides them) and never appear in an exception message.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import secrets
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import quote, urlencode

from chalicelib.wire.agefile import SNIFF_WINDOW
from chalicelib.wire.b64 import b64url_encode
from chalicelib.wire.identity import normalize_identity
from client_sim import age
from client_sim.api import api_error
from client_sim.transport import (
    HttpObjectTransport,
    HttpReply,
    ObjectResponse,
    ObjectTransport,
    Readable,
    Transport,
    TransportError,
)

__all__ = [
    "DEFAULT_INLINE_MAX",
    "BlobClient",
    "BlobError",
    "BlobInfo",
    "BlobNotReady",
    "BlobPage",
    "Download",
    "EncryptingReader",
    "Reservation",
    "Resolver",
    "SourceChanged",
    "TransferError",
    "UploadTarget",
    "age_file_size",
]

#: Files whose ciphertext is at most this size go inline through the API.
DEFAULT_INLINE_MAX = 64 * 1024
#: The server's inline limit (``PUT /v1/blobs/{id}/content``).
SERVER_INLINE_MAX = 256 * 1024
_CHUNK = 64 * 1024
_TAG = 16
# Plaintext is read in blocks of 16 chunks: large enough that the age
# writer seals most chunks straight from the block, small enough that the
# buffered ciphertext stays around a megabyte.
_PLAINTEXT_BLOCK = 16 * _CHUNK
# A spooled ciphertext stays in memory up to this size, then moves to disk.
_SPOOL_IN_MEMORY = 1024 * 1024
_COPY_BLOCK = 16 * _CHUNK
_S3_CODE_RE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")

#: Turns identities into the age recipients to encrypt to (from their cards).
Resolver = Callable[[Sequence[str]], Sequence[age.Recipient]]


class BlobError(Exception):
    """A blob operation failed on the device side (server refusals are
    :class:`client_sim.api.ApiError`)."""


class TransferError(BlobError):
    """Object storage refused a presigned transfer.

    ``status`` is the HTTP status and ``code`` the storage error code (such
    as ``PreconditionFailed`` or ``AccessDenied``) when it sent one.
    """

    def __init__(self, action: str, status: int, code: str | None) -> None:
        super().__init__(f"{action} refused by object storage: {status} {code or ''}".rstrip())
        self.status = status
        self.code = code


class SourceChanged(BlobError):
    """The file changed size while it was being uploaded."""


class BlobNotReady(BlobError):
    """The blob has no downloadable content (not committed, or rejected)."""


# --- wire types ------------------------------------------------------------------------


@dataclass(frozen=True)
class Download:
    url: str = field(repr=False)
    expires_in: int


@dataclass(frozen=True)
class BlobInfo:
    """A blob as the server describes it to the caller."""

    blob_id: str
    owner: str
    recipients: tuple[str, ...]
    size: int
    created_at: int
    state: str
    version: int
    expires_at: int | None = None
    header_length: int | None = None
    armored: bool = False
    rejected_reason: str | None = None
    download: Download | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> BlobInfo:
        download = obj.get("download")
        return cls(
            blob_id=str(obj["blob_id"]),
            owner=str(obj["owner"]),
            recipients=tuple(str(r) for r in obj["recipients"]),
            size=int(obj["size"]),
            created_at=int(obj["created_at"]),
            state=str(obj["state"]),
            version=int(obj["version"]),
            expires_at=_opt_int(obj.get("expires_at")),
            header_length=_opt_int(obj.get("header_length")),
            armored=bool(obj.get("armored", False)),
            rejected_reason=obj.get("rejected_reason"),
            download=(
                Download(url=str(download["url"]), expires_in=int(download["expires_in"]))
                if isinstance(download, dict)
                else None
            ),
        )


@dataclass(frozen=True)
class UploadTarget:
    url: str = field(repr=False)
    headers: Mapping[str, str]
    part_number: int | None = None

    @property
    def length(self) -> int:
        return int(self.headers["Content-Length"])


@dataclass(frozen=True)
class Reservation:
    """The answer to ``POST /v1/blobs``.  ``targets`` is empty when the blob
    is no longer waiting for an upload (an idempotent replay)."""

    blob_id: str
    state: str
    size: int
    version: int
    kind: str | None = None
    part_size: int | None = None
    expires_at: int | None = None
    expires_in: int | None = None
    targets: tuple[UploadTarget, ...] = ()

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Reservation:
        upload = obj.get("upload")
        targets: tuple[UploadTarget, ...] = ()
        kind = part_size = None
        if isinstance(upload, dict):
            kind = str(upload["kind"])
            if kind == "single":
                targets = (UploadTarget(url=str(upload["url"]), headers=dict(upload["headers"])),)
            else:
                part_size = int(upload["part_size"])
                targets = tuple(
                    UploadTarget(
                        url=str(p["url"]),
                        headers=dict(p["headers"]),
                        part_number=int(p["part_number"]),
                    )
                    for p in upload["parts"]
                )
        return cls(
            blob_id=str(obj["blob_id"]),
            state=str(obj["state"]),
            size=int(obj["size"]),
            version=int(obj["version"]),
            kind=kind,
            part_size=part_size,
            expires_at=_opt_int(obj.get("expires_at")),
            expires_in=_opt_int(obj.get("expires_in")),
            targets=targets,
        )


@dataclass(frozen=True)
class BlobPage:
    items: tuple[BlobInfo, ...]
    next_cursor: str | None


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


# --- streaming encryption ----------------------------------------------------------------


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
        block = bytes(data)
        if block:
            self._parts.append(block)
            self.size += len(block)
        return len(block)

    def flush(self) -> None:
        """Nothing to flush (the age writer calls it when sealing)."""

    def take(self, n: int) -> bytes:
        out = bytearray()
        while self._parts and len(out) < n:
            part = self._parts.popleft()
            room = n - len(out)
            if len(part) > room:
                self._parts.appendleft(part[room:])
                part = part[:room]
            out += part
        self.size -= len(out)
        return bytes(out)


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


class _Window:
    """At most ``length`` bytes of ``source`` (one multipart part)."""

    def __init__(self, source: Readable, length: int) -> None:
        self._source = source
        self._left = length

    def read(self, size: int = -1, /) -> bytes:
        want = self._left if size < 0 else min(size, self._left)
        data = self._source.read(want) if want else b""
        self._left -= len(data)
        return data


@contextlib.contextmanager
def _open_source(
    source: str | os.PathLike[str] | Readable,
) -> Iterator[tuple[Readable, int | None]]:
    """The source as a stream, and the number of bytes left in it if known."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            yield handle, os.fstat(handle.fileno()).st_size
        return
    seekable: Any = source  # a file object, or any reader (then size is unknown)
    try:
        position = seekable.tell()
        end = seekable.seek(0, io.SEEK_END)
        seekable.seek(position)
        size: int | None = end - position
    except (OSError, AttributeError, ValueError):
        size = None  # a pipe, a socket or a plain reader: spool it
    yield source, size


# --- the client ---------------------------------------------------------------------------


class BlobClient:
    """``/v1/blobs`` and the presigned transfers around it.

    ``transport`` reaches the API; ``access_token`` is called before every
    API request, so a caller can refresh tokens as they expire; ``objects``
    reaches object storage (plain HTTP by default).  Every route method
    raises :class:`client_sim.api.ApiError` when the server refuses.
    """

    def __init__(
        self,
        transport: Transport,
        access_token: Callable[[], str],
        *,
        objects: ObjectTransport | None = None,
        resolver: Resolver | None = None,
        inline_max: int = DEFAULT_INLINE_MAX,
    ) -> None:
        if not 0 <= inline_max <= SERVER_INLINE_MAX:
            raise ValueError(f"inline_max must be 0..{SERVER_INLINE_MAX}")
        self._transport = transport
        self._access_token = access_token
        self._objects = objects if objects is not None else HttpObjectTransport()
        self._resolver = resolver
        self._inline_max = inline_max

    # routes ---------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        payload: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        expect: int = 200,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self._access_token()}"}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode("utf-8")
        elif data is not None:
            body = data
            headers["Content-Type"] = "application/octet-stream"
        reply = self._transport.request(method, path, body=body, headers=headers)
        if reply.status != expect:
            raise api_error(reply)
        return reply.json()

    def reserve(
        self, size: int, recipients: Sequence[str], *, idempotency_key: str | None = None
    ) -> Reservation:
        """``POST /v1/blobs``: reserve ``size`` bytes readable by ``recipients``."""
        payload: dict[str, Any] = {"size": size, "recipients": list(recipients)}
        if idempotency_key is not None:
            payload["idempotency_key"] = idempotency_key
        return Reservation.from_json(self._call("POST", "/v1/blobs", payload=payload, expect=201))

    def put_content(self, blob_id: str, data: bytes) -> BlobInfo:
        """``PUT /v1/blobs/{id}/content``: a small ciphertext, stored and READY at once."""
        return BlobInfo.from_json(self._call("PUT", _path(blob_id, "content"), data=data))

    def commit(self, blob_id: str) -> BlobInfo:
        """``POST /v1/blobs/{id}/commit``: have the upload checked."""
        return BlobInfo.from_json(self._call("POST", _path(blob_id, "commit")))

    def get(self, blob_id: str) -> BlobInfo:
        """``GET /v1/blobs/{id}``."""
        return BlobInfo.from_json(self._call("GET", _path(blob_id)))

    def list_blobs(
        self, role: str = "outbox", *, limit: int | None = None, cursor: str | None = None
    ) -> BlobPage:
        """``GET /v1/blobs``: one page of the outbox or the inbox."""
        query: dict[str, str] = {"role": role}
        if limit is not None:
            query["limit"] = str(limit)
        if cursor is not None:
            query["cursor"] = cursor
        out = self._call("GET", "/v1/blobs?" + urlencode(query))
        return BlobPage(
            items=tuple(BlobInfo.from_json(item) for item in out["items"]),
            next_cursor=out.get("next_cursor"),
        )

    def iter_blobs(self, role: str = "outbox", *, page_size: int = 100) -> Iterator[BlobInfo]:
        """Every blob of the outbox or inbox, page after page."""
        cursor = None
        while True:
            page = self.list_blobs(role, limit=page_size, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def set_recipients(
        self,
        blob_id: str,
        recipients: Sequence[str],
        *,
        version: int,
        header: bytes | None = None,
    ) -> BlobInfo:
        """``PUT /v1/blobs/{id}/recipients``.  Without ``header`` the new set
        must be a subset of the current one."""
        payload: dict[str, Any] = {"recipients": list(recipients), "version": version}
        if header is not None:
            payload["header"] = b64url_encode(header)
        return BlobInfo.from_json(self._call("PUT", _path(blob_id, "recipients"), payload=payload))

    def delete(self, blob_id: str) -> None:
        """``DELETE /v1/blobs/{id}``: content (every version) and metadata."""
        self._call("DELETE", _path(blob_id), expect=204)

    # streaming -----------------------------------------------------------------------------

    def upload(
        self,
        source: str | os.PathLike[str] | Readable,
        *,
        to: Sequence[str] = (),
        recipients: Sequence[age.Recipient] | None = None,
        idempotency_key: str | None = None,
        size: int | None = None,
    ) -> BlobInfo:
        """Encrypt ``source`` and store it; return the READY blob.

        Args:
            source: a path, or a binary file object read from its position.
            size: the bytes ``source`` will deliver, for a stream that can't
                tell (a framing reader, a pipe of known length); otherwise
                measured from the file.
            to: identities the server lets download the blob.
            recipients: age recipients to encrypt to; by default the
                resolver's recipients for ``to``.  Include your own to be
                able to read the file back.
            idempotency_key: repeat an upload safely (the same blob comes
                back); a random one is used, and reused for the one retry
                this makes when the reservation gets no answer.  A repeat
                MUST send the same file: if an earlier attempt's upload
                reached storage, that attempt's ciphertext is the one kept.

        Raises:
            ApiError: the server refused (quota, size, rejected upload, ...).
            TransferError: object storage refused a transfer.
            SourceChanged: the file changed size during the upload.
            TransportError: no answer.
            ValueError: no recipients and no resolver.
        """
        keys = self._recipients_for(to, recipients)
        key = idempotency_key or secrets.token_urlsafe(24)
        with _open_source(source) as (stream, measured):
            if size is None:
                size = measured
            if size is not None:
                reader = EncryptingReader(stream, size, keys)
                try:
                    return self._upload_ciphertext(reader, reader.size, to, key)
                finally:
                    reader.close()
            with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
                age.encrypt(stream, cast(BinaryIO, spool), keys)
                total = spool.tell()
                spool.seek(0)
                return self._upload_ciphertext(spool, total, to, key)

    def _recipients_for(
        self, to: Sequence[str], recipients: Sequence[age.Recipient] | None
    ) -> Sequence[age.Recipient]:
        if recipients is not None:
            return recipients
        if self._resolver is None:
            raise ValueError("give recipients, or a resolver to the client")
        return self._resolver(to)

    def _upload_ciphertext(
        self, ciphertext: Readable, size: int, to: Sequence[str], key: str
    ) -> BlobInfo:
        try:
            reservation = self.reserve(size, to, idempotency_key=key)
        except TransportError:
            # Safe to repeat: the idempotency key makes it the same blob.
            reservation = self.reserve(size, to, idempotency_key=key)
        if reservation.state != "reserved":
            return self.get(reservation.blob_id)  # an earlier attempt finished
        if size <= self._inline_max:
            data = ciphertext.read(size)
            if len(data) != size:
                raise SourceChanged("the file shrank while it was being uploaded")
            return self.put_content(reservation.blob_id, data)
        for target in reservation.targets:
            try:
                self._put(target, ciphertext)
            except TransferError as exc:
                if not (exc.status == 412 and reservation.kind == "single"):
                    raise
                # The write-once PUT found an object: an earlier attempt with
                # this idempotency key stored it (a PUT is all or nothing,
                # and only we had the URL) but its commit never arrived.
                # Have that object checked rather than fail forever.
                return self.commit(reservation.blob_id)
        if ciphertext.read(1):
            raise SourceChanged("the file grew while it was being uploaded")
        return self.commit(reservation.blob_id)

    def _put(self, target: UploadTarget, ciphertext: Readable) -> None:
        length = target.length
        reply = self._objects.put(
            target.url, _Window(ciphertext, length), length=length, headers=target.headers
        )
        if not 200 <= reply.status < 300:
            raise TransferError("upload", reply.status, _storage_code(reply))

    @contextlib.contextmanager
    def fetch(
        self, blob_id: str, *, info: BlobInfo | None = None
    ) -> Iterator[tuple[BlobInfo, ObjectResponse]]:
        """The blob's metadata and a stream of its ciphertext (not decrypted).

        For callers that decrypt themselves (the device's sender-verifying
        decryption); close the response by leaving the context.

        Args:
            info: the blob's metadata, if the caller just fetched it (its
                download URL is used at once); otherwise it is fetched.

        Raises:
            ApiError, BlobNotReady, TransferError: as for :meth:`download`.
        """
        if info is None or info.blob_id != blob_id:
            info = self.get(blob_id)
        if info.download is None:
            raise BlobNotReady(f"blob is {info.state}, not ready")
        with self._objects.get(info.download.url) as response:
            if response.status != 200:
                raise TransferError("download", response.status, None)
            yield info, response

    def download(
        self,
        blob_id: str,
        out: str | os.PathLike[str] | BinaryIO,
        *,
        identities: Sequence[age.Identity],
    ) -> BlobInfo:
        """Fetch, decrypt and write a READY blob.

        ``out`` as a path is written atomically: a temporary file beside it
        (mode 0600) is renamed into place only after the whole file
        authenticated.  ``out`` as a file object receives plaintext chunk by
        chunk, each authenticated, and may hold a prefix if a later chunk
        fails.

        Raises:
            ApiError: not found or not allowed (404), or a server failure.
            BlobNotReady: the blob has no content to download.
            TransferError: object storage refused the download.
            age.DecryptionError, age.NoIdentityMatch: the file doesn't open
                with ``identities`` (nothing is written to a path ``out``).
        """
        with self.fetch(blob_id) as (info, response):
            plaintext = age.decrypt_reader(response, identities)
            if isinstance(out, (str, os.PathLike)):
                _write_atomically(Path(out), plaintext)
            else:
                _copy(plaintext, out)
        return info

    def share(
        self,
        blob_id: str,
        to: Sequence[str],
        *,
        identities: Sequence[age.Identity],
        recipients: Sequence[age.Recipient] | None = None,
    ) -> BlobInfo:
        """Make ``to`` the blob's recipients, re-encrypting its file key for them.

        Only the header travels: it is fetched (a ranged GET), opened with
        ``identities``, re-wrapped for ``recipients`` (default: the
        resolver's, for ``to``) and sent back; the server splices it in
        front of the unchanged payload.  Armored blobs can only lose
        recipients (the server then just stops serving the removed ones).

        Raises:
            ApiError: as for the route (409 ``version_conflict`` when the
                blob changed meanwhile: call again).
            BlobNotReady, TransferError: as for :meth:`download`.
            BlobError: recipients added to an armored blob.
            age.DecryptionError, age.NoIdentityMatch: ``identities`` can't
                open the header.
            chalicelib.wire.identity.InvalidIdentity: a name in ``to`` is
                not an identity (nothing is sent).
        """
        # Compared with the recipients the server stored, which are
        # normalised: "Bob" is bob.
        to = [normalize_identity(name) for name in to]
        info = self.get(blob_id)
        if info.download is None or info.header_length is None:
            raise BlobNotReady(f"blob is {info.state}, not ready")
        if info.armored:
            if not set(to) <= set(info.recipients):
                raise BlobError("an armored blob can only lose recipients; upload it again")
            return self.set_recipients(blob_id, to, version=info.version)
        keys = self._recipients_for(to, recipients)
        # rewrap_header refuses anything but exactly one authentic header, so
        # a wrong header_length from the server fails here.
        header = self._fetch_prefix(info.download.url, info.header_length)
        new_header = age.rewrap_header(header, identities, keys)
        return self.set_recipients(blob_id, to, version=info.version, header=new_header)

    def _fetch_prefix(self, url: str, length: int) -> bytes:
        if not 0 < length <= SNIFF_WINDOW:
            raise BlobError("the advertised header length is out of range")
        with self._objects.get(url, headers={"Range": f"bytes=0-{length - 1}"}) as response:
            if response.status not in (200, 206):
                raise TransferError("download", response.status, None)
            data = response.read(length)
        if len(data) != length:
            raise BlobError("the header could not be read in full")
        return data


def _path(blob_id: str, *rest: str) -> str:
    # Quoted, so an id can never add path segments (the server checks ids too).
    return "/".join(["/v1/blobs", quote(blob_id, safe=""), *rest])


def _storage_code(reply: HttpReply) -> str | None:
    match = _S3_CODE_RE.search(reply.body)
    return match.group(1).decode("ascii") if match else None


def _copy(reader: age.AgeReader, out: BinaryIO) -> None:
    while chunk := reader.read1(_COPY_BLOCK):
        out.write(chunk)


def _write_atomically(path: Path, reader: age.AgeReader) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            _copy(reader, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
