"""The app signing key as stored in Secrets Manager: one format, parsed strictly.

The app key signs access tokens (DESIGN §3).  It lives only in Secrets
Manager and in backend memory (DESIGN invariant 3).  Each version of the
secret holds one Ed25519 key as a JSON object in ``SecretString``::

    {
      "v": 1,                      # format version; anything else is refused
      "kid": "<43 chars>",         # RFC 7638 thumbprint of the public key
      "alg": "EdDSA",
      "crv": "Ed25519",
      "x": "<43 chars>",           # public key, base64url (32 bytes)
      "d": "<43 chars>",           # RFC 8032 private seed, base64url (32 bytes)
      "created_at": 1767225600,    # Unix seconds, integer
      "rotation": "<token>"        # optional: the rotation that generated it
    }

``rotation`` binds a key made by the rotation function to that rotation: it
is the ``ClientRequestToken`` (the pending version's id) of the rotation
whose ``createSecret`` step generated the key, 32-64 characters of
``[A-Za-z0-9-]``.  The first key of a stage (seeded directly) has none.  The
rotation steps promote only a pending key that names their own token, so a
value planted on the pending version (an old or leaked key, a copy of the
current one) is never made current.

Parsing MUST reject: anything that is not a JSON object of exactly these
members (``rotation`` may be absent), duplicate members, a ``rotation`` of
another shape, another ``v``/``alg``/``crv``, a ``d`` or ``x``
that is not canonical unpadded base64url of 32 bytes, an ``x`` that is not the
public key of ``d``, a ``kid`` that is not the thumbprint of ``x``, and a
``created_at`` that is not a non-negative integer.  ``x`` and ``kid`` are
redundant on purpose: a secret edited by hand (or truncated) fails loudly
instead of signing with one key while advertising another.

This module is pure (no boto3): the key ring, the rotation handler and the
local-stack seeding all use it.  It sits in ``wire`` because it is a
serialized format with MUST-reject rules, although only the backend reads it.

Nothing here ever puts secret material in an exception message or a
``repr``: :class:`AppKey` prints its ``kid`` only, and parse errors name the
member at fault, never its value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

from chalicelib.crypto import (
    ED25519_KEY_SIZE,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    ed25519_generate,
    ed25519_private_from_raw,
    ed25519_private_raw,
    ed25519_public_raw,
    timing_safe_equal,
)
from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.jwk import JWK_ALG, JWK_CRV, ed25519_jwk_thumbprint, ed25519_public_jwk
from chalicelib.wire.strictjson import StrictJSONError, loads_strict

__all__ = [
    "APP_KEY_SECRET_VERSION",
    "MAX_APP_KEY_SECRET_LENGTH",
    "AppKey",
    "AppPublicKey",
    "MalformedAppKeySecret",
    "encode_app_key_secret",
    "new_app_key_secret",
    "parse_app_key_secret",
    "parse_app_key_secret_with_rotation",
]

APP_KEY_SECRET_VERSION: Final = 1
# A well-formed secret is about 200 characters; the bound keeps a corrupted
# or hostile value from reaching the JSON parser at any size.
MAX_APP_KEY_SECRET_LENGTH: Final = 1024
_MEMBERS: Final = frozenset({"v", "kid", "alg", "crv", "x", "d", "created_at"})
_OPTIONAL: Final = frozenset({"rotation"})
# Secrets Manager's ClientRequestToken: 32 to 64 characters.
_ROTATION_RE: Final = re.compile(r"[A-Za-z0-9-]{32,64}")


class MalformedAppKeySecret(ValueError):
    """A secret value is not a valid app key.

    The message names the member at fault and never includes any part of
    the value.
    """


@dataclass(frozen=True, eq=False)
class AppPublicKey:
    """The public half of an app key: what verifiers and the JWKS need.

    ``retired_at`` (Unix seconds) is set on the *previous* key only: when it
    stopped being current.  Verifiers accept its tokens only if they were
    issued by then (plus a stated grace), and drop the key once the longest
    token lifetime has passed (``docs/access-tokens.md``).
    """

    kid: str
    public_key: Ed25519PublicKey = field(repr=False)
    x: bytes = field(repr=False)
    retired_at: int | None = None

    def jwk(self) -> dict[str, str]:
        """This key as a public JWK (``kty=OKP``, ``use=sig``, ``alg=EdDSA``)."""
        return ed25519_public_jwk(self.x, kid=self.kid)


@dataclass(frozen=True, eq=False, repr=False)
class AppKey:
    """One app signing key: the private key, its public half and its ``kid``.

    ``repr`` (and so ``str``) shows the ``kid`` only.  Build one with
    :meth:`from_seed`, :meth:`generate` or :func:`parse_app_key_secret`.
    """

    public: AppPublicKey
    private_key: Ed25519PrivateKey
    created_at: int

    @property
    def kid(self) -> str:
        """RFC 7638 thumbprint of the public key."""
        return self.public.kid

    def __repr__(self) -> str:
        return f"AppKey(kid={self.kid!r})"

    @classmethod
    def from_seed(cls, seed: bytes, *, created_at: int) -> AppKey:
        """The deterministic twin of :meth:`generate`: a key from a 32-byte seed.

        Raises:
            ValueError: ``seed`` is not 32 bytes or ``created_at`` is negative.
        """
        if isinstance(created_at, bool) or not isinstance(created_at, int) or created_at < 0:
            raise ValueError("created_at must be a non-negative integer")
        private_key = ed25519_private_from_raw(seed)
        return cls._from_private(private_key, created_at)

    @classmethod
    def generate(cls, *, created_at: int) -> AppKey:
        """A fresh key from the OS CSPRNG.

        Raises:
            ValueError: ``created_at`` is negative.
        """
        if isinstance(created_at, bool) or not isinstance(created_at, int) or created_at < 0:
            raise ValueError("created_at must be a non-negative integer")
        return cls._from_private(ed25519_generate(), created_at)

    @classmethod
    def _from_private(cls, private_key: Ed25519PrivateKey, created_at: int) -> AppKey:
        public_key = private_key.public_key()
        x = ed25519_public_raw(public_key)
        public = AppPublicKey(kid=ed25519_jwk_thumbprint(x), public_key=public_key, x=x)
        return cls(public=public, private_key=private_key, created_at=created_at)


def encode_app_key_secret(key: AppKey, *, rotation: str | None = None) -> str:
    """Serialize ``key`` into the ``SecretString`` format described above.

    Raises:
        ValueError: ``rotation`` is not a rotation token.
    """
    document: dict[str, Any] = {
        "v": APP_KEY_SECRET_VERSION,
        "kid": key.kid,
        "alg": JWK_ALG,
        "crv": JWK_CRV,
        "x": b64url_encode(key.public.x),
        "d": b64url_encode(ed25519_private_raw(key.private_key)),
        "created_at": key.created_at,
    }
    if rotation is not None:
        if not _ROTATION_RE.fullmatch(rotation):
            raise ValueError("rotation must be a 32-64 character rotation token")
        document["rotation"] = rotation
    return json.dumps(document, separators=(",", ":"))


def new_app_key_secret(now: float, *, rotation: str | None = None) -> str:
    """A fresh Ed25519 app key, serialized, created at Unix time ``now``,
    bound to ``rotation`` (the token of the rotation generating it) if given.

    Raises:
        ValueError: ``now`` is negative, or ``rotation`` is not a token.
    """
    return encode_app_key_secret(AppKey.generate(created_at=int(now)), rotation=rotation)


def _member_b64(obj: dict[str, Any], name: str) -> bytes:
    value = obj[name]
    try:
        raw = b64url_decode(value, max_len=ED25519_KEY_SIZE)
    except ValueError:
        raise MalformedAppKeySecret(f"app key member {name!r} is not base64url") from None
    if len(raw) != ED25519_KEY_SIZE:
        raise MalformedAppKeySecret(f"app key member {name!r} must encode 32 bytes")
    return raw


def parse_app_key_secret(secret: str) -> AppKey:
    """Parse and check one ``SecretString`` value (see the module docstring).

    Raises:
        MalformedAppKeySecret: for every deviation from the format.  Raised
            ``from None`` so that no chained exception keeps a reference to
            the secret text.
    """
    return parse_app_key_secret_with_rotation(secret)[0]


def parse_app_key_secret_with_rotation(secret: str) -> tuple[AppKey, str | None]:
    """:func:`parse_app_key_secret`, and the ``rotation`` member (None if absent).

    Raises:
        MalformedAppKeySecret: as :func:`parse_app_key_secret`.
    """
    if not isinstance(secret, str):
        raise MalformedAppKeySecret("app key secret must be a string")
    if len(secret) > MAX_APP_KEY_SECRET_LENGTH:
        raise MalformedAppKeySecret("app key secret is too long")
    try:
        obj = loads_strict(secret)
    except StrictJSONError:
        raise MalformedAppKeySecret("app key secret is not strict JSON") from None
    if not isinstance(obj, dict):
        raise MalformedAppKeySecret("app key secret must be a JSON object")
    if not _MEMBERS <= set(obj) <= _MEMBERS | _OPTIONAL:
        # Names only: an unexpected member's *name* could be anything, so
        # the message lists what is expected rather than what was found.
        raise MalformedAppKeySecret(
            "app key secret must have exactly the members "
            + ",".join(sorted(_MEMBERS))
            + " (and optionally rotation)"
        )
    rotation = obj.get("rotation")
    if "rotation" in obj and (
        not isinstance(rotation, str) or not _ROTATION_RE.fullmatch(rotation)
    ):
        raise MalformedAppKeySecret("app key member 'rotation' must be a rotation token")
    version = obj["v"]
    if isinstance(version, bool) or version != APP_KEY_SECRET_VERSION:
        raise MalformedAppKeySecret("unsupported app key secret version")
    if obj["alg"] != JWK_ALG:
        raise MalformedAppKeySecret("app key member 'alg' must be EdDSA")
    if obj["crv"] != JWK_CRV:
        raise MalformedAppKeySecret("app key member 'crv' must be Ed25519")
    created_at = obj["created_at"]
    if isinstance(created_at, bool) or not isinstance(created_at, int) or created_at < 0:
        raise MalformedAppKeySecret("app key member 'created_at' must be a non-negative integer")

    seed = _member_b64(obj, "d")
    x = _member_b64(obj, "x")
    key = AppKey.from_seed(seed, created_at=created_at)
    # The stored public key must be the one ``d`` derives; compare in
    # constant time out of habit (it is public, but it sits next to ``d``).
    if not timing_safe_equal(key.public.x, x):
        raise MalformedAppKeySecret("app key member 'x' does not match 'd'")
    if not isinstance(obj["kid"], str) or not timing_safe_equal(
        obj["kid"].encode("utf-8", "surrogatepass"), key.kid.encode("ascii")
    ):
        raise MalformedAppKeySecret("app key member 'kid' is not the RFC 7638 thumbprint of 'x'")
    return key, rotation
