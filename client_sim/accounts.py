"""Account flows on a device: what happens between a password and a working phone.

Registration and login turn the password into a login key (sent) and a
backup key (kept) with :mod:`client_sim.passwords`, start a session, and
then make or recover this device's keys: registration publishes a new card
(or picks up a registration that failed part-way), login restores the keys
from the backup.  A password change and a restore derive the keys the same
way and hand them to :class:`~client_sim.backup_sync.BackupSync`.

With password hardening configured (:class:`~client_sim.hardening.PasswordHardening`)
every derivation goes through the server's OPRF first (one more request), the
login carries the older derivations' login keys so the server migrates the
account, and the backup is re-wrapped under the hardened key.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from client_sim.api import ApiClient, RefreshSession
from client_sim.backup_sync import BackupSync
from client_sim.directory import CardDirectory
from client_sim.errors import (
    AlreadyRegistered,
    BackupNotFound,
    InvalidInput,
    ServerError,
    UsernameTaken,
)
from client_sim.hardening import PasswordHardening
from client_sim.identity import KeyBundle
from client_sim.messages import canonical_identity
from client_sim.passwords import KdfParams, PasswordKeys, WeakPassword, derive_password_keys
from client_sim.session import Session
from client_sim.store import BACKUP_OPRF_VERSION, DeviceStore, with_current

__all__ = ["Accounts"]


class Accounts:
    """Register, log in, restore and change the password, for one device."""

    def __init__(
        self,
        api: ApiClient,
        session: Session,
        store: DeviceStore,
        cards: CardDirectory,
        backups: BackupSync,
        *,
        kdf: KdfParams,
        clock: Callable[[], float] = time.time,
        hardening: PasswordHardening | None = None,
    ) -> None:
        self._hardening = hardening
        self._api = api
        self._session = session
        self._store = store
        self._cards = cards
        self._backups = backups
        self._kdf = kdf
        self._clock = clock

    def register(self, username: str, password: str) -> str:
        """See :meth:`client_sim.Device.register`."""
        identity = canonical_identity(username)
        self._store.check_free(identity)
        keys = self._derive(identity, password)
        taken = False
        try:
            self._api.register(identity, keys.login_key_b64, keys.oprf_version or None)
        except ServerError as exc:
            if exc.code != "username_taken":
                raise
            taken = True
        try:
            session = self._login(identity, keys)
        except ServerError as exc:
            if taken and exc.code == "invalid_credentials":
                raise UsernameTaken("this username is taken") from exc
            raise
        state = self._session.start(identity, session, keys.backup_key, keys.oprf_version)
        # Registering again after an unregister is an identity reset: the
        # server asks for a step-up, which this password gives.
        self._session.confirm(keys.login_key_b64)
        active = self._cards.own_active(identity)
        if active is not None:
            if state.bundle_for(active.card_id) is None:
                raise AlreadyRegistered(
                    "this identity already has an active card on another device; "
                    "log in to restore its keys from the backup"
                )
            # This device published it before failing part-way: done.
            self._store.save(with_current(state, active.card_id))
            return identity
        if taken and state.current is None:
            # Registering again after unregister: the backup's keys come
            # along, so data sealed to the old cards stays readable here.
            with contextlib.suppress(BackupNotFound):
                self._backups.restore(state, keys)
            state = self._store.require_session()
        bundle = KeyBundle.generate(identity, created_at=int(self._clock()))
        self._cards.publish(state, bundle)
        return identity

    def login(self, username: str, password: str) -> str:
        """See :meth:`client_sim.Device.login`."""
        identity = canonical_identity(username)
        self._store.check_free(identity)
        # A device that logged in before proves it, so a lockout strangers
        # caused on this account doesn't keep its owner out.
        cookie = self._store.device_cookie(identity)
        keys = self._derive(identity, password, cookie)
        before = self._store.load()
        sealed_under = int(before.settings.get(BACKUP_OPRF_VERSION) or 0) if before else 0
        # A device that logged in here with hardened keys knows the account is
        # on that derivation (no downgrade exists): it stops sending older
        # login keys, the version-1 one above all, which a copy of the
        # request would let anyone test guesses against offline.
        known = sealed_under if before is not None and before.identity == identity else 0
        session = self._login(identity, keys, cookie, known_version=known)
        state = self._session.start(identity, session, keys.backup_key, keys.oprf_version)
        self._session.confirm(keys.login_key_b64)
        if state.current is None:
            with contextlib.suppress(BackupNotFound):
                self._backups.restore(state, keys)
        elif sealed_under < keys.oprf_version:
            # This device's backup key predates the current OPRF key: re-wrap
            # the stored backup now rather than at the next write.
            self._backups.upgrade(keys)
        return identity

    def _login(
        self,
        identity: str,
        keys: PasswordKeys,
        cookie: str | None = None,
        *,
        known_version: int = 0,
    ) -> RefreshSession:
        """Log in with ``keys``; older derivations' login keys go along for the
        migration, except those older than ``known_version`` (the derivation
        this device has already seen the account on)."""
        return self._api.login(
            identity,
            keys.login_key_b64,
            cookie,
            oprf_key_version=keys.oprf_version or None,
            legacy_login_keys={
                k.oprf_version: k.login_key_b64
                for k in keys.others
                if k.oprf_version >= known_version
            },
        )

    def restore(self, password: str) -> None:
        """See :meth:`client_sim.Device.restore_private_key`."""
        state = self._store.require_session()
        keys = self._derive(state.identity, password, self._store.device_cookie(state.identity))
        self._session.confirm(keys.login_key_b64)
        self._backups.restore(state, keys)

    def confirm_password(self, password: str) -> None:
        """See :meth:`client_sim.Device.confirm_password`."""
        state = self._store.require_session()
        cookie = self._store.device_cookie(state.identity)
        self._session.confirm(self._derive(state.identity, password, cookie).login_key_b64)

    def change_password(self, old_password: str, new_password: str) -> None:
        """See :meth:`client_sim.Device.change_password`."""
        state = self._store.require_session()
        # This device's cookie: its evaluations are charged to its own counter.
        cookie = self._store.device_cookie(state.identity)
        old = self._derive(state.identity, old_password, cookie)
        new = self._derive(state.identity, new_password, cookie)
        if old.login_key == new.login_key:
            raise InvalidInput("the new password must differ from the old one")
        self._backups.change_password(old, new)

    def _derive(self, identity: str, password: str, cookie: str | None = None) -> PasswordKeys:
        try:
            if self._hardening is not None:
                return self._hardening.derive(identity, password, cookie)
            return derive_password_keys(identity, password, self._kdf)
        except WeakPassword as exc:
            raise InvalidInput(str(exc)) from exc
