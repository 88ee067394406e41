"""Encrypted blob storage, device side: stream a file up, stream it back down.

The file is encrypted with age on the device while it is being uploaded,
and decrypted while it is being downloaded; neither direction holds the
file in memory, and no plaintext ever leaves the device::

    blobs = BlobClient(api, access_token=lambda: token)
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

Two layers, so the sender-signed transfers of :class:`~client_sim.Device`
and the plain age files of :class:`BlobClient` share one implementation:
:class:`BlobTransfer` moves ciphertext (reserve, upload inline or through
presigned URLs, commit, open a download, read a header) with the access
token passed to each call; :class:`BlobClient` adds age encryption for
callers that manage their own token.  Both reach the API through the one
:class:`~client_sim.api.ApiClient`.

Presigned URLs are bearer credentials: they are never printed (``repr``
hides them) and never appear in an exception message.  The server chooses
them, so every one is checked against the configured storage origins
(:mod:`client_sim.origins`) before anything connects to it, and a redirect
from storage is never followed.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from chalicelib.wire.agefile import SNIFF_WINDOW
from chalicelib.wire.identity import normalize_identity
from client_sim import age
from client_sim.api import ApiClient, BlobInfo, BlobPage, Reservation, UploadTarget
from client_sim.blob_stream import EncryptingReader, Window, age_file_size, ciphertext_of
from client_sim.errors import (
    BlobUnavailable,
    ConnectionFailed,
    InvalidInput,
    ServerError,
    SourceChanged,
    StorageTransferFailed,
)
from client_sim.files import WRITEBACK_EVERY, atomic_output
from client_sim.origins import StorageOrigins
from client_sim.pipeline import ReadAhead, WriteBehind
from client_sim.transport import (
    HttpObjectTransport,
    HttpReply,
    ObjectResponse,
    ObjectTransport,
    Readable,
    Transport,
)

__all__ = [
    "DEFAULT_INLINE_MAX",
    "SERVER_INLINE_MAX",
    "UPLOAD_AHEAD_MIN",
    "BlobClient",
    "BlobTransfer",
    "EncryptingReader",
    "Resolver",
    "age_file_size",
    "ciphertext_of",
]

#: Files whose ciphertext is at most this size go inline through the API.
DEFAULT_INLINE_MAX = 64 * 1024
#: The server's inline limit (``PUT /v1/blobs/{id}/content``).
SERVER_INLINE_MAX = 256 * 1024
_CHUNK = 64 * 1024
_COPY_BLOCK = 16 * _CHUNK
# Blocks a download reads ahead with read_ahead=True (256 KiB each).  With 8
# the device's peak RSS at 1 GiB was 1.7 MiB above that at 1 MiB
# (bench.blobs: 1.048, the goal is <= 1.05); 4 still keeps a megabyte ready.
_DOWNLOAD_AHEAD = 4
# An upload sealed ahead (by default above one part) keeps two 128 KiB
# blocks ready: its peak RSS at 1 GiB was 1.036 x to 1.039 x that of a 1 MiB
# upload (in line), against 1.092 with four 256 KiB blocks; the thread's own
# allocations are most of the difference.
_UPLOAD_AHEAD_BLOCK = 128 * 1024
_UPLOAD_AHEAD_DEPTH = 2
#: By default (``read_ahead=None``), uploads larger than this (one multipart
#: part) are sealed on a second thread; below it the thread measured even.
UPLOAD_AHEAD_MIN = 16 * 1024 * 1024
_S3_CODE_RE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")

#: Turns identities into the age recipients to encrypt to (from their cards).
Resolver = Callable[[Sequence[str]], Sequence[age.Recipient]]


# --- ciphertext in and out of storage ----------------------------------------------------


class BlobTransfer:
    """Moves ciphertext between the device and blob storage.

    Every method takes the access token its requests carry, so the caller
    (which owns the session) renews a refused token and repeats the whole
    operation; an upload repeated with the same idempotency key continues
    the same blob.  ``objects`` reaches the presigned URLs (plain HTTP by
    default); ``origins`` are where they may point (by default the API's
    own origin when ``api`` talks HTTP, and nothing else).

    ``read_ahead`` moves the ciphertext on a second thread
    (:mod:`client_sim.pipeline`): sealing runs a few blocks ahead of the
    upload, and the download is received a few blocks ahead of decryption.
    ``None`` (the default) does it where it measured faster against the
    local stack: uploads larger than one part (16 MiB) are sealed ahead
    (read-ahead / in line: 1.25 x at 32 MiB, 1.07 x to 1.38 x at 100 MiB,
    1.04 x to 1.77 x at 1 GiB; 0.97 x to 1.08 x below), downloads are
    received in line, where the payload reader fills its buffer straight
    from the socket (read-ahead / in line: 0.89 x to 0.97 x at 100 MiB,
    0.59 x to 0.84 x at 1 GiB -- the thread's extra copy costs more than
    the overlap gains).  Either way a download into a path is written by a
    second thread that hands each 8 MiB to the disk as it goes.
    ``True`` reads ahead both ways, ``False`` neither; ``python -m
    bench.blobs`` measures in line against both ways in one run.  Errors and
    the all-or-nothing destination are the same either way.
    """

    def __init__(
        self,
        api: ApiClient,
        *,
        objects: ObjectTransport | None = None,
        origins: StorageOrigins | None = None,
        inline_max: int = DEFAULT_INLINE_MAX,
        read_ahead: bool | None = None,
    ) -> None:
        if not 0 <= inline_max <= SERVER_INLINE_MAX:
            raise ValueError(f"inline_max must be 0..{SERVER_INLINE_MAX}")
        self._read_ahead = read_ahead
        self.api = api
        self._objects = objects if objects is not None else HttpObjectTransport()
        self._origins = (
            origins if origins is not None else StorageOrigins.for_transport(api.transport)
        )
        self._inline_max = inline_max

    def upload(
        self,
        token: str,
        ciphertext: Readable,
        size: int,
        to: Sequence[str],
        key: str,
        *,
        blob_id: str | None = None,
        group: str | None = None,
    ) -> BlobInfo:
        """Reserve ``size`` bytes for ``to`` (or ``group``'s members), send
        ``ciphertext`` and commit; the READY blob.

        ``blob_id``, when given, is the id the reservation must answer (the
        one derived from the owner and ``key``, which sealed content signs):
        a server answering another id is refused before anything is sent.

        Raises:
            ServerError: the server refused (quota, size, rejected upload, ...),
                or answered another blob id than ``blob_id`` (``malformed``).
            StorageOriginRefused: an upload URL points outside the storage
                origins (nothing was sent anywhere), or storage redirected.
            StorageTransferFailed: object storage refused a transfer.
            SourceChanged: ``ciphertext`` delivered another number of bytes.
            ConnectionFailed: no answer (the reservation is tried twice).
        """
        try:
            reservation = self.api.reserve_blob(token, size, to, idempotency_key=key, group=group)
        except ConnectionFailed:
            # Safe to repeat: the idempotency key makes it the same blob.
            reservation = self.api.reserve_blob(token, size, to, idempotency_key=key, group=group)
        if blob_id is not None and reservation.blob_id != blob_id:
            raise ServerError.malformed("blob id (not the one its idempotency key derives)")
        if reservation.state != "reserved":
            return self.api.get_blob(token, reservation.blob_id)  # an earlier attempt finished
        if size <= self._inline_max:
            data = ciphertext.read(size)
            if len(data) != size:
                raise SourceChanged("the file shrank while it was being uploaded")
            return self.api.put_blob_content(token, reservation.blob_id, data)
        # Every target before the first byte: no part goes anywhere if one
        # URL points elsewhere.
        for target in reservation.targets:
            self._origins.check(target.url)
        # Read ahead (read_ahead=True, or by default above one part), the
        # ciphertext is produced on a second thread a few blocks ahead of
        # the socket; its errors (SourceChanged) come out of read() here
        # all the same.
        ahead_of_upload = bool(self._read_ahead) or (
            self._read_ahead is None and size > UPLOAD_AHEAD_MIN
        )
        with self._ahead(ciphertext, "sealbox-upload", ahead_of_upload) as ahead:
            for target in reservation.targets:
                try:
                    self._put(target, ahead)
                except StorageTransferFailed as exc:
                    if not (exc.status == 412 and reservation.kind == "single"):
                        raise
                    # The write-once PUT found an object: an earlier attempt
                    # with this idempotency key stored it (a PUT is all or
                    # nothing, and only we had the URL) but its commit never
                    # arrived.  Have that object checked rather than fail.
                    return self.api.commit_blob(token, reservation.blob_id)
            if ahead.read(1):
                raise SourceChanged("the file grew while it was being uploaded")
        return self.api.commit_blob(token, reservation.blob_id)

    @contextlib.contextmanager
    def _ahead(self, ciphertext: Readable, name: str, enabled: bool) -> Iterator[Readable]:
        if not enabled:
            yield ciphertext
            return
        with ReadAhead(
            ciphertext, name=name, depth=_UPLOAD_AHEAD_DEPTH, block=_UPLOAD_AHEAD_BLOCK
        ) as ahead:
            yield ahead

    def _put(self, target: UploadTarget, ciphertext: Readable) -> None:
        length = target.length
        reply = self._objects.put(
            target.url, Window(ciphertext, length), length=length, headers=target.headers
        )
        if not 200 <= reply.status < 300:
            self._refuse_redirect(reply.status, reply.headers)
            raise StorageTransferFailed("upload", reply.status, _storage_code(reply))

    def _refuse_redirect(self, status: int, headers: Mapping[str, str]) -> None:
        """Refuse a redirect from storage to a foreign origin by name.

        Redirects are never followed (a presigned URL is the final address
        the server signed); one that points outside the storage origins is
        reported as what it is, any other falls through to the caller's
        :class:`StorageTransferFailed`.

        Raises:
            StorageOriginRefused: a redirect to a foreign origin.
        """
        location = headers.get("location", "")
        # A path alone stays on the allowed origin; anything else is checked.
        foreign_form = not location.startswith("/") or location.startswith("//")
        if 300 <= status < 400 and location and foreign_form:
            self._origins.check(location)

    @contextlib.contextmanager
    def open(self, info: BlobInfo) -> Iterator[ObjectResponse]:
        """A stream of the ciphertext of a READY blob, through its fresh download URL.

        Raises:
            BlobUnavailable: the blob has no content to download.
            StorageOriginRefused: the download URL points outside the
                storage origins (it was not contacted), or storage redirected.
            StorageTransferFailed: object storage refused the download.
        """
        if info.download is None:
            raise BlobUnavailable(f"blob is {info.state}, not ready")
        self._origins.check(info.download.url)
        with self._objects.get(info.download.url) as response:
            if response.status != 200:
                self._refuse_redirect(response.status, response.headers)
                raise StorageTransferFailed("download", response.status, None)
            # Read ahead (read_ahead=True), a second thread receives a few
            # blocks ahead while the caller decrypts and writes; it stops
            # (and is joined) before the response closes.
            if not self._read_ahead:
                yield response
                return
            with ReadAhead(response, name="sealbox-download", depth=_DOWNLOAD_AHEAD) as ahead:
                yield _ReadAheadResponse(response, ahead)

    def header(self, info: BlobInfo) -> bytes:
        """The age header of a READY blob (a ranged GET of ``header_length`` bytes).

        Raises:
            BlobUnavailable: the blob has no content.
            ServerError: the advertised header length is out of range, or
                storage sent fewer bytes (``malformed``).
            StorageOriginRefused: as for :meth:`open`.
            StorageTransferFailed: object storage refused the read.
        """
        if info.download is None or info.header_length is None:
            raise BlobUnavailable(f"blob is {info.state}, not ready")
        length = info.header_length
        if not 0 < length <= SNIFF_WINDOW:
            raise ServerError.malformed("header length")
        range_ = {"Range": f"bytes=0-{length - 1}"}
        self._origins.check(info.download.url)
        with self._objects.get(info.download.url, headers=range_) as response:
            if response.status not in (200, 206):
                self._refuse_redirect(response.status, response.headers)
                raise StorageTransferFailed("download", response.status, None)
            data = response.read(length)
        if len(data) != length:
            raise ServerError.malformed("header")
        return data


# --- plain age files -----------------------------------------------------------------------


class BlobClient:
    """Plain age files in blob storage, for callers that hold an access token.

    ``api`` is the :class:`~client_sim.api.ApiClient` (or a transport to
    build one over); ``access_token`` is called for every operation, so a
    caller can refresh tokens as they expire.  The route methods are the
    ``/v1/blobs`` routes of the API client with that token; the streaming
    methods encrypt and decrypt with age on the way (no sender signature:
    that is :class:`~client_sim.Device`'s).  Server refusals raise
    :class:`~client_sim.errors.ServerError`.  ``storage_origins`` are the
    origins presigned URLs may point at, besides the API's own over HTTP
    (:mod:`client_sim.origins`).  ``read_ahead``: as for :class:`BlobTransfer`.
    """

    def __init__(
        self,
        api: ApiClient | Transport,
        access_token: Callable[[], str],
        *,
        objects: ObjectTransport | None = None,
        resolver: Resolver | None = None,
        inline_max: int = DEFAULT_INLINE_MAX,
        storage_origins: Iterable[str] = (),
        read_ahead: bool | None = None,
    ) -> None:
        self.api = api if isinstance(api, ApiClient) else ApiClient(api)
        origins = StorageOrigins.for_transport(self.api.transport, storage_origins)
        self._transfer = BlobTransfer(
            self.api,
            objects=objects,
            origins=origins,
            inline_max=inline_max,
            read_ahead=read_ahead,
        )
        self._access_token = access_token
        self._resolver = resolver

    # routes ---------------------------------------------------------------------------

    def reserve(
        self, size: int, recipients: Sequence[str], *, idempotency_key: str | None = None
    ) -> Reservation:
        """``POST /v1/blobs``: reserve ``size`` bytes readable by ``recipients``."""
        return self.api.reserve_blob(
            self._access_token(), size, recipients, idempotency_key=idempotency_key
        )

    def put_content(self, blob_id: str, data: bytes) -> BlobInfo:
        """``PUT /v1/blobs/{id}/content``: a small ciphertext, stored and READY at once."""
        return self.api.put_blob_content(self._access_token(), blob_id, data)

    def commit(self, blob_id: str) -> BlobInfo:
        """``POST /v1/blobs/{id}/commit``: have the upload checked."""
        return self.api.commit_blob(self._access_token(), blob_id)

    def get(self, blob_id: str) -> BlobInfo:
        """``GET /v1/blobs/{id}``."""
        return self.api.get_blob(self._access_token(), blob_id)

    def list_blobs(
        self, role: str = "outbox", *, limit: int | None = None, cursor: str | None = None
    ) -> BlobPage:
        """``GET /v1/blobs``: one page of the outbox or the inbox."""
        return self.api.list_blobs(self._access_token(), role, limit=limit, cursor=cursor)

    def iter_blobs(self, role: str = "outbox", *, page_size: int = 100) -> Iterator[BlobInfo]:
        """Every blob of the outbox or inbox, page after page.

        Raises:
            ServerError: (``malformed``) the server sent a cursor it had sent
                before -- a listing that would never end.
        """
        cursor = None
        seen: set[str] = set()
        while True:
            page = self.list_blobs(role, limit=page_size, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            if page.next_cursor in seen:
                raise ServerError.malformed("listing (a cursor came back)")
            seen.add(page.next_cursor)
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
        return self.api.set_blob_recipients(
            self._access_token(), blob_id, recipients, version=version, header=header
        )

    def delete(self, blob_id: str) -> None:
        """``DELETE /v1/blobs/{id}``: content (every version) and metadata."""
        self.api.delete_blob(self._access_token(), blob_id)

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
                tell (a pipe of known length); otherwise measured from the file.
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
            ServerError: the server refused (quota, size, rejected upload, ...).
            StorageTransferFailed: object storage refused a transfer.
            SourceChanged: the file changed size during the upload.
            ConnectionFailed: no answer.
            ValueError: no recipients and no resolver.
        """
        keys = self._recipients_for(to, recipients)
        key = idempotency_key or secrets.token_urlsafe(24)
        with ciphertext_of(
            source,
            size=size,
            reader=lambda stream, n: EncryptingReader(stream, n, keys),
            encrypt=lambda stream, out: age.encrypt(stream, out, keys),
        ) as ciphertext:
            return self._transfer.upload(self._access_token(), *ciphertext(), to, key)

    def _recipients_for(
        self, to: Sequence[str], recipients: Sequence[age.Recipient] | None
    ) -> Sequence[age.Recipient]:
        if recipients is not None:
            return recipients
        if self._resolver is None:
            raise ValueError("give recipients, or a resolver to the client")
        return self._resolver(to)

    @contextlib.contextmanager
    def fetch(
        self, blob_id: str, *, info: BlobInfo | None = None
    ) -> Iterator[tuple[BlobInfo, ObjectResponse]]:
        """The blob's metadata and a stream of its ciphertext (not decrypted).

        Args:
            info: the blob's metadata, if the caller just fetched it (its
                download URL is used at once); otherwise it is fetched.

        Raises:
            ServerError, BlobUnavailable, StorageTransferFailed: as for :meth:`download`.
        """
        if info is None or info.blob_id != blob_id:
            info = self.get(blob_id)
        with self._transfer.open(info) as response:
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
            ServerError: not found or not allowed (404), or a server failure.
            BlobUnavailable: the blob has no content to download.
            StorageTransferFailed: object storage refused the download.
            age.DecryptionError, age.NoIdentityMatch: the file doesn't open
                with ``identities`` (nothing is written to a path ``out``).
        """
        with self.fetch(blob_id) as (info, response):
            plaintext = age.decrypt_reader(response, identities)
            if isinstance(out, str | os.PathLike):
                with (
                    atomic_output(Path(out)) as handle,
                    WriteBehind(handle, writeback=WRITEBACK_EVERY) as behind,
                ):
                    _open_behind(plaintext, behind)
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
            ServerError: as for the route (409 ``version_conflict`` when the
                blob changed meanwhile: call again).
            BlobUnavailable, StorageTransferFailed: as for :meth:`download`.
            InvalidInput: recipients added to an armored blob.
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
            raise BlobUnavailable(f"blob is {info.state}, not ready")
        if info.armored:
            if not set(to) <= set(info.recipients):
                raise InvalidInput("an armored blob can only lose recipients; upload it again")
            return self.set_recipients(blob_id, to, version=info.version)
        keys = self._recipients_for(to, recipients)
        # rewrap_header refuses anything but exactly one authentic header, so
        # a wrong header_length from the server fails here.
        new_header = age.rewrap_header(self._transfer.header(info), identities, keys)
        return self.set_recipients(blob_id, to, version=info.version, header=new_header)


class _ReadAheadResponse:
    """An :class:`ObjectResponse` whose body is read ahead on a thread."""

    def __init__(self, response: ObjectResponse, ahead: ReadAhead) -> None:
        self._response = response
        self._ahead = ahead

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    def read(self, size: int = -1, /) -> bytes:
        return self._ahead.read(size)

    def readinto(self, buffer: memoryview | bytearray, /) -> int:
        return self._ahead.readinto(buffer)

    def close(self) -> None:
        self._ahead.close()
        self._response.close()

    def __enter__(self) -> _ReadAheadResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _storage_code(reply: HttpReply) -> str | None:
    match = _S3_CODE_RE.search(reply.body)
    return match.group(1).decode("ascii") if match else None


def _copy(reader: age.AgeReader, out: BinaryIO) -> None:
    # Chunks are opened straight into one reused buffer (AgeReader.readinto).
    buffer = bytearray(_COPY_BLOCK)
    view = memoryview(buffer)
    while filled := reader.readinto(buffer):
        out.write(view[:filled])


def _open_behind(reader: age.AgeReader, behind: WriteBehind) -> None:
    """Open ``reader``'s chunks straight into the buffers ``behind`` lends;
    its thread writes each (and hands it to the disk) while the next is
    received and opened."""
    while filled := reader.readinto(behind.claim_batch()):
        behind.submit_batch(filled)
