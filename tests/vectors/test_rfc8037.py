"""RFC 8037 Appendix A: the published Ed25519 JWS example, end to end.

Ed25519 is deterministic, so our key objects and PyJWT's EdDSA (as
TokenService configures it) must reproduce the RFC's signature byte for byte
and verify it.
"""

from __future__ import annotations

import jwt
import pytest

from chalicelib.crypto import random_bytes
from chalicelib.services.tokens import ALGORITHM
from chalicelib.wire.appkey import AppKey, encode_app_key_secret, parse_app_key_secret
from chalicelib.wire.b64 import b64url_decode, b64url_encode
from tests.unit.test_jwk import RFC8037_D, RFC8037_THUMBPRINT, RFC8037_X

PAYLOAD = b"Example of Ed25519 signing"
JWS = (
    "eyJhbGciOiJFZERTQSJ9"
    ".RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    ".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


@pytest.fixture
def key() -> AppKey:
    # Through the secret format, as the key ring loads it.
    key = AppKey.from_seed(b64url_decode(RFC8037_D), created_at=0)
    return parse_app_key_secret(encode_app_key_secret(key))


def test_key_and_thumbprint(key):
    assert b64url_encode(key.public.x) == RFC8037_X
    assert key.kid == RFC8037_THUMBPRINT


def test_signature_is_reproduced(key):
    # typ=None drops PyJWT's default "typ" so the header is exactly {"alg":"EdDSA"}.
    assert (
        jwt.PyJWS().encode(PAYLOAD, key.private_key, algorithm=ALGORITHM, headers={"typ": None})
        == JWS
    )


def test_signature_verifies(key):
    decoded = jwt.PyJWS().decode_complete(JWS, key=key.public.public_key, algorithms=[ALGORITHM])
    assert decoded["payload"] == PAYLOAD


def test_any_flipped_signature_bit_is_refused(key):
    header, payload, signature = JWS.split(".")
    raw = b64url_decode(signature)
    for i in (0, 31, 32, 63):  # R and S halves
        for bit in (0x01, 0x80):
            mutated = bytearray(raw)
            mutated[i] ^= bit
            token = f"{header}.{payload}.{b64url_encode(bytes(mutated))}"
            with pytest.raises(jwt.InvalidSignatureError):
                jwt.PyJWS().decode_complete(
                    token, key=key.public.public_key, algorithms=[ALGORITHM]
                )


def test_signature_with_s_plus_l_is_refused(key):
    # Malleability: S + L (the group order) is the same scalar mod L; RFC 8032
    # §5.1.7 requires S < L, and the verifier must hold to it.
    order = 2**252 + 27742317777372353535851937790883648493
    header, payload, signature = JWS.split(".")
    raw = b64url_decode(signature)
    s = int.from_bytes(raw[32:], "little") + order
    assert s < 2**256
    token = f"{header}.{payload}.{b64url_encode(raw[:32] + s.to_bytes(32, 'little'))}"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.PyJWS().decode_complete(token, key=key.public.public_key, algorithms=[ALGORITHM])


def test_a_random_key_does_not_verify_it():
    other = AppKey.from_seed(random_bytes(32), created_at=0)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.PyJWS().decode_complete(JWS, key=other.public.public_key, algorithms=[ALGORITHM])
