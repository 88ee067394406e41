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

from client_sim.api import ApiClient, BlobInfo, BlobPage
from client_sim.blobs import BlobTransfer, EncryptingReader, ciphertext_of
from client_sim.errors import InvalidInput, SourceChanged
from client_sim.identity import KeyBundle, age_recipients_for
from client_sim.keystore import KeystoreState
from client_sim.messages import Messages, Sender, canonical_identity
from client_sim.sealed import FramingError, FramingReader
from client_sim.session import Session
from client_sim.transport import Readable

__all__ = ["Transfers"]


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
        card_ids = [card.card_id for card in recipients]
        age_keys = age_recipients_for(recipients)
        # One key for every attempt: a retry after a lost reply or a renewed
        # token continues the same blob instead of making a second one.
        key = idempotency_key or secrets.token_urlsafe(18)

        def framed(stream: Readable, size: int) -> EncryptingReader:
            inner = FramingReader(stream, size, sender=current, recipient_card_ids=card_ids)
            return EncryptingReader(inner, inner.size, age_keys)

        with ciphertext_of(
            source,
            size=None,
            reader=framed,
            encrypt=lambda stream, out: self._messages.seal(stream, out, current, recipients),
        ) as ciphertext:
            try:
                # Each attempt (the first, and one after a renewed token)
                # sends the ciphertext from its start.
                return self._session.authed(
                    lambda token: self._transfer.upload(token, *ciphertext(), others, key)
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

        Raises:
            DecryptionFailed, SenderMismatch, BlobUnavailable, ServerError
            (404 for a blob this identity may not read), StorageTransferFailed,
            ConnectionFailed.
        """
        # The metadata request is the one that can meet an expired token;
        # nothing is written before it succeeds.  Its fresh download URL is
        # used at once.
        info = self.blob(blob_id)
        with self._transfer.open(info) as response:
            return self._messages.open_stream(response, out, state.bundles, sender)

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

        Removing readers only changes who the server serves the blob to.
        Adding readers re-seals the file: a sealed file's signature names
        its recipients, and only the sender can sign a new list.  The file
        is downloaded, verified, sealed again for the new list and stored as
        a new blob, and the old one is deleted; the new blob is returned.

        Raises:
            InvalidInput: this identity doesn't own the blob.
            As for :meth:`download` and :meth:`upload`.
        """
        wanted = sorted({canonical_identity(name) for name in to} - {current.identity})
        info = self.blob(blob_id)
        if info.owner != current.identity:
            raise InvalidInput("only the owner of a blob can share it")
        if set(wanted) <= set(info.recipients):
            return self._session.authed(
                lambda token: self._api.set_blob_recipients(
                    token, blob_id, wanted, version=info.version
                )
            )
        with tempfile.TemporaryDirectory(prefix="sealbox-share-") as scratch:
            plain = Path(scratch) / "plaintext"
            self.download(state, blob_id, plain, sender=current.identity)
            fresh = self.upload(current, plain, wanted, idempotency_key=idempotency_key)
        self.delete(blob_id)
        return fresh
