"""The previous app key verifies only tokens issued before its retirement, then disappears.

Issue 11 ("Credential lifetimes"): after a rotation the previous key stayed
a full verification key for as long as it was ``AWSPREVIOUS`` -- until the
*next* rotation, days later.  A rotation done because the key leaked
therefore did not stop the leak: whoever held the old private key kept
minting fresh tokens the API accepted.  Now the rotation records when the
old key was retired, the previous key verifies only tokens whose ``iat`` is
at most the retirement plus a stated grace (the key-ring cache TTL plus the
leeway: containers that have not reloaded yet still sign with it), and it
leaves the key ring and the JWKS once the longest token lifetime has passed.
"""

from __future__ import annotations

import json
from typing import Any

import jwt

from chalicelib import wiring
from chalicelib.rotation import ROTATION_STEPS, handle_rotation_event
from chalicelib.services.tokens import MAX_ACCESS_TOKEN_TTL
from chalicelib.wire.appkey import AppKey, parse_app_key_secret
from chalicelib.wire.b64 import b64url_encode
from tests.functional.conftest import STAGE_ENV
from tests.support.aws import begin_rotation

KEY = b64url_encode(bytes(range(32)))
SECRET_ID = STAGE_ENV["SEALBOX_APP_KEY_SECRET_ID"]
CACHE_TTL = int(STAGE_ENV["SEALBOX_APP_KEY_CACHE_TTL"])
LEEWAY = 30
GRACE = CACHE_TTL + LEEWAY


def _current_key() -> AppKey:
    sm = wiring.container().secretsmanager
    value = sm.get_secret_value(SecretId=SECRET_ID, VersionStage="AWSCURRENT")["SecretString"]
    return parse_app_key_secret(value)


def _rotate(clock: Any) -> None:
    sm = wiring.container().secretsmanager
    token = begin_rotation(sm, SECRET_ID)
    for step in ROTATION_STEPS:
        handle_rotation_event(
            {"SecretId": SECRET_ID, "ClientRequestToken": token, "Step": step}, sm, clock=clock
        )


def _mint(key: AppKey, sub: str, iat: int, ttl: int = 900) -> str:
    """A token exactly like the API's, signed by ``key`` (the leaked one)."""
    claims = {
        "iss": STAGE_ENV["SEALBOX_TOKEN_ISSUER"],
        "sub": sub,
        "aud": STAGE_ENV["SEALBOX_TOKEN_AUDIENCE"],
        "client_id": "sealbox-device",
        "iat": iat,
        "nbf": iat,
        "exp": iat + ttl,
        "jti": b64url_encode(bytes(16)),
    }
    return jwt.encode(
        claims, key.private_key, algorithm="EdDSA", headers={"typ": "at+jwt", "kid": key.kid}
    )


def _jwks_kids(raw: Any) -> list[str]:
    return [key["kid"] for key in json.loads(raw("GET", "/.well-known/jwks.json").body)["keys"]]


def test_a_leaked_previous_key_cannot_mint_tokens_after_the_rotation(clock, raw, api) -> None:
    api.register("alice", KEY)
    leaked = _current_key()
    issued_before = _mint(leaked, "alice", int(clock.now))
    clock.advance(60)
    _rotate(clock)
    retired_at = int(clock.now)
    clock.advance(GRACE + 1)  # every container has reloaded the ring, and then some
    # A token the old key signed before the rotation lives out its lifetime...
    assert raw("GET", "/v1/me", token=issued_before).status == 200
    # ...but one minted with it afterwards, with a fresh iat, is refused.
    fresh = _mint(leaked, "alice", int(clock.now))
    reply = raw("GET", "/v1/me", token=fresh)
    assert reply.status == 401
    assert reply.json()["error"]["code"] == "invalid_token"
    # Inside the stated grace (containers still signing with the old key)
    # a token is accepted; one second past it, refused.
    assert raw("GET", "/v1/me", token=_mint(leaked, "alice", retired_at + GRACE)).status == 200
    assert raw("GET", "/v1/me", token=_mint(leaked, "alice", retired_at + GRACE + 1)).status == 401


def test_the_jwks_stops_listing_the_previous_key_after_the_bound(clock, raw, api) -> None:
    old_kid = _current_key().kid
    _rotate(clock)
    new_kid = _current_key().kid
    retired_at = int(clock.now)
    clock.advance(CACHE_TTL + 1)
    assert _jwks_kids(raw) == [new_kid, old_kid]
    # The last token the old key may have signed expires at
    # retired_at + GRACE + MAX_ACCESS_TOKEN_TTL (+ the leeway): then it goes.
    clock.now = retired_at + GRACE + MAX_ACCESS_TOKEN_TTL + LEEWAY + 1
    assert _jwks_kids(raw) == [new_kid]
    # And no token signed by it verifies any more, whatever its claims say.
    leaked_token = _mint(_previous_key(), "alice", retired_at)
    assert raw("GET", "/v1/me", token=leaked_token).status == 401


def _previous_key() -> AppKey:
    sm = wiring.container().secretsmanager
    value = sm.get_secret_value(SecretId=SECRET_ID, VersionStage="AWSPREVIOUS")["SecretString"]
    return parse_app_key_secret(value)


def test_tokens_from_a_container_that_has_not_reloaded_yet_still_work(clock, api) -> None:
    """The grace exists for this: warm containers sign with the old key until their TTL ends."""
    api.register("bob", KEY)
    refresh = api.login("bob", KEY).refresh_token
    warm = api.access_token(refresh)  # loads the ring: the old key signs
    _rotate(clock)
    clock.advance(CACHE_TTL - 1)
    stale = api.access_token(warm.refresh_token)  # still the old key, cache not expired
    assert jwt.get_unverified_header(stale.access_token)["kid"] != _current_key().kid
    clock.advance(2)
    assert api.me(stale.access_token)["identity"] == "bob"
