"""Interop: an independent JOSE library (joserfc) and our tokens.

joserfc is given ONLY the JWKS document the backend publishes -- never a key
object from our code -- and must verify our tokens and their claims.  The
other direction too: a token joserfc signs with our private JWK, following
our profile, verifies with TokenService.

joserfc flags the polymorphic "EdDSA" alg with a SecurityWarning (RFC 9864
prefers the fully specified "Ed25519"); DESIGN §3 fixes "EdDSA", so the
warning is expected here.
"""

from __future__ import annotations

import json

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import KeySet, OKPKey

from chalicelib.crypto import ed25519_private_raw
from chalicelib.services.tokens import StaticKeyRing
from chalicelib.wire.b64 import b64url_encode
from tests.support.tokens import (
    AUDIENCE,
    FOREIGN,
    ISSUER,
    KEY_A,
    KEY_B,
    T0,
    TTL,
    FakeClock,
    claims_for,
    forge,
    header_for,
    make_service,
)

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated via RFC 9864")


def _keyset_from_published_jwks(service) -> KeySet:
    # Round-trip through JSON text: exactly what a client downloads.
    document = json.loads(json.dumps(service.jwks()))
    return KeySet.import_key_set(document)


def _claims_registry(now: int) -> jwt.JWTClaimsRegistry:
    return jwt.JWTClaimsRegistry(
        now=now,
        leeway=0,
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": AUDIENCE},
        sub={"essential": True},
        exp={"essential": True},
        nbf={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
    )


def test_joserfc_verifies_our_tokens_from_the_jwks_alone():
    clock = FakeClock()
    service = make_service(clock=clock)
    issued = service.issue("alice")
    token = jwt.decode(
        issued.access_token, _keyset_from_published_jwks(service), algorithms=["EdDSA"]
    )
    assert token.header == {"alg": "EdDSA", "typ": "at+jwt", "kid": KEY_A.kid}
    assert token.claims["sub"] == "alice"
    _claims_registry(T0 + 1).validate(token.claims)
    with pytest.raises(JoseError):
        _claims_registry(T0 + TTL + 1).validate(token.claims)  # joserfc sees the expiry too


def test_joserfc_verifies_across_a_rotation_and_picks_keys_by_kid():
    ring = StaticKeyRing(KEY_A)
    service = make_service(ring)
    before = service.issue("alice").access_token
    ring.rotate(KEY_B)
    after = service.issue("bob").access_token
    keys = _keyset_from_published_jwks(service)
    assert [k.kid for k in keys] == [KEY_B.kid, KEY_A.kid]
    assert jwt.decode(before, keys, algorithms=["EdDSA"]).claims["sub"] == "alice"
    assert jwt.decode(after, keys, algorithms=["EdDSA"]).claims["sub"] == "bob"


def test_joserfc_refuses_a_foreign_signature_under_our_kid():
    service = make_service()
    forged = forge(header_for(KEY_A), claims_for(), key=FOREIGN)
    with pytest.raises(BadSignatureError):
        jwt.decode(forged, _keyset_from_published_jwks(service), algorithms=["EdDSA"])


def test_the_published_thumbprints_match_joserfc():
    service = make_service(StaticKeyRing(KEY_B, previous=KEY_A))
    for key in _keyset_from_published_jwks(service):
        assert key.thumbprint() == key.kid


def test_a_token_joserfc_signs_in_our_profile_verifies_with_us():
    private_jwk: dict[str, str | list[str]] = {
        **KEY_A.public.jwk(),
        "d": b64url_encode(ed25519_private_raw(KEY_A.private_key)),
    }
    key = OKPKey.import_key(private_jwk)
    token = jwt.encode(
        {"alg": "EdDSA", "typ": "at+jwt", "kid": KEY_A.kid},
        claims_for(sub="carol"),
        key,
        algorithms=["EdDSA"],
    )
    claims = make_service(clock=FakeClock()).verify(token)
    assert claims.sub == "carol"
