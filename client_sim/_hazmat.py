"""The device side's one room for ``cryptography.hazmat``.

Every other module in ``client_sim`` reaches low-level primitives through
the functions here.  Each function wraps exactly one primitive, states its
size limits, and says why it is safe to call the way it is (nonce policy,
contributory-DH check, work-factor bounds).  Nothing here invents a
primitive; everything composes what ``cryptography`` provides.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# No serialization import: raw public bytes come from public_bytes_raw(), and
# the serialization package (PEM, SSH, PKCS#12) would add megabytes to the
# resident size of every `sealbox age` process.
#
# Only what a plain X25519 `sealbox age` needs is imported here.  HPKE,
# ML-KEM, Ed25519, scrypt and Argon2id are imported where they are used
# ("lazy" below): every module is start-up time of a `sealbox age` process
# (bench.age_throughput; tests/unit/test_cli_imports.py keeps them out).
if TYPE_CHECKING:
    from cryptography.hazmat.primitives import hpke

__all__ = [
    "AT_REST_KEY_SIZE",
    "AT_REST_MAX_PLAINTEXT",
    "AT_REST_NONCE_SIZE",
    "AT_REST_TAG_SIZE",
    "CHACHA20_POLY1305_KEY_SIZE",
    "CHACHA20_POLY1305_NONCE_SIZE",
    "CHACHA20_POLY1305_TAG_SIZE",
    "ED25519_PUBLIC_KEY_SIZE",
    "ED25519_SEED_SIZE",
    "ED25519_SIGNATURE_BYTES",
    "MLKEM768X25519_ENC_SIZE",
    "MLKEM768X25519_PUBLIC_KEY_SIZE",
    "MLKEM768X25519_SEED_SIZE",
    "MLKEM768_ENCAPSULATION_KEY_SIZE",
    "PQ_HYBRID_PUBLIC_KEY_SIZE",
    "PQ_HYBRID_SEED_SIZE",
    "SCRYPT_MAX_LOG_N",
    "X25519_KEY_SIZE",
    "X25519_PUBLIC_KEY_SIZE",
    "X25519_SECRET_SIZE",
    "ChaCha20Poly1305Key",
    "InvalidSignature",
    "InvalidTag",
    "LowOrderPoint",
    "MLKEM768X25519Private",
    "Rand",
    "argon2id",
    "at_rest_open",
    "at_rest_seal",
    "chacha20poly1305_open",
    "chacha20poly1305_seal",
    "ed25519_public_key_of",
    "ed25519_sign_with_seed",
    "ed25519_verify_raw",
    "hkdf_sha256",
    "hmac_sha256",
    "hmac_sha256_verify",
    "mlkem768x25519_from_seed",
    "mlkem768x25519_open",
    "mlkem768x25519_public_check",
    "mlkem768x25519_seal",
    "random_bytes",
    "scrypt_derive",
    "sha256",
    "shake256",
    "timing_safe_equal",
    "x25519_public_from_private",
    "x25519_shared_secret",
]

#: A source of random bytes: ``rand(n)`` returns exactly ``n`` bytes.  The
#: default is :func:`random_bytes`; tests pass a deterministic one so that
#: vectors are reproducible.
Rand = Callable[[int], bytes]


class LowOrderPoint(ValueError):
    """An X25519 exchange produced the all-zero shared secret.

    That happens exactly when the peer's point has small order, so the
    "shared" secret is known to anyone: the exchange is not contributory and
    must be refused (RFC 7748 §6.1, age's X25519 and hybrid stanzas).
    """


# --- randomness, digests, comparison ------------------------------------------


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the OS CSPRNG (``secrets`` wraps ``os.urandom``).

    Every key, file key, nonce and salt on the device comes from here unless a
    test injects a deterministic :data:`Rand` through a private seam.
    """
    return secrets.token_bytes(n)


def sha256(data: bytes) -> bytes:
    """SHA-256 digest (fingerprints of public keys; never a password hash)."""
    return hashlib.sha256(data).digest()


def shake256(data: bytes, length: int) -> bytes:
    """SHAKE256 output of ``length`` bytes.

    Used to expand a 32-byte hybrid KEM seed into the ML-KEM and X25519 seeds,
    exactly as the MLKEM768-X25519 KEM defines it; an XOF is the right tool
    because the output length is fixed by the KEM, not by a hash size.
    """
    return hashlib.shake_256(data).digest(length)


def timing_safe_equal(a: bytes, b: bytes) -> bool:
    """Compare MACs and secrets without a data-dependent early exit."""
    return hmac.compare_digest(a, b)


# --- HKDF-SHA-256 and HMAC-SHA-256 --------------------------------------------


def hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-Extract-then-Expand with SHA-256 (RFC 5869).

    ``salt=b""`` means the RFC's default salt (a block of zeros), which is what
    age's header key uses.  Every caller passes a distinct ``info`` label, so
    keys derived from the same input keying material never coincide.

    Raises:
        ValueError: ``length`` is outside 1..8160 (255 SHA-256 blocks).
    """
    if not 1 <= length <= 255 * 32:
        raise ValueError("HKDF-SHA256 output length must be 1..8160 bytes")
    # cryptography treats salt=None as the RFC default; b"" hashes to the same
    # PRK (HMAC pads keys with zeros), but None states the intent.
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info).derive(ikm)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA-256 of ``data`` (age's header MAC)."""
    mac = crypto_hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def hmac_sha256_verify(key: bytes, data: bytes, tag: bytes) -> bool:
    """True when ``tag`` is the HMAC-SHA-256 of ``data``; compared in constant time
    so a forger learns nothing from how long the comparison took."""
    return timing_safe_equal(hmac_sha256(key, data), tag)


# --- ChaCha20-Poly1305 ---------------------------------------------------------

CHACHA20_POLY1305_KEY_SIZE = 32
CHACHA20_POLY1305_NONCE_SIZE = 12
CHACHA20_POLY1305_TAG_SIZE = 16


def _chacha_args(key: bytes, nonce: bytes) -> ChaCha20Poly1305:
    if len(key) != CHACHA20_POLY1305_KEY_SIZE:
        raise ValueError("ChaCha20-Poly1305 keys are 32 bytes")
    if len(nonce) != CHACHA20_POLY1305_NONCE_SIZE:
        raise ValueError("ChaCha20-Poly1305 nonces are 12 bytes")
    return ChaCha20Poly1305(key)


def chacha20poly1305_seal(
    key: bytes, nonce: bytes, plaintext: bytes | bytearray | memoryview, aad: bytes | None = None
) -> bytes:
    """Encrypt and authenticate (RFC 8439); returns ciphertext || 16-byte tag.

    Nonce policy (the caller's contract): a nonce is never used twice with the
    same key.  age satisfies it structurally: stanza wrap keys are fresh per
    stanza (ephemeral DH or fresh salt) so the fixed all-zero nonce is used
    once per key, and the payload key is fresh per file (HKDF over a random
    16-byte nonce) with a chunk counter in the nonce.

    Raises:
        ValueError: wrong key or nonce size.
    """
    return _chacha_args(key, nonce).encrypt(nonce, plaintext, aad)


def chacha20poly1305_open(
    key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes | None = None
) -> bytes:
    """Check the tag and decrypt (RFC 8439).  Nothing is returned unless the
    whole ciphertext authenticates, so no unauthenticated plaintext escapes.

    Raises:
        InvalidTag: the ciphertext or ``aad`` was altered, or the key is wrong
            (also for inputs shorter than a tag).
        ValueError: wrong key or nonce size.
    """
    aead = _chacha_args(key, nonce)
    if len(ciphertext) < CHACHA20_POLY1305_TAG_SIZE:
        raise InvalidTag
    return aead.decrypt(nonce, ciphertext, aad)


class ChaCha20Poly1305Key:
    """One ChaCha20-Poly1305 key used for many messages (age's STREAM chunks).

    :func:`chacha20poly1305_seal` and :func:`chacha20poly1305_open` set the
    key up again for every call; a payload of 64 KiB chunks pays that per
    chunk, so the stream keeps one of these instead.  Same contracts as
    those functions: the caller never repeats a nonce under one key, and
    :meth:`open` returns nothing unless the whole ciphertext authenticates.
    The key lives only inside the cipher object; ``repr`` shows none of it.

    Raises:
        ValueError: (constructor) the key is not 32 bytes.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != CHACHA20_POLY1305_KEY_SIZE:
            raise ValueError("ChaCha20-Poly1305 keys are 32 bytes")
        self._aead = ChaCha20Poly1305(key)

    def __repr__(self) -> str:
        return "ChaCha20Poly1305Key(<secret>)"

    def seal(self, nonce: bytes, plaintext: bytes | bytearray | memoryview) -> bytes:
        """Ciphertext || 16-byte tag of ``plaintext`` under ``nonce`` (12 bytes).

        Raises:
            ValueError: wrong nonce size.
        """
        if len(nonce) != CHACHA20_POLY1305_NONCE_SIZE:
            raise ValueError("ChaCha20-Poly1305 nonces are 12 bytes")
        return self._aead.encrypt(nonce, plaintext, None)

    def seal_into(
        self, nonce: bytes, plaintext: bytes | bytearray | memoryview, out: memoryview
    ) -> None:
        """:meth:`seal` into ``out`` (exactly 16 bytes longer than ``plaintext``,
        not overlapping it): the age stream seals into the batches it writes,
        with no allocation and zero-fill per chunk.

        Raises:
            ValueError: wrong nonce size, or ``out`` is not exactly that size.
        """
        if len(nonce) != CHACHA20_POLY1305_NONCE_SIZE:
            raise ValueError("ChaCha20-Poly1305 nonces are 12 bytes")
        self._aead.encrypt_into(nonce, plaintext, None, out)

    def open(self, nonce: bytes, ciphertext: bytes | bytearray | memoryview) -> bytes:
        """The plaintext of ``ciphertext`` (with its tag), only if it authenticates.

        Raises:
            InvalidTag: altered ciphertext, wrong key or nonce, or shorter than a tag.
            ValueError: wrong nonce size.
        """
        if len(nonce) != CHACHA20_POLY1305_NONCE_SIZE:
            raise ValueError("ChaCha20-Poly1305 nonces are 12 bytes")
        if len(ciphertext) < CHACHA20_POLY1305_TAG_SIZE:
            raise InvalidTag
        return self._aead.decrypt(nonce, ciphertext, None)

    def open_into(
        self, nonce: bytes, ciphertext: bytes | bytearray | memoryview, out: memoryview
    ) -> int:
        """Decrypt ``ciphertext`` (with its tag) into ``out``; the plaintext length.

        ``out`` must hold at least ``len(ciphertext) - 16`` bytes.  Saves the
        allocation :meth:`open` makes for every chunk.  The decryption writes
        into ``out`` before the tag is checked, so when the tag fails those
        bytes are overwritten with zeros before :class:`InvalidTag` leaves
        here: ``out`` never keeps unauthenticated plaintext.

        Raises:
            InvalidTag: as for :meth:`open` (``out`` then holds zeros).
            ValueError: wrong nonce size, or ``out`` too small.
        """
        if len(nonce) != CHACHA20_POLY1305_NONCE_SIZE:
            raise ValueError("ChaCha20-Poly1305 nonces are 12 bytes")
        if len(ciphertext) < CHACHA20_POLY1305_TAG_SIZE:
            raise InvalidTag
        size = len(ciphertext) - CHACHA20_POLY1305_TAG_SIZE
        if len(out) < size:
            raise ValueError("output buffer too small")
        target = out[:size]
        try:
            return int(self._aead.decrypt_into(nonce, ciphertext, None, target))
        except InvalidTag:
            target[:] = bytes(size)
            raise


# --- X25519 -----------------------------------------------------------------------

X25519_KEY_SIZE = 32
_ALL_ZERO_32 = bytes(32)


def x25519_public_from_private(secret: bytes) -> bytes:
    """The public point ``X25519(secret, basepoint)`` (RFC 7748 §6.1).

    Any 32 bytes are a valid private key: clamping happens inside X25519.

    Raises:
        ValueError: ``secret`` is not 32 bytes.
    """
    if len(secret) != X25519_KEY_SIZE:
        raise ValueError("X25519 private keys are 32 bytes")
    key = x25519.X25519PrivateKey.from_private_bytes(secret)
    return key.public_key().public_bytes_raw()


def x25519_shared_secret(secret: bytes, peer_public: bytes) -> bytes:
    """``X25519(secret, peer_public)``, refusing non-contributory exchanges.

    A small-order peer point makes the output all zeros whatever our secret
    is; accepting it would let an attacker pick the "shared" key.  OpenSSL
    already fails such exchanges, and we check the output again ourselves in
    constant time so the guarantee does not rest on a backend detail.

    Raises:
        LowOrderPoint: the result is the all-zero value.
        ValueError: an input is not 32 bytes.
    """
    if len(secret) != X25519_KEY_SIZE or len(peer_public) != X25519_KEY_SIZE:
        raise ValueError("X25519 keys are 32 bytes")
    private = x25519.X25519PrivateKey.from_private_bytes(secret)
    public = x25519.X25519PublicKey.from_public_bytes(peer_public)
    try:
        shared = private.exchange(public)
    except ValueError:
        # OpenSSL's own all-zero check ("Error computing shared key").
        raise LowOrderPoint("X25519 peer point has small order") from None
    if timing_safe_equal(shared, _ALL_ZERO_32):
        raise LowOrderPoint("X25519 peer point has small order")
    return shared


# --- scrypt ---------------------------------------------------------------------

#: Hard ceiling for any scrypt work factor we compute, whatever a caller asks:
#: log2(N) = 30 with r = 8 needs 128 GiB of memory, already far beyond a device.
SCRYPT_MAX_LOG_N = 30


def scrypt_derive(
    passphrase: bytes, salt: bytes, *, log_n: int, max_log_n: int, r: int = 8, p: int = 1
) -> bytes:
    """scrypt (RFC 7914) with ``N = 2**log_n``; returns 32 bytes.

    Memory is ``128 * r * N`` bytes (256 MiB at log_n 18, 4 GiB at 22), so the
    caller must pass the largest work factor it is willing to spend:
    decrypting a hostile file must not be able to exhaust memory or time.

    Raises:
        ValueError: ``log_n`` is not in ``1..max_log_n`` or ``max_log_n``
            exceeds :data:`SCRYPT_MAX_LOG_N`.
    """
    if not 1 <= max_log_n <= SCRYPT_MAX_LOG_N:
        raise ValueError(f"scrypt maximum work factor must be 1..{SCRYPT_MAX_LOG_N}")
    if not 1 <= log_n <= max_log_n:
        raise ValueError(f"scrypt work factor must be 1..{max_log_n}")
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt  # lazy (see the imports)

    kdf = Scrypt(salt=salt, length=32, n=1 << log_n, r=r, p=p)
    return kdf.derive(passphrase)


# --- HPKE with the MLKEM768-X25519 hybrid KEM (0x647a) ------------------------------

MLKEM768X25519_SEED_SIZE = 32
_MLKEM768_SEED_SIZE = 64
_MLKEM768_PUBLIC_KEY_SIZE = 1184
_MLKEM768_CIPHERTEXT_SIZE = 1088
MLKEM768X25519_PUBLIC_KEY_SIZE = _MLKEM768_PUBLIC_KEY_SIZE + X25519_KEY_SIZE  # 1216
MLKEM768X25519_ENC_SIZE = _MLKEM768_CIPHERTEXT_SIZE + X25519_KEY_SIZE  # 1120


@functools.cache
def _hpke_suite() -> hpke.Suite:
    # The one HPKE suite the hybrid recipients use: KEM MLKEM768-X25519,
    # HKDF-SHA256, ChaCha20-Poly1305 (c2sp.org/age, "mlkem768x25519 recipient
    # stanza").  Built on first use: hpke is imported lazily (see the imports).
    from cryptography.hazmat.primitives import hpke

    return hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


class MLKEM768X25519Private:
    """A hybrid KEM private key expanded from its 32-byte seed.

    Holds the expanded key objects and the X25519 scalar (needed for the
    low-order check below).  ``repr`` shows nothing secret.
    """

    __slots__ = ("_key", "_x25519_secret", "public_bytes")

    def __init__(
        self, key: hpke.MLKEM768X25519PrivateKey, x25519_secret: bytes, public: bytes
    ) -> None:
        self._key = key
        self._x25519_secret = x25519_secret
        #: The 1216-byte encapsulation key: ML-KEM-768 key || X25519 point.
        self.public_bytes = public

    def __repr__(self) -> str:
        return "MLKEM768X25519Private(<secret>)"


def mlkem768x25519_from_seed(seed: bytes) -> MLKEM768X25519Private:
    """Expand a 32-byte seed into the hybrid key pair.

    ``cryptography`` has no seed constructor for the hybrid key, so we follow
    the KEM's definition (draft-ietf-hpke-pq MLKEM768-X25519, as in X-Wing):
    ``SHAKE256(seed, 96)`` gives the 64-byte ML-KEM-768 seed ``d || z``
    followed by the 32-byte X25519 private key.  The public key is the
    ML-KEM encapsulation key followed by the X25519 point.  Keeping only the
    seed as the identity means there is one canonical encoding of each key.

    Raises:
        ValueError: ``seed`` is not 32 bytes.
    """
    from cryptography.hazmat.primitives import hpke  # lazy (see the imports)
    from cryptography.hazmat.primitives.asymmetric import mlkem

    if len(seed) != MLKEM768X25519_SEED_SIZE:
        raise ValueError("MLKEM768-X25519 seeds are 32 bytes")
    expanded = shake256(seed, _MLKEM768_SEED_SIZE + X25519_KEY_SIZE)
    kem_key = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:_MLKEM768_SEED_SIZE])
    x_secret = expanded[_MLKEM768_SEED_SIZE:]
    x_key = x25519.X25519PrivateKey.from_private_bytes(x_secret)
    public = kem_key.public_key().public_bytes_raw() + x_key.public_key().public_bytes_raw()
    return MLKEM768X25519Private(hpke.MLKEM768X25519PrivateKey(kem_key, x_key), x_secret, public)


def _hybrid_public(public: bytes) -> hpke.MLKEM768X25519PublicKey:
    from cryptography.hazmat.primitives import hpke  # lazy (see the imports)
    from cryptography.hazmat.primitives.asymmetric import mlkem

    if len(public) != MLKEM768X25519_PUBLIC_KEY_SIZE:
        raise ValueError("MLKEM768-X25519 public keys are 1216 bytes")
    kem_part = mlkem.MLKEM768PublicKey.from_public_bytes(public[:_MLKEM768_PUBLIC_KEY_SIZE])
    x_part = x25519.X25519PublicKey.from_public_bytes(public[_MLKEM768_PUBLIC_KEY_SIZE:])
    return hpke.MLKEM768X25519PublicKey(kem_part, x_part)


def mlkem768x25519_public_check(public: bytes) -> None:
    """Check that ``public`` is a well-formed 1216-byte hybrid public key
    (ML-KEM-768 encapsulation key modulus check included).

    Raises:
        ValueError: it is not.
    """
    _hybrid_public(public)


def mlkem768x25519_seal(public: bytes, plaintext: bytes, *, info: bytes) -> tuple[bytes, bytes]:
    """HPKE SealBase to a hybrid public key with empty AAD; returns ``(enc, ct)``.

    HPKE draws a fresh encapsulation inside ``cryptography`` for every call,
    so each stanza gets its own key and the AEAD's sequence-0 nonce is never
    reused.  ``info`` binds the ciphertext to its application label.

    Raises:
        ValueError: ``public`` is not a valid hybrid public key.
    """
    sealed = _hpke_suite().encrypt(plaintext, _hybrid_public(public), info=info)
    return sealed[:MLKEM768X25519_ENC_SIZE], sealed[MLKEM768X25519_ENC_SIZE:]


def mlkem768x25519_open(
    private: MLKEM768X25519Private, enc: bytes, ciphertext: bytes, *, info: bytes
) -> bytes:
    """HPKE OpenBase with a hybrid private key and empty AAD.

    Before decapsulating we compute the X25519 half ourselves and refuse an
    all-zero result: a small-order X25519 share makes that half of the
    hybrid non-contributory, which age treats as a malformed stanza rather
    than a mere wrong key.

    Raises:
        LowOrderPoint: the X25519 part of ``enc`` has small order.
        InvalidTag: decapsulation or authentication failed (wrong key or
            altered data; the two are deliberately indistinguishable).
        ValueError: ``enc`` is not 1120 bytes.
    """
    if len(enc) != MLKEM768X25519_ENC_SIZE:
        raise ValueError("MLKEM768-X25519 encapsulated keys are 1120 bytes")
    x25519_shared_secret(private._x25519_secret, enc[_MLKEM768_CIPHERTEXT_SIZE:])
    try:
        return _hpke_suite().decrypt(enc + ciphertext, private._key, info=info)
    except InvalidTag:
        raise
    except ValueError:
        # Any other decapsulation failure is reported like a wrong key.
        raise InvalidTag from None


# --- HPKE with DHKEM(X25519, HKDF-SHA256) (RFC 9180, KEM 0x0020) -------------------

X25519_HPKE_ENC_SIZE = 32


@functools.cache
def _hpke_x25519_suite() -> hpke.Suite:
    # Group epoch wraps to classical cards: RFC 9180 base mode, DHKEM(X25519,
    # HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305 -- the same KDF and AEAD as
    # the hybrid suite above, so the two kinds of wrap differ only in their KEM.
    from cryptography.hazmat.primitives import hpke  # lazy (see the imports)

    return hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


def x25519_hpke_seal(public: bytes, plaintext: bytes, *, info: bytes) -> tuple[bytes, bytes]:
    """HPKE SealBase to an X25519 public key with empty AAD; returns ``(enc, ct)``.

    ``cryptography`` draws a fresh ephemeral key for every call, so the
    AEAD's sequence-0 nonce is never reused under one key; ``info`` binds
    the ciphertext to what it is for (group, epoch, card).

    Raises:
        ValueError: ``public`` is not 32 bytes.
    """
    if len(public) != X25519_KEY_SIZE:
        raise ValueError("X25519 public keys are 32 bytes")
    peer = x25519.X25519PublicKey.from_public_bytes(public)
    sealed = _hpke_x25519_suite().encrypt(plaintext, peer, info=info)
    return sealed[:X25519_HPKE_ENC_SIZE], sealed[X25519_HPKE_ENC_SIZE:]


def x25519_hpke_open(secret: bytes, enc: bytes, ciphertext: bytes, *, info: bytes) -> bytes:
    """HPKE OpenBase with an X25519 private key and empty AAD.

    A small-order ``enc`` is refused first (as for age's X25519 stanzas):
    the exchange would not depend on our key.

    Raises:
        LowOrderPoint: ``enc`` has small order.
        InvalidTag: wrong key or altered data (indistinguishable on purpose).
        ValueError: an input has the wrong size.
    """
    if len(enc) != X25519_HPKE_ENC_SIZE:
        raise ValueError("X25519 encapsulated keys are 32 bytes")
    x25519_shared_secret(secret, enc)
    private = x25519.X25519PrivateKey.from_private_bytes(secret)
    try:
        return _hpke_x25519_suite().decrypt(enc + ciphertext, private, info=info)
    except InvalidTag:
        raise
    except ValueError:
        raise InvalidTag from None


# --- password derivation (Argon2id) -------------------------------------------


def argon2id(
    secret: bytes, *, salt: bytes, memory_kib: int, iterations: int, lanes: int, length: int
) -> bytes:
    """Argon2id (RFC 9106) of ``secret``.

    The caller range-checks the work factors (``client_sim.passwords`` and
    ``client_sim.backup``) before calling: this wrapper only refuses what RFC
    9106 itself forbids, so a hostile parameter set from a backup file is
    stopped before it gets here.
    """
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id  # lazy (see the imports)

    return Argon2id(
        salt=salt,
        length=length,
        iterations=iterations,
        lanes=lanes,
        memory_cost=memory_kib,
    ).derive(secret)


# --- identity, signatures and data at rest -------------------------------------
#
# Used by client_sim.identity, .sealed, .keystore and .backup.  Keys cross
# this boundary as raw bytes so that callers never hold a ``cryptography``
# key object and so that secret-holding types control their own ``repr``.
# X25519 public keys, the hybrid seed expansion, HKDF and ChaCha20-Poly1305
# come from the sections above.

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


def ed25519_public_key_of(seed: bytes) -> bytes:
    """The 32-byte public key of the Ed25519 private key whose RFC 8032 seed is ``seed``.

    Any 32 bytes are a valid seed (RFC 8032 §5.1.5 hashes it), so a seed from
    the CSPRNG needs no further checks.

    Raises:
        ValueError: ``seed`` is not 32 bytes.
    """
    if len(seed) != ED25519_SEED_SIZE:
        raise ValueError("Ed25519 seeds are 32 bytes")
    from cryptography.hazmat.primitives.asymmetric import ed25519  # lazy (see the imports)

    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
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
    from cryptography.hazmat.primitives.asymmetric import ed25519  # lazy (see the imports)

    return ed25519.Ed25519PrivateKey.from_private_bytes(seed).sign(message)


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
    from cryptography.hazmat.primitives.asymmetric import ed25519  # lazy (see the imports)

    try:
        key = ed25519.Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as exc:
        raise InvalidSignature("not an Ed25519 public key") from exc
    key.verify(signature, message)


def _at_rest_subkey(key: bytes, nonce: bytes, label: bytes) -> bytes:
    if len(key) != AT_REST_KEY_SIZE:
        raise ValueError("at-rest keys are 32 bytes")
    if len(nonce) != AT_REST_NONCE_SIZE:
        raise ValueError("at-rest nonces are 32 bytes")
    if not label:
        raise ValueError("at-rest encryption needs a domain-separation label")
    return hkdf_sha256(key, salt=nonce, info=label)


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
        nonce: 32 fresh random bytes (:func:`random_bytes`); it salts the subkey
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
    return chacha20poly1305_seal(
        _at_rest_subkey(key, nonce, label), _AT_REST_AEAD_NONCE, plaintext, aad
    )


def at_rest_open(key: bytes, nonce: bytes, label: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """Decrypt what :func:`at_rest_seal` produced.

    Raises:
        InvalidTag: wrong key, label or AAD, or any modified byte.
        ValueError: a key, nonce or label has the wrong size.
    """
    if not AT_REST_TAG_SIZE <= len(ciphertext) <= AT_REST_MAX_PLAINTEXT + AT_REST_TAG_SIZE:
        raise InvalidTag()
    return chacha20poly1305_open(
        _at_rest_subkey(key, nonce, label), _AT_REST_AEAD_NONCE, ciphertext, aad
    )
