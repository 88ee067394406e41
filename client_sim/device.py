"""The device SDK: one phone's keys, session and card cache behind a small facade.

A :class:`Device` is what an app embeds (the shape of Virgil's E3Kit): it
registers a person, makes and keeps their keys, finds other people's cards,
encrypts and decrypts sender-authenticated data, and backs the keys up under
the password.  Everything secret stays here:

* the password is turned into a login key (sent) and a backup key (never
  sent) by :mod:`client_sim.passwords`;
* private keys live in the :class:`~client_sim.keystore.Keystore` under the
  device's home directory, encrypted at rest, together with the refresh
  token and the backup key (a phone keeps those in its Keychain too);
* only cards, ciphertext and the sealed backup reach the server.

Layout under ``home``::

    keystore/      the encrypted keystore (client_sim.keystore)
    cards.json     cache of verified public cards (re-verified when read)

Backups are stored under :data:`BACKUP_NAME`; a password change stages the
new one under :data:`PENDING_BACKUP_NAME` first (see
:meth:`Device.change_password` for the order and why no moment exists where
neither password restores the keys).

A ``Device`` is not thread-safe: one phone, one caller at a time.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, Final, ParamSpec, TypeVar

from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.cards import Card, InvalidCard, card_from_json
from chalicelib.wire.identity import InvalidIdentity, normalize_identity
from client_sim import backup as backup_format
from client_sim.api import ApiClient, ApiError, RefreshSession
from client_sim.blobs import BlobClient, BlobInfo, BlobNotReady, BlobPage, TransferError
from client_sim.identity import KeyBundle, age_recipients_for
from client_sim.keystore import Keystore, KeystoreError, KeystoreNotFound, KeystoreState
from client_sim.passwords import (
    PASSWORD_KDF_V1,
    KdfParams,
    PasswordKeys,
    WeakPassword,
    derive_password_keys,
    password_salt,
)
from client_sim.sealed import (
    MAX_RECIPIENTS,
    FramingError,
    FramingReader,
    SealedError,
    UnknownSender,
    open_sealed,
    open_sealed_bytes,
    open_sealed_to_path,
    seal,
)
from client_sim.transport import HttpTransport, ObjectTransport, Transport, TransportError

__all__ = [
    "BACKUP_NAME",
    "PENDING_BACKUP_NAME",
    "AlreadyRegistered",
    "BackupNotFound",
    "BlobUnavailable",
    "CardVerificationFailed",
    "ConcurrentChange",
    "ConnectionFailed",
    "DecryptionFailed",
    "Device",
    "DeviceError",
    "DeviceInUse",
    "DeviceStatus",
    "InvalidInput",
    "KdfMismatch",
    "LocalStorageError",
    "NoPrivateKey",
    "NotLoggedIn",
    "Sender",
    "SenderMismatch",
    "ServerError",
    "StorageTransferFailed",
    "TooManyAttempts",
    "UsernameTaken",
    "UsersNotFound",
    "WrongPassword",
]

BACKUP_NAME: Final = "primary"
PENDING_BACKUP_NAME: Final = "primary.pending"
# The server keeps backups up to this size (chalicelib.services.backups).
MAX_BACKUP_BYTES: Final = 256 * 1024
# Renew an access token this long before it expires by the local clock:
# covers the request's flight time and the server's small leeway, and since
# the expiry is ``expires_in`` counted from when *we* asked, the device's
# clock may be off by any amount without tokens being used too late.
TOKEN_REFRESH_MARGIN: Final = 60.0
# A staged backup older than this belongs to a password change that died
# before switching the login key; another change may take its place.
STALE_PENDING_AFTER: Final = 600
# Compare-and-swap rounds (backup writes, password change) before giving up
# with ConcurrentChange, with exponential backoff from RETRY_BACKOFF seconds.
CAS_ROUNDS: Final = 5
RETRY_BACKOFF: Final = 0.2
CARD_CACHE_FILE: Final = "cards.json"
CARD_CACHE_VERSION: Final = 1
_LOOKUP_BATCH: Final = 50
_CARD_STATUSES: Final = frozenset({"active", "superseded", "revoked"})

# Keystore setting names (values are encrypted with the rest of the keystore).
_REFRESH_TOKEN: Final = "session.refresh-token"  # noqa: S105 - a setting name
_REFRESH_EXPIRES: Final = "session.expires-at"
_BACKUP_KEY: Final = "backup.key"
_PENDING_CARD: Final = "card.pending"


# --- errors -------------------------------------------------------------------


class DeviceError(Exception):
    """Base of every failure the SDK reports.  Messages never hold a secret."""


class InvalidInput(DeviceError, ValueError):
    """An argument is invalid: an identity, a weak password, too many recipients."""


class NotLoggedIn(DeviceError):
    """No live session: log in (again).  Also after a password change elsewhere."""


class NoPrivateKey(DeviceError):
    """This device holds no private key: register, or restore the backup."""


class DeviceInUse(DeviceError):
    """The device's keystore belongs to another identity; clean it up first."""


class UsernameTaken(DeviceError):
    """The username is registered by someone else."""


class WrongPassword(DeviceError):
    """The server or the backup refused the password (or the username)."""


class TooManyAttempts(DeviceError):
    """Logins are throttled; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AlreadyRegistered(DeviceError):
    """The identity already has an active card made on another device."""


class UsersNotFound(DeviceError):
    """Some identities have no active card."""

    def __init__(self, identities: Sequence[str]) -> None:
        super().__init__(f"no active card for: {', '.join(identities)}")
        self.identities = tuple(identities)


class CardVerificationFailed(DeviceError):
    """A card from the server failed verification (signature, identity or id)."""


class DecryptionFailed(DeviceError):
    """The data could not be decrypted or its sender could not be verified."""


class SenderMismatch(DecryptionFailed):
    """The data is validly signed, but by someone other than the expected sender."""


class BackupNotFound(DeviceError):
    """There is no key backup for this identity."""


class KdfMismatch(DeviceError):
    """The backup was made with other password-derivation parameters than this device's."""


class ConcurrentChange(DeviceError):
    """Another device kept changing the same state; nothing was lost, try again."""


class ServerError(DeviceError):
    """The server answered with an error this SDK can't act on."""

    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ConnectionFailed(DeviceError):
    """No answer from the server."""


class BlobUnavailable(DeviceError):
    """The blob has no content to download yet (reserved) or was rejected."""


class StorageTransferFailed(DeviceError):
    """Object storage refused an upload or a download."""


class LocalStorageError(DeviceError):
    """The keystore or the card cache on this device is unusable."""


_P = ParamSpec("_P")
_T = TypeVar("_T")


