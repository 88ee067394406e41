"""JWK encoding and RFC 7638 thumbprints of Ed25519 keys."""

from __future__ import annotations

import pytest

from chalicelib.crypto import ed25519_private_from_raw, ed25519_public_raw
from chalicelib.wire.b64 import b64url_decode
from chalicelib.wire.jwk import THUMBPRINT_RE, ed25519_jwk_thumbprint, ed25519_public_jwk

# RFC 8037 Appendix A.1-A.3: an Ed25519 key and its RFC 7638 thumbprint.
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_rfc8037_public_key_derivation():
    private = ed25519_private_from_raw(b64url_decode(RFC8037_D))
    assert ed25519_public_raw(private.public_key()) == b64url_decode(RFC8037_X)


def test_rfc8037_thumbprint():
    assert ed25519_jwk_thumbprint(b64url_decode(RFC8037_X)) == RFC8037_THUMBPRINT
    assert THUMBPRINT_RE.fullmatch(RFC8037_THUMBPRINT)


def test_public_jwk_members():
    jwk = ed25519_public_jwk(b64url_decode(RFC8037_X), kid=RFC8037_THUMBPRINT)
    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": RFC8037_X,
        "kid": RFC8037_THUMBPRINT,
        "use": "sig",
        "alg": "EdDSA",
    }


@pytest.mark.parametrize("x", [b"", b"\x00" * 31, b"\x00" * 33])
def test_wrong_sizes_are_refused(x):
    with pytest.raises(ValueError, match="32 bytes"):
        ed25519_jwk_thumbprint(x)
    with pytest.raises(ValueError, match="32 bytes"):
        ed25519_public_jwk(x, kid="k")
