"""The device side's one room for ``cryptography.hazmat``.

Every other module in ``client_sim`` reaches low-level primitives through
the functions here.  Each function wraps exactly one primitive, states its
size limits, and says why it is safe to call the way it is (nonce policy,
contributory-DH check, work-factor bounds).  Nothing here invents a
primitive; everything composes what ``cryptography`` provides.
"""

from __future__ import annotations

import hashlib as _id_hashlib
import secrets as _id_secrets

from cryptography.exceptions import InvalidSignature as InvalidSignature
from cryptography.exceptions import InvalidTag as InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hashes as _id_hashes
from cryptography.hazmat.primitives.asymmetric import (
    ed25519 as _id_ed25519,
)
from cryptography.hazmat.primitives.asymmetric import mlkem as _id_mlkem
from cryptography.hazmat.primitives.asymmetric import x25519 as _id_x25519
from cryptography.hazmat.primitives.ciphers.aead import (
    ChaCha20Poly1305 as _IdChaCha20Poly1305,
)
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.hkdf import HKDF as _IdHKDF

# --- password derivation (Argon2id, HKDF) -------------------------------------


def argon2id(
    secret: bytes, *, salt: bytes, memory_kib: int, iterations: int, lanes: int, length: int
) -> bytes:
    """Argon2id (RFC 9106) of ``secret``.

    The caller range-checks the work factors (``client_sim.passwords``) before
    calling: this wrapper only refuses what RFC 9106 itself forbids, so a
    hostile parameter set from a backup file is stopped before it gets here.
    """
    return Argon2id(
        salt=salt,
        length=length,
        iterations=iterations,
        lanes=lanes,
        memory_cost=memory_kib,
    ).derive(secret)


