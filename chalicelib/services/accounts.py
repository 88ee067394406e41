"""Accounts: registration, login with brute-force throttling, refresh sessions.

The device never sends its password.  It derives a *login key* from it
(``client_sim.passwords``) and sends that; this service hashes the login key
again with Argon2id before storing it, so a stolen users table is as hard to
attack as a password database, and what the server learns can't open the key
backup (DESIGN invariant 4).

Throttling is per account and settled by conditional writes: every login
attempt is *charged* before the login key is checked, by a compare-and-swap
on the account's attempt record.  A burst of parallel guesses therefore can't
all slip past the lockout check -- each one must win the CAS, and after the
free attempts each win pushes ``locked_until`` out exponentially.  Unknown
usernames are charged exactly like known ones and pay one Argon2id
verification against a dummy hash, so neither the answer, the lockout
behaviour nor (to within noise) the time reveals whether an account exists.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from chalicelib import crypto
from chalicelib.errors import (
    InvalidCredentials,
    InvalidLoginKey,
    InvalidOprfKeyVersion,
    InvalidRequest,
    InvalidUsername,
    LoginKeyConflict,
    RefreshTokenReused,
    StepUpRequired,
    TooManyAttempts,
    Unauthorized,
    WrongLoginKey,
)
from chalicelib.services.account_records import (
    AttemptRecord,
    AttemptStore,
    DeviceRecord,
    DeviceStore,
    FamilyRecord,
    Revoked,
    SessionRecord,
    SessionStore,
    StepUpStore,
    UserRecord,
    UserStore,
)
from chalicelib.services.lockout import LockoutPolicy, LoginKeyHasher
from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.identity import InvalidIdentity, normalize_identity

__all__ = [
    "AccountService",
    "AttemptRecord",
    "AttemptStore",
    "DeviceRecord",
    "DeviceStore",
    "FamilyRecord",
    "LockoutPolicy",
    "LoginKeyHasher",
    "Revoked",
    "SessionRecord",
    "SessionStore",
    "StepUpStore",
    "UserRecord",
    "UserStore",
]

LOGIN_KEY_SIZE = 32
# A recognisable prefix lets secret scanners find leaked refresh tokens.
REFRESH_TOKEN_PREFIX = "sbr_"  # noqa: S105 - a prefix, not a credential
REFRESH_TOKEN_BYTES = 32
_REFRESH_TOKEN_RE = re.compile(r"sbr_[A-Za-z0-9_-]{43}")
# Device cookies (OWASP's brute-force "device cookie"): 256 random bits, a
# prefix of their own so they can never pass for a refresh token.
DEVICE_COOKIE_PREFIX = "sbd_"
DEVICE_COOKIE_BYTES = 32
DEVICE_COOKIE_TTL = 180 * 86400
_DEVICE_COOKIE_RE = re.compile(r"sbd_[A-Za-z0-9_-]{43}")
# Step-up proofs: single-use, short-lived re-authentications with the login key.
STEP_UP_PREFIX = "sbs_"
STEP_UP_BYTES = 32
STEP_UP_TTL = 300
_STEP_UP_RE = re.compile(r"sbs_[A-Za-z0-9_-]{43}")
# Attempt records of cookies share the attempts table with those of
# accounts; an identity never contains ':', so the keys can't collide.
_COOKIE_ATTEMPTS_PREFIX = "cookie:"
# Password checks made with an access token (step-up, password change) have
# a counter of their own: strangers, who hold no token, can't charge it, so
# their guessing at the login doesn't block the owner's destructive calls;
# a thief guessing with a stolen token is throttled on it all the same.
_AUTHENTICATED_ATTEMPTS_PREFIX = "authed:"
# OPRF evaluations are charged on counters of their own, chosen like the
# login's (the device cookie's, else the account's): each is one password
# guess for whoever holds a copy of the database (docs/security.md).
_OPRF_ATTEMPTS_PREFIX = "oprf:"
# At most this many former login keys ride along with a login (one per
# derivation the account may still be on: pre-OPRF, previous OPRF key).
MAX_LEGACY_LOGIN_KEYS = 2
MAX_OPRF_VERSION = 2**31 - 1


_CLEARED = AttemptRecord(attempts=0, locked_until=0, expires_at=0)


# --- policy -------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedSession:
    refresh_token: str = field(repr=False)
    identity: str
    expires_at: int
    # Set by a login: the device cookie the device keeps for its next login.
    device_cookie: str | None = field(default=None, repr=False)


FAMILY_ID_BYTES = 16
# A renewal whose reply was lost leaves the device holding the token it just
# spent.  For this long after a rotation, presenting *the token that rotation
# spent* again renews again instead of counting as a reuse; the successor it
# was given stops working.  A bad connection can lose several replies in a
# row (the 200-phone fleet lost two: the second retry presented a token two
# generations back and logged the phone out), so the same token may be
# retried while each retry is within the grace of the one before, up to
# REFRESH_RETRY_DEPTH generations back.  A token whose successor was itself
# used, anything older, or later, is a reuse.  docs/access-tokens.md states
# what this costs.
REFRESH_RETRY_GRACE = 60
REFRESH_RETRY_DEPTH = 3


# --- the service ----------------------------------------------------------------


class AccountService:
    """Register, log in, log out, and resolve refresh tokens."""

    # A concurrent attempt on the same account makes our CAS lose; re-read and
    # try again this many times before answering 429.
    _CAS_ROUNDS = 3

    def __init__(
        self,
        users: UserStore,
        sessions: SessionStore,
        attempts: AttemptStore,
        hasher: LoginKeyHasher,
        *,
        devices: DeviceStore,
        step_ups: StepUpStore,
        refresh_ttl: int,
        policy: LockoutPolicy | None = None,
        clock: Callable[[], float],
        token_bytes: Callable[[int], bytes] = crypto.random_bytes,
        oprf_version: Callable[[], int] | None = None,
    ) -> None:
        self._oprf_version = oprf_version
        self._users = users
        self._sessions = sessions
        self._attempts = attempts
        self._devices = devices
        self._step_ups = step_ups
        self._hasher = hasher
        self._refresh_ttl = refresh_ttl
        self._policy = policy or LockoutPolicy()
        self._clock = clock
        self._token_bytes = token_bytes

    # registration ------------------------------------------------------------

    def register(self, username: object, login_key: object, oprf_key_version: object = None) -> str:
        """Create an account; return its identity.

        ``oprf_key_version`` names the OPRF key the login key was derived
        under (it must be the current one); None registers a pre-OPRF login
        key (older devices).

        Raises:
            InvalidUsername, InvalidLoginKey: malformed input (nothing stored).
            InvalidOprfKeyVersion: not the current OPRF key version.
            UsernameTaken: the identity exists (nothing changed).
        """
        identity = _identity(username)
        key = _login_key(login_key)
        version = self._claimed_oprf_version(oprf_key_version)
        record = UserRecord(
            identity=identity,
            login_hash=self._hasher.hash(key),
            created_at=int(self._clock()),
            oprf_version=version,
        )
        self._users.create(record)
        return identity

    # login -------------------------------------------------------------------

    def login(
        self,
        username: object,
        login_key: object,
        device_cookie: object = None,
        *,
        oprf_key_version: object = None,
        legacy_login_keys: object = None,
    ) -> IssuedSession:
        """Check the login key and open a refresh session (and issue a device cookie).

        Throttling follows OWASP's device-cookie scheme.  A request whose
        ``device_cookie`` is a live cookie this service issued to this
        username (a device that has logged in here before) is charged to
        that cookie's own attempt counter; every other request -- no cookie,
        an unknown, expired or other user's cookie -- is charged to the
        account's counter, the one strangers share.  So a stranger locking
        the account out doesn't stop its owner's known devices, while
        guessing stays throttled either way (per account without a cookie,
        per cookie with a stolen one).  Whether a cookie is valid is decided
        by one lookup of its digest, before and independently of the user
        lookup, so the answers and the work stay the same for unknown users.

        A successful login returns a new cookie and forgets the one
        presented (one live cookie per device), and clears the OPRF
        evaluation counter it charged too.

        Migration (docs/spec/passwords.md): ``login_key`` was derived under
        OPRF key version ``oprf_key_version`` (None: before the OPRF).  An
        account still on an older derivation is checked with the key of its
        version from ``legacy_login_keys`` (``{"<version>": login key}``, at
        most two); on success its stored hash becomes ``login_key``'s, under
        the current version, by a conditional write on the hash just checked.

        Raises:
            InvalidUsername, InvalidLoginKey: malformed input.
            InvalidOprfKeyVersion: a malformed version or legacy key map.
            InvalidRequest: ``device_cookie`` present but malformed.
            TooManyAttempts: the counter charged (the account's, or the
                cookie's) is in a backoff period, whether or not this key is
                correct; ``retry_after`` says when to retry.
            InvalidCredentials: unknown user or wrong key (one answer).
        """
        identity = _identity(username)
        key = _login_key(login_key)
        claimed = _oprf_version(oprf_key_version)
        legacy = _legacy_login_keys(legacy_login_keys)
        cookie_hash = self._known_device(identity, device_cookie)
        counter = identity if cookie_hash is None else _COOKIE_ATTEMPTS_PREFIX + cookie_hash
        charged = self._charge_attempt(counter)
        user = self._users.get(identity)
        if user is None:
            self._hasher.verify_dummy(key)
            raise InvalidCredentials()
        # The key of the derivation the account is on: the one sent, or a
        # legacy one the device sent along (None: the device has none).
        checked = key if user.oprf_version == claimed else legacy.get(user.oprf_version)
        if checked is None:
            self._hasher.verify_dummy(key)
            raise InvalidCredentials()
        if not self._hasher.verify(checked, user.login_hash):
            raise InvalidCredentials()
        # Success clears the count (an already-expired record, which TTL
        # removes) -- unless another attempt has charged the counter since,
        # in which case clearing would erase that attempt's backoff.
        self._attempts.swap(counter, charged, _CLEARED)
        self._clear_oprf_counter(_OPRF_ATTEMPTS_PREFIX + counter)
        if checked is not key and claimed > user.oprf_version and claimed == self._current_oprf():
            # Re-wrap: from now on only the newer derivation logs in.
            self._users.upgrade_login_hash(
                identity, user.login_hash, self._hasher.hash(key), claimed
            )
        elif self._hasher.needs_rehash(user.login_hash):
            self._users.update_login_hash(identity, user.login_hash, self._hasher.hash(key))
        if cookie_hash is not None:
            self._devices.delete(cookie_hash)
        session = self._open_session(identity, user.session_epoch)
        return dataclasses.replace(session, device_cookie=self._issue_device_cookie(identity))

    def _known_device(self, identity: str, device_cookie: object) -> str | None:
        """The digest of ``device_cookie`` if it is a live cookie of ``identity``."""
        if device_cookie is None:
            return None
        if not isinstance(device_cookie, str) or not _DEVICE_COOKIE_RE.fullmatch(device_cookie):
            raise InvalidRequest("device_cookie must be a device cookie this service issued.")
        digest = refresh_token_digest(device_cookie)
        record = self._devices.get(digest)
        if record is None or record.identity != identity or record.expires_at <= self._clock():
            return None
        return digest

    def _issue_device_cookie(self, identity: str) -> str:
        cookie = DEVICE_COOKIE_PREFIX + b64url_encode(self._token_bytes(DEVICE_COOKIE_BYTES))
        self._devices.create(
            refresh_token_digest(cookie),
            DeviceRecord(identity=identity, expires_at=int(self._clock()) + DEVICE_COOKIE_TTL),
        )
        return cookie

    # login-key change ------------------------------------------------------------

    def change_login_key(
        self,
        identity: str,
        current_login_key: object,
        new_login_key: object,
        oprf_key_version: object = None,
    ) -> IssuedSession:
        """Replace the account's login key (a password change) and sign out other devices.

        The caller holds an access token for ``identity`` and proves the
        password with the current login key, which is charged and throttled
        like a login (a stolen access token is no faster oracle), on the
        identity's counter for calls made with a token (not the one strangers
        charge by guessing at the login).  The
        stored hash is replaced by a conditional write on the hash that was
        verified, so of two concurrent changes one wins and the other gets
        :class:`LoginKeyConflict`.  The write also bumps the account's session
        epoch, which revokes every refresh session; the caller gets a fresh
        one.  Access tokens already issued stay valid until they expire (at
        most 20 minutes): they are stateless by design.

        A request whose ``new_login_key`` is already the stored key succeeds
        without another change (a retry after a lost reply, or a second
        device making the same change), so the device-side retry is safe.
        A "change" to the current key itself is a valid request too: the key
        is re-hashed (with the live Argon2id parameters) and every other
        session ends -- a way to sign out all other devices.

        ``oprf_key_version`` names the OPRF key ``new_login_key`` was derived
        under (the current one; None: a pre-OPRF key, refused for an account
        already on the OPRF, so no change can downgrade it).

        Raises:
            InvalidLoginKey: a key is not 32 bytes of base64url.
            InvalidOprfKeyVersion: not the current OPRF key version, or a
                downgrade.
            TooManyAttempts: the account is in a backoff period.
            WrongLoginKey: neither key is the account's current login key.
            LoginKeyConflict: another change won the race (nothing changed).
        """
        current = _login_key(current_login_key)
        new = _login_key(new_login_key)
        version = self._claimed_oprf_version(oprf_key_version)
        counter = _AUTHENTICATED_ATTEMPTS_PREFIX + identity
        charged = self._charge_attempt(counter)
        user = self._users.get(identity)
        if user is None:
            # A valid token for a deleted account: answer like a wrong key.
            self._hasher.verify_dummy(current)
            raise WrongLoginKey()
        if version < user.oprf_version:
            raise InvalidOprfKeyVersion()
        if self._hasher.verify(current, user.login_hash):
            epoch = self._users.change_login_key(
                identity, user.login_hash, self._hasher.hash(new), version
            )
            if epoch is None:
                raise LoginKeyConflict()
            self._attempts.swap(counter, charged, _CLEARED)
            return self._open_session(identity, epoch)
        if self._hasher.verify(new, user.login_hash):
            self._attempts.swap(counter, charged, _CLEARED)
            return self._open_session(identity, user.session_epoch)
        raise WrongLoginKey()

    # step-up -----------------------------------------------------------------------

    def step_up(self, identity: str, login_key: object) -> tuple[str, int]:
        """Re-authenticate ``identity`` with its login key; a single-use proof and its TTL.

        The caller already holds an access token; the proof is what a
        destructive or identity-changing call needs on top of it.  The key is
        charged and throttled like a login (a stolen access token is no
        faster password oracle), on the identity's counter for calls made
        with a token, so strangers guessing at the login can't block it.
        Only the proof's digest is stored.

        Raises:
            InvalidLoginKey: not 32 bytes of base64url.
            TooManyAttempts: the account is in a backoff period.
            WrongLoginKey: not the account's login key.
        """
        key = _login_key(login_key)
        counter = _AUTHENTICATED_ATTEMPTS_PREFIX + identity
        charged = self._charge_attempt(counter)
        user = self._users.get(identity)
        if user is None:
            self._hasher.verify_dummy(key)
            raise WrongLoginKey()
        if not self._hasher.verify(key, user.login_hash):
            raise WrongLoginKey()
        self._attempts.swap(counter, charged, _CLEARED)
        proof = STEP_UP_PREFIX + b64url_encode(self._token_bytes(STEP_UP_BYTES))
        self._step_ups.create(
            refresh_token_digest(proof), identity, int(self._clock()) + STEP_UP_TTL
        )
        return proof, STEP_UP_TTL

    def consume_step_up(self, identity: str, proof: object) -> None:
        """Spend a step-up proof of ``identity`` (one conditional delete: single use).

        A proof is spent by the request that presents it, whatever that
        request's outcome; a device fetches a new one for a retry.

        Raises:
            StepUpRequired: no proof, a malformed, unknown, spent, expired or
                another identity's one.
        """
        if not isinstance(proof, str) or not _STEP_UP_RE.fullmatch(proof):
            raise StepUpRequired()
        if not self._step_ups.consume(refresh_token_digest(proof), identity, int(self._clock())):
            raise StepUpRequired()

    def note_card_revocation(self, identity: str) -> None:
        """Remember, before a revocation, that ``identity`` had a card.

        A later card that is not a rotation is then an identity reset and
        needs a step-up.  Written before the revocation: if the revocation
        fails the note only makes a later first card ask for a step-up.
        """
        self._step_ups.mark_card_ended(identity)

    def had_card(self, identity: str) -> bool:
        """Whether ``identity`` revoked a card (since this note was kept)."""
        return self._step_ups.card_ended(identity)

    # OPRF evaluations ------------------------------------------------------------

    def charge_oprf_evaluation(self, username: object, device_cookie: object = None) -> str:
        """Charge one OPRF evaluation for ``username``; return its identity.

        Charged by compare-and-swap before anything is evaluated, on the
        counter the login would use (this device cookie's, else the
        account's), prefixed so that evaluations and login checks are
        throttled separately; a successful login clears both.  Whether the
        account exists plays no part (no existence oracle).

        Raises:
            InvalidUsername: malformed username.
            InvalidRequest: ``device_cookie`` present but malformed.
            TooManyAttempts: the counter is in a backoff period.
        """
        identity = _identity(username)
        cookie_hash = self._known_device(identity, device_cookie)
        counter = identity if cookie_hash is None else _COOKIE_ATTEMPTS_PREFIX + cookie_hash
        self._charge_attempt(_OPRF_ATTEMPTS_PREFIX + counter)
        return identity

    def _clear_oprf_counter(self, counter: str) -> None:
        stored = self._attempts.get(counter)
        if stored is not None and stored != _CLEARED:
            # A lost swap means another evaluation was charged meanwhile:
            # its charge stands.
            self._attempts.swap(counter, stored, _CLEARED)

    def _current_oprf(self) -> int:
        return self._oprf_version() if self._oprf_version is not None else 0

    def _claimed_oprf_version(self, value: object) -> int:
        version = _oprf_version(value)
        if version != 0 and version != self._current_oprf():
            raise InvalidOprfKeyVersion()
        return version

    def _charge_attempt(self, identity: str) -> AttemptRecord:
        for _ in range(self._CAS_ROUNDS):
            now = int(self._clock())
            stored = self._attempts.get(identity)
            live = stored if stored is not None and stored.expires_at > now else None
            if live is not None and live.locked_until > now:
                raise TooManyAttempts(retry_after=live.locked_until - now)
            count = (live.attempts if live is not None else 0) + 1
            charged = AttemptRecord(
                attempts=count,
                locked_until=now + self._policy.delay_after(count),
                expires_at=now + self._policy.window,
            )
            if self._attempts.swap(identity, stored, charged):
                return charged
        raise TooManyAttempts(retry_after=1)

    def _open_session(self, identity: str, epoch: int) -> IssuedSession:
        token = self._new_token()
        expires_at = int(self._clock()) + self._refresh_ttl
        family = b64url_encode(self._token_bytes(FAMILY_ID_BYTES))
        self._sessions.open(
            refresh_token_digest(token),
            SessionRecord(
                identity=identity, expires_at=expires_at, epoch=epoch, family=family, generation=0
            ),
        )
        return IssuedSession(refresh_token=token, identity=identity, expires_at=expires_at)

    def _new_token(self) -> str:
        return REFRESH_TOKEN_PREFIX + b64url_encode(self._token_bytes(REFRESH_TOKEN_BYTES))

    # refresh sessions --------------------------------------------------------

    def authenticate_refresh(self, token: str) -> SessionRecord:
        """Resolve a refresh token to its live session.

        A session opened before the account's last login-key change is
        revoked (its epoch is older than the user's).  A token that is not
        its family's current generation has been exchanged already: the
        family is revoked here, before anything else happens.

        Raises:
            RefreshTokenReused: the token was already exchanged (its family
                is revoked now), or its family was revoked for that reason.
            Unauthorized: malformed, unknown, logged out or expired token.
        """
        session, _ = self._resolve(token)
        return session

    def rotate_refresh(self, token: str) -> IssuedSession:
        """Exchange ``token`` for the next token of its family; ``token`` is spent.

        The new token keeps the family's expiry: renewing does not extend a
        login.  The exchange is one conditional transaction on the family's
        generation, so of several renewals presenting the same token at once
        exactly one can win; every other one finds the generation moved,
        which is indistinguishable from a replay by someone holding a copy,
        and is treated as one: the family is revoked, the winner's new token
        with it (``docs/access-tokens.md``, "Refresh token rotation").

        Raises:
            RefreshTokenReused: the token was already exchanged, or lost the
                race to another exchange of it (the family is revoked).
            Unauthorized: malformed, unknown, logged out or expired token.
        """
        session, family = self._resolve(token)
        new_token = self._new_token()
        successor = SessionRecord(
            identity=session.identity,
            expires_at=family.expires_at,
            epoch=session.epoch,
            family=session.family,
            generation=family.generation + 1,
        )
        if not self._sessions.rotate(
            session.family,
            family.generation,
            refresh_token_digest(new_token),
            successor,
            int(self._clock()),
            session.generation,
        ):
            self._sessions.revoke(session.family, Revoked.REUSE)
            raise RefreshTokenReused()
        return IssuedSession(
            refresh_token=new_token, identity=session.identity, expires_at=family.expires_at
        )

    def _resolve(self, token: str) -> tuple[SessionRecord, FamilyRecord]:
        if not _REFRESH_TOKEN_RE.fullmatch(token):
            raise Unauthorized()
        session = self._sessions.get(refresh_token_digest(token))
        now = self._clock()
        # moto never expires TTL items and AWS may take up to 48 h: check here.
        if session is None or session.expires_at <= now or not session.family:
            raise Unauthorized()
        family = self._sessions.family(session.family)
        if family is None or family.expires_at <= now or family.identity != session.identity:
            raise Unauthorized()
        if family.revoked is Revoked.REUSE:
            raise RefreshTokenReused()
        if family.revoked is not Revoked.NO:
            raise Unauthorized()
        behind = family.generation - session.generation
        spent_last = family.generation - 1 if family.rotated_from is None else family.rotated_from
        if behind != 0 and not (
            # A retry after lost replies: the very token the last rotation
            # spent, presented again within its grace.
            session.generation == spent_last
            and 1 <= behind <= REFRESH_RETRY_DEPTH
            and now < family.rotated_at + REFRESH_RETRY_GRACE
        ):
            self._sessions.revoke(session.family, Revoked.REUSE)
            raise RefreshTokenReused()
        user = self._users.get(session.identity)
        if user is None or user.session_epoch != session.epoch:
            raise Unauthorized()
        return session, family

    def logout(self, token: str) -> None:
        """End the token's whole family at once (every token rotated from this login).

        Raises:
            RefreshTokenReused: the token was already exchanged (the family
                is revoked all the same).
            Unauthorized: the token is malformed, unknown, revoked or expired.
        """
        session, _ = self._resolve(token)
        self._sessions.revoke(session.family, Revoked.LOGOUT)


def refresh_token_digest(token: str) -> str:
    """Storage key for a refresh token or a device cookie: base64url(SHA-256(token)).

    Only this digest is stored, so a copy of the sessions table can't be
    replayed as credentials.
    """
    return b64url_encode(crypto.sha256(token.encode("ascii")))


def _identity(username: object) -> str:
    try:
        return normalize_identity(username)
    except InvalidIdentity as exc:
        raise InvalidUsername() from exc


def _login_key(value: object) -> bytes:
    if not isinstance(value, str):
        raise InvalidLoginKey()
    try:
        key = b64url_decode(value, max_len=LOGIN_KEY_SIZE)
    except ValueError as exc:
        raise InvalidLoginKey() from exc
    if len(key) != LOGIN_KEY_SIZE:
        raise InvalidLoginKey()
    return key


def _oprf_version(value: object) -> int:
    if value is None:
        return 0
    if type(value) is not int or not 1 <= value <= MAX_OPRF_VERSION:
        raise InvalidOprfKeyVersion()
    return value


def _legacy_login_keys(value: object) -> dict[int, bytes]:
    """``{"<version>": login key}`` -> ``{version: key}``; 0 is the pre-OPRF derivation."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_LEGACY_LOGIN_KEYS:
        raise InvalidOprfKeyVersion()
    out: dict[int, bytes] = {}
    for name, key in value.items():
        if not isinstance(name, str) or not name.isascii() or not name.isdigit() or len(name) > 10:
            raise InvalidOprfKeyVersion()
        version = int(name)
        if version > MAX_OPRF_VERSION or str(version) != name:
            raise InvalidOprfKeyVersion()
        out[version] = _login_key(key)
    return out
