"""Keys, clocks and a JWS forger for the token tests.

``forge`` builds compact JWS strings by hand (not through PyJWT), so attack
tests can produce exactly the bytes an attacker would send.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from chalicelib.services.tokens import StaticKeyRing, TokenService
from chalicelib.wire.appkey import AppKey
from chalicelib.wire.b64 import b64url_encode
from tests.support.fakes import FakeClock as _FakeClock

ISSUER = "urn:sealbox:test"
AUDIENCE = "urn:sealbox:test:api"
TTL = 900
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z

# Fixed seeds: deterministic keys make failures reproducible.
KEY_A = AppKey.from_seed(bytes(range(32)), created_at=T0 - 86400)
KEY_B = AppKey.from_seed(bytes(range(1, 33)), created_at=T0)
KEY_C = AppKey.from_seed(bytes(range(2, 34)), created_at=T0 + 86400)
FOREIGN = AppKey.from_seed(b"\xee" * 32, created_at=T0)


class FakeClock(_FakeClock):
    """A settable clock starting at :data:`T0` (the tokens' reference time)."""

    def __init__(self, now: float = float(T0)) -> None:
        super().__init__(now)


def make_service(
    ring: Any = None, *, clock: FakeClock | None = None, ttl: int = TTL, leeway: int = 30
) -> TokenService:
    return TokenService(
        ring if ring is not None else StaticKeyRing(KEY_A),
        issuer=ISSUER,
        audience=AUDIENCE,
        ttl=ttl,
        leeway=leeway,
        clock=clock if clock is not None else FakeClock(),
    )


def b64json(obj: Any) -> str:
    return b64url_encode(json.dumps(obj, separators=(",", ":")).encode())


def header_for(key: AppKey = KEY_A, **changes: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"typ": "at+jwt", "alg": "EdDSA", "kid": key.kid}
    for name, value in changes.items():
        if value is ...:
            header.pop(name, None)
        else:
            header[name] = value
    return header


def claims_for(now: int = T0, **changes: Any) -> dict[str, Any]:
    """Claims as TokenService issues them at ``now``; ``name=...`` removes one."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": AUDIENCE,
        "client_id": "sealbox-device",
        "iat": now,
        "nbf": now,
        "exp": now + TTL,
        "jti": b64url_encode(hashlib.sha256(str(now).encode()).digest()[:16]),
    }
    for name, value in changes.items():
        if value is ...:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def forge(
    header: dict[str, Any] | str,
    claims: dict[str, Any] | str,
    key: AppKey | None = KEY_A,
) -> str:
    """A compact JWS over ``header`` and ``claims`` signed with ``key`` (Ed25519).

    ``header``/``claims`` may be pre-encoded segments.  ``key=None`` leaves the
    signature segment empty.
    """
    h = header if isinstance(header, str) else b64json(header)
    p = claims if isinstance(claims, str) else b64json(claims)
    signing_input = f"{h}.{p}".encode()
    sig = "" if key is None else b64url_encode(key.private_key.sign(signing_input))
    return f"{h}.{p}.{sig}"


def forge_hmac(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """A compact JWS with an HS256 MAC keyed by ``secret``."""
    h, p = b64json(header), b64json(claims)
    mac = hmac.new(secret, f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64url_encode(mac)}"
