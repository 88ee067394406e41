"""The backend's one room for ``cryptography.hazmat``.

The backend never encrypts or decrypts user data (DESIGN invariant 2).  It
needs exactly three primitives, each wrapped here with the reason it is used
the way it is:

* Ed25519 -- the app signing key (JWTs) and verifying devices' card
  self-signatures.
* Argon2id -- hashing the login key a device derived from its password.
* SHA-256 and the OS CSPRNG -- refresh-token digests and random identifiers.

One more group, for the OPRF that hardens passwords (``chalicelib.wire.oprf``,
shared with the device): ristretto255 scalar and element arithmetic, from
libsodium through PyNaCl, because ``cryptography`` has no prime-order group
with hash-to-curve, and PyNaCl's libsodium is built without it.  Only this
module imports ``rbcl``, and only on first use (it costs ~0.2 s to import,
which no route but the OPRF's should pay at cold start).

Everything else in ``chalicelib`` calls these functions instead of importing
``cryptography.hazmat`` or ``rbcl`` (ruff's TID251 enforces it).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from types import ModuleType

from cryptography.exceptions import InvalidKey, InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

__all__ = [
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "InvalidSignature",
    "argon2id_hash",
    "argon2id_needs_rehash",
    "argon2id_verify",
    "ed25519_generate",
    "ed25519_private_from_raw",
    "ed25519_private_raw",
    "ed25519_public_from_raw",
    "ed25519_public_raw",
    "ed25519_verify",
    "random_bytes",
    "ristretto_add",
    "ristretto_from_uniform",
    "ristretto_is_valid",
    "ristretto_mul",
    "ristretto_mul_base",
    "scalar_from_wide",
    "scalar_invert",
    "scalar_is_canonical",
    "scalar_mul",
    "scalar_random",
    "scalar_sub",
    "sha256",
    "sha256_hasher",
    "timing_safe_equal",
]

ED25519_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
ARGON2_SALT_SIZE = 16
ARGON2_HASH_SIZE = 32


# --- randomness and digests -------------------------------------------------


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the OS CSPRNG (``secrets`` wraps ``os.urandom``)."""
    return secrets.token_bytes(n)


def sha256(data: bytes) -> bytes:
    """SHA-256 digest.  Used for refresh-token lookup keys: the tokens are 256
    random bits, so a fast unsalted hash is enough to make a leaked table
    useless (no password-style stretching needed)."""
    return hashlib.sha256(data).digest()


def sha256_hasher() -> hashlib._Hash:
    """A streaming SHA-256 (``update`` / ``hexdigest``).  Used to fingerprint
    rejected uploads in bounded memory, so an operator can later prove what
    was rejected without the server keeping the bytes."""
    return hashlib.sha256()


def timing_safe_equal(a: bytes, b: bytes) -> bool:
    """Compare secrets without a data-dependent early exit."""
    return hmac.compare_digest(a, b)


# --- Ed25519 ------------------------------------------------------------------


def ed25519_generate() -> Ed25519PrivateKey:
    """A fresh Ed25519 key from the OS CSPRNG."""
    return Ed25519PrivateKey.generate()