def _translate(exc: ApiError) -> DeviceError:
    """The SDK error for a server error nobody handled more specifically."""
    if exc.code == "invalid_credentials":
        return WrongPassword("wrong username or password")
    if exc.code == "too_many_attempts":
        return TooManyAttempts("too many failed attempts; try again later", exc.retry_after)
    if exc.code == "username_taken":
        return UsernameTaken("this username is taken")
    if exc.code == "invalid_token":
        return NotLoggedIn("the session has ended; log in again")
    return ServerError(f"the server refused the request: {exc.code}", exc.status, exc.code)


def _device_errors(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """Public methods raise DeviceError subclasses only (plus TypeError for misuse)."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return method(*args, **kwargs)
        except ApiError as exc:
            raise _translate(exc) from exc
        except TransportError as exc:
            raise ConnectionFailed("the server did not answer") from exc
        except KeystoreError as exc:
            raise LocalStorageError(f"the keystore is unusable: {exc}") from exc
        except BlobNotReady as exc:
            raise BlobUnavailable(str(exc)) from exc
        except TransferError as exc:
            raise StorageTransferFailed(str(exc)) from exc
        except FramingError as exc:
            raise InvalidInput(f"the file changed while it was being sent: {exc}") from exc

    return wrapper


# --- results ------------------------------------------------------------------


@dataclass(frozen=True)
class Sender:
    """Who signed decrypted data, established by a verified signature.

    ``identity`` is the identity named in the sender's self-signed card (the
    name to show).  ``revoked`` is True when the directory reported that card
    revoked: the data verifies, but its author has since disowned the key.
    """

    identity: str
    card_id: str
    revoked: bool = False


@dataclass(frozen=True, repr=False)
class Decrypted:
    plaintext: bytes
    sender: Sender

    def __repr__(self) -> str:
        # Plaintext never reaches a log or a traceback through a repr.
        return f"Decrypted(sender={self.sender!r}, plaintext_length={len(self.plaintext)})"


@dataclass(frozen=True)
class DeviceStatus:
    """What ``whoami`` shows: nothing secret."""

    identity: str | None
    logged_in: bool
    card_id: str | None
    previous_cards: int


@dataclass
class _CachedCard:
    card: Card
    status: str
    fetched_at: float


@dataclass(frozen=True)
class _StoredBackup:
    version: int
    blob: bytes = field(repr=False)
    updated_at: int


class _Retry(Exception):
    """Internal: another device won a compare-and-swap; start the step again."""


# --- the device -----------------------------------------------------------------


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
            asking the directory again, in seconds.
        clock, sleep: injected for tests (token expiry, retry backoff).
        objects: how presigned object-storage URLs are reached (default:
            plain HTTP; in-process runs on moto pass
            :class:`~client_sim.transport.InProcessObjectTransport`).
    """

    def __init__(
        self,
        home: str | os.PathLike[str],
        transport: Transport,
        *,
        kdf: KdfParams = PASSWORD_KDF_V1,
        card_cache_ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        objects: ObjectTransport | None = None,
    ) -> None:
        kdf.check()
        self._home = Path(home)
        self._api = ApiClient(transport)
        self._transport = transport
        self._objects = objects
        self._keystore = Keystore(self._home)
        self._kdf = kdf
        self._card_ttl = card_cache_ttl
        self._clock = clock
        self._sleep = sleep
        self._access: tuple[str, float] | None = None
        self._cards_loaded = False
        self._by_identity: dict[str, _CachedCard] = {}
        self._by_id: dict[str, _CachedCard] = {}

    @classmethod
    def connect(cls, home: str | os.PathLike[str], url: str, **options: Any) -> Device:
        """A device talking HTTP(S) to ``url`` (``sealbox local`` or a deployed stage)."""
        return cls(home, HttpTransport(url), **options)

    def __repr__(self) -> str:
        return f"Device(home={str(self._home)!r})"

    # --- accounts ---------------------------------------------------------------

    @_device_errors
    def register(self, username: str, password: str) -> str:
        """Create the account, log in, make this device's keys and publish their card.

        Safe to call again after a failure part-way (an account this
        password opens, with no active card yet, is picked up where it was
        left); after :meth:`unregister` it registers a new card while the
        keystore keeps older keys for old data.

        Returns:
            The canonical identity.

        Raises:
            InvalidInput: bad username or weak password.
            UsernameTaken: the username belongs to someone else.
            AlreadyRegistered: the identity has an active card from another
                device (log in there, or restore the backup here).
            DeviceInUse: this device holds another identity's keys.
        """
        identity = _identity(username)
        self._check_device_free(identity)
        keys = self._derive(identity, password)
        taken = False
        try:
            self._api.register(identity, keys.login_key_b64)
        except ApiError as exc:
            if exc.code != "username_taken":
                raise
            taken = True
        try:
            session = self._api.login(identity, keys.login_key_b64)
        except ApiError as exc:
            if taken and exc.code == "invalid_credentials":
                raise UsernameTaken("this username is taken") from exc
            raise
        state = self._start_session(identity, session, keys)
        active = self._own_active_card(identity)
        if active is not None:
            if state.bundle_for(active.card_id) is None:
                raise AlreadyRegistered(
                    "this identity already has an active card on another device; "
                    "log in to restore its keys from the backup"
                )
            # This device published it before failing part-way: done.
            self._save(_with_current(state, active.card_id))
            return identity
        if taken and state.current is None:
            # Registering again after unregister: the backup's keys come
            # along, so data sealed to the old cards stays readable here.
            with contextlib.suppress(BackupNotFound):
                self._restore(state, keys)
            state = self._require_session()
        bundle = KeyBundle.generate(identity, created_at=int(self._clock()))
        self._publish_new(state, bundle)
        return identity

    @_device_errors
    def login(self, username: str, password: str) -> str:
        """Log in on this device; restore the keys from the backup if it has none.

        Without a backup the device is logged in but holds no private key
        (:meth:`has_local_private_key` is False).

        Raises:
            InvalidInput, WrongPassword, TooManyAttempts, DeviceInUse.
            KdfMismatch: the backup was made with other KDF parameters.
        """
        identity = _identity(username)
        self._check_device_free(identity)
        keys = self._derive(identity, password)
        session = self._api.login(identity, keys.login_key_b64)
        state = self._start_session(identity, session, keys)
        if state.current is None:
            with contextlib.suppress(BackupNotFound):
                self._restore(state, keys)
        return identity

    @_device_errors
    def logout(self) -> None:
        """End the session (the refresh token stops working at once); keys stay."""
        state = self._load()
        token = state.settings.get(_REFRESH_TOKEN) if state else None
        if state is None or token is None:
            return
        with contextlib.suppress(ApiError):
            # An already-ended session is as logged out as it gets.
            self._api.logout(token)
        self._save(state.with_settings(**{_REFRESH_TOKEN: None, _REFRESH_EXPIRES: None}))
        self._access = None

    # --- cards --------------------------------------------------------------------

    @_device_errors
    def find_users(self, identities: Iterable[str], *, refresh: bool = False) -> dict[str, Card]:
        """The verified active cards of ``identities`` (canonical identity -> card).

        Cards looked up less than ``card_cache_ttl`` ago come from the local
        cache without a request; the rest are fetched 50 per request.  Every
        fetched card is verified: self-signature, card id, and that it names
        the identity asked for.

        Raises:
            InvalidInput: an identity is invalid.
            UsersNotFound: some identities have no active card.
            CardVerificationFailed: the server returned a card that doesn't verify.
        """
        if isinstance(identities, str):
            # A lone string would be read as its characters.
            raise TypeError("identities must be a collection of strings, not a string")
        wanted = list(dict.fromkeys(_identity(name) for name in identities))
        self._load_card_cache()
        now = self._clock()
        found: dict[str, Card] = {}
        missing: list[str] = []
        for identity in wanted:
            cached = self._by_identity.get(identity)
            if cached and not refresh and now - cached.fetched_at < self._card_ttl:
                found[identity] = cached.card
            else:
                missing.append(identity)
        for start in range(0, len(missing), _LOOKUP_BATCH):
            batch = missing[start : start + _LOOKUP_BATCH]
            entries = self._find_cards(batch)
            for entry in entries:
                cached = self._verified_entry(entry, status="active")
                if cached.card.identity not in batch:
                    raise CardVerificationFailed("the server returned a card nobody asked for")
                self._forget_lookup(cached.card.identity)
                self._remember(cached, lookup=True)
                found[cached.card.identity] = cached.card
        absent = [identity for identity in wanted if identity not in found]
        for identity in absent:
            self._forget_lookup(identity)
        if missing:
            self._save_card_cache()
        if absent:
            raise UsersNotFound(absent)
        return {identity: found[identity] for identity in wanted}

    # --- encryption -----------------------------------------------------------------

    @_device_errors
    def encrypt(self, data: bytes, to: Iterable[str]) -> bytes:
        """Sign ``data`` as this device and encrypt it to ``to`` and to itself.

        Raises:
            NoPrivateKey, InvalidInput, UsersNotFound, CardVerificationFailed.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("data must be bytes")
        out = io.BytesIO()
        self._encrypt_stream(io.BytesIO(bytes(data)), out, to)
        return out.getvalue()

    @_device_errors
    def encrypt_stream(self, src: IO[bytes], dst: IO[bytes], to: Iterable[str]) -> None:
        """:meth:`encrypt` in constant memory, from ``src`` to ``dst``.

        On failure ``dst`` may hold a partial, unusable file (no signature):
        the caller discards it.  :meth:`encrypt_file` does that for you.
        """
        self._encrypt_stream(src, dst, to)

    @_device_errors
    def encrypt_file(
        self, src: str | os.PathLike[str], dst: str | os.PathLike[str], to: Iterable[str]
    ) -> None:
        """Encrypt the file ``src`` to ``dst``; ``dst`` appears only when complete."""
        with open(src, "rb") as source, _atomic_output(Path(dst)) as out:
            self._encrypt_stream(source, out, to)

    def _encrypt_stream(self, src: Any, dst: Any, to: Iterable[str]) -> None:
        if isinstance(to, str):
            raise TypeError("to must be a collection of identities, not a string")
        _, current = self._require_keys()
        cards = self.find_users(to)
        recipients = [current.card] + [
            card for card in cards.values() if card.card_id != current.card_id
        ]
        if len(recipients) > MAX_RECIPIENTS:
            raise InvalidInput(f"at most {MAX_RECIPIENTS - 1} recipients")
        seal(src, dst, sender=current, recipients=recipients)

    @_device_errors
    def decrypt(self, data: bytes, *, sender: str | None = None) -> Decrypted:
        """Decrypt ``data`` and verify who signed it.

        The sender's card is found by the card id inside the sealed payload
        (local cache first, then the directory, which keeps superseded
        cards), so data sealed before its sender rotated still verifies.

        Args:
            sender: if given, the data must be signed by this identity.

        Raises:
            DecryptionFailed: not for this device, tampered, or the signature
                does not verify.
            SenderMismatch: signed by someone other than ``sender``.
            NoPrivateKey, CardVerificationFailed.
        """
        state, _ = self._require_keys()
        try:
            opened = open_sealed_bytes(
                bytes(data), state.bundles, [], resolve_sender=self._sender_resolver(state, sender)
            )
        except SealedError as exc:
            raise _decryption_failed(exc) from exc
        return Decrypted(plaintext=opened.plaintext, sender=self._sender(opened.sender.card))

    @_device_errors
    def decrypt_stream(
        self, src: IO[bytes], dst: IO[bytes], *, sender: str | None = None
    ) -> Sender:
        """:meth:`decrypt` in constant memory.

        ``dst`` receives plaintext *before* the signature at the end is
        checked: on any exception the caller MUST discard it.
        :meth:`decrypt_file` does that for you.
        """
        state, _ = self._require_keys()
        try:
            verified = open_sealed(
                src, dst, state.bundles, [], resolve_sender=self._sender_resolver(state, sender)
            )
        except SealedError as exc:
            raise _decryption_failed(exc) from exc
        return self._sender(verified.card)

    @_device_errors
    def decrypt_file(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        *,
        sender: str | None = None,
    ) -> Sender:
        """Decrypt the file ``src`` to ``dst``; ``dst`` appears only if everything verified."""
        state, _ = self._require_keys()
        with open(src, "rb") as source:
            try:
                verified = open_sealed_to_path(
                    source,
                    dst,
                    state.bundles,
                    [],
                    resolve_sender=self._sender_resolver(state, sender),
                )
            except SealedError as exc:
                raise _decryption_failed(exc) from exc
        return self._sender(verified.card)

    def _sender_resolver(
        self, state: KeystoreState, expected: str | None
    ) -> Callable[[str], Card | None]:
        wanted = _identity(expected) if expected is not None else None
        own = {bundle.card_id: bundle.card for bundle in state.bundles}

        def resolve(card_id: str) -> Card | None:
            card = own.get(card_id) or self._card_by_id(card_id)
            # The name a user sees is the one the sender's own key signed
            # into the card; it must be the one the caller expects.
            if card is not None and wanted is not None and card.identity != wanted:
                raise SenderMismatch(f"signed by {card.identity}, not by {wanted}")
            return card

        return resolve

    def _sender(self, card: Card) -> Sender:
        cached = self._by_id.get(card.card_id)
        return Sender(
            identity=card.identity,
            card_id=card.card_id,
            revoked=cached is not None and cached.status == "revoked",
        )

    def _card_by_id(self, card_id: str) -> Card | None:
        self._load_card_cache()
        cached = self._by_id.get(card_id)
        # A card's content never changes (its id is its hash); only an
        # active card's status can, so only those are looked up again.
        if cached and (cached.status != "active" or self._fresh(cached)):
            return cached.card
        try:
            fetched = self._fetch_card(card_id)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        self._remember(fetched, lookup=False)
        self._save_card_cache()
        return fetched.card

    # --- encrypted files on the server (blobs) --------------------------------------

    def _blobs(self) -> BlobClient:
        return BlobClient(self._transport, self._access_token, objects=self._objects)

    @_device_errors
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
        length (a pipe) is spooled to a temporary file first.

        Raises:
            NoPrivateKey, InvalidInput, UsersNotFound, CardVerificationFailed,
            ServerError (quota, rejected upload), ConnectionFailed.
        """
        if isinstance(to, str):
            raise TypeError("to must be a collection of identities, not a string")
        _, current = self._require_keys()
        cards = self.find_users(to)
        others = [card for card in cards.values() if card.card_id != current.card_id]
        recipients = [current.card, *others]
        if len(recipients) > MAX_RECIPIENTS:
            raise InvalidInput(f"at most {MAX_RECIPIENTS - 1} recipients")
        # One key for every attempt: a retry after a lost reply or a renewed
        # token continues the same blob instead of making a second one.
        key = idempotency_key or b64url_encode(os.urandom(18))
        with _sized_source(source) as (stream, size):
            start = stream.tell()

            def attempt(_token: str) -> BlobInfo:
                stream.seek(start)
                framed = FramingReader(
                    stream,
                    size,
                    sender=current,
                    recipient_card_ids=[card.card_id for card in recipients],
                )
                return self._blobs().upload(
                    framed,
                    to=sorted({card.identity for card in others}),
                    recipients=age_recipients_for(recipients),
                    idempotency_key=key,
                    size=framed.size,
                )

            return self._authed(attempt)

    @_device_errors
    def download(
        self,
        blob_id: str,
        out: str | os.PathLike[str] | IO[bytes],
        *,
        sender: str | None = None,
    ) -> Sender:
        """Fetch a blob, decrypt it and verify who signed it.

        ``out`` as a path appears only once everything verified (a 0600
        temporary file is renamed into place); a file object receives
        plaintext before the signature at the end is checked, and the caller
        MUST discard it on any exception.

        Args:
            sender: if given, the blob must be signed by this identity.

        Raises:
            DecryptionFailed, SenderMismatch, NoPrivateKey, ServerError
            (404 for a blob this identity may not read), ConnectionFailed.
        """
        state, _ = self._require_keys()
        resolver = self._sender_resolver(state, sender)
        # The metadata request is the one that can meet an expired token;
        # nothing is written before it succeeds.  Its fresh download URL is
        # used at once.
        client = self._blobs()
        info = self._authed(lambda _token: client.get(blob_id))
        with client.fetch(blob_id, info=info) as (_, response):
            try:
                if isinstance(out, str | os.PathLike):
                    verified = open_sealed_to_path(
                        response, out, state.bundles, [], resolve_sender=resolver
                    )
                else:
                    verified = open_sealed(
                        response, out, state.bundles, [], resolve_sender=resolver
                    )
            except SealedError as exc:
                raise _decryption_failed(exc) from exc
        return self._sender(verified.card)

    @_device_errors
    def blob(self, blob_id: str) -> BlobInfo:
        """A blob's metadata (owner or recipient only)."""
        # Every blob call goes through _authed: a token the server refuses
        # (this device's clock stood still while the server's ran on) is
        # renewed once, as for every other call, not reported as a lost session.
        return self._authed(lambda _token: self._blobs().get(blob_id))

    @_device_errors
    def list_blobs(
        self, role: str = "inbox", *, limit: int | None = None, cursor: str | None = None
    ) -> BlobPage:
        """One page of the blobs shared with this identity (``inbox``) or
        stored by it (``outbox``)."""
        return self._authed(
            lambda _token: self._blobs().list_blobs(role, limit=limit, cursor=cursor)
        )

    @_device_errors
    def share(
        self, blob_id: str, to: Iterable[str], *, idempotency_key: str | None = None
    ) -> BlobInfo:
        """Make ``to`` the people (besides the owner) who may read a blob.

        Removing people only changes who the server serves the blob to.
        Adding people re-seals the file: a sealed file's signature names its
        recipients (so a recipient can't forward it as if it had been sent
        to someone else), and only the sender can sign a new recipient list.
        The file is downloaded, verified, signed and encrypted again for the
        new list and stored as a new blob, and the old one is deleted; the
        new blob is returned.

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
        _, current = self._require_keys()
        wanted = sorted({_identity(name) for name in to} - {current.identity})
        client = self._blobs()
        info = self._authed(lambda _token: client.get(blob_id))
        if info.owner != current.identity:
            raise InvalidInput("only the owner of a blob can share it")
        if set(wanted) <= set(info.recipients):
            return client.set_recipients(blob_id, wanted, version=info.version)
        with tempfile.TemporaryDirectory(prefix="sealbox-share-") as scratch:
            plain = Path(scratch) / "plaintext"
            self.download(blob_id, plain, sender=current.identity)
            fresh = self.upload(plain, wanted, idempotency_key=idempotency_key)
        self._authed(lambda _token: client.delete(blob_id))
        return fresh

    @_device_errors
    def delete_blob(self, blob_id: str) -> None:
        """Delete a blob this identity owns: every stored version and its metadata."""
        self._authed(lambda _token: self._blobs().delete(blob_id))

    # --- keys -------------------------------------------------------------------------

    @_device_errors
    def has_local_private_key(self) -> bool:
        """True when this device holds a private key (registered or restored)."""
        state = self._load()
        return state is not None and state.current is not None

    @_device_errors
    def rotate_private_key(self) -> Card:
        """Make new keys, publish their card as a rotation, and keep the old keys.

        The old keys stay in the keystore (and the backup), so data sealed to
        the old card still decrypts and old signatures still verify.  If a
        backup exists it is updated to include the new keys.

        Returns:
            The new card.

        Raises:
            NoPrivateKey, NotLoggedIn.
            ConcurrentChange: another device changed this identity's card
                first (restore the backup to get its keys), or, after the
                rotation succeeded, other devices kept replacing the backup.
            WrongPassword: the rotation succeeded but the backup is sealed
                under a password changed elsewhere; log in and back up.
        """
        state, current = self._require_keys()
        new = current.rotate(created_at=int(self._clock()))
        self._publish_new(state, new)
        self._update_backup()
        return new.card

    @_device_errors
    def unregister(self) -> None:
        """Revoke this identity's card and wipe the device.  The backup stays.

        Others can no longer find the card; data already sealed by it still
        verifies (as signed by a revoked card).  Logging in again restores
        the keys from the backup, and :meth:`register` publishes a new card.
        """
        state, current = self._require_keys()
        try:
            self._authed(lambda token: self._api.revoke_card(token, current.card_id))
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
            active = self._own_active_card(state.identity)
            if active is not None:
                raise ConcurrentChange(
                    "another card is active for this identity; restore the backup first"
                ) from exc
        self.logout()
        self.cleanup()

    @_device_errors
    def cleanup(self) -> None:
        """Delete the keystore and the card cache from this device (no server call)."""
        self._keystore.destroy()
        (self._home / CARD_CACHE_FILE).unlink(missing_ok=True)
        self._access = None
        self._by_identity.clear()
        self._by_id.clear()
        self._cards_loaded = False

    @_device_errors
    def whoami(self) -> DeviceStatus:
        """Identity, session and card of this device; nothing secret."""
        state = self._load()
        if state is None:
            return DeviceStatus(None, False, None, 0)
        return DeviceStatus(
            identity=state.identity,
            logged_in=_REFRESH_TOKEN in state.settings,
            card_id=state.current_card_id,
            previous_cards=len(state.previous),
        )

    # --- backup -------------------------------------------------------------------------

    @_device_errors
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
        return self._write_backup(state)

    @_device_errors
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
        state = self._require_session()
        keys = self._derive(state.identity, password)
        self._restore(state, keys)

    @_device_errors
    def reset_private_key_backup(self) -> None:
        """Delete the backup (and any staged one) from the server."""
        self._require_session()
        for name in (BACKUP_NAME, PENDING_BACKUP_NAME):
            with contextlib.suppress(_NotFound):
                self._delete_backup(name, None)

    @_device_errors
    def change_password(self, old_password: str, new_password: str) -> None:
        """Change the password: the login key on the server and the backup's key.

        Order, so that at every moment one password logs in *and* a backup
        opens with it:

        1. open the backup with the old password (proves it, gets the keys);
        2. stage the backup sealed under the new password as
           :data:`PENDING_BACKUP_NAME` (create-only, so two devices can't both
           stage: the second sees a 409 and retries);
        3. switch the login key (``PUT /v1/users/me/login-key``; a conditional
           write, so of two changes one wins; every other session ends);
        4. promote: replace :data:`BACKUP_NAME` with the new backup
           (compare-and-swap, merging any keys another device added);
        5. delete the staged copy.

        Before 3 the old password logs in and opens the primary backup; after
        3 the new one logs in and opens the staged backup (restore tries both
        names), and after 4 the primary.  A change interrupted after 3 is
        finished by the next restore or password change.  A concurrent change
        from another device makes this one retry, then fail cleanly.

        Raises:
            NotLoggedIn, InvalidInput.
            WrongPassword: the old password is wrong (or was changed elsewhere).
            ConcurrentChange: another device is changing the password right now.
        """
        state = self._require_session()
        old = self._derive(state.identity, old_password)
        new = self._derive(state.identity, new_password)
        if old.login_key == new.login_key:
            raise InvalidInput("the new password must differ from the old one")
        for round_ in range(CAS_ROUNDS):
            try:
                self._change_password_once(old, new)
                return
            except _Retry:
                if round_ < CAS_ROUNDS - 1:
                    self._sleep(RETRY_BACKOFF * 2**round_)
        raise ConcurrentChange("another device is changing this account's password; try later")

    def _change_password_once(self, old: PasswordKeys, new: PasswordKeys) -> None:
        primary = self._fetch_backup(BACKUP_NAME)
        pending = self._fetch_backup(PENDING_BACKUP_NAME)
        from_primary = self._try_open(primary, old)
        if from_primary is None:
            if pending is not None and self._try_open(pending, old) is not None:
                # A change *to* the current password stopped before its
                # promotion: finish it, then start this one afresh.
                self._promote(pending, old, old, overwrite_unreadable=True)
                raise _Retry
            if self._try_open(primary, new) or self._try_open(pending, new):
                # Already changed to the new password (our own earlier try
                # whose reply was lost, or the same change on another device).
                self._finish_changed_elsewhere(new, pending)
                return
            if primary is not None or pending is not None:
                raise WrongPassword("the old password does not open the key backup")
            # No backup at all: only the login key changes.
            self._switch_login_key(old, new)
            return
        state = self._require_session()
        bundles = _merged(state.bundles, from_primary)
        staged = self._seal(state.identity, bundles, new)
        expected_pending: int | None = None
        if pending is not None:
            ours = self._try_open(pending, new) or self._try_open(pending, old)
            if ours is None and not self._stale(pending):
                # Sealed under a password we don't know, recently: another
                # device's change is in flight.  (One we can open is a
                # leftover of an earlier try or of a finished change.)
                raise _Retry
            expected_pending = pending.version
        try:
            staged_version = self._put_backup(PENDING_BACKUP_NAME, staged, expected_pending)
        except _Conflict as exc:
            raise _Retry from exc
        try:
            self._switch_login_key(old, new)
        except (_Retry, DeviceError):
            # The login key did not change: our staged copy must not block
            # (or mislead) anyone.
            with contextlib.suppress(_NotFound, _Conflict):
                self._delete_backup(PENDING_BACKUP_NAME, staged_version)
            raise
        self._promote(
            _StoredBackup(staged_version, staged, int(self._clock())), new, old, merge_into=bundles
        )

    def _switch_login_key(self, old: PasswordKeys, new: PasswordKeys) -> None:
        try:
            session = self._authed(
                lambda token: self._api.change_login_key(
                    token, old.login_key_b64, new.login_key_b64
                )
            )
        except ApiError as exc:
            if exc.code == "login_key_conflict":
                raise _Retry from exc
            if exc.code == "wrong_login_key":
                raise WrongPassword(
                    "the server refused the old password (it may have been changed on "
                    "another device)"
                ) from exc
            raise
        state = self._require_session()
        self._start_session(state.identity, session, new)

    def _finish_changed_elsewhere(self, new: PasswordKeys, pending: _StoredBackup | None) -> None:
        state = self._require_session()
        session = self._api.login(state.identity, new.login_key_b64)
        self._start_session(state.identity, session, new)
        if pending is not None and self._try_open(pending, new) is not None:
            self._promote(pending, new, new, overwrite_unreadable=True)

    def _promote(
        self,
        staged: _StoredBackup,
        key: PasswordKeys,
        also: PasswordKeys,
        *,
        merge_into: tuple[KeyBundle, ...] | None = None,
        overwrite_unreadable: bool = False,
    ) -> None:
        """Make ``staged`` (sealed under ``key``) the primary backup, then drop it.

        The primary is read, opened (under ``key`` or ``also``), merged and
        replaced by compare-and-swap, so keys another device added to it
        meanwhile are kept.  A primary neither key opens is overwritten only
        with ``overwrite_unreadable`` (finishing an interrupted change whose
        old password this device doesn't know: the server already accepts
        only ``key``'s password, so that primary can never be opened again).
        """
        state = self._require_session()
        contents = self._try_open(staged, key)
        if contents is None:
            raise WrongPassword("the staged backup does not open with this password")
        bundles = _merged(merge_into or contents.bundles, contents)
        for _ in range(CAS_ROUNDS):
            current = self._fetch_backup(BACKUP_NAME)
            if current is not None:
                theirs = self._try_open(current, key) or self._try_open(current, also)
                if theirs is not None:
                    bundles = _merged(bundles, theirs)
                elif not overwrite_unreadable:
                    raise ConcurrentChange(
                        "the backup was replaced by one this password can't open"
                    )
            blob = self._seal(state.identity, bundles, key)
            try:
                self._put_backup(BACKUP_NAME, blob, current.version if current else None)
                break
            except _Conflict:
                continue
        else:
            raise ConcurrentChange("other devices kept replacing the backup; try later")
        # Best effort: a staged copy left behind opens with the current
        # password, so restores and later changes simply take it over.
        with contextlib.suppress(_NotFound, _Conflict, ApiError, TransportError):
            self._delete_backup(PENDING_BACKUP_NAME, staged.version)
        self._merge_into_keystore(bundles)

    def _write_backup(self, state: KeystoreState) -> int:
        key = state.settings.get(_BACKUP_KEY)
        if key is None:
            raise NotLoggedIn("log in again to back up (the backup key is derived at login)")
        keys = _BackupKey(state.identity, b64url_decode(key), self._kdf)
        for round_ in range(CAS_ROUNDS):
            stored = self._fetch_backup(BACKUP_NAME)
            bundles = state.bundles
            if stored is not None:
                contents = self._try_open(stored, keys)
                if contents is None:
                    raise WrongPassword(
                        "the stored backup is sealed under another password "
                        "(changed on another device?); log in again"
                    )
                bundles = _merged(bundles, contents)
            try:
                version = self._put_backup(
                    BACKUP_NAME,
                    self._seal(state.identity, bundles, keys),
                    stored.version if stored else None,
                )
            except _Conflict:
                if round_ < CAS_ROUNDS - 1:
                    self._sleep(RETRY_BACKOFF * 2**round_)
                continue
            self._merge_into_keystore(bundles)
            return version
        raise ConcurrentChange("other devices kept replacing the backup; try later")

    def _update_backup(self) -> None:
        """After a rotation: refresh the backup if there is one (never create it)."""
        state, _ = self._require_keys()
        if _BACKUP_KEY in state.settings and self._fetch_backup(BACKUP_NAME) is not None:
            self._write_backup(state)

    def _restore(self, state: KeystoreState, keys: PasswordKeys) -> None:
        found = False
        refused: DeviceError | None = None
        for name in (BACKUP_NAME, PENDING_BACKUP_NAME):
            stored = self._fetch_backup(name)
            if stored is None:
                continue
            found = True
            try:
                contents = self._open(stored, keys)
            except (WrongPassword, KdfMismatch) as exc:
                refused = refused or exc
                continue
            if contents.identity != state.identity:
                raise LocalStorageError("the backup belongs to another identity")
            self._merge_into_keystore(contents.bundles, prefer_active=True)
            self._save(
                self._require_session().with_settings(**{_BACKUP_KEY: _b64(keys.backup_key)})
            )
            if name == PENDING_BACKUP_NAME:
                # A password change stopped after switching the login key:
                # finish it so the primary opens with this password again.
                self._promote(stored, keys, keys, overwrite_unreadable=True)
            return
        if not found or refused is None:
            raise BackupNotFound("there is no key backup for this identity")
        raise refused

    # --- backup helpers --------------------------------------------------------------

    def _bounds(self) -> backup_format.KdfBounds:
        default = backup_format.DEFAULT_BOUNDS
        weaker = (
            self._kdf.memory_kib < default.min_memory_kib
            or self._kdf.iterations < default.min_iterations
        )
        # The simulation profile is below the production minimums; its
        # devices must accept their own backups.  Maximums are the same.
        return backup_format.TESTING_BOUNDS if weaker else default

    def _backup_params(self, identity: str) -> backup_format.KdfParams:
        return backup_format.KdfParams(
            memory_kib=self._kdf.memory_kib,
            iterations=self._kdf.iterations,
            lanes=self._kdf.lanes,
            salt=password_salt(identity),
        )

    def _seal(
        self, identity: str, bundles: Sequence[KeyBundle], keys: PasswordKeys | _BackupKey
    ) -> bytes:
        blob = backup_format.seal_backup(
            bundles, keys.backup_key, self._backup_params(identity), bounds=self._bounds()
        )
        if len(blob) > MAX_BACKUP_BYTES:
            raise InvalidInput("too many keys for one backup (the server keeps 256 KiB)")
        return blob

    def _open(
        self, stored: _StoredBackup, keys: PasswordKeys | _BackupKey
    ) -> backup_format.BackupContents:
        try:
            params = backup_format.parse_backup_header(stored.blob, bounds=self._bounds())
        except backup_format.KdfParamsOutOfRange as exc:
            raise KdfMismatch(
                "the backup's password parameters are outside what this device accepts"
            ) from exc
        except backup_format.BackupFormatError as exc:
            raise LocalStorageError("the stored backup is not a valid backup") from exc
        if params != self._backup_params(keys.identity):
            raise KdfMismatch(
                "the backup was made with other password parameters than this device uses "
                "(every device of a user must use the same KDF profile)"
            )
        try:
            return backup_format.open_backup(stored.blob, keys.backup_key, bounds=self._bounds())
        except backup_format.BackupAuthenticationError as exc:
            raise WrongPassword("the password does not open the key backup") from exc
        except backup_format.BackupFormatError as exc:
            raise LocalStorageError("the stored backup is not a valid backup") from exc

    def _try_open(
        self, stored: _StoredBackup | None, keys: PasswordKeys | _BackupKey
    ) -> backup_format.BackupContents | None:
        if stored is None:
            return None
        try:
            return self._open(stored, keys)
        except WrongPassword:
            return None

    def _stale(self, stored: _StoredBackup) -> bool:
        return self._clock() - stored.updated_at > STALE_PENDING_AFTER

    def _fetch_backup(self, name: str) -> _StoredBackup | None:
        try:
            out = self._authed(lambda token: self._api.get_backup(token, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        try:
            blob = b64url_decode(str(out["ciphertext"]), max_len=MAX_BACKUP_BYTES)
            return _StoredBackup(int(out["version"]), blob, int(out["updated_at"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ServerError("the server sent a malformed backup", 200, "malformed") from exc

    def _put_backup(self, name: str, blob: bytes, version: int | None) -> int:
        try:
            out = self._authed(lambda token: self._api.put_backup(token, name, _b64(blob), version))
        except ApiError as exc:
            if exc.code == "version_conflict":
                raise _Conflict from exc
            raise
        return int(out["version"])

    def _delete_backup(self, name: str, version: int | None) -> None:
        try:
            self._authed(lambda token: self._api.delete_backup(token, name, version))
        except ApiError as exc:
            if exc.status == 404:
                raise _NotFound from exc
            if exc.code == "version_conflict":
                raise _Conflict from exc
            raise

    # --- publication --------------------------------------------------------------------

    def _publish_new(self, state: KeystoreState, bundle: KeyBundle) -> None:
        """Publish ``bundle``'s card, never losing the private key of a published card.

        The bundle is saved as current (marked pending) *before* the request,
        so a crash after the server accepted the card can't lose its key; a
        definite refusal takes it out again, and an unanswered request leaves
        it pending for :meth:`_settle` to resolve.
        """
        before = state
        staged = KeystoreState(
            state.identity,
            (bundle, *state.bundles),
            {**state.settings, _PENDING_CARD: bundle.card_id},
        )
        self._save(staged)
        try:
            self._authed(lambda token: self._api.publish_card(token, bundle.card.to_json()))
        except ApiError as exc:
            if exc.status >= 500:
                # The server may have committed before failing: keep it pending.
                raise
            active = self._own_active_card(state.identity) if exc.status == 409 else None
            if active is None or active.card_id != bundle.card_id:
                self._save(_without(self._load_or(before), bundle.card_id))
                if exc.status == 409:
                    if bundle.card.previous_card_id is None:
                        raise AlreadyRegistered(
                            "this identity already has an active card on another device"
                        ) from exc
                    raise ConcurrentChange(
                        "another device changed this identity's card; restore the backup "
                        "to get its keys"
                    ) from exc
                raise
        current = self._load_or(staged)
        self._save(current.with_settings(**{_PENDING_CARD: None}))
        self._remember(_CachedCard(bundle.card, "active", self._clock()), lookup=True)
        self._save_card_cache()

    def _settle(self, state: KeystoreState) -> KeystoreState:
        """Resolve a card publication whose answer never arrived."""
        pending = state.settings.get(_PENDING_CARD)
        if pending is None:
            return state
        try:
            self._fetch_card(pending)
        except ApiError as exc:
            if exc.status != 404:
                raise
            # Never published: the key protects nothing; forget it.
            settled = _without(state, pending).with_settings(**{_PENDING_CARD: None})
        else:
            settled = state.with_settings(**{_PENDING_CARD: None})
        self._save(settled)
        return settled

    def _fetch_card(self, card_id: str) -> _CachedCard:
        """``GET /v1/cards/{card_id}``, verified: the card's signature, and
        that it is the card asked for (its id is the hash of its content).

        Raises:
            ApiError: the server refused (404: no such card).
            CardVerificationFailed: the answer is not that card, verified.
        """
        entry = self._authed(lambda token: self._api.get_card(token, card_id))
        fetched = self._verified_entry(entry)
        if fetched.card.card_id != card_id:
            raise CardVerificationFailed("the server returned another card than the one asked for")
        return fetched

    def _find_cards(self, identities: list[str]) -> list[dict[str, Any]]:
        return self._authed(lambda token: self._api.find_cards(token, identities))

    def _own_active_card(self, identity: str) -> Card | None:
        entries = self._find_cards([identity])
        for entry in entries:
            cached = self._verified_entry(entry, status="active")
            if cached.card.identity == identity:
                return cached.card
        return None

    # --- session ------------------------------------------------------------------------

    def _start_session(
        self, identity: str, session: RefreshSession, keys: PasswordKeys
    ) -> KeystoreState:
        state = self._load() or KeystoreState(identity)
        state = state.with_settings(
            **{
                _REFRESH_TOKEN: session.refresh_token,
                _REFRESH_EXPIRES: str(session.expires_at),
                _BACKUP_KEY: _b64(keys.backup_key),
            }
        )
        self._save(state)
        self._access = None
        return state

    def _access_token(self, *, renew: bool = False) -> str:
        now = self._clock()
        if not renew and self._access is not None and now < self._access[1]:
            return self._access[0]
        state = self._require_session()
        try:
            issued = self._api.access_token(state.settings[_REFRESH_TOKEN])
        except ApiError as exc:
            if exc.status == 401:
                # Logged out, expired, or signed out by a password change.
                self._save(state.with_settings(**{_REFRESH_TOKEN: None, _REFRESH_EXPIRES: None}))
                raise NotLoggedIn("the session has ended; log in again") from exc
            raise
        # expires_in counts from the server's answer; counting it from our
        # request (``now``) errs early, whatever the two clocks say.
        self._access = (issued.access_token, now + issued.expires_in - TOKEN_REFRESH_MARGIN)
        return issued.access_token

    def _authed(self, call: Callable[[str], _T]) -> _T:
        """``call(access_token)``, renewing the token once if the server refuses it."""
        try:
            return call(self._access_token())
        except ApiError as exc:
            if exc.status != 401 or exc.code != "invalid_token":
                raise
        return call(self._access_token(renew=True))

    # --- keystore -------------------------------------------------------------------------

    def _load(self) -> KeystoreState | None:
        try:
            return self._keystore.load()
        except KeystoreNotFound:
            return None

    def _load_or(self, fallback: KeystoreState) -> KeystoreState:
        return self._load() or fallback

    def _save(self, state: KeystoreState) -> None:
        self._keystore.save(state)

    def _require_session(self) -> KeystoreState:
        state = self._load()
        if state is None or _REFRESH_TOKEN not in state.settings:
            raise NotLoggedIn("log in first")
        return state

    def _require_keys(self) -> tuple[KeystoreState, KeyBundle]:
        """The keystore and its current bundle, a pending publication settled first."""
        state = self._load()
        if state is not None and _PENDING_CARD in state.settings:
            state = self._settle(state)
        if state is None or state.current is None:
            raise NoPrivateKey("this device has no private key: register, or log in to restore")
        return state, state.current

    def _check_device_free(self, identity: str) -> None:
        state = self._load()
        if state is not None and state.identity != identity:
            raise DeviceInUse(f"this device holds {state.identity}'s keys; clean it up first")

    def _derive(self, identity: str, password: str) -> PasswordKeys:
        try:
            return derive_password_keys(identity, password, self._kdf)
        except WeakPassword as exc:
            raise InvalidInput(str(exc)) from exc

    def _merge_into_keystore(
        self, bundles: Sequence[KeyBundle], *, prefer_active: bool = False
    ) -> None:
        state = self._load()
        if state is None:
            return
        merged = _merged(state.bundles, bundles)
        if prefer_active or not state.bundles:
            active = self._own_active_card(state.identity)
            merged = _current_first(merged, active.card_id if active else None)
        if merged != state.bundles:
            self._save(KeystoreState(state.identity, merged, state.settings))

    # --- card cache ---------------------------------------------------------------------

    def _verified_entry(self, entry: Any, *, status: str | None = None) -> _CachedCard:
        try:
            card = card_from_json(entry["card"])
            entry_status = entry["status"]
        except (InvalidCard, KeyError, TypeError) as exc:
            raise CardVerificationFailed("the server returned a card that does not verify") from exc
        if entry_status not in _CARD_STATUSES or (status is not None and entry_status != status):
            raise CardVerificationFailed("the server returned a card in an unexpected state")
        return _CachedCard(card, entry_status, self._clock())

    def _fresh(self, cached: _CachedCard) -> bool:
        return self._clock() - cached.fetched_at < self._card_ttl

    def _forget_lookup(self, identity: str) -> None:
        """Drop ``identity``'s cached active card: it was rotated or revoked.

        Its by-id entry goes too, since its status is no longer known; the
        next signature check by that card asks the directory again.
        """
        previous = self._by_identity.pop(identity, None)
        if previous is not None:
            self._by_id.pop(previous.card.card_id, None)

    def _remember(self, cached: _CachedCard, *, lookup: bool) -> None:
        self._by_id[cached.card.card_id] = cached
        if lookup:
            self._by_identity[cached.card.identity] = cached

    def _load_card_cache(self) -> None:
        if self._cards_loaded:
            return
        self._cards_loaded = True
        path = self._home / CARD_CACHE_FILE
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            return  # an unreadable cache is an empty cache
        if not isinstance(document, dict) or document.get("version") != CARD_CACHE_VERSION:
            return
        for item in document.get("cards", []):
            try:
                # Re-verified on every load: the file is a cache, not a trust anchor.
                cached = self._verified_entry(item)
                cached.fetched_at = float(item["fetched_at"])
                self._remember(cached, lookup=bool(item["lookup"]))
            except (CardVerificationFailed, KeyError, TypeError, ValueError):
                continue

    def _save_card_cache(self) -> None:
        document = {
            "version": CARD_CACHE_VERSION,
            "cards": [
                {
                    "card": cached.card.to_json(),
                    "status": cached.status,
                    "fetched_at": cached.fetched_at,
                    "lookup": self._by_identity.get(cached.card.identity) is cached,
                }
                for cached in self._by_id.values()
            ],
        }
        self._home.mkdir(parents=True, exist_ok=True)
        with _atomic_output(self._home / CARD_CACHE_FILE) as out:
            out.write(json.dumps(document, sort_keys=True).encode("utf-8"))


# --- helpers ------------------------------------------------------------------------


class _Conflict(Exception):
    """Internal: a backup compare-and-swap lost (409 version_conflict)."""


class _NotFound(Exception):
    """Internal: the backup does not exist (404)."""


@dataclass(frozen=True)
class _BackupKey:
    """A stored backup key, shaped like the part of PasswordKeys the backup uses."""

    identity: str
    backup_key: bytes = field(repr=False)
    params: KdfParams


def _identity(name: object) -> str:
    try:
        return normalize_identity(name)
    except InvalidIdentity as exc:
        raise InvalidInput(str(exc)) from exc


def _b64(data: bytes) -> str:
    return b64url_encode(data)


def _decryption_failed(exc: SealedError) -> DecryptionFailed:
    if isinstance(exc, UnknownSender):
        return DecryptionFailed("the sender's card is unknown to the directory")
    return DecryptionFailed(f"the data could not be decrypted or verified ({type(exc).__name__})")


def _merged(
    ours: Sequence[KeyBundle], theirs: backup_format.BackupContents | Sequence[KeyBundle]
) -> tuple[KeyBundle, ...]:
    """Our bundles (order kept), then any of theirs we lack, newest first."""
    extra = theirs.bundles if isinstance(theirs, backup_format.BackupContents) else theirs
    have = {bundle.card_id for bundle in ours}
    added = sorted(
        (bundle for bundle in extra if bundle.card_id not in have),
        key=lambda bundle: bundle.card.created_at,
        reverse=True,
    )
    unique: dict[str, KeyBundle] = {}
    for bundle in (*ours, *added):
        unique.setdefault(bundle.card_id, bundle)
    return tuple(unique.values())


def _current_first(bundles: tuple[KeyBundle, ...], card_id: str | None) -> tuple[KeyBundle, ...]:
    chosen = next((bundle for bundle in bundles if bundle.card_id == card_id), None)
    if chosen is None:
        return bundles
    return (chosen, *(bundle for bundle in bundles if bundle.card_id != card_id))


def _with_current(state: KeystoreState, card_id: str) -> KeystoreState:
    return KeystoreState(state.identity, _current_first(state.bundles, card_id), state.settings)


def _without(state: KeystoreState, card_id: str) -> KeystoreState:
    bundles = tuple(bundle for bundle in state.bundles if bundle.card_id != card_id)
    settings = {name: value for name, value in state.settings.items() if name != _PENDING_CARD}
    return KeystoreState(state.identity, bundles, settings)


@contextlib.contextmanager
def _sized_source(
    source: str | os.PathLike[str] | IO[bytes],
) -> Iterator[tuple[IO[bytes], int]]:
    """``source`` as a stream with its remaining size; a stream that can't
    tell its size (a pipe) is spooled to a 0600 temporary file first."""
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as handle:
            yield handle, os.fstat(handle.fileno()).st_size
        return
    try:
        position = source.tell()
        end = source.seek(0, io.SEEK_END)
        source.seek(position)
    except (OSError, AttributeError, ValueError):
        with tempfile.TemporaryFile() as spool:
            while chunk := source.read(1 << 20):
                spool.write(chunk)
            size = spool.tell()
            spool.seek(0)
            yield spool, size
        return
    yield source, end - position


@contextlib.contextmanager
def _atomic_output(path: Path) -> Iterator[BinaryIO]:
    """A 0600 temporary file next to ``path``, renamed over it only on success."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
