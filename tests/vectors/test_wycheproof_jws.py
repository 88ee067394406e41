"""Wycheproof JSON Web Signature vectors against our verifier.

Which groups apply: our verifier accepts one algorithm, EdDSA over Ed25519
(OKP) keys.  Wycheproof's ``json_web_signature_test.json`` has no OKP group
at all (HS256, ES256/ES512, RS*/PS* and key-misuse groups only), so:

* ``test_file_has_no_eddsa_groups`` pins that finding -- if a future copy of
  the file adds Ed25519 groups, it fails, and those vectors must be run here
  with their expected results;
* every one of the file's vectors, valid or invalid, MUST be refused by
  ``TokenService.verify`` -- even with a ring that answers any ``kid`` -- and
  by the PyJWT signature layer configured as we configure it
  (``algorithms=["EdDSA"]``) even when handed the vector's own key;
* as a control that those refusals come from the algorithm allow-list and
  not from a broken harness, the "valid" vectors do verify with PyJWT when
  their own algorithm is allowed.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import jwt
import pytest
from jwt.algorithms import get_default_algorithms

from chalicelib.errors import Unauthorized
from chalicelib.services.tokens import ALGORITHM
from tests.conftest import VECTORS
from tests.support.tokens import KEY_A, make_service

FILE = VECTORS / "wycheproof" / "json_web_signature_test.json"
DATA: dict[str, Any] = json.loads(FILE.read_text())

# Wycheproof marks these "valid" (a lenient base64 decoder may skip the
# inserted '?'); PyJWT decodes base64url strictly and refuses them, as do we.
STRICT_BASE64_REFUSALS = {"InvalidCharacterInsertedInHeader", "InvalidCharacterInsertedInPayload"}


def _vectors() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    out = []
    for index, group in enumerate(DATA["testGroups"]):
        jwk = group.get("public") or group["private"]
        for test in group["tests"]:
            out.append((f"g{index}-{group['comment']}-tc{test['tcId']}", jwk, test))
    return out


VECTORS_ALL = _vectors()


class AnyKidRing:
    """A ring that answers every kid with our key, so the kid check can't be
    what refuses the vectors."""

    def signing_key(self):
        return KEY_A

    def verification_key(self, kid):
        return KEY_A.public

    def verification_keys(self):
        return [KEY_A.public]


def test_counts():
    results = Counter(test["result"] for _, _, test in VECTORS_ALL)
    assert len(VECTORS_ALL) == DATA["numberOfTests"] == 401
    assert results == {"valid": 46, "invalid": 355}


def test_file_has_no_eddsa_groups():
    key_types = {
        (group.get("public") or group["private"]).get("kty") for group in DATA["testGroups"]
    }
    assert "OKP" not in key_types
    assert key_types == {"oct", "EC", "RSA"}


@pytest.mark.parametrize(
    ("jwk", "test"), [v[1:] for v in VECTORS_ALL], ids=[v[0] for v in VECTORS_ALL]
)
def test_our_verifier_refuses_every_vector(jwk, test):
    service = make_service(AnyKidRing())
    with pytest.raises(Unauthorized):
        service.verify(test["jws"])


# One algorithm per key family, only to reach that family's JWK loader.
_LOADER_BY_KTY = {"oct": "HS256", "EC": "ES256", "RSA": "RS256"}


def _vector_key(jwk: dict[str, Any]) -> Any:
    """The vector's own key as a PyJWT key object."""
    return get_default_algorithms()[_LOADER_BY_KTY[jwk["kty"]]].from_jwk(jwk)


def _header_alg(jws: str) -> str | None:
    try:
        alg = jwt.get_unverified_header(jws).get("alg")
    except jwt.PyJWTError:
        return None
    return alg if isinstance(alg, str) else None


@pytest.mark.parametrize(
    ("jwk", "test"), [v[1:] for v in VECTORS_ALL], ids=[v[0] for v in VECTORS_ALL]
)
def test_eddsa_only_signature_layer_refuses_every_vector(jwk, test):
    # Handed the vector's own key, and handed our Ed25519 key: both refused.
    for key in (_vector_key(jwk), KEY_A.public.public_key):
        with pytest.raises(jwt.PyJWTError):
            jwt.PyJWS().decode_complete(test["jws"], key=key, algorithms=[ALGORITHM])


VALID = [v for v in VECTORS_ALL if v[2]["result"] == "valid"]


@pytest.mark.parametrize(("jwk", "test"), [v[1:] for v in VALID], ids=[v[0] for v in VALID])
def test_control_valid_vectors_verify_under_their_own_algorithm(jwk, test):
    if test["comment"] in STRICT_BASE64_REFUSALS:
        with pytest.raises(jwt.DecodeError):
            jwt.PyJWS().decode_complete(test["jws"], key=_vector_key(jwk), algorithms=[jwk["alg"]])
        return
    alg = _header_alg(test["jws"])
    assert alg is not None
    decoded = jwt.PyJWS().decode_complete(test["jws"], key=_vector_key(jwk), algorithms=[alg])
    assert decoded["header"]["alg"] == alg
