"""TokenService: issue/verify round trip, claims, lifetime, leeway, JWKS."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from chalicelib.config import Settings
from chalicelib.errors import ServiceUnavailable, SigningUnavailable, Unauthorized
from chalicelib.services.tokens import (
    DEFAULT_PREVIOUS_KEY_GRACE,
    MAX_ACCESS_TOKEN_TTL,
    MAX_PREVIOUS_KEY_GRACE,
    StaticKeyRing,
    TokenService,
)
from chalicelib.wire.b64 import b64url_decode
from chalicelib.wire.jwk import ed25519_jwk_thumbprint
from tests.support.tokens import (
    AUDIENCE,
    ISSUER,
    KEY_A,
    KEY_B,
    KEY_C,
    T0,
    TTL,
    FakeClock,
    claims_for,
    forge,
    header_for,
    make_service,
)


def _segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))


def test_round_trip():
    clock = FakeClock()
    service = make_service(clock=clock)
    issued = service.issue("alice")
    assert issued.token_type == "Bearer"
    assert issued.expires_in == TTL
    assert issued.expires_at == T0 + TTL
    claims = service.verify(issued.access_token)
    assert claims.identity == claims.sub == "alice"
    assert (claims.iss, claims.aud, claims.client_id) == (ISSUER, AUDIENCE, "sealbox-device")
    assert (claims.iat, claims.nbf, claims.exp) == (T0, T0, T0 + TTL)
    assert claims.kid == KEY_A.kid


def test_header_and_every_claim_present():
    token = make_service().issue("bob.b-2_x").access_token
    header, payload = _segments(token)
    assert header == {"alg": "EdDSA", "typ": "at+jwt", "kid": KEY_A.kid}
    assert set(payload) == {"iss", "sub", "aud", "client_id", "iat", "nbf", "exp", "jti"}
    assert payload["sub"] == "bob.b-2_x"
    assert payload["nbf"] == payload["iat"] == T0
    assert payload["exp"] - payload["iat"] == TTL
    assert len(b64url_decode(payload["jti"])) == 16


def test_jti_is_random():
    service = make_service()
    jtis = {_segments(service.issue("alice").access_token)[1]["jti"] for _ in range(500)}
    assert len(jtis) == 500


def test_issued_token_repr_hides_the_token():
    issued = make_service().issue("alice")
    assert issued.access_token not in repr(issued)
    assert issued.access_token.split(".")[2] not in str(issued)


@pytest.mark.parametrize("identity", ["Alice", "al", "a/b", "alice\n", "", "x" * 65])
def test_issue_refuses_non_canonical_identities(identity):
    with pytest.raises(ValueError, match="canonical"):
        make_service().issue(identity)


# --- lifetime: at most 20 minutes -------------------------------------------


@pytest.mark.parametrize("ttl", [0, -1, MAX_ACCESS_TOKEN_TTL + 1, 3600, True])
def test_service_refuses_ttl_out_of_range(ttl):
    with pytest.raises(ValueError, match="ttl"):
        make_service(ttl=ttl)


@pytest.mark.parametrize("leeway", [-1, 61, True])
def test_service_refuses_leeway_out_of_range(leeway):
    with pytest.raises(ValueError, match="leeway"):
        make_service(leeway=leeway)


@pytest.mark.parametrize("name", ["issuer", "audience", "client_id"])
def test_service_refuses_empty_names(name):
    kwargs: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, "client_id": "c", name: ""}
    with pytest.raises(ValueError, match=name):
        TokenService(StaticKeyRing(KEY_A), ttl=TTL, **kwargs)


def _env(**extra):
    env = {
        "SEALBOX_USERS_TABLE": "u",
        "SEALBOX_SESSIONS_TABLE": "s",
        "SEALBOX_ATTEMPTS_TABLE": "a",
        "SEALBOX_APP_KEY_SECRET_ID": "k",
        "SEALBOX_TOKEN_ISSUER": ISSUER,
        "SEALBOX_TOKEN_AUDIENCE": AUDIENCE,
        "SEALBOX_CARDS_TABLE": "c",
        "SEALBOX_BACKUPS_TABLE": "b",
    }
    env.update(extra)
    return env


def test_config_caps_the_ttl_at_twenty_minutes():
    assert Settings.from_env(_env(SEALBOX_ACCESS_TOKEN_TTL="1200")).access_token_ttl == 1200
    with pytest.raises(RuntimeError, match="SEALBOX_ACCESS_TOKEN_TTL"):
        Settings.from_env(_env(SEALBOX_ACCESS_TOKEN_TTL="1201"))
    settings = Settings.from_env(_env())
    service = TokenService(
        StaticKeyRing(KEY_A),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        ttl=settings.access_token_ttl,
    )
    assert service.ttl <= MAX_ACCESS_TOKEN_TTL


def test_verify_refuses_a_signed_token_living_longer_than_twenty_minutes():
    service = make_service()
    assert service.verify(forge(header_for(), claims_for(exp=T0 + MAX_ACCESS_TOKEN_TTL)))
    with pytest.raises(Unauthorized):
        service.verify(forge(header_for(), claims_for(exp=T0 + MAX_ACCESS_TOKEN_TTL + 1)))
    with pytest.raises(Unauthorized):
        service.verify(forge(header_for(), claims_for(exp=T0)))  # exp == iat


# --- leeway -------------------------------------------------------------------


def test_expiry_honours_the_leeway_and_no_more():
    clock = FakeClock()
    service = make_service(clock=clock, leeway=30)
    token = service.issue("alice").access_token
    clock.now = T0 + TTL - 1
    assert service.verify(token)
    clock.now = T0 + TTL + 29
    assert service.verify(token)
    clock.now = T0 + TTL + 30
    with pytest.raises(Unauthorized):
        service.verify(token)


def test_not_before_and_issued_at_honour_the_leeway_and_no_more():
    clock = FakeClock()
    service = make_service(clock=clock, leeway=30)
    early = service.issue("alice").access_token  # iat = nbf = T0
    clock.now = T0 - 30
    assert service.verify(early)
    clock.now = T0 - 31
    with pytest.raises(Unauthorized):
        service.verify(early)


def test_zero_leeway_is_exact():
    clock = FakeClock()
    service = make_service(clock=clock, leeway=0)
    token = service.issue("alice").access_token
    clock.now = T0 + TTL - 0.001
    assert service.verify(token)
    clock.now = T0 + TTL
    with pytest.raises(Unauthorized):
        service.verify(token)


# --- key rotation -------------------------------------------------------------


def test_tokens_signed_by_the_previous_key_verify_until_it_is_gone():
    ring = StaticKeyRing(KEY_A)
    service = make_service(ring)
    old = service.issue("alice").access_token
    ring.rotate(KEY_B)
    new = service.issue("alice").access_token
    assert _segments(new)[0]["kid"] == KEY_B.kid
    assert service.verify(old).kid == KEY_A.kid
    assert service.verify(new).kid == KEY_B.kid
    ring.rotate(KEY_C)
    assert service.verify(new).kid == KEY_B.kid
    with pytest.raises(Unauthorized):
        service.verify(old)


def test_the_previous_key_verifies_only_tokens_issued_before_its_retirement():
    clock = FakeClock()
    ring = StaticKeyRing(KEY_A)
    service = make_service(ring, clock=clock)
    retired = T0 + 10
    ring.rotate(KEY_B, retired_at=retired)
    clock.now = retired + DEFAULT_PREVIOUS_KEY_GRACE + 5
    within = forge(header_for(KEY_A), claims_for(retired + DEFAULT_PREVIOUS_KEY_GRACE), KEY_A)
    after = forge(header_for(KEY_A), claims_for(retired + DEFAULT_PREVIOUS_KEY_GRACE + 1), KEY_A)
    assert service.verify(within).kid == KEY_A.kid
    with pytest.raises(Unauthorized):
        service.verify(after)
    # The current key has no such bound.
    fresh = forge(header_for(KEY_B), claims_for(int(clock.now)), KEY_B)
    assert service.verify(fresh).kid == KEY_B.kid


def test_an_unrecorded_retirement_is_bounded_by_the_successors_creation():
    clock = FakeClock(KEY_B.created_at + 10_000.0)
    service = make_service(StaticKeyRing(KEY_B, previous=KEY_A), clock=clock)
    late = forge(header_for(KEY_A), claims_for(int(clock.now)), KEY_A)
    with pytest.raises(Unauthorized):
        service.verify(late)


def test_the_previous_key_is_dropped_once_its_last_token_has_expired():
    clock = FakeClock()
    ring = StaticKeyRing(KEY_A)
    service = make_service(ring, clock=clock)
    ring.rotate(KEY_B, retired_at=T0)
    last = T0 + DEFAULT_PREVIOUS_KEY_GRACE + MAX_ACCESS_TOKEN_TTL + 30
    clock.now = last
    assert [k["kid"] for k in service.jwks()["keys"]] == [KEY_B.kid, KEY_A.kid]
    clock.now = last + 1
    assert [k["kid"] for k in service.jwks()["keys"]] == [KEY_B.kid]
    # Even a token with a backdated iat and a long (20-minute) life is gone.
    token = forge(header_for(KEY_A), claims_for(T0, exp=T0 + MAX_ACCESS_TOKEN_TTL), KEY_A)
    with pytest.raises(Unauthorized):
        service.verify(token)


@pytest.mark.parametrize("grace", [-1, MAX_PREVIOUS_KEY_GRACE + 1, 1.5, True])
def test_previous_key_grace_is_bounded(grace):
    with pytest.raises(ValueError, match="previous_key_grace"):
        TokenService(
            StaticKeyRing(KEY_A),
            issuer=ISSUER,
            audience=AUDIENCE,
            ttl=TTL,
            previous_key_grace=grace,
        )


# --- JWKS ---------------------------------------------------------------------


def test_jwks_shape_current_then_previous():
    ring = StaticKeyRing(KEY_B, previous=KEY_A)
    jwks = make_service(ring).jwks()
    assert list(jwks) == ["keys"]
    assert [k["kid"] for k in jwks["keys"]] == [KEY_B.kid, KEY_A.kid]
    for jwk in jwks["keys"]:
        assert set(jwk) == {"kty", "crv", "x", "kid", "use", "alg"}
        assert (jwk["kty"], jwk["crv"], jwk["use"], jwk["alg"]) == (
            "OKP",
            "Ed25519",
            "sig",
            "EdDSA",
        )
        assert jwk["kid"] == ed25519_jwk_thumbprint(b64url_decode(jwk["x"]))
        assert "d" not in jwk
    json.dumps(jwks)  # serialisable as is


def test_jwks_has_one_key_before_the_first_rotation():
    assert [k["kid"] for k in make_service().jwks()["keys"]] == [KEY_A.kid]
    same = StaticKeyRing(KEY_A, previous=KEY_A)
    assert len(make_service(same).jwks()["keys"]) == 1


# --- failures of the ring propagate as 503, not 401 ----------------------------


class _DownRing:
    def signing_key(self):
        raise SigningUnavailable(retry_after=7)

    def verification_key(self, kid):
        raise ServiceUnavailable(retry_after=7)

    def verification_keys(self):
        raise ServiceUnavailable(retry_after=7)


def test_ring_outage_is_a_503_for_every_operation():
    service = make_service(_DownRing())
    with pytest.raises(SigningUnavailable) as info:
        service.issue("alice")
    assert info.value.headers["Retry-After"] == "7"
    with pytest.raises(ServiceUnavailable):
        service.verify(forge(header_for(), claims_for()))
    with pytest.raises(ServiceUnavailable):
        service.jwks()


# --- what a rejection reveals ---------------------------------------------------


def test_rejection_reason_goes_to_a_debug_field_never_the_token(caplog):
    caplog.set_level(logging.DEBUG)
    service = make_service()
    token = forge(header_for(), claims_for(aud="urn:other"))
    with pytest.raises(Unauthorized) as info:
        service.verify(token)
    assert info.value.message == Unauthorized.default_message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    records = [r for r in caplog.records if r.name == "chalicelib.services.tokens"]
    assert [r.reason for r in records] == ["InvalidAudienceError"]
    for record in caplog.records:
        assert token.split(".")[2] not in record.getMessage()
        assert token.split(".")[2] not in repr(vars(record))