def hkdf_sha256_derive(ikm: bytes, *, salt: bytes | None, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869) extract-and-expand.

    Distinct ``info`` labels give independent keys from one input, which is
    how one Argon2id output becomes a login key and a backup key that reveal
    nothing about each other.
    """
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


# --- identity, signatures and data at rest ---
#
# Owned by the device-identity code (client_sim.identity, .sealed, .keystore,
# .backup).  Keys cross this boundary as raw bytes so that callers never hold
# a ``cryptography`` key object and so that secret-holding types can control
# their own ``repr``.  A few functions overlap with the age section above
# (X25519 public keys, the ML-KEM-768+X25519 seed expansion, HKDF and
# ChaCha20-Poly1305); they carry distinct names and can be merged into it.


ED25519_SEED_SIZE = 32
ED25519_PUBLIC_KEY_SIZE = 32
ED25519_SIGNATURE_BYTES = 64
X25519_SECRET_SIZE = 32
X25519_PUBLIC_KEY_SIZE = 32
PQ_HYBRID_SEED_SIZE = 32
MLKEM768_ENCAPSULATION_KEY_SIZE = 1184
PQ_HYBRID_PUBLIC_KEY_SIZE = MLKEM768_ENCAPSULATION_KEY_SIZE + X25519_PUBLIC_KEY_SIZE
AT_REST_KEY_SIZE = 32
AT_REST_NONCE_SIZE = 32
AT_REST_TAG_SIZE = 16
# ChaCha20-Poly1305 limits one message to 2^38 - 64 bytes; everything sealed
# at rest here (keystores, backups) is a few hundred KiB, so a far smaller cap
# catches a corrupted length long before the primitive would.
AT_REST_MAX_PLAINTEXT = 64 * 1024 * 1024


def id_random_bytes(n: int) -> bytes:
    """``n`` bytes from the OS CSPRNG (every key, seed and nonce on the device)."""
    return _id_secrets.token_bytes(n)


def ed25519_public_key_of(seed: bytes) -> bytes:
    """The 32-byte public key of the Ed25519 private key whose RFC 8032 seed is ``seed``.

    Any 32 bytes are a valid seed (RFC 8032 §5.1.5 hashes it), so a seed from
    the CSPRNG needs no further checks.

    Raises:
        ValueError: ``seed`` is not 32 bytes.
    """
    if len(seed) != ED25519_SEED_SIZE:
        raise ValueError("Ed25519 seeds are 32 bytes")
    key = _id_ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    return key.public_key().public_bytes_raw()


def ed25519_sign_with_seed(seed: bytes, message: bytes) -> bytes:
    """Sign ``message`` with the Ed25519 key whose seed is ``seed``.

    RFC 8032 signing is deterministic: the same key and message always give
    the same 64 bytes, which is what lets the vector generator reproduce its
    output and means no nonce can be reused or leaked through a weak RNG.

    Raises:
        ValueError: ``seed`` is not 32 bytes.
    """
    if len(seed) != ED25519_SEED_SIZE:
        raise ValueError("Ed25519 seeds are 32 bytes")
    return _id_ed25519.Ed25519PrivateKey.from_private_bytes(seed).sign(message)


def ed25519_verify_raw(public_key: bytes, signature: bytes, message: bytes) -> None:
    """Verify an Ed25519 signature given the raw 32-byte public key.

    OpenSSL verifies strictly (RFC 8032 §5.1.7): ``S`` must be below the group
    order and ``R`` a canonical point encoding, so a valid signature has no
    second valid encoding (the Wycheproof malleability vectors check this at
    this wrapper).  Lengths are checked here first so a truncated or padded
    signature never reaches the primitive.

    Raises:
        InvalidSignature: wrong lengths, an unusable public key, or the
            signature does not verify.
    """
    if len(public_key) != ED25519_PUBLIC_KEY_SIZE or len(signature) != ED25519_SIGNATURE_BYTES:
        raise InvalidSignature("Ed25519 keys are 32 bytes and signatures 64 bytes")
    try:
        key = _id_ed25519.Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as exc:
        raise InvalidSignature("not an Ed25519 public key") from exc
    key.verify(signature, message)


def x25519_public_key_of(secret: bytes) -> bytes:
    """The X25519 public key (RFC 7748 ``X25519(secret, 9)``) of a 32-byte secret.

    Raises:
        ValueError: ``secret`` is not 32 bytes.
    """
    if len(secret) != X25519_SECRET_SIZE:
        raise ValueError("X25519 secrets are 32 bytes")
    key = _id_x25519.X25519PrivateKey.from_private_bytes(secret)
    return key.public_key().public_bytes_raw()


def pq_hybrid_public_key_of(seed: bytes) -> bytes:
    """The MLKEM768-X25519 public key of a 32-byte age PQ identity seed.

    This is ``PrivateKeyToPublicKey`` of the MLKEM768-X25519 HPKE KEM (HPKE KEM
    0x647a, the same construction as X-Wing) that age's ``age1pq1`` recipients
    encode: the seed expands with SHAKE256 into 96 bytes, the first 64 are the
    FIPS 203 ML-KEM-768 ``(d, z)`` seed and the last 32 the X25519 scalar, and
    the public key is the 1184-byte ML-KEM encapsulation key followed by the
    32-byte X25519 public key (1216 bytes).  The layout is checked against the
    example key pair of the C2SP age specification in the vector tests.

    Raises:
        ValueError: ``seed`` is not 32 bytes.
    """
    if len(seed) != PQ_HYBRID_SEED_SIZE:
        raise ValueError("ML-KEM-768+X25519 seeds are 32 bytes")
    expanded = _id_hashlib.shake_256(seed).digest(96)
    mlkem_key = _id_mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
    x25519_key = _id_x25519.X25519PrivateKey.from_private_bytes(expanded[64:])
    return mlkem_key.public_key().public_bytes_raw() + x25519_key.public_key().public_bytes_raw()


def _at_rest_cipher(key: bytes, nonce: bytes, label: bytes) -> _IdChaCha20Poly1305:
    if len(key) != AT_REST_KEY_SIZE:
        raise ValueError("at-rest keys are 32 bytes")
    if len(nonce) != AT_REST_NONCE_SIZE:
        raise ValueError("at-rest nonces are 32 bytes")
    if not label:
        raise ValueError("at-rest encryption needs a domain-separation label")
    subkey = _IdHKDF(algorithm=_id_hashes.SHA256(), length=32, salt=nonce, info=label).derive(key)
    return _IdChaCha20Poly1305(subkey)


# One fixed ChaCha20-Poly1305 nonce is safe below because every message gets
# its own subkey: HKDF-SHA-256(key, salt = 32 random bytes, info = label).
# Two messages collide only if their 256-bit random nonces do, which unlike a
# random 96-bit AEAD nonce stays negligible however many times a keystore is
# rewritten.  It is the construction age uses for its payload key.
_AT_REST_AEAD_NONCE = bytes(12)


def at_rest_seal(key: bytes, nonce: bytes, label: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt data at rest: ChaCha20-Poly1305 under a per-message HKDF subkey.

    Args:
        key: the 32-byte long-term key (device key or backup key).
        nonce: 32 fresh random bytes (``id_random_bytes``); it salts the subkey
            and must be stored next to the ciphertext.
        label: a ``sealbox/v1/...`` label that separates uses of one key.
        plaintext: at most ``AT_REST_MAX_PLAINTEXT`` bytes.
        aad: authenticated cleartext (the file header).

    Returns:
        The ciphertext followed by the 16-byte Poly1305 tag.

    Raises:
        ValueError: a size is wrong or the label is empty.
    """
    if len(plaintext) > AT_REST_MAX_PLAINTEXT:
        raise ValueError("plaintext too large for at-rest encryption")
    return _at_rest_cipher(key, nonce, label).encrypt(_AT_REST_AEAD_NONCE, plaintext, aad)


def at_rest_open(key: bytes, nonce: bytes, label: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """Decrypt what :func:`at_rest_seal` produced.

    Raises:
        InvalidTag: wrong key, label or AAD, or any modified byte.
        ValueError: a key, nonce or label has the wrong size.
    """
    if not AT_REST_TAG_SIZE <= len(ciphertext) <= AT_REST_MAX_PLAINTEXT + AT_REST_TAG_SIZE:
        raise InvalidTag()
    return _at_rest_cipher(key, nonce, label).decrypt(_AT_REST_AEAD_NONCE, ciphertext, aad)
