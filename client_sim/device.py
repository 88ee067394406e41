"""The device SDK: one phone's keys, session and cards behind a small facade.

A :class:`Device` is what an app embeds (the shape of Virgil's E3Kit): it
registers a person, makes and keeps their keys, finds other people's cards,
encrypts and decrypts sender-authenticated data, and backs the keys up under
the password.  Everything secret stays here:

* the password is turned into a login key (sent) and a backup key (never
  sent) by :mod:`client_sim.passwords`;
* private keys live in the :class:`~client_sim.keystore.Keystore` under
  ``home/keystore/``, encrypted at rest, with the refresh token, the backup
  key and the contact pins (a phone's Keychain); the card cache beside them
  is sealed under the same device key (:mod:`client_sim.card_cache`);
* only cards, ciphertext and the sealed backup reach the server.

The facade owns no mechanism of its own: it builds, once, objects with one
job each (``api`` every route; ``store`` the keystore; ``session`` tokens;
``directory`` verified cards; ``messages`` sealing and sender checks;
``transfers`` blobs; ``backup_sync`` the key backup; ``accounts`` the
password flows) and hands each what it needs.  docs/architecture.md maps them.

A ``Device`` is not thread-safe: one phone, one caller at a time.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from chalicelib.wire.cards import Card
from client_sim.accounts import Accounts
from client_sim.api import ApiClient, BlobInfo, BlobPage
from client_sim.backup_sync import BACKUP_NAME, PENDING_BACKUP_NAME, BackupSync
from client_sim.blobs import BlobTransfer
from client_sim.config import SdkConfig
from client_sim.directory import CARD_CACHE_FILE, MAX_CARD_CACHE_TTL, CardDirectory
from client_sim.errors import ConcurrentChange, ServerError, reported
from client_sim.files import atomic_output
from client_sim.group import Group
from client_sim.group_state import GroupState
from client_sim.groups import GroupInfo, Groups
from client_sim.hardening import PasswordHardening
from client_sim.identity import KeyBundle
from client_sim.keystore import KeystoreState
from client_sim.messages import Decrypted, Messages, Sender, canonical_identity
from client_sim.origins import StorageOrigins
from client_sim.passwords import PASSWORD_KDF_V1, KdfParams
from client_sim.session import Session
from client_sim.store import PENDING_CARD, DeviceStatus, DeviceStore
from client_sim.transfers import Transfers
from client_sim.transparency import (
    DEFAULT_MAX_CHECKPOINT_AGE,
    DEFAULT_MONITOR_INTERVAL,
    LogMonitor,
)
from client_sim.transport import HttpTransport, ObjectTransport, Transport

__all__ = [
    "BACKUP_NAME",
    "CARD_CACHE_FILE",
    "PENDING_BACKUP_NAME",
    "Decrypted",
    "Device",
    "DeviceStatus",
    "Group",
    "GroupInfo",
    "Sender",
]


class Device:
    """One simulated phone.

    Args:
        home: the device's directory (keystore and card cache live here).
        transport: how to reach the backend (:class:`HttpTransport` or the
            in-process :class:`~client_sim.transport.ChaliceTransport`).
        kdf: the password-derivation parameters.  Every device of a user
            MUST use the same ones (the login key depends on them);
            ``PASSWORD_KDF_SIMULATION`` is for tests and fleets only.
        card_cache_ttl: how long a looked-up active card is used without
            asking the directory again, in seconds (at most 300: the bound
            on how long a revoked contact card still gets new data).
        clock, sleep: injected for tests (token expiry, retry backoff).
        objects: how presigned object-storage URLs are reached (default:
            plain HTTP; in-process runs on moto pass
            :class:`~client_sim.transport.InProcessObjectTransport`).
        storage_origins: where presigned URLs may point besides the API's
            own origin over HTTP, e.g. ``sealbox local``'s ``aws endpoint``
            (:mod:`client_sim.origins`; others raise ``StorageOriginRefused``).
        oprf_roots: the backend's OPRF root public keys by key version, pinned
            in the app's configuration: turns on password hardening
            (docs/spec/passwords.md, version 2).  A server answer not
            certified by one of them raises ``OprfVerificationFailed``.
            None: the version-1 derivation (no OPRF).
        log_key, log_max_age, log_monitor_interval: the transparency log's
            verifier key, pinned in the app's configuration (None: no log
            checks); how old a checkpoint may be; how often, besides at
            every login, the device checks its own identity's log entries
            before find_users and encrypt* (docs/spec/transparency.md).
    """

    def __init__(
        self,
        home: str | os.PathLike[str],
        transport: Transport,
        *,
        kdf: KdfParams = PASSWORD_KDF_V1,
        card_cache_ttl: float = MAX_CARD_CACHE_TTL,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        objects: ObjectTransport | None = None,
        storage_origins: Iterable[str] = (),
        oprf_roots: Mapping[int, bytes] | None = None,
        log_key: str | None = None,
        log_max_age: float = DEFAULT_MAX_CHECKPOINT_AGE,
        log_monitor_interval: float = DEFAULT_MONITOR_INTERVAL,
    ) -> None:
        kdf.check()
        self._home = Path(home)
        self._clock = clock
        api = ApiClient(transport)
        self._api = api
        self._store = DeviceStore(self._home)
        self._session = Session(api, self._store, clock=clock)
        # The transparency log's verifier key is pinned here, in the app's
        # configuration, never fetched from the server it checks.
        self._log = (
            None
            if log_key is None
            else LogMonitor(api, self._store.keystore, log_key, max_age=log_max_age, clock=clock)
        )
        self._cards = CardDirectory(
            api, self._session, self._store, ttl=card_cache_ttl, clock=clock, log=self._log
        )
        self._messages = Messages(self._cards, self._log)
        self._monitor_interval = log_monitor_interval
        origins = StorageOrigins.for_transport(transport, storage_origins)
        transfer = BlobTransfer(api, objects=objects, origins=origins)
        self._transfers = Transfers(api, self._session, transfer, self._messages)
        self._backups = BackupSync(
            api, self._session, self._store, self._cards, kdf=kdf, clock=clock, sleep=sleep
        )
        self._accounts = Accounts(
            api,
            self._session,
            self._store,
            self._cards,
            self._backups,
            kdf=kdf,
            clock=clock,
            hardening=None if oprf_roots is None else PasswordHardening(api, oprf_roots, kdf),
        )
        self._groups = Groups(
            api,
            self._session,
            self._cards,
            self._messages,
            GroupState(self._store.keystore),
            transfer=transfer,
            objects=objects,
            origins=origins,
            clock=clock,
        )
        store, cards = self._store, self._cards

        def keys() -> tuple[KeystoreState, KeyBundle]:
            # The group handles' way to this device's keys (a pending card
            # publication settled first), without a reference to the facade.
            state = store.load()
            if state is not None and PENDING_CARD in state.settings:
                state = cards.settle(state)
            return store.require_current(state)

        self._keys = keys

    @classmethod
    def connect(
        cls,
        home: str | os.PathLike[str],
        url: str | None = None,
        *,
        config: SdkConfig | str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> Device:
        """A device talking HTTP(S) to ``url`` (``sealbox local`` or a deployed stage).

        ``config``: the app's SDK trust configuration (:class:`SdkConfig` or
        the path of its file): its log key, OPRF roots and storage origins
        are pinned, and its URL is used when ``url`` is None.  Explicit
        ``options`` win over the file's values.

        Raises:
            ConfigError: the configuration file is missing or invalid.
            ValueError: neither ``url`` nor ``config`` is given.
        """
        if config is not None:
            if not isinstance(config, SdkConfig):
                config = SdkConfig.load(config)
            options = {**config.device_options(), **options}
            url = url or config.url
        if url is None:
            raise ValueError("give the backend's URL or an SDK configuration")
        return cls(home, HttpTransport(url), **options)

    def __repr__(self) -> str:
        return f"Device(home={str(self._home)!r})"

    # --- accounts ---------------------------------------------------------------

    @reported
    def register(self, username: str, password: str) -> str:
        """Create the account, log in, make this device's keys and publish their card.

        Safe to call again after a failure part-way (an account this
        password opens, with no active card yet, is picked up where it was
        left); after :meth:`unregister` it registers a new card while the
        keystore keeps older keys for old data.  Returns the canonical identity.

        Raises:
            InvalidInput: bad username or weak password.
            UsernameTaken: the username belongs to someone else.
            AlreadyRegistered: the identity has an active card from another
                device (log in there, or restore the backup here).
            DeviceInUse: this device holds another identity's keys.
        """
        return self._accounts.register(username, password)

    @reported
    def login(self, username: str, password: str) -> str:
        """Log in on this device; restore the keys from the backup if it has none.

        Without a backup the device is logged in but holds no private key.

        Raises:
            InvalidInput, WrongPassword, TooManyAttempts, DeviceInUse.
            KdfMismatch: the backup was made with other KDF parameters.
        """
        identity = self._accounts.login(username, password)
        if self._log is not None:
            # Self-monitoring at login: the session is kept either way, so a
            # caller that catches UnexpectedKeyEvent is still logged in.
            self.check_transparency_log()
        return identity

    @reported
    def check_transparency_log(self) -> int:
        """Check the log entries added since the last check (self-monitoring).

        Returns how many entries were read (0 without a pinned log).

        Raises:
            UnexpectedKeyEvent: the log holds a card for this identity that
                none of this device's key bundles (current, previous, or one
                being published) is, or a revocation of the card this device
                still uses.
            SplitView: the log's entries or checkpoints contradict what this
                device saw before.
            LogVerificationFailed: the log can't be verified right now.
        """
        if self._log is None:
            return 0
        state = self._store.load()
        if state is None:
            return 0
        own = {bundle.card_id for bundle in state.bundles}
        pending = state.settings.get(PENDING_CARD)
        if pending:
            own.add(pending)
        return self._log.monitor(
            state.identity, own, active_card_id=state.current_card_id, watch=state.pins
        )

    def _monitor_when_due(self) -> None:
        # "At login and periodically": a device that stays logged in for days
        # still checks its identity (and learns its contacts' newest entries)
        # before it uses cards, at most once per interval.
        if self._log is not None and self._log.monitoring_due(self._monitor_interval):
            self.check_transparency_log()

    @reported
    def confirm_password(self, password: str) -> None:
        """Re-enter the password: destructive calls of the next 5 minutes (unregister,
        backup reset or replace, a rotation's backup update) prove it (step-up)."""
        self._accounts.confirm_password(password)

    @reported
    def logout(self) -> None:
        """End the session (the refresh token stops working at once); keys stay."""
        self._session.end()

    # --- cards --------------------------------------------------------------------

    @reported
    def find_users(self, identities: Iterable[str], *, refresh: bool = False) -> dict[str, Card]:
        """The verified active cards of ``identities`` (canonical identity -> card).

        Cards looked up less than ``card_cache_ttl`` ago come from the local
        cache without a request; the rest are fetched 50 per request.  Every
        card is verified (self-signature, card id, identity) and checked
        against this device's pin for the contact: first contact pins it, a
        rotation signed by the pinned card's key moves the pin.

        Raises:
            InvalidInput, UsersNotFound, CardVerificationFailed.
            IdentityChanged: a contact's card is not the pinned card nor a
                signed rotation of it (an identity reset); see :meth:`trust`.
        """
        if isinstance(identities, str):
            # A lone string would be read as its characters.
            raise TypeError("identities must be a collection of strings, not a string")
        wanted = [canonical_identity(name) for name in identities]
        self._monitor_when_due()
        return self._cards.find(wanted, refresh=refresh)

    @reported
    def trust(self, identity: str, card_id: str) -> Card:
        """Accept ``card_id``, ``identity``'s active card, after an :class:`IdentityChanged`
        (only once the user compared the error's safety number with the contact).

        Raises:
            InvalidInput: not the identity's active card (it changed again), or
                this device's own identity.
            UsersNotFound, CardVerificationFailed.
        """
        return self._cards.trust(canonical_identity(identity), card_id)

    # --- encryption -----------------------------------------------------------------

    @reported
    def encrypt(self, data: bytes, to: Iterable[str], *, context: str | None = None) -> bytes:
        """Sign ``data`` as this device and encrypt it to ``to`` and to itself.

        ``context`` (what the data is for, such as a conversation and message
        id: 1-255 printable ASCII characters) is signed with it; see
        :meth:`decrypt`.  The time of sealing and the readers are always signed,
        and so is this device's latest log checkpoint when a log is pinned
        (readers compare it with theirs: docs/spec/transparency.md).

        Raises:
            NoPrivateKey, InvalidInput, UsersNotFound, CardVerificationFailed,
            IdentityChanged (nothing is encrypted to a reset identity).
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("data must be bytes")
        out = io.BytesIO()
        self.encrypt_stream(io.BytesIO(bytes(data)), out, to, context=context)
        return out.getvalue()

    @reported
    def encrypt_stream(
        self, src: IO[bytes], dst: IO[bytes], to: Iterable[str], *, context: str | None = None
    ) -> None:
        """:meth:`encrypt` in constant memory, from ``src`` to ``dst``.

        On failure ``dst`` may hold a partial, unusable file (no signature):
        the caller discards it.  :meth:`encrypt_file` does that for you.
        """
        if isinstance(to, str):
            raise TypeError("to must be a collection of identities, not a string")
        _, current = self._require_keys()
        self._monitor_when_due()
        self._messages.seal_to(src, dst, current, to, context)

    @reported
    def encrypt_file(
        self, src: str | os.PathLike[str], dst: str | os.PathLike[str], to: Iterable[str], *,
        context: str | None = None,
    ) -> None:  # fmt: skip
        """Encrypt the file ``src`` to ``dst``; ``dst`` appears only when complete."""
        with open(src, "rb") as source, atomic_output(dst) as out:
            self.encrypt_stream(source, out, to, context=context)

    @reported
    def decrypt(
        self, data: bytes, *, sender: str | None = None, context: str | None = None
    ) -> Decrypted:
        """Decrypt ``data`` and verify who signed it, when, and for what.

        The sender's card is found by its id in the sealed payload (cache,
        then the directory, which keeps superseded cards).

        Args:
            sender: if given, the data must be signed by this identity.
            context: if given, the data must be sealed with this context (a
                message replayed into another conversation or slot is refused).

        Raises:
            DecryptionFailed: not for this device, tampered, or unverifiable.
            SenderMismatch: signed by someone other than ``sender``.
            ContextMismatch: sealed with another context than ``context``.
            NoPrivateKey, CardVerificationFailed.
            SplitView: (log pinned) the checkpoint the sender carried can't
                be connected to this device's: the log forked between the
                two; ``ours``/``theirs`` are both signed checkpoints.
                Raised before any plaintext, also by the stream, file,
                download and group variants.
            LogVerificationFailed: (log pinned) the carried checkpoint names
                this log but its signature fails.
        """
        state, _ = self._require_keys()
        return self._messages.open_bytes(bytes(data), state.bundles, sender, context=context)

    @reported
    def decrypt_stream(
        self, src: IO[bytes], dst: IO[bytes] | str | os.PathLike[str], *,
        sender: str | None = None, context: str | None = None,
    ) -> Sender:  # fmt: skip
        """:meth:`decrypt` in constant memory.  ``dst`` as a stream receives
        plaintext *before* the signature at the end is checked: on any
        exception the caller MUST discard it (a path appears only if verified).
        """
        state, _ = self._require_keys()
        return self._messages.open_stream(src, dst, state.bundles, sender, context=context)

    @reported
    def decrypt_file(
        self, src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
        sender: str | None = None, context: str | None = None,
    ) -> Sender:  # fmt: skip
        """Decrypt the file ``src`` to ``dst``; ``dst`` appears only if everything verified."""
        with open(src, "rb") as source:
            return self.decrypt_stream(source, dst, sender=sender, context=context)

    # --- encrypted files on the server (blobs) --------------------------------------

    @reported
    def upload(
        self,
        source: str | os.PathLike[str] | IO[bytes],
        to: Iterable[str],
        *,
        idempotency_key: str | None = None,
    ) -> BlobInfo:
        """Sign ``source`` as this device, encrypt it to ``to`` and to itself,
        and store the ciphertext as a blob that ``to`` may download.

        The file streams through signing and encryption into a presigned
        upload: memory doesn't grow with its size.  A stream of unknown
        length (a pipe) is sealed into a temporary file first (ciphertext
        only).

        Raises:
            NoPrivateKey, InvalidInput, UsersNotFound, CardVerificationFailed,
            IdentityChanged, ServerError (quota, rejected upload), ConnectionFailed.
        """
        if isinstance(to, str):
            raise TypeError("to must be a collection of identities, not a string")
        _, current = self._require_keys()
        return self._transfers.upload(current, source, to, idempotency_key=idempotency_key)

    @reported
    def download(
        self, blob_id: str, out: str | os.PathLike[str] | IO[bytes], *, sender: str | None = None
    ) -> Sender:
        """Fetch a blob, decrypt it and verify who signed it.

        ``out`` as a path appears only once everything verified (a 0600
        temporary file is renamed into place); a file object receives
        plaintext before the signature at the end is checked, and the caller
        MUST discard it on any exception.

        Args:
            sender: if given, the blob must be signed by this identity.

        Raises:
            SplitView, LogVerificationFailed: as :meth:`decrypt`.
            DecryptionFailed, SenderMismatch, NoPrivateKey, ServerError
            (404 for a blob this identity may not read), ConnectionFailed.
        """
        state, _ = self._require_keys()
        return self._transfers.download(state, blob_id, out, sender=sender)

    @reported
    def blob(self, blob_id: str) -> BlobInfo:
        """A blob's metadata (owner or recipient only)."""
        return self._transfers.blob(blob_id)

    @reported
    def list_blobs(
        self, role: str = "inbox", *, limit: int | None = None, cursor: str | None = None
    ) -> BlobPage:
        """One page of the blobs shared with this identity (``inbox``) or
        stored by it (``outbox``)."""
        return self._transfers.list(role, limit=limit, cursor=cursor)

    @reported
    def share(
        self, blob_id: str, to: Iterable[str], *, idempotency_key: str | None = None
    ) -> BlobInfo:
        """Make ``to`` the people (besides the owner) who may read a blob.

        Any change re-seals the file as a new blob (a sealed file's signature
        names its readers and its blob, and only the sender can sign a new
        list) and deletes the old one; the new blob is returned.

        Args:
            idempotency_key: for the new blob's upload; a caller that
                repeats a share whose answer was lost passes the same key
                so the repeat finds the same new blob instead of a copy.

        Raises:
            InvalidInput: this device's identity doesn't own the blob.
            As for :meth:`download` and :meth:`upload`.
        """
        if isinstance(to, str):
            raise TypeError("to must be a collection of identities, not a string")
        state, current = self._require_keys()
        return self._transfers.share(state, current, blob_id, to, idempotency_key=idempotency_key)

    @reported
    def delete_blob(self, blob_id: str) -> None:
        """Delete a blob this identity owns: every stored version and its metadata."""
        self._transfers.delete(blob_id)

    # --- groups -----------------------------------------------------------------------

    @reported
    def create_group(self, members: Iterable[str], *, admins: Iterable[str] = ()) -> Group:
        """Create a group of this identity (an admin), ``members`` and ``admins``.

        Every member's current card gets the first epoch secret, wrapped with
        HPKE (post-quantum when the card has an ML-KEM-768+X25519 key).

        Raises:
            NoPrivateKey, InvalidInput, MemberNotFound (no card), IdentityChanged.
        """
        if isinstance(members, str) or isinstance(admins, str):
            raise TypeError("members and admins are collections of identities, not strings")
        state, current = self._keys()
        info = self._groups.create(state, current, members, admins)
        return Group(self._groups, self._keys, info.group_id)

    @reported
    def group(self, group_id: str) -> Group:
        """The group ``group_id`` (nothing is fetched until it is used).

        Raises:
            InvalidInput: not a group id.
        """
        return Group(self._groups, self._keys, group_id)

    @reported
    def list_groups(self) -> list[GroupInfo]:
        """The groups this identity is a current member of."""
        return self._groups.list()

    # --- keys -------------------------------------------------------------------------

    @reported
    def has_local_private_key(self) -> bool:
        """True when this device holds a private key (registered or restored)."""
        state = self._store.load()
        return state is not None and state.current is not None

    @reported
    def rotate_private_key(self) -> Card:
        """Make new keys, publish their card as a rotation signed by the old key; the new card.

        The old keys stay in the keystore (and the backup, updated if one
        exists), so data sealed to the old card still decrypts and old
        signatures still verify.  Contacts' devices move to the new card
        silently, having checked the rotation signature.

        Raises:
            NoPrivateKey, NotLoggedIn.
            ConcurrentChange: another device changed this identity's card
                first (restore the backup to get its keys), or, after the
                rotation succeeded, other devices kept replacing the backup.
            WrongPassword: the rotation succeeded but the backup is sealed
                under a password changed elsewhere; log in and back up.
            StepUpRequired: rotated; replacing the backup needs :meth:`confirm_password`.
        """
        state, current = self._require_keys()
        new = current.rotate(created_at=int(self._clock()))
        self._cards.publish(state, new)
        self._backups.update(self._require_keys()[0])
        return new.card

    @reported
    def unregister(self) -> None:
        """Revoke this identity's card and wipe the device; the backup stays.  Needs
        :meth:`confirm_password` first (StepUpRequired).  Data sealed by the card still
        verifies (as revoked); a login restores the keys, :meth:`register` a new card."""
        state, current = self._require_keys()
        try:
            self._cards.revoke(current.card_id)
        except ServerError as exc:
            if exc.status not in (404, 409):
                raise
            if self._cards.own_active(state.identity) is not None:
                raise ConcurrentChange(
                    "another card is active for this identity; restore the backup first"
                ) from exc
        self.logout()
        self.cleanup()

    @reported
    def cleanup(self) -> None:
        """Delete the keystore and the card cache from this device (no server call)."""
        self._store.destroy()  # the sealed group state goes with the keystore's side files
        self._cards.clear()
        self._session.forget()

    @reported
    def whoami(self) -> DeviceStatus:
        """Identity, session and card of this device; nothing secret."""
        return self._store.status()

    # --- the app's own routes --------------------------------------------------------

    @reported
    def call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        """Call one of the app's own routes (a backend extension,
        docs/extending.md) with this device's access token; return the
        reply's JSON body (None when empty).

        The token is renewed once if the server refuses it, so ``call`` must
        be safe to repeat.  ``path`` is a path on this API ("/v1/notes"),
        never a URL: the token goes nowhere else.

        Raises:
            InvalidInput: a method or path outside those rules.
            NotLoggedIn: no session.
            ServerError: the route refused (its ``code`` says why).
        """
        return self._session.authed(lambda token: self._api.app_call(token, method, path, payload))

    # --- backup -------------------------------------------------------------------------

    @reported
    def backup_private_key(self) -> int:
        """Seal every key (current and previous) under the backup key and store it.

        Creates the backup or replaces it (compare-and-swap); keys found in
        the stored backup but not on this device (another device rotated)
        are kept, and also added here.

        Returns:
            The stored backup's version.

        Raises:
            NoPrivateKey, NotLoggedIn.
            WrongPassword: the stored backup is sealed under another password
                (it was changed on another device): log in again.
            ConcurrentChange: other devices kept replacing it.
        """
        state, _ = self._require_keys()
        return self._backups.write(state)

    @reported
    def restore_private_key(self, password: str) -> None:
        """Restore the keys from the backup (a new phone, or keys out of date).

        Keys already on this device are kept; the current key becomes the one
        whose card is active in the directory.

        Raises:
            NotLoggedIn, InvalidInput.
            BackupNotFound: there is no backup.
            WrongPassword: the password does not open it.
            KdfMismatch: it was made with other KDF parameters.
        """
        self._accounts.restore(password)

    @reported
    def reset_private_key_backup(self) -> None:
        """Delete the backup (and any staged one) from the server."""
        self._store.require_session()
        self._backups.reset()

    @reported
    def change_password(self, old_password: str, new_password: str) -> None:
        """Change the password: the login key on the server and the backup's key.

        The order of the steps (stage, switch the login key, promote) keeps
        one password that both logs in and opens a backup at every moment;
        :meth:`client_sim.backup_sync.BackupSync.change_password` gives it.

        Raises:
            NotLoggedIn, InvalidInput.
            WrongPassword: the old password is wrong (or was changed elsewhere).
            ConcurrentChange: another device is changing the password right now.
        """
        self._accounts.change_password(old_password, new_password)

    # --- helpers ------------------------------------------------------------------------

    def _require_keys(self) -> tuple[KeystoreState, KeyBundle]:
        """The keystore and its current bundle, a pending publication settled first."""
        return self._keys()
