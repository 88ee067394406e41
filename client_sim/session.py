"""The device's session: a refresh token kept in the keystore, access tokens kept in memory.

:meth:`Session.authed` is the one path by which the SDK makes an
authenticated request: it passes a live access token to the call that uses
it, and when the server refuses that token (this device's clock stood still
while the server's ran on, or the app key rotated) it renews the token once
and repeats the call.  A refresh token the server refuses ends the session
on this device (:class:`~client_sim.errors.NotLoggedIn`).

Refresh tokens rotate: every renewal spends the stored token and returns
its successor, which is written to the keystore (one atomic file replace)
before the access token is used.  Renewals are serialised by a lock, so two
threads of one device never present the same token.  A device that dies
between the server's answer and that write still holds the spent token;
its next renewal presents it, the server sees a reuse and ends the family,
and the device must log in again -- the safe outcome, since the server can't
tell that crash from a copied token (docs/access-tokens.md, "Refresh token
rotation").
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Final, TypeVar

from chalicelib.wire.b64 import b64url_encode
from client_sim.api import ApiClient, RefreshSession
from client_sim.errors import NotLoggedIn, ServerError, StepUpRequired
from client_sim.keystore import KeystoreState
from client_sim.store import (
    BACKUP_KEY,
    BACKUP_OPRF_VERSION,
    DEVICE_COOKIE,
    REFRESH_EXPIRES,
    REFRESH_TOKEN,
    DeviceStore,
)

__all__ = ["STEP_UP_WINDOW", "TOKEN_REFRESH_MARGIN", "Session"]

# Renew an access token this long before it expires by the local clock:
# covers the request's flight time and the server's small leeway, and since
# the expiry is ``expires_in`` counted from when *we* asked, the device's
# clock may be off by any amount without tokens being used too late.
TOKEN_REFRESH_MARGIN: Final = 60.0
# A confirmed password (its login key) is kept in memory this long, for the
# step-up proofs of destructive calls; never persisted.
STEP_UP_WINDOW: Final = 300.0

_T = TypeVar("_T")


class Session:
    """Tokens for one device.  Renewals are serialised; one keystore per device."""

    def __init__(
        self, api: ApiClient, store: DeviceStore, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._api = api
        self._store = store
        self._clock = clock
        # (token, renew-after by the local clock); never persisted.
        self._access: tuple[str, float] | None = None
        # Renewing spends the stored refresh token: two threads must never
        # present the same one (the second would revoke the session).
        self._renewing = threading.Lock()
        # (login key, usable until by the local clock): see confirm().
        self._confirmed: tuple[str, float] | None = None

    def __repr__(self) -> str:
        return f"Session(live_access_token={self._access is not None})"

    def start(
        self, identity: str, session: RefreshSession, backup_key: bytes, oprf_version: int = 0
    ) -> KeystoreState:
        """Keep a new refresh token (and the backup key derived at the same login,
        hardened with OPRF key ``oprf_version``; 0: not hardened).

        Returns the keystore as saved; a keystore is created for a new device.
        """
        state = self._store.load() or KeystoreState(identity)
        cookie = session.device_cookie or state.settings.get(DEVICE_COOKIE)
        state = state.with_settings(
            **{
                REFRESH_TOKEN: session.refresh_token,
                REFRESH_EXPIRES: str(session.expires_at),
                BACKUP_KEY: b64url_encode(backup_key),
                BACKUP_OPRF_VERSION: str(oprf_version) if oprf_version else None,
                DEVICE_COOKIE: cookie,
            }
        )
        self._store.save_session(state)
        self._access = None
        return state

    def end(self) -> None:
        """Log out: the server ends the refresh token, the device forgets it.

        A session the server already ended is as logged out as it gets.
        """
        state = self._store.load()
        token = state.settings.get(REFRESH_TOKEN) if state else None
        if state is None or token is None:
            return
        with contextlib.suppress(ServerError):
            self._api.logout(token)
        self._confirmed = None
        self._store.save_session(
            state.with_settings(**{REFRESH_TOKEN: None, REFRESH_EXPIRES: None})
        )
        self._access = None

    def forget(self) -> None:
        """Drop the access token and any confirmed password held in memory."""
        self._access = None
        self._confirmed = None

    def confirm(self, login_key_b64: str) -> None:
        """Hold the login key of a just-entered password for :data:`STEP_UP_WINDOW` s.

        Destructive calls made meanwhile trade it for single-use step-up
        proofs (``POST /v1/step-up``) when the server asks for one.
        """
        self._confirmed = (login_key_b64, self._clock() + STEP_UP_WINDOW)

    def authed_step_up(self, call: Callable[[str, str | None], _T]) -> _T:
        """``call(access_token, step_up)``: first without a proof, then -- if the
        server asks for one (``step_up_required``) -- with a fresh proof from
        the confirmed password.  Each try gets its own proof (they are single-use).

        Raises:
            StepUpRequired: the server asks for a proof and no password was
                confirmed in the last :data:`STEP_UP_WINDOW` seconds.
            ServerError: a refusal (``wrong_login_key``: the confirmed
                password is not the account's), as from the API.
        """
        try:
            return self.authed(lambda token: call(token, None))
        except ServerError as exc:
            if exc.code != "step_up_required":
                raise
            confirmed = self._confirmed
            if confirmed is None or self._clock() >= confirmed[1]:
                raise StepUpRequired("this change needs the password: confirm it first") from exc
        return self.authed(lambda token: call(token, self._api.step_up(token, confirmed[0])))

    def access_token(self, *, renew: bool = False, stale: str | None = None) -> str:
        """A live access token: the one held, or a new one from the refresh token.

        ``renew``: the server refused ``stale``; get a new token unless
        another thread already replaced it.

        Raises:
            NotLoggedIn: no session, or the server ended it (logged out,
                expired, signed out by a password change) -- then the
                refresh token is forgotten here too.
            ServerError, ConnectionFailed: as from the API.
        """
        with self._renewing:
            now = self._clock()
            held = self._access
            if not renew and held is not None and now < held[1]:
                return held[0]
            if renew and stale is not None and held is not None and held[0] != stale:
                # Another thread renewed while this one waited for the lock.
                return held[0]
            return self._renew(now)

    def _renew(self, now: float) -> str:
        state = self._store.require_session()
        try:
            issued = self._api.access_token(state.settings[REFRESH_TOKEN])
        except ServerError as exc:
            if exc.status == 401:
                # Logged out, expired, signed out, or a reuse that revoked
                # the family: the stored token will never work again.
                latest = self._store.load() or state
                self._store.save_session(
                    latest.with_settings(**{REFRESH_TOKEN: None, REFRESH_EXPIRES: None})
                )
                raise NotLoggedIn(f"the session has ended ({exc.code}); log in again") from exc
            raise
        # The old token is spent: store its successor before anything else
        # (one atomic replace of the keystore file).
        latest = self._store.load() or state
        self._store.save_session(
            latest.with_settings(
                **{
                    REFRESH_TOKEN: issued.refresh_token,
                    REFRESH_EXPIRES: str(issued.refresh_token_expires_at),
                }
            )
        )
        # expires_in counts from the server's answer; counting it from our
        # request (``now``) errs early, whatever the two clocks say.
        self._access = (issued.access_token, now + issued.expires_in - TOKEN_REFRESH_MARGIN)
        return issued.access_token

    def authed(self, call: Callable[[str], _T]) -> _T:
        """``call(access_token)``, renewing the token once if the server refuses it.

        ``call`` must be safe to repeat (every SDK operation is: uploads
        carry an idempotency key, the rest are reads or conditional writes).
        """
        token = self.access_token()
        try:
            return call(token)
        except ServerError as exc:
            if exc.status != 401 or exc.code != "invalid_token":
                raise
        return call(self.access_token(renew=True, stale=token))
