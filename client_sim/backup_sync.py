"""Backup sync: the device's keys, sealed under the password, kept on the server.

The backup (:mod:`client_sim.backup`) is sealed on the device with the
password-derived backup key, which never leaves it; the server stores an
opaque blob under a name and a version, and replaces it only by
compare-and-swap on that version.  This object writes, restores, resets and
re-keys it:

* **write** merges the keys already in the stored backup (another device may
  have rotated) with this device's, and replaces it by compare-and-swap,
  retrying a few times against concurrent writers;
* **restore** opens the primary backup, or a staged one a password change
  left behind, and merges its keys into the keystore;
* **change password** follows an order in which one password always both
  logs in and opens a backup (see :meth:`BackupSync.change_password`).

Lost compare-and-swaps are return values here, not exceptions: a caller
that runs out of rounds raises :class:`~client_sim.errors.ConcurrentChange`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from chalicelib.wire.b64 import b64url_decode, b64url_encode
from client_sim import backup as backup_format
from client_sim.api import ApiClient
from client_sim.directory import CardDirectory
from client_sim.errors import (
    BackupNotFound,
    ConcurrentChange,
    ConnectionFailed,
    DeviceError,
    InvalidInput,
    KdfMismatch,
    LocalStorageError,
    NotLoggedIn,
    ServerError,
    WrongPassword,
)
from client_sim.identity import KeyBundle
from client_sim.keystore import KeystoreState
from client_sim.passwords import KdfParams, PasswordKeys, password_salt
from client_sim.session import Session
from client_sim.store import (
    BACKUP_KEY,
    BACKUP_OPRF_VERSION,
    DeviceStore,
    current_first,
    merged,
)

__all__ = [
    "BACKUP_NAME",
    "CAS_ROUNDS",
    "MAX_BACKUP_BYTES",
    "PENDING_BACKUP_NAME",
    "RETRY_BACKOFF",
    "STALE_PENDING_AFTER",
    "BackupKey",
    "BackupSync",
    "StoredBackup",
]

BACKUP_NAME: Final = "primary"
PENDING_BACKUP_NAME: Final = "primary.pending"
# The server keeps backups up to this size (chalicelib.services.backups).
MAX_BACKUP_BYTES: Final = 256 * 1024
# A staged backup older than this belongs to a password change that died
# before switching the login key; another change may take its place.
STALE_PENDING_AFTER: Final = 600
# Compare-and-swap rounds (backup writes, password change) before giving up
# with ConcurrentChange, with exponential backoff from RETRY_BACKOFF seconds.
CAS_ROUNDS: Final = 5
RETRY_BACKOFF: Final = 0.2


@dataclass(frozen=True)
class StoredBackup:
    """A backup as the server holds it: still sealed."""

    version: int
    blob: bytes = field(repr=False)
    updated_at: int


@dataclass(frozen=True)
class BackupKey:
    """A stored backup key, shaped like the part of PasswordKeys the backup uses."""

    identity: str
    backup_key: bytes = field(repr=False)
    params: KdfParams
    oprf_version: int = 0

    def under(self, oprf_version: int) -> BackupKey | None:
        """Self if derived under ``oprf_version`` (as :meth:`PasswordKeys.under`)."""
        return self if oprf_version == self.oprf_version else None


class BackupSync:
    """Writes, restores and re-keys one identity's key backup.

    Args:
        kdf: this device's password-derivation parameters; a backup made
            with others is refused (:class:`~client_sim.errors.KdfMismatch`).
        clock, sleep: injected for tests (staleness, retry backoff).
    """

    def __init__(
        self,
        api: ApiClient,
        session: Session,
        store: DeviceStore,
        directory: CardDirectory,
        *,
        kdf: KdfParams,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._api = api
        self._session = session
        self._store = store
        self._directory = directory
        self._kdf = kdf
        self._clock = clock
        self._sleep = sleep

    # --- the operations ----------------------------------------------------------------

    def write(self, state: KeystoreState) -> int:
        """Seal every key of ``state`` (and any the stored backup has) and store it.

        Returns:
            The stored backup's version.

        Raises:
            NotLoggedIn: no backup key on this device (it is derived at login).
            WrongPassword: the stored backup is sealed under another password.
            ConcurrentChange: other devices kept replacing it.
        """
        key = state.settings.get(BACKUP_KEY)
        if key is None:
            raise NotLoggedIn("log in again to back up (the backup key is derived at login)")
        keys = BackupKey(
            state.identity,
            b64url_decode(key),
            self._kdf,
            int(state.settings.get(BACKUP_OPRF_VERSION) or 0),
        )
        for round_ in range(CAS_ROUNDS):
            stored = self._fetch(BACKUP_NAME)
            bundles = state.bundles
            if stored is not None:
                contents = self._try_open(stored, keys)
                if contents is None:
                    raise WrongPassword(
                        "the stored backup is sealed under another password "
                        "(changed on another device?); log in again"
                    )
                bundles = merged(bundles, contents)
            version = self._put(
                BACKUP_NAME,
                self._seal(state.identity, bundles, keys),
                stored.version if stored else None,
            )
            if version is not None:
                self._merge_into_keystore(bundles)
                return version
            if round_ < CAS_ROUNDS - 1:
                self._sleep(RETRY_BACKOFF * 2**round_)
        raise ConcurrentChange("other devices kept replacing the backup; try later")

    def update(self, state: KeystoreState) -> None:
        """After a rotation: refresh the backup if there is one (never create it)."""
        if BACKUP_KEY in state.settings and self._fetch(BACKUP_NAME) is not None:
            self.write(state)

    def restore(self, state: KeystoreState, keys: PasswordKeys) -> None:
        """Merge the backup's keys into the keystore; keep ``keys``' backup key.

        The primary backup is tried first, then a staged one (a password
        change that stopped after switching the login key, which this then
        finishes).  The current key becomes the one whose card is active.

        Raises:
            BackupNotFound: there is no backup.
            WrongPassword: the password opens neither.
            KdfMismatch: made with other KDF parameters.
            LocalStorageError: the backup is malformed or another identity's.
        """
        found = False
        refused: DeviceError | None = None
        for name in (BACKUP_NAME, PENDING_BACKUP_NAME):
            stored = self._fetch(name)
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
            self._store.save(
                self._store.require_session().with_settings(
                    **{
                        BACKUP_KEY: b64url_encode(keys.backup_key),
                        BACKUP_OPRF_VERSION: str(keys.oprf_version) if keys.oprf_version else None,
                    }
                )
            )
            if name == BACKUP_NAME:
                self._rewrap(stored, contents, keys)
            if name == PENDING_BACKUP_NAME:
                # A password change stopped after switching the login key:
                # finish it so the primary opens with this password again.
                self._promote(stored, keys, keys, overwrite_unreadable=True)
            return
        if not found or refused is None:
            raise BackupNotFound("there is no key backup for this identity")
        raise refused

    def upgrade(self, keys: PasswordKeys) -> None:
        """Re-wrap the primary backup under ``keys`` if it is sealed under an older derivation.

        For a device that already holds its keys and logs in under a newer
        OPRF key (or for the first time with hardening): the backup a copy of
        storage could attack offline is replaced, by compare-and-swap, with
        one that needs the OPRF key.  A lost swap is left to the next write.

        Raises:
            WrongPassword, KdfMismatch, LocalStorageError: as :meth:`restore`.
        """
        stored = self._fetch(BACKUP_NAME)
        if stored is not None:
            self._rewrap(stored, self._open(stored, keys), keys)

    def _rewrap(
        self, stored: StoredBackup, contents: backup_format.BackupContents, keys: PasswordKeys
    ) -> None:
        if not keys.oprf_version or self._header(stored).oprf_key_version == keys.oprf_version:
            return
        # A lost swap (None) means another device wrote meanwhile; its write
        # or the next one seals under the current derivation.
        self._put(
            BACKUP_NAME, self._seal(contents.identity, contents.bundles, keys), stored.version
        )

    def reset(self) -> None:
        """Delete the backup and any staged one from the server."""
        for name in (BACKUP_NAME, PENDING_BACKUP_NAME):
            self._delete(name, None)

    def change_password(self, old: PasswordKeys, new: PasswordKeys) -> None:
        """Change the login key on the server and the key the backup is sealed under.

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
            WrongPassword: the old password is wrong (or was changed elsewhere).
            ConcurrentChange: another device is changing the password right now.
        """
        # The staged copy may replace a leftover: a step-up with the old
        # password until the switch, with the new one after it.
        self._session.confirm(old.login_key_b64)
        for round_ in range(CAS_ROUNDS):
            if self._change_password_once(old, new):
                return
            if round_ < CAS_ROUNDS - 1:
                self._sleep(RETRY_BACKOFF * 2**round_)
        raise ConcurrentChange("another device is changing this account's password; try later")

    # --- the password change, step by step ------------------------------------------------

    def _change_password_once(self, old: PasswordKeys, new: PasswordKeys) -> bool:
        """One round of :meth:`change_password`: True when done, False to start again."""
        primary = self._fetch(BACKUP_NAME)
        pending = self._fetch(PENDING_BACKUP_NAME)
        from_primary = self._try_open(primary, old)
        if from_primary is None:
            if pending is not None and self._try_open(pending, old) is not None:
                # A change *to* the current password stopped before its
                # promotion: finish it, then start this one afresh.
                self._promote(pending, old, old, overwrite_unreadable=True)
                return False
            if self._try_open(primary, new) or self._try_open(pending, new):
                # Already changed to the new password (our own earlier try
                # whose reply was lost, or the same change on another device).
                self._finish_changed_elsewhere(new, pending)
                return True
            if primary is not None or pending is not None:
                raise WrongPassword("the old password does not open the key backup")
            # No backup at all: only the login key changes.
            return self._switch_login_key(old, new)
        state = self._store.require_session()
        bundles = merged(state.bundles, from_primary)
        staged = self._seal(state.identity, bundles, new)
        expected_pending: int | None = None
        if pending is not None:
            ours = self._try_open(pending, new) or self._try_open(pending, old)
            if ours is None and not self._stale(pending):
                # Sealed under a password we don't know, recently: another
                # device's change is in flight.  (One we can open is a
                # leftover of an earlier try or of a finished change.)
                return False
            expected_pending = pending.version
        staged_version = self._put(PENDING_BACKUP_NAME, staged, expected_pending)
        if staged_version is None:
            return False
        try:
            switched = self._switch_login_key(old, new)
        except (WrongPassword, NotLoggedIn):
            # The login key did not change: our staged copy must not block
            # (or mislead) anyone.  (Any other failure -- no answer, a server
            # error -- may come after the change: then the staged copy is the
            # backup the new password opens, and it stays.)
            self._delete(PENDING_BACKUP_NAME, staged_version)
            raise
        if not switched:
            self._delete(PENDING_BACKUP_NAME, staged_version)
            return False
        self._promote(
            StoredBackup(staged_version, staged, int(self._clock())), new, old, merge_into=bundles
        )
        return True

    def _switch_login_key(self, old: PasswordKeys, new: PasswordKeys) -> bool:
        """Step 3; False when another change won the conditional write (start again)."""
        try:
            session = self._session.authed(
                lambda token: self._api.change_login_key(
                    token,
                    old.login_key_b64,
                    new.login_key_b64,
                    new.oprf_version or None,
                )
            )
        except ServerError as exc:
            if exc.code == "login_key_conflict":
                return False
            if exc.code == "wrong_login_key":
                raise WrongPassword(
                    "the server refused the old password (it may have been changed on "
                    "another device)"
                ) from exc
            raise
        state = self._store.require_session()
        self._session.start(state.identity, session, new.backup_key, new.oprf_version)
        self._session.confirm(new.login_key_b64)
        return True

    def _finish_changed_elsewhere(self, new: PasswordKeys, pending: StoredBackup | None) -> None:
        state = self._store.require_session()
        session = self._api.login(
            state.identity,
            new.login_key_b64,
            oprf_key_version=new.oprf_version or None,
            legacy_login_keys={k.oprf_version: k.login_key_b64 for k in new.others},
        )
        self._session.start(state.identity, session, new.backup_key, new.oprf_version)
        self._session.confirm(new.login_key_b64)
        if pending is not None and self._try_open(pending, new) is not None:
            self._promote(pending, new, new, overwrite_unreadable=True)

    def _promote(
        self,
        staged: StoredBackup,
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
        state = self._store.require_session()
        contents = self._try_open(staged, key)
        if contents is None:
            raise WrongPassword("the staged backup does not open with this password")
        bundles = merged(merge_into or contents.bundles, contents)
        for _ in range(CAS_ROUNDS):
            current = self._fetch(BACKUP_NAME)
            if current is not None:
                theirs = self._try_open(current, key) or self._try_open(current, also)
                if theirs is not None:
                    bundles = merged(bundles, theirs)
                elif not overwrite_unreadable:
                    raise ConcurrentChange(
                        "the backup was replaced by one this password can't open"
                    )
            blob = self._seal(state.identity, bundles, key)
            if self._put(BACKUP_NAME, blob, current.version if current else None) is not None:
                break
        else:
            raise ConcurrentChange("other devices kept replacing the backup; try later")
        # Best effort: a staged copy left behind opens with the current
        # password, so restores and later changes simply take it over.
        with contextlib.suppress(ServerError, ConnectionFailed):
            self._delete(PENDING_BACKUP_NAME, staged.version)
        self._merge_into_keystore(bundles)

    def _merge_into_keystore(
        self, bundles: Sequence[KeyBundle], *, prefer_active: bool = False
    ) -> None:
        state = self._store.load()
        if state is None:
            return
        combined = merged(state.bundles, bundles)
        if prefer_active or not state.bundles:
            active = self._directory.own_active(state.identity)
            combined = current_first(combined, active.card_id if active else None)
        if combined != state.bundles:
            self._store.save(state.with_bundles(combined))

    # --- sealing and opening ---------------------------------------------------------------

    def _bounds(self) -> backup_format.KdfBounds:
        default = backup_format.DEFAULT_BOUNDS
        weaker = (
            self._kdf.memory_kib < default.min_memory_kib
            or self._kdf.iterations < default.min_iterations
        )
        # The simulation profile is below the production minimums; its
        # devices must accept their own backups.  Maximums are the same.
        return backup_format.TESTING_BOUNDS if weaker else default

    def _backup_params(self, identity: str, oprf_version: int = 0) -> backup_format.KdfParams:
        return backup_format.KdfParams(
            memory_kib=self._kdf.memory_kib,
            iterations=self._kdf.iterations,
            lanes=self._kdf.lanes,
            salt=password_salt(identity),
            algorithm=(
                backup_format.KDF_ARGON2ID_OPRF_HKDF_SHA256
                if oprf_version
                else backup_format.KDF_ARGON2ID_HKDF_SHA256
            ),
            oprf_key_version=oprf_version,
        )

    def _header(self, stored: StoredBackup) -> backup_format.KdfParams:
        try:
            return backup_format.parse_backup_header(stored.blob, bounds=self._bounds())
        except backup_format.KdfParamsOutOfRange as exc:
            raise KdfMismatch(
                "the backup's password parameters are outside what this device accepts"
            ) from exc
        except backup_format.BackupFormatError as exc:
            raise LocalStorageError("the stored backup is not a valid backup") from exc

    def _seal(
        self, identity: str, bundles: Sequence[KeyBundle], keys: PasswordKeys | BackupKey
    ) -> bytes:
        blob = backup_format.seal_backup(
            bundles,
            keys.backup_key,
            self._backup_params(identity, keys.oprf_version),
            bounds=self._bounds(),
        )
        if len(blob) > MAX_BACKUP_BYTES:
            raise InvalidInput("too many keys for one backup (the server keeps 256 KiB)")
        return blob

    def _open(
        self, stored: StoredBackup, keys: PasswordKeys | BackupKey
    ) -> backup_format.BackupContents:
        params = self._header(stored)
        chosen = keys.under(params.oprf_key_version)
        if chosen is None:
            raise KdfMismatch(
                "the backup is hardened with an OPRF key version this login did not evaluate"
            )
        keys = chosen
        if params != self._backup_params(keys.identity, params.oprf_key_version):
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
        self, stored: StoredBackup | None, keys: PasswordKeys | BackupKey
    ) -> backup_format.BackupContents | None:
        if stored is None:
            return None
        try:
            return self._open(stored, keys)
        except WrongPassword:
            return None

    def _stale(self, stored: StoredBackup) -> bool:
        return self._clock() - stored.updated_at > STALE_PENDING_AFTER

    # --- the backup routes ------------------------------------------------------------------

    def _fetch(self, name: str) -> StoredBackup | None:
        """The stored backup ``name``, or None when there is none."""
        try:
            out = self._session.authed(lambda token: self._api.get_backup(token, name))
        except ServerError as exc:
            if exc.status == 404:
                return None
            raise
        try:
            blob = b64url_decode(str(out["ciphertext"]), max_len=MAX_BACKUP_BYTES)
            return StoredBackup(int(out["version"]), blob, int(out["updated_at"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ServerError.malformed("backup") from exc

    def _put(self, name: str, blob: bytes, version: int | None) -> int | None:
        """Create (``version`` None) or compare-and-swap ``name``; None when the swap lost."""
        try:
            out = self._session.authed_step_up(
                lambda token, proof: self._api.put_backup(
                    token, name, b64url_encode(blob), version, proof
                )
            )
        except ServerError as exc:
            if exc.code == "version_conflict":
                return None
            raise
        return int(out["version"])

    def _delete(self, name: str, version: int | None) -> None:
        """Delete ``name`` (at ``version``); already gone or replaced is not an error."""
        try:
            self._session.authed_step_up(
                lambda token, proof: self._api.delete_backup(token, name, version, proof)
            )
        except ServerError as exc:
            if exc.status != 404 and exc.code != "version_conflict":
                raise
