"""Known JWT attacks, one test each: every one is refused by TokenService.verify.

Each forged token is built by hand (tests.support.tokens.forge) from a
baseline that verifies -- ``test_baseline_forgery_verifies`` proves that -- so
each test changes exactly one thing and fails if that one thing is accepted.
Every rejection must be the same opaque ``Unauthorized``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from chalicelib.errors import Unauthorized
from chalicelib.services.tokens import MAX_TOKEN_LENGTH, StaticKeyRing, TokenService
from chalicelib.wire.b64 import b64url_decode, b64url_encode
from tests.support.tokens import (
    AUDIENCE,
    FOREIGN,
    ISSUER,
    KEY_A,
    KEY_B,
    T0,
    FakeClock,
    b64json,
    claims_for,
    forge,
    forge_hmac,
    header_for,
    make_service,
)


class CountingRing(StaticKeyRing):
    """A StaticKeyRing that counts key look-ups."""

    def __init__(self) -> None:
        super().__init__(KEY_A)
        self.lookups = 0

    def verification_key(self, kid: str):
        self.lookups += 1
        return super().verification_key(kid)


@pytest.fixture
def service() -> TokenService:
    return make_service(clock=FakeClock())


def assert_refused(service: TokenService, token: object) -> None:
    with pytest.raises(Unauthorized) as info:
        service.verify(token)
    # One generic answer for every failure.
    assert info.value.message == Unauthorized.default_message
    assert info.value.status == 401
    assert info.value.code == "invalid_token"


def test_baseline_forgery_verifies(service):
    claims = service.verify(forge(header_for(), claims_for()))
    assert claims.sub == "alice"
    assert claims.kid == KEY_A.kid


# --- algorithm confusion -------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_unsigned(service, alg):
    header = header_for(alg=alg)
    assert_refused(service, forge(header, claims_for(), key=None))
    # ... and with a junk signature segment, in case emptiness alone was caught.
    assert_refused(service, forge(header, claims_for(), key=None) + "AAAA")


def test_hs256_keyed_with_the_public_key_bytes(service):
    token = forge_hmac(header_for(alg="HS256"), claims_for(), KEY_A.public.x)
    assert_refused(service, token)


def test_hs256_keyed_with_the_public_jwk_json(service):
    jwk = KEY_A.public.jwk()
    for secret in (
        json.dumps(jwk).encode(),
        json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode(),
        json.dumps({"keys": [jwk]}).encode(),
    ):
        assert_refused(service, forge_hmac(header_for(alg="HS256"), claims_for(), secret))


def test_hs256_keyed_with_the_public_key_pem(service):
    pem = KEY_A.public.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert_refused(service, forge_hmac(header_for(alg="HS256"), claims_for(), pem))


@pytest.mark.parametrize("alg", ["Ed25519", "ES256", "RS256", "eddsa", "EdDSA "])
def test_other_alg_names_with_a_valid_eddsa_signature(service, alg):
    assert_refused(service, forge(header_for(alg=alg), claims_for()))


# --- signature -----------------------------------------------------------------


def test_stripped_signature(service):
    token = forge(header_for(), claims_for())
    header, payload, _ = token.split(".")
    assert_refused(service, f"{header}.{payload}.")
    assert_refused(service, f"{header}.{payload}")


def test_tampered_payload(service):
    token = forge(header_for(), claims_for(sub="alice"))
    header, _, signature = token.split(".")
    tampered = b64json(claims_for(sub="mallory"))
    assert_refused(service, f"{header}.{tampered}.{signature}")


def test_tampered_signature_bits(service):
    token = forge(header_for(), claims_for())
    header, payload, signature = token.split(".")
    raw = bytearray(b64url_decode(signature))
    raw[0] ^= 1
    assert_refused(service, f"{header}.{payload}.{b64url_encode(bytes(raw))}")


def test_non_canonical_signature_encoding(service):
    # 64 bytes -> 86 base64url characters whose last one carries 4 unused
    # bits.  Setting them gives a second spelling of the same signature; a
    # strict decoder must refuse it (one token, one string).
    token = forge(header_for(), claims_for())
    header, payload, signature = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    assert last & 0b1111 == 0
    respelled = signature[:-1] + alphabet[last | 0b0001]
    lenient = base64.urlsafe_b64decode(respelled + "==")
    assert lenient == b64url_decode(signature)
    assert_refused(service, f"{header}.{payload}.{respelled}")


def test_signed_by_a_foreign_key_reusing_a_known_kid(service):
    assert_refused(service, forge(header_for(KEY_A), claims_for(), key=FOREIGN))


def test_signed_by_the_previous_key_after_it_left_the_ring():
    ring = StaticKeyRing(KEY_B)  # KEY_A rotated out
    assert_refused(make_service(ring), forge(header_for(KEY_A), claims_for(), key=KEY_A))


# --- header ----------------------------------------------------------------------


def test_unknown_kid(service):
    # A valid signature by a key that is simply not ours, named honestly.
    assert_refused(service, forge(header_for(FOREIGN), claims_for(), key=FOREIGN))


def test_missing_kid(service):
    assert_refused(service, forge(header_for(kid=...), claims_for()))


@pytest.mark.parametrize("kid", ["", "../../etc/passwd", 7, None, ["x"], "A" * 44])
def test_malformed_kid(service, kid):
    assert_refused(service, forge(header_for(kid=kid), claims_for()))


@pytest.mark.parametrize("typ", ["JWT", "jwt", "AT+JWT", "application/at+jwt", "", None, 1])
def test_wrong_typ(service, typ):
    assert_refused(service, forge(header_for(typ=typ), claims_for()))


def test_missing_typ(service):
    assert_refused(service, forge(header_for(typ=...), claims_for()))


@pytest.mark.parametrize(
    "crit",
    [
        {"crit": ["b64"], "b64": True},
        {"crit": ["exp"], "exp": T0 + 60},
        {"crit": ["b64"]},
        {"crit": []},
        {"crit": "b64"},
        {"crit": ["sealbox"], "sealbox": 1},
    ],
    ids=["b64-present", "exp-present", "b64-absent", "empty", "not-a-list", "unknown"],
)
def test_crit_header(service, crit):
    # We implement no JWS extension, so any crit must be refused.  PyJWT
    # 2.15 on its own accepts {"crit": ["b64"], "b64": true} on a normal
    # token: the first case is refused by our header check, not by PyJWT.
    assert_refused(service, forge({**header_for(), **crit}, claims_for()))


@pytest.mark.parametrize(
    "extra",
    [
        {"jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(FOREIGN.public.x)}},
        {"jku": "https://attacker.invalid/jwks.json"},
        {"x5u": "https://attacker.invalid/cert.pem"},
        {"b64": True},
        {"zip": "DEF"},
        {"cty": "JWT"},
    ],
    ids=["jwk", "jku", "x5u", "b64", "zip", "cty"],
)
def test_extra_header_members(service, extra):
    assert_refused(service, forge({**header_for(), **extra}, claims_for()))


def test_embedded_jwk_with_its_own_signature(service):
    header = {**header_for(FOREIGN), "jwk": FOREIGN.public.jwk()}
    assert_refused(service, forge(header, claims_for(), key=FOREIGN))


def test_duplicate_header_members(service):
    # A lenient parser keeps the last "alg"; a strict one refuses outright.
    raw = '{"typ":"at+jwt","alg":"HS256","alg":"EdDSA","kid":"' + KEY_A.kid + '"}'
    assert_refused(service, forge(b64url_encode(raw.encode()), b64json(claims_for())))


# --- claims -------------------------------------------------------------------------


def test_expired(service):
    assert_refused(service, forge(header_for(), claims_for(now=T0 - 3600)))


def test_nbf_in_the_future(service):
    assert_refused(service, forge(header_for(), claims_for(nbf=T0 + 600)))


def test_iat_in_the_future(service):
    assert_refused(service, forge(header_for(), claims_for(iat=T0 + 600)))


@pytest.mark.parametrize("aud", ["urn:sealbox:prod:api", [AUDIENCE, "x"], [AUDIENCE], "", None])
def test_wrong_aud(service, aud):
    assert_refused(service, forge(header_for(), claims_for(aud=aud)))


@pytest.mark.parametrize("iss", ["urn:sealbox:prod", ISSUER + " ", "", None, [ISSUER]])
def test_wrong_iss(service, iss):
    assert_refused(service, forge(header_for(), claims_for(iss=iss)))


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "client_id", "iat", "nbf", "exp", "jti"])
def test_missing_claim(service, claim):
    removed: dict[str, Any] = {claim: ...}
    assert_refused(service, forge(header_for(), claims_for(**removed)))


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": str(T0 + 900)},
        {"exp": float(T0 + 900)},
        {"exp": True},
        {"iat": str(T0)},
        {"nbf": None},
        {"jti": 5},
        {"jti": "short"},
        {"client_id": "other-client"},
    ],
    ids=lambda changes: ",".join(f"{k}={v!r}" for k, v in changes.items()),
)
def test_claims_of_the_wrong_type_or_value(service, changes):
    assert_refused(service, forge(header_for(), claims_for(**changes)))


def test_lifetime_longer_than_twenty_minutes(service):
    assert_refused(service, forge(header_for(), claims_for(exp=T0 + 86400)))


@pytest.mark.parametrize(
    "sub",
    [
        "Alice",
        "ALICE",
        "alice\n",
        " alice",
        "ａｌｉｃｅ",
        "al",
        "a" * 65,
        "../admin",
        "al/ice",
        "",
        42,
    ],
)
def test_non_canonical_identity_in_sub(service, sub):
    assert_refused(service, forge(header_for(), claims_for(sub=sub)))


def test_duplicate_claims(service):
    # json.loads keeps the last "sub"; a token must not mean two things.
    payload = json.dumps(claims_for(sub="alice"), separators=(",", ":"))
    payload = payload[:-1] + ',"sub":"mallory"}'
    assert_refused(service, forge(b64json(header_for()), b64url_encode(payload.encode())))


def test_payload_not_an_object(service):
    assert_refused(service, forge(header_for(), b64url_encode(b'["alice"]')))


# --- encoding and size ---------------------------------------------------------------


def test_oversize_token_is_refused_before_parsing():
    ring = CountingRing()
    service = make_service(ring)
    big = forge(header_for(), claims_for(pad="x" * MAX_TOKEN_LENGTH))
    assert len(big) > MAX_TOKEN_LENGTH
    assert_refused(service, big)
    assert ring.lookups == 0
    # Huge input is refused just as cheaply.
    assert_refused(service, "a" * 10_000_000)
    assert ring.lookups == 0


def test_jws_json_serialization_instead_of_compact(service):
    header, payload, signature = forge(header_for(), claims_for()).split(".")
    flattened = {"protected": header, "payload": payload, "signature": signature}
    general = {"payload": payload, "signatures": [{"protected": header, "signature": signature}]}
    assert_refused(service, json.dumps(flattened))
    assert_refused(service, json.dumps(general))
    # With the kid in the unprotected header, where nothing signs it.
    flattened_unprotected = {**flattened, "header": {"kid": KEY_A.kid}}
    assert_refused(service, json.dumps(flattened_unprotected))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t + "\n",
        lambda t: " " + t,
        lambda t: t.replace(".", "=.", 1),
        lambda t: t + "==",
        lambda t: t + ".",
        lambda t: t + "." + t.split(".")[2],
        lambda t: "Bearer " + t,
    ],
    ids=[
        "newline",
        "leading-space",
        "padded-header",
        "padded-sig",
        "four-segments-empty",
        "four-segments",
        "scheme",
    ],
)
def test_mangled_compact_form(service, mangle: Callable[[str], str]):
    token = forge(header_for(), claims_for())
    assert_refused(service, mangle(token))


@pytest.mark.parametrize("token", [None, b"", 12, "", "a.b.c", "...", ["x"]])
def test_not_a_token_at_all(service, token):
    assert_refused(service, token)


def test_a_token_for_another_audience_issued_with_the_same_key():
    other = TokenService(StaticKeyRing(KEY_A), issuer=ISSUER, audience="urn:sealbox:other", ttl=900)
    token = other.issue("alice").access_token
    assert_refused(make_service(), token)


def test_plain_jwt_typ_signed_with_our_key(service):
    # A token PyJWT's default encoder makes (typ "JWT") with our key and
    # claims: the signature is fine, the type is not an access token.
    token = jwt.encode(
        claims_for(), KEY_A.private_key, algorithm="EdDSA", headers={"kid": KEY_A.kid}
    )
    assert_refused(service, token)
    assert (
        jwt.decode(
            token,
            KEY_A.public.public_key,
            algorithms=["EdDSA"],
            audience=AUDIENCE,
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )["sub"]
        == "alice"
    )