def ed25519_private_from_raw(seed: bytes) -> Ed25519PrivateKey:
    """Load a private key from its 32-byte RFC 8032 seed.

    Raises:
        ValueError: ``seed`` is not 32 bytes.
    """
    if len(seed) != ED25519_KEY_SIZE:
        raise ValueError("Ed25519 private keys are 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def ed25519_private_raw(key: Ed25519PrivateKey) -> bytes:
    """The 32-byte seed of ``key`` (only for writing it to Secrets Manager)."""
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def ed25519_public_from_raw(raw: bytes) -> Ed25519PublicKey:
    """Load a public key from its 32-byte encoding.

    Raises:
        ValueError: ``raw`` is not 32 bytes or not a valid point encoding.
    """
    if len(raw) != ED25519_KEY_SIZE:
        raise ValueError("Ed25519 public keys are 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def ed25519_public_raw(key: Ed25519PublicKey) -> bytes:
    """The 32-byte encoding of ``key``."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ed25519_verify(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> None:
    """Verify an Ed25519 signature; raise if it does not verify.

    OpenSSL's Ed25519 is strict (RFC 8032 §5.1.7): it rejects a non-canonical
    ``S`` (>= L), so a valid signature can't be re-encoded into a second valid
    one.  The Wycheproof ed25519 file checks this at our wrapper.

    Raises:
        InvalidSignature: the signature is malformed or does not verify.
    """
    if len(signature) != ED25519_SIGNATURE_SIZE:
        raise InvalidSignature("Ed25519 signatures are 64 bytes")
    public_key.verify(signature, message)


# --- Argon2id -----------------------------------------------------------------


def argon2id_hash(secret: bytes, *, memory_kib: int, iterations: int, lanes: int) -> str:
    """Hash ``secret`` with Argon2id and a fresh 128-bit random salt.

    Returns the PHC string (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``),
    which records its own parameters so they can be raised later without
    invalidating stored hashes.
    """
    kdf = Argon2id(
        salt=random_bytes(ARGON2_SALT_SIZE),
        length=ARGON2_HASH_SIZE,
        iterations=iterations,
        lanes=lanes,
        memory_cost=memory_kib,
    )
    return kdf.derive_phc_encoded(secret)


def argon2id_verify(secret: bytes, phc: str) -> bool:
    """True when ``secret`` matches the PHC string ``phc``.

    The comparison inside ``cryptography`` is constant-time.  A malformed
    ``phc`` (a storage bug, never client input) counts as a mismatch.
    """
    try:
        Argon2id.verify_phc_encoded(secret, phc)
    except (InvalidKey, ValueError):
        return False
    return True


def argon2id_needs_rehash(phc: str, *, memory_kib: int, iterations: int, lanes: int) -> bool:
    """True when ``phc`` was made with weaker parameters than the ones given."""
    try:
        params = phc.split("$")[3]
        fields = dict(part.split("=", 1) for part in params.split(","))
        return (
            int(fields["m"]) < memory_kib
            or int(fields["t"]) < iterations
            or int(fields["p"]) < lanes
        )
    except (IndexError, KeyError, ValueError):
        return True


# --- ristretto255 (RFC 9496), for the OPRF --------------------------------------
#
# Elements and scalars travel as their 32-byte canonical encodings.  Every
# function refuses what it can't use instead of returning a neutral value:
# libsodium reports the identity element as an error on scalar
# multiplication, and RFC 9497 forbids serialising it anyway.

RISTRETTO_ELEMENT_SIZE = 32
RISTRETTO_SCALAR_SIZE = 32
RISTRETTO_UNIFORM_SIZE = 64
# The order of the ristretto255 group (RFC 9496 §4).
RISTRETTO_ORDER = 2**252 + 27742317777372353535851937790883648493
_IDENTITY = bytes(RISTRETTO_ELEMENT_SIZE)


@functools.cache
def _sodium() -> ModuleType:
    # Imported on first use: rbcl decodes and loads its bundled libsodium at
    # import (~0.2 s), a cost only the OPRF route should pay.
    import rbcl

    module: ModuleType = rbcl
    return module


class GroupError(ValueError):
    """An invalid element or scalar, or an operation that gave the identity."""


def ristretto_is_valid(element: bytes) -> bool:
    """True for a canonical encoding of a ristretto255 element other than the identity."""
    return (
        len(element) == RISTRETTO_ELEMENT_SIZE
        and element != _IDENTITY
        and bool(_sodium().crypto_core_ristretto255_is_valid_point(element))
    )


def ristretto_from_uniform(uniform: bytes) -> bytes:
    """The element of 64 uniform bytes: RFC 9496's one-way map (hash_to_ristretto255)."""
    if len(uniform) != RISTRETTO_UNIFORM_SIZE:
        raise ValueError("the one-way map takes 64 bytes")
    return bytes(_sodium().crypto_core_ristretto255_from_hash(uniform))


def ristretto_add(p: bytes, q: bytes) -> bytes:
    """``p + q``.

    Raises:
        GroupError: an input is not a valid element.
    """
    if not (ristretto_is_valid(p) and ristretto_is_valid(q)):
        raise GroupError("not a ristretto255 element")
    return bytes(_sodium().crypto_core_ristretto255_add(p, q))


def ristretto_mul(scalar: bytes, element: bytes) -> bytes:
    """``scalar * element``.

    Raises:
        GroupError: an invalid element, a non-canonical scalar, or the
            identity as the result (libsodium refuses it; a zero scalar).
    """
    if not ristretto_is_valid(element) or not scalar_is_canonical(scalar):
        raise GroupError("not a ristretto255 element or scalar")
    try:
        return bytes(_sodium().crypto_scalarmult_ristretto255(scalar, element))
    except RuntimeError as exc:  # rbcl reports libsodium refusing the identity so
        raise GroupError("the product is the identity element") from exc


def ristretto_mul_base(scalar: bytes) -> bytes:
    """``scalar * G`` for the ristretto255 generator.

    Raises:
        GroupError: a non-canonical or zero scalar.
    """
    if not scalar_is_canonical(scalar):
        raise GroupError("not a canonical ristretto255 scalar")
    try:
        return bytes(_sodium().crypto_scalarmult_ristretto255_base(scalar))
    except RuntimeError as exc:  # rbcl reports libsodium refusing the identity so
        raise GroupError("the product is the identity element") from exc


def scalar_is_canonical(scalar: bytes) -> bool:
    """True for 32 little-endian bytes encoding an integer below the group order."""
    return (
        len(scalar) == RISTRETTO_SCALAR_SIZE and int.from_bytes(scalar, "little") < RISTRETTO_ORDER
    )


def scalar_from_wide(wide: bytes) -> bytes:
    """64 little-endian bytes reduced modulo the group order (RFC 9497 HashToScalar's last step)."""
    if len(wide) != RISTRETTO_UNIFORM_SIZE:
        raise ValueError("wide scalars are 64 bytes")
    return bytes(_sodium().crypto_core_ristretto255_scalar_reduce(wide))


def scalar_random() -> bytes:
    """A uniformly random non-zero scalar from libsodium's CSPRNG."""
    while True:
        scalar = bytes(_sodium().crypto_core_ristretto255_scalar_random())
        if any(scalar):
            return scalar


def scalar_mul(a: bytes, b: bytes) -> bytes:
    """``a * b`` modulo the group order."""
    _check_scalars(a, b)
    return bytes(_sodium().crypto_core_ristretto255_scalar_mul(a, b))


def scalar_sub(a: bytes, b: bytes) -> bytes:
    """``a - b`` modulo the group order."""
    _check_scalars(a, b)
    return bytes(_sodium().crypto_core_ristretto255_scalar_sub(a, b))


def scalar_invert(a: bytes) -> bytes:
    """``1 / a`` modulo the group order.

    Raises:
        GroupError: ``a`` is zero or not canonical.
    """
    _check_scalars(a)
    if not any(a):
        raise GroupError("zero has no inverse")
    return bytes(_sodium().crypto_core_ristretto255_scalar_invert(a))


def _check_scalars(*scalars: bytes) -> None:
    if not all(scalar_is_canonical(scalar) for scalar in scalars):
        raise GroupError("not a canonical ristretto255 scalar")
