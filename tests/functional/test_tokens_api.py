"""/v1/tokens, /.well-known/jwks.json and /v1/me through the app on moto."""

from __future__ import annotations

import jwt
import pytest
from botocore.exceptions import EndpointConnectionError

from app import app
from chalicelib import wiring
from chalicelib.http import Auth
from chalicelib.wire.appkey import AppKey
from chalicelib.wire.b64 import b64url_encode
from client_sim.api import ApiClient
from client_sim.errors import ServerError
from sealbox_tools.demo import verify_access_token
from tests.functional.conftest import STAGE_ENV
from tests.support.aws import inject_outage

KEY = b64url_encode(bytes(range(32)))
AUDIENCE = STAGE_ENV["SEALBOX_TOKEN_AUDIENCE"]


def signed_in(api: ApiClient, name: str = "alice") -> tuple[str, str]:
    api.register(name, KEY)
    issued = api.access_token(api.login(name, KEY).refresh_token)
    # The login's refresh token is spent: the rotated one is the live one.
    return issued.refresh_token, issued.access_token


def test_access_token_is_an_eddsa_at_jwt_that_verifies_with_the_jwks(api: ApiClient) -> None:
    _, access = signed_in(api)
    header = jwt.get_unverified_header(access)
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "at+jwt"
    claims = verify_access_token(access, api.jwks(), audience=AUDIENCE)
    assert claims["sub"] == "alice"
    assert claims["iss"] == STAGE_ENV["SEALBOX_TOKEN_ISSUER"]
    assert 0 < claims["exp"] - claims["iat"] <= 1200


def test_token_reply_shape_and_no_store(raw, api: ApiClient) -> None:
    refresh, _ = signed_in(api)
    reply = raw("POST", "/v1/tokens", token=refresh)
    assert reply.status == 200
    body = reply.json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_token_expires_at",
    }
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == int(STAGE_ENV["SEALBOX_ACCESS_TOKEN_TTL"])
    assert reply.headers["cache-control"] == "no-store"


def test_jwks_lists_okp_ed25519_signing_keys_and_may_be_cached(raw) -> None:
    reply = raw("GET", "/.well-known/jwks.json")
    assert reply.status == 200
    assert reply.headers["cache-control"].startswith("public, max-age=")
    (key,) = reply.json()["keys"]
    assert key["kty"] == "OKP"
    assert key["crv"] == "Ed25519"
    assert key["use"] == "sig"
    assert key["alg"] == "EdDSA"
    assert "d" not in key
    assert key["kid"]


def test_me_answers_the_token_subject(api: ApiClient) -> None:
    _, access = signed_in(api, "bob")
    out = api.me(access)
    assert out["identity"] == "bob"
    assert out["token_expires_at"] > 0


def test_an_access_token_is_not_a_refresh_token_and_vice_versa(raw, api: ApiClient) -> None:
    refresh, access = signed_in(api)
    assert raw("POST", "/v1/tokens", token=access).status == 401
    assert raw("GET", "/v1/me", token=refresh).status == 401
    assert raw("DELETE", "/v1/sessions/current", token=access).status == 401


def test_revoked_refresh_token_gets_no_new_access_tokens(api: ApiClient) -> None:
    refresh, _ = signed_in(api)
    api.logout(refresh)
    with pytest.raises(ServerError) as refused:
        api.access_token(refresh)
    assert (refused.value.status, refused.value.code) == (401, "invalid_token")


def test_expired_access_and_refresh_tokens_are_refused(clock, raw, api: ApiClient) -> None:
    refresh, access = signed_in(api)
    clock.advance(int(STAGE_ENV["SEALBOX_ACCESS_TOKEN_TTL"]) + 60)
    assert raw("GET", "/v1/me", token=access).status == 401
    clock.advance(int(STAGE_ENV["SEALBOX_REFRESH_TOKEN_TTL"]))
    assert raw("POST", "/v1/tokens", token=refresh).status == 401


def test_a_token_signed_by_a_foreign_key_is_refused(raw, api: ApiClient) -> None:
    _, access = signed_in(api)
    claims = jwt.decode(access, options={"verify_signature": False})
    foreign = AppKey.generate(created_at=0)
    forged = jwt.encode(
        claims,
        foreign.private_key,
        algorithm="EdDSA",
        headers={"typ": "at+jwt", "kid": foreign.kid},
    )
    reply = raw("GET", "/v1/me", token=forged)
    assert reply.status == 401
    assert reply.json()["error"]["code"] == "invalid_token"


def test_every_route_declares_its_auth_and_protected_ones_refuse_anonymous_calls(raw) -> None:
    protected = []
    for path, methods in app.routes.items():
        for method, entry in methods.items():
            auth = getattr(entry.view_function, "sealbox_auth", None)
            assert isinstance(auth, Auth), f"{method} {path} bypasses ApiBlueprint.route"
            if auth is not Auth.NONE:
                protected.append((method, path))
    assert ("GET", "/v1/me") in protected
    for method, path in protected:
        reply = raw(method, path.replace("{", "x").replace("}", "x"))
        assert reply.status == 401, (method, path)
        assert reply.json()["error"]["code"] == "invalid_token"


def test_secrets_manager_outage_is_503_signing_unavailable_then_recovers(clock, raw, api) -> None:
    api.register("alice", KEY)
    refresh = api.login("alice", KEY).refresh_token
    outage = inject_outage(wiring.container().secretsmanager)
    outage.error = EndpointConnectionError(endpoint_url="https://secretsmanager.invalid")
    reply = raw("POST", "/v1/tokens", token=refresh)
    assert reply.status == 503
    assert reply.json()["error"]["code"] == "signing_unavailable"
    assert int(reply.headers["retry-after"]) >= 1
    assert outage.failures >= 1
    outage.error = None
    clock.advance(int(reply.headers["retry-after"]))
    assert raw("POST", "/v1/tokens", token=refresh).status == 200


def test_openapi_document_is_served(raw) -> None:
    reply = raw("GET", "/openapi.json")
    assert reply.status == 200
    assert reply.json()["openapi"] == "3.1.0"
    assert "/v1/tokens" in reply.json()["paths"]
