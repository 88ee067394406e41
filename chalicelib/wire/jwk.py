"""Ed25519 public keys as JSON Web Keys (RFC 8037) and their thumbprints.

Pure code: the backend publishes its app keys this way in
``/.well-known/jwks.json``, and a device (or any JOSE library) can verify
access tokens from that document alone.

A key's ``kid`` is its RFC 7638 thumbprint: SHA-256 over the required members
``crv``, ``kty`` and ``x`` in lexicographic order, no whitespace, base64url.
That makes the ``kid`` a pure function of the public key, so two different
keys can't share a ``kid`` and anyone can recompute it from the JWKS.
"""

from __future__ import annotations

import json
import re

from chalicelib.crypto import ED25519_KEY_SIZE, sha256
from chalicelib.wire.b64 import b64url_encode

__all__ = [
    "JWK_ALG",
    "JWK_CRV",
    "JWK_KTY",
    "THUMBPRINT_RE",
    "ed25519_jwk_thumbprint",
    "ed25519_public_jwk",
]

JWK_KTY = "OKP"
JWK_CRV = "Ed25519"
JWK_ALG = "EdDSA"

# A SHA-256 thumbprint is 32 bytes: 43 base64url characters, no padding.
THUMBPRINT_RE = re.compile(r"[A-Za-z0-9_-]{43}")


def _check_public(x: bytes) -> None:
    if not isinstance(x, bytes) or len(x) != ED25519_KEY_SIZE:
        raise ValueError("an Ed25519 public key is 32 bytes")


def ed25519_jwk_thumbprint(x: bytes) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of the Ed25519 public key ``x``.

    Raises:
        ValueError: ``x`` is not 32 bytes.
    """
    _check_public(x)
    # RFC 7638 §3.2: only the required members, lexicographic order, no
    # whitespace.  json.dumps with sort_keys and compact separators yields
    # exactly that for these ASCII-only values.
    canonical = json.dumps(
        {"crv": JWK_CRV, "kty": JWK_KTY, "x": b64url_encode(x)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return b64url_encode(sha256(canonical.encode("ascii")))


def ed25519_public_jwk(x: bytes, *, kid: str) -> dict[str, str]:
    """The public JWK for ``x`` as published in the JWKS document.

    ``use=sig`` and ``alg=EdDSA`` pin what the key is for, so a consumer that
    honours them can't be talked into using it for anything else.

    Raises:
        ValueError: ``x`` is not 32 bytes.
    """
    _check_public(x)
    return {
        "kty": JWK_KTY,
        "crv": JWK_CRV,
        "x": b64url_encode(x),
        "kid": kid,
        "use": "sig",
        "alg": JWK_ALG,
    }
