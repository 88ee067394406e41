"""File transfers for one device: seal-and-upload, download-and-verify, share.

A file is signed as this device and encrypted for its readers while it
streams into blob storage (:class:`~client_sim.blobs.BlobTransfer`), and
decrypted and verified while it streams back, so memory doesn't grow with
its size and no plaintext leaves the device.  A stream whose size can't be
known up front (a pipe) is sealed into a spooled temporary file first: only
ciphertext touches the disk.

Every request goes through :meth:`~client_sim.session.Session.authed`: an
access token the server refuses is renewed once and the whole operation
repeated; an upload repeats under the same idempotency key, so it continues
the same blob instead of making a second one.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from chalicelib.wire.blobids import derive_blob_id
from client_sim import sealed
from client_sim.api import ApiClient, BlobInfo, BlobPage
from client_sim.blobs import BlobTransfer, EncryptingReader, ciphertext_of
from client_sim.errors import InvalidInput, SourceChanged
from client_sim.identity import KeyBundle, age_recipients_for
from client_sim.keystore import KeystoreState
from client_sim.messages import Messages, Sender, canonical_identity
from client_sim.sealed import FramingError, FramingReader, SealedHeader, blob_context
from client_sim.session import Session
from client_sim.transport import Readable

__all__ = ["MAX_SEAL_TO_RESERVE_MS", "Transfers"]

#: The longest a device may take from sealing a file to reserving its blob.
#: A device reserves right after it starts sealing (a pipe of unknown length
#: is sealed whole first), so a blob record that claims to be created more
#: than this after its content was sealed is an old file presented as new.
MAX_SEAL_TO_RESERVE_MS = 24 * 3600 * 1000


class Transfers:
    """Sealed files in blob storage, for one device.

    Args:
        api: the HTTP client (blob metadata routes).
        session: supplies and renews the access token.
        transfer: moves ciphertext to and from storage.
        messages: seals to verified cards and verifies senders.
    """

    def __init__(
        self, api: ApiClient, session: Session, transfer: BlobTransfer, messages: Messages
    ) -> None:
        self._api = api
        self._session = session
        self._transfer = transfer
        self._messages = messages

    def upload(
        self,
        current: KeyBundle,
        source: str | os.PathLike[str] | IO[bytes],
        to: Iterable[str],
        *,
        idempotency_key: str | None = None,
    ) -> BlobInfo:
        """Seal ``source`` as ``current`` for ``to`` (and itself) and store it.

        Raises:
            InvalidInput: an invalid identity, too many recipients, or
                :class:`~client_sim.errors.SourceChanged` (the file changed size).
            UsersNotFound, CardVerificationFailed, ServerError,
            StorageTransferFailed, ConnectionFailed.
        """
        recipients = self._messages.recipients(current, to)
        others = sorted({card.identity for card in recipients[1:]})
        age_keys = age_recipients_for(recipients)
        # One key for every attempt: a retry after a lost reply or a renewed
        # token continues the same blob instead of making a second one.
        key = idempotency_key or secrets.token_urlsafe(18)
        # The server derives the blob id from the owner and the key, so the
        # id is known before anything is sealed: it is signed into the file
        # (a server can't serve it as another blob), and the reservation
        # must answer with it.
        blob_id = derive_blob_id(current.identity, key)
        context = blob_context(blob_id)

        def framed(stream: Readable, size: int) -> EncryptingReader:
            inner = FramingReader(
                stream,
                size,
                sender=current,
                recipients=recipients,
                context=context,
                checkpoint=self._messages.checkpoint(),
            )
            return EncryptingReader(inner, inner.size, age_keys)

        def seal_whole(stream: Readable, out: IO[bytes]) -> None:
            self._messages.seal(stream, out, current, recipients, context)

        with ciphertext_of(source, size=None, reader=framed, encrypt=seal_whole) as ciphertext:
            try:
                # Each attempt (the first, and one after a renewed token)
                # sends the ciphertext from its start.
                return self._session.authed(
                    lambda token: self._transfer.upload(
                        token, *ciphertext(), others, key, blob_id=blob_id
                    )
                )
            except FramingError as exc:
                raise SourceChanged(f"the file changed while it was being sent: {exc}") from exc

    def download(
        self,
        state: KeystoreState,
        blob_id: str,
        out: str | os.PathLike[str] | IO[bytes],
        *,
        sender: str | None = None,
    ) -> Sender:
        """Fetch a blob, decrypt it with ``state``'s keys and verify who signed it.

        ``out`` as a path appears only once everything verified; a stream
        receives plaintext before the signature is checked and MUST be
        discarded on any exception.

        What the sender signed must match the blob it is served as, checked
        before any plaintext is written: the content was sealed for this
        blob id, by the blob's owner, for exactly the blob's readers (owner
        included), and not long before the blob record says it was made
        (:data:`MAX_SEAL_TO_RESERVE_MS`).  Content in the legacy format 1
        (no blob id, no time) is checked for its sender and readers only.

        Raises:
            ContextMismatch: the content doesn't match the blob (a server
                that swaps or replays content); ``reason`` says how.
            DecryptionFailed, SenderMismatch, BlobUnavailable, ServerError
            (404 for a blob this identity may not read), StorageTransferFailed,
            ConnectionFailed.
        """
        # The metadata request is the one that can meet an expired token;
        # nothing is written before it succeeds.  Its fresh download URL is
        # used at once.
        info = self.blob(blob_id)
        check = self._matches(info)
        with self._transfer.open(info) as response:
            return self._messages.open_stream(response, out, state.bundles, sender, check=check)

    def _matches(self, info: BlobInfo) -> sealed.HeaderCheck:
        """The check that sealed content belongs to the blob ``info`` describes."""
        readers = {info.owner, *info.recipients}

        def check(header: SealedHeader) -> None:
            if header.bound:
                if header.context != blob_context(info.blob_id):
                    raise sealed.ContextMismatch(
                        "context", "the content was sealed for another blob"
                    )
                assert header.sealed_at_ms is not None
                if info.created_at * 1000 - header.sealed_at_ms > MAX_SEAL_TO_RESERVE_MS:
                    raise sealed.ContextMismatch(
                        "time", "the content was sealed long before the blob was made"
                    )
                named = {name for _, name in header.recipients}
            else:
                # Format 1 names recipient cards only: their identities come
                # from the directory (card ids are hashes of signed cards).
                cards = [self._messages.card(card_id) for card_id in header.recipient_card_ids]
                named = {card.identity if card else None for card in cards}
            if header.sender.identity != info.owner:
                raise sealed.ContextMismatch(
                    "sender", "the content was not sealed by the blob's owner"
                )
            if named != readers:
                raise sealed.ContextMismatch(
                    "recipients", "the content was sealed for other readers than the blob's"
                )

        return check

    def blob(self, blob_id: str) -> BlobInfo:
        """A blob's metadata (owner or recipient only)."""
        return self._session.authed(lambda token: self._api.get_blob(token, blob_id))

    def list(self, role: str, *, limit: int | None, cursor: str | None) -> BlobPage:
        """One page of the inbox or the outbox."""
        return self._session.authed(
            lambda token: self._api.list_blobs(token, role, limit=limit, cursor=cursor)
        )

    def delete(self, blob_id: str) -> None:
        """Delete a blob this identity owns: every stored version and its metadata."""
        self._session.authed(lambda token: self._api.delete_blob(token, blob_id))

    def share(
        self,
        state: KeystoreState,
        current: KeyBundle,
        blob_id: str,
        to: Iterable[str],
        *,
        idempotency_key: str | None = None,
    ) -> BlobInfo:
        """Make ``to`` the readers (besides the owner) of a blob this identity owns.

        Any change of readers re-seals the file: a sealed file's signature
        names its readers and its blob, and only the sender can sign a new
        list.  The file is downloaded, verified, sealed again for the new
        list under a fresh file key and stored as a new blob, and the old
        blob (every stored version) is deleted; the new blob is returned.
        A removed reader therefore can't read the new blob, and a download
        URL it fetched earlier stops working once the old blob is deleted.
        The same readers again change nothing (the blob is returned as is).

        Raises:
            InvalidInput: this identity doesn't own the blob.
            As for :meth:`download` and :meth:`upload`.
        """
        wanted = sorted({canonical_identity(name) for name in to} - {current.identity})
        info = self.blob(blob_id)
        if info.owner != current.identity:
            raise InvalidInput("only the owner of a blob can share it")
        if set(wanted) == set(info.recipients):
            return info
        with tempfile.TemporaryDirectory(prefix="sealbox-share-") as scratch:
            plain = Path(scratch) / "plaintext"
            self.download(state, blob_id, plain, sender=current.identity)
            fresh = self.upload(current, plain, wanted, idempotency_key=idempotency_key)
        self.delete(blob_id)
        return fresh
