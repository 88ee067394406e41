"""Access tokens: issue, verify, and publish the keys that verify them.

Pure service code (no chalice, no boto3).  The keys come from a
:class:`KeyRing` -- in production the Secrets Manager adapter in
``chalicelib.storage.appkeys``, in tests :class:`StaticKeyRing`.

An access token is a JWT (RFC 7519) in the profile of RFC 9068, signed with
the current app key (DESIGN §3)::

    header   {"typ": "at+jwt", "alg": "EdDSA", "kid": <RFC 7638 thumbprint>}
    payload  {"iss", "sub" (the identity), "aud", "client_id",
              "iat", "nbf" (= iat), "exp" (iat + ttl, ttl <= 1200 s),
              "jti" (128 random bits, base64url)}

Verification accepts exactly what :meth:`TokenService.issue` produces and
nothing else:

* a ``str`` of at most :data:`MAX_TOKEN_LENGTH` characters, checked before
  any parsing; the JWS compact serialization only (three base64url
  segments), so the JSON serialization and its unprotected headers never
  reach a parser;
* a protected header of exactly ``alg``, ``typ`` and ``kid`` -- so ``crit``,
  ``b64``, ``jku``, ``jwk``, ``x5u``, ``x5c`` and friends are all refused --
  with ``alg == "EdDSA"``, ``typ == "at+jwt"`` (RFC 9068 §4; exact match)
  and ``kid`` shaped like a thumbprint; duplicate JSON members are refused
  in the header and the payload;
* a signature by the key the ``kid`` names in the key ring (the current or
  the previous app key; an unknown ``kid`` triggers at most one rate-limited
  re-read of the ring), checked by PyJWT with ``algorithms=["EdDSA"]``;
* for the previous key, an ``iat`` no later than its retirement plus
  ``previous_key_grace``, and a clock before the moment its last possible
  token expires (after that the key is dropped, from the JWKS too);
* every claim above present and of the right type, ``iss``/``aud``/
  ``client_id`` equal to the configured values, ``sub`` a canonical identity
  (:func:`chalicelib.wire.identity.is_identity`), ``nbf``/``iat`` not in the
  future and ``exp`` not in the past (each with ``leeway``), ``exp - iat``
  within :data:`MAX_ACCESS_TOKEN_TTL`.

Every rejection raises the same :class:`~chalicelib.errors.Unauthorized`
with the default message.  The reason is logged at DEBUG level as a fixed
keyword (``extra={"reason": ...}``); the token and any value taken from it
are never logged.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import jwt

from chalicelib.crypto import random_bytes
from chalicelib.errors import Unauthorized
from chalicelib.wire.appkey import AppKey, AppPublicKey
from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.identity import is_identity
from chalicelib.wire.jwk import THUMBPRINT_RE
from chalicelib.wire.strictjson import StrictJSONError, loads_strict

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "ALGORITHM",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_LEEWAY",
    "DEFAULT_PREVIOUS_KEY_GRACE",
    "MAX_ACCESS_TOKEN_TTL",
    "MAX_LEEWAY",
    "MAX_PREVIOUS_KEY_GRACE",
    "MAX_TOKEN_LENGTH",
    "AccessClaims",
    "IssuedToken",
    "KeyRing",
    "StaticKeyRing",
    "TokenService",
]

log = logging.getLogger(__name__)

ALGORITHM: Final = "EdDSA"
# RFC 9068 §2.1: access tokens carry typ "at+jwt", so an ID token or any
# other JWT signed by the same key can't be replayed as an access token.
ACCESS_TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 -- a media type, not a secret
# DESIGN §3: access tokens live at most 20 minutes.
MAX_ACCESS_TOKEN_TTL: Final = 1200
DEFAULT_LEEWAY: Final = 30
# Clock skew between Lambda hosts is milliseconds; a minute of leeway is
# already generous, and more would quietly extend every token's life.
MAX_LEEWAY: Final = 60
# How long after its retirement the previous app key may still have signed:
# warm containers keep signing with a loaded key until their key-ring cache
# TTL (default 300 s) runs out.  The composition root passes the stage's
# TTL plus the leeway; this default matches the default TTL.
DEFAULT_PREVIOUS_KEY_GRACE: Final = 300 + DEFAULT_LEEWAY
# The grace is bounded: a longer one would quietly extend a leaked key's life.
MAX_PREVIOUS_KEY_GRACE: Final = 3600 + MAX_LEEWAY
# Our tokens are about 450 characters.  The bound is checked before any
# base64 or JSON work, so a megabyte "token" costs one len().
MAX_TOKEN_LENGTH: Final = 2048
# RFC 9068 §2.2 requires client_id; Sealbox has one first-party client kind.
DEFAULT_CLIENT_ID: Final = "sealbox-device"
JTI_BYTES: Final = 16

_HEADER_MEMBERS: Final = frozenset({"alg", "typ", "kid"})
_REQUIRED_CLAIMS: Final = ("iss", "sub", "aud", "client_id", "iat", "nbf", "exp", "jti")
_COMPACT_RE: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# Our header encodes to about 100 characters; a longer one is not ours, and
# the bound keeps the pre-signature JSON parse small.
_MAX_HEADER_SEGMENT: Final = 256


class KeyRing(Protocol):
    """Where :class:`TokenService` gets its keys.

    Implementations: :class:`StaticKeyRing` (in memory) and
    ``chalicelib.storage.appkeys.SecretsManagerKeyRing``.
    """

    def signing_key(self) -> AppKey:
        """The current app key, for signing.

        Raises:
            SigningUnavailable: the key can't be loaded right now.
        """
        ...

    def verification_key(self, kid: str) -> AppPublicKey | None:
        """The current or previous public key named ``kid``, or ``None``.

        May re-read the key store once when ``kid`` is unknown (the
        implementation rate-limits this).

        Raises:
            ServiceUnavailable: no keys are known at all and none can be
                loaded right now.
        """
        ...

    def verification_keys(self) -> Sequence[AppPublicKey]:
        """The current public key first, then the previous one if any.

        Raises:
            ServiceUnavailable: no keys are known and none can be loaded.
        """
        ...


class StaticKeyRing:
    """A :class:`KeyRing` over fixed keys, for tests and tools.

    ``rotate`` mimics a Secrets Manager rotation: the new key becomes
    current and the old current becomes previous, retired at ``retired_at``
    (default: the new key's ``created_at``, as for an unrecorded retirement).
    """

    def __init__(
        self, current: AppKey, previous: AppKey | None = None, *, retired_at: int | None = None
    ) -> None:
        self._current = current
        self._previous = previous
        self._retired_at = retired_at

    def __repr__(self) -> str:
        previous = self._previous.kid if self._previous else None
        return f"StaticKeyRing(current={self._current.kid!r}, previous={previous!r})"

    def rotate(self, new: AppKey, *, retired_at: int | None = None) -> None:
        """Make ``new`` current and the current key previous (retired at ``retired_at``)."""
        self._previous, self._current = self._current, new
        self._retired_at = retired_at

    def signing_key(self) -> AppKey:
        """The current key."""
        return self._current

    def verification_key(self, kid: str) -> AppPublicKey | None:
        """The current or previous public key named ``kid``, else ``None``."""
        for public in self.verification_keys():
            if public.kid == kid:
                return public
        return None

    def verification_keys(self) -> Sequence[AppPublicKey]:
        """Current public key, then previous."""
        keys = [self._current.public]
        if self._previous is not None and self._previous.kid != self._current.kid:
            retired_at = self._retired_at
            if retired_at is None:
                retired_at = self._current.created_at
            keys.append(dataclasses.replace(self._previous.public, retired_at=retired_at))
        return keys


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued access token.

    ``access_token`` is a bearer credential: it is left out of ``repr`` so
    that logging this object can't leak it (DESIGN invariant 3).
    """

    access_token: str = field(repr=False)
    expires_in: int
    expires_at: int
    token_type: str = "Bearer"  # noqa: S105 -- RFC 6750 scheme name, not a secret


@dataclass(frozen=True)
class AccessClaims:
    """The verified claims of an access token (nothing unverified in here)."""

    sub: str
    iss: str
    aud: str
    client_id: str
    iat: int
    nbf: int
    exp: int
    jti: str
    kid: str

    @property
    def identity(self) -> str:
        """The canonical identity the token was issued to (``sub``)."""
        return self.sub


class _Rejected(Exception):
    """Internal: one verification check failed; ``reason`` is a fixed keyword."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _int_claim(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    # bool is an int subclass; a float or a numeric string is not what we
    # issue, so it is not accepted either (PyJWT itself would int() them).
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Rejected(f"{name}_type")
    return value


def _str_claim(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str):
        raise _Rejected(f"{name}_type")
    return value


class TokenService:
    """Issues and verifies access tokens; publishes the JWKS.

    Args:
        keyring: where the app keys come from.
        issuer: the ``iss`` value (Settings.token_issuer).
        audience: the ``aud`` value (Settings.token_audience).
        ttl: lifetime of issued tokens in seconds, 1..:data:`MAX_ACCESS_TOKEN_TTL`.
        leeway: clock-skew allowance in seconds for ``nbf``/``iat``/``exp``,
            0..:data:`MAX_LEEWAY`.
        client_id: the RFC 9068 ``client_id`` value.
        previous_key_grace: seconds after the previous key's retirement
            during which it may still have signed (stale key-ring caches),
            0..:data:`MAX_PREVIOUS_KEY_GRACE`.  A token it signed verifies
            only if ``iat <= retired_at + previous_key_grace``, and the key
            is dropped (from verification and the JWKS) once
            ``retired_at + previous_key_grace + MAX_ACCESS_TOKEN_TTL +
            leeway`` has passed.
        clock: Unix time in seconds; injected so tests can move time.

    Raises:
        ValueError: ``ttl``, ``leeway`` or ``previous_key_grace`` out of
            range, or an empty ``issuer``/``audience``/``client_id``.
    """

    def __init__(
        self,
        keyring: KeyRing,
        *,
        issuer: str,
        audience: str,
        ttl: int,
        leeway: int = DEFAULT_LEEWAY,
        client_id: str = DEFAULT_CLIENT_ID,
        previous_key_grace: int = DEFAULT_PREVIOUS_KEY_GRACE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (
            isinstance(ttl, bool)
            or not isinstance(ttl, int)
            or not 1 <= ttl <= MAX_ACCESS_TOKEN_TTL
        ):
            raise ValueError(f"ttl must be an integer in [1, {MAX_ACCESS_TOKEN_TTL}] seconds")
        if isinstance(leeway, bool) or not isinstance(leeway, int) or not 0 <= leeway <= MAX_LEEWAY:
            raise ValueError(f"leeway must be an integer in [0, {MAX_LEEWAY}] seconds")
        if (
            isinstance(previous_key_grace, bool)
            or not isinstance(previous_key_grace, int)
            or not 0 <= previous_key_grace <= MAX_PREVIOUS_KEY_GRACE
        ):
            raise ValueError(
                f"previous_key_grace must be an integer in [0, {MAX_PREVIOUS_KEY_GRACE}] seconds"
            )
        for name, value in (("issuer", issuer), ("audience", audience), ("client_id", client_id)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
        self._keyring = keyring
        self._issuer = issuer
        self._audience = audience
        self._client_id = client_id
        self._ttl = ttl
        self._leeway = leeway
        self._previous_key_grace = previous_key_grace
        self._clock = clock
        # PyJWT checks the signature, the algorithm allow-list, presence of
        # every claim, and iss/aud by exact match.  Its time checks read the
        # wall clock directly, so they are off here and done below with the
        # injected clock instead (same rules, plus integer-only values).
        self._jwt = jwt.PyJWT(
            options={
                "verify_signature": True,
                "require": list(_REQUIRED_CLAIMS),
                "verify_aud": True,
                "verify_iss": True,
                "strict_aud": True,
                "verify_sub": True,
                "verify_jti": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            }
        )

    @property
    def ttl(self) -> int:
        """Lifetime of issued tokens, in seconds."""
        return self._ttl

    # --- issuing --------------------------------------------------------------

    def issue(self, identity: str) -> IssuedToken:
        """Sign a new access token for ``identity``.

        Args:
            identity: a canonical identity (already normalised by the caller).

        Raises:
            ValueError: ``identity`` is not canonical (a caller bug: routes
                normalise first, and refresh sessions store canonical names).
            SigningUnavailable: the app key can't be loaded right now (503
                with ``Retry-After``).
        """
        if not is_identity(identity):
            raise ValueError("identity must be canonical")
        key = self._keyring.signing_key()
        now = int(self._clock())
        exp = now + self._ttl
        payload = {
            "iss": self._issuer,
            "sub": identity,
            "aud": self._audience,
            "client_id": self._client_id,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": b64url_encode(random_bytes(JTI_BYTES)),
        }
        token = self._jwt.encode(
            payload,
            key.private_key,
            algorithm=ALGORITHM,
            headers={"typ": ACCESS_TOKEN_TYPE, "kid": key.kid},
        )
        return IssuedToken(access_token=token, expires_in=self._ttl, expires_at=exp)

    # --- verifying ------------------------------------------------------------

    def verify(self, token: object) -> AccessClaims:
        """Check ``token`` completely and return its claims.

        Args:
            token: the bearer token as received (anything; only a ``str``
                can pass).

        Raises:
            Unauthorized: for every reason a token is not accepted, with the
                same message each time.
            ServiceUnavailable: the key ring has no keys at all and can't load
                any (a cold container during a Secrets Manager outage).  This
                is not the caller's fault, so it is not a 401.
        """
        try:
            return self._verify(token)
        except _Rejected as rejected:
            log.debug("access token rejected", extra={"reason": rejected.reason})
            # ``from None``: the chained exception would only carry the
            # reason, which the client must not learn.
            raise Unauthorized() from None

    def _verify(self, token: object) -> AccessClaims:
        if not isinstance(token, str):
            raise _Rejected("not_a_string")
        if len(token) > MAX_TOKEN_LENGTH:
            raise _Rejected("too_long")
        if not _COMPACT_RE.fullmatch(token):
            raise _Rejected("not_compact")
        header = self._parse_header(token.split(".", 1)[0])
        public = self._keyring.verification_key(header["kid"])
        if public is None:
            raise _Rejected("unknown_kid")
        if self._dropped(public):
            raise _Rejected("retired_kid")
        try:
            self._jwt.decode_complete(
                token,
                key=public.public_key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
            )
        except jwt.PyJWTError as exc:
            raise _Rejected(type(exc).__name__) from None
        # PyJWT parsed the payload with json.loads, which keeps the last of
        # duplicate members; parse the (now authenticated) bytes again
        # strictly so a token can't mean two things to two parsers.
        try:
            payload = loads_strict(b64url_decode(token.split(".")[1]))
        except (StrictJSONError, ValueError):
            raise _Rejected("payload_json") from None
        if not isinstance(payload, dict):
            raise _Rejected("payload_json")
        claims = self._check_claims(payload, header["kid"])
        # A retired key signs nothing new: only tokens issued before its
        # retirement (plus the grace for containers that had not reloaded)
        # verify, so a leaked previous key can't mint fresh ones.
        if public.retired_at is not None and claims.iat > (
            public.retired_at + self._previous_key_grace
        ):
            raise _Rejected("iat_after_retirement")
        return claims

    def _dropped(self, public: AppPublicKey) -> bool:
        """Whether ``public`` is a previous key past its last possible token's expiry."""
        if public.retired_at is None:
            return False
        last_exp = public.retired_at + self._previous_key_grace + MAX_ACCESS_TOKEN_TTL
        return self._clock() > last_exp + self._leeway

    def _parse_header(self, segment: str) -> dict[str, Any]:
        if len(segment) > _MAX_HEADER_SEGMENT:
            raise _Rejected("header_too_long")
        try:
            header = loads_strict(b64url_decode(segment))
        except (StrictJSONError, ValueError):
            raise _Rejected("header_json") from None
        if not isinstance(header, dict):
            raise _Rejected("header_json")
        if "crit" in header:
            # We implement no JWS extension, so any critical one must be
            # refused (RFC 7515 §4.1.11).  PyJWT 2.15 refuses unknown names
            # but accepts {"crit": ["b64"], "b64": true} on an ordinary
            # token.  The exact-members check below would catch it too;
            # this one states the rule.
            raise _Rejected("crit")
        if set(header) != _HEADER_MEMBERS:
            raise _Rejected("header_members")
        if header["alg"] != ALGORITHM:
            raise _Rejected("alg")
        if header["typ"] != ACCESS_TOKEN_TYPE:
            raise _Rejected("typ")
        kid = header["kid"]
        if not isinstance(kid, str) or not THUMBPRINT_RE.fullmatch(kid):
            raise _Rejected("kid_shape")
        return header

    def _check_claims(self, payload: dict[str, Any], kid: str) -> AccessClaims:
        for name in _REQUIRED_CLAIMS:
            if name not in payload:
                raise _Rejected(f"{name}_missing")
        iss = _str_claim(payload, "iss")
        aud = _str_claim(payload, "aud")
        client_id = _str_claim(payload, "client_id")
        sub = _str_claim(payload, "sub")
        jti = _str_claim(payload, "jti")
        iat = _int_claim(payload, "iat")
        nbf = _int_claim(payload, "nbf")
        exp = _int_claim(payload, "exp")
        # iss and aud were already compared by PyJWT; compare again because
        # this check must not depend on a library option staying set.
        if iss != self._issuer:
            raise _Rejected("iss")
        if aud != self._audience:
            raise _Rejected("aud")
        if client_id != self._client_id:
            raise _Rejected("client_id")
        if not is_identity(sub):
            raise _Rejected("sub")
        try:
            if len(b64url_decode(jti, max_len=JTI_BYTES)) != JTI_BYTES:
                raise _Rejected("jti")
        except ValueError:
            raise _Rejected("jti") from None
        now = self._clock()
        if nbf > now + self._leeway:
            raise _Rejected("nbf")
        if iat > now + self._leeway:
            raise _Rejected("iat")
        if exp <= now - self._leeway:
            raise _Rejected("exp")
        if not iat < exp <= iat + MAX_ACCESS_TOKEN_TTL:
            raise _Rejected("lifetime")
        return AccessClaims(
            sub=sub,
            iss=iss,
            aud=aud,
            client_id=client_id,
            iat=iat,
            nbf=nbf,
            exp=exp,
            jti=jti,
            kid=kid,
        )

    # --- publishing -----------------------------------------------------------

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWK Set for ``/.well-known/jwks.json``: current key, then previous.

        Each key is ``{"kty": "OKP", "crv": "Ed25519", "x", "kid", "use": "sig",
        "alg": "EdDSA"}``.  Public material only.

        Raises:
            ServiceUnavailable: no keys are known and none can be loaded.
        """
        keys = self._keyring.verification_keys()
        return {"keys": [public.jwk() for public in keys if not self._dropped(public)]}
