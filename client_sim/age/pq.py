"""The post-quantum hybrid recipient type ``mlkem768x25519`` (c2sp.org/age,
"The MLKEM768-X25519 (i.e. X-Wing) hybrid post-quantum recipient type").

An identity is a 32-byte seed (``AGE-SECRET-KEY-PQ-1...``); the recipient is
the 1216-byte MLKEM768-X25519 public key (``age1pq1...``).  A stanza is
``-> mlkem768x25519 <enc>`` whose body is HPKE SealBase of the file key with
KEM MLKEM768-X25519 (0x647a), KDF HKDF-SHA256, AEAD ChaCha20-Poly1305,
``info = "age-encryption.org/mlkem768x25519"`` and empty AAD.

Hybrid recipients carry the ``postquantum`` label, so :func:`encrypt`
refuses to mix them with classic recipients: one classic stanza would make
the whole file breakable by a quantum attacker (the spec's SHOULD NOT, which
age enforces).
"""

from __future__ import annotations

from collections.abc import Sequence

from client_sim import _hazmat
from client_sim.age import bech32
from client_sim.age._format import Stanza, b64_decode, b64_encode
from client_sim.age._keyutil import decode_key, fingerprint
from client_sim.age.errors import DecryptionError, InvalidKey, NoIdentityMatch

__all__ = ["POSTQUANTUM_LABEL", "HybridIdentity", "HybridRecipient"]

STANZA_TYPE = "mlkem768x25519"
_INFO = b"age-encryption.org/mlkem768x25519"
_RECIPIENT_HRP = "age1pq"
_IDENTITY_HRP = "AGE-SECRET-KEY-PQ-"
_FILE_KEY_SIZE = 16
_BODY_SIZE = _FILE_KEY_SIZE + _hazmat.CHACHA20_POLY1305_TAG_SIZE
#: The label every hybrid recipient reports (the name age uses).
POSTQUANTUM_LABEL = "postquantum"


class HybridRecipient:
    """An ``age1pq1...`` public key.  ``str()`` gives its Bech32 form."""

    __slots__ = ("_public",)

    def __init__(self, public_key: bytes) -> None:
        """Wrap a raw 1216-byte MLKEM768-X25519 public key.

        Raises:
            ValueError: wrong length or not a valid ML-KEM-768 key.
        """
        if not isinstance(public_key, bytes):
            raise TypeError("public_key must be bytes")
        _hazmat.mlkem768x25519_public_check(public_key)
        self._public = public_key

    @classmethod
    def parse(cls, text: str) -> HybridRecipient:
        """Parse ``age1pq1...`` (lower case).

        Raises:
            InvalidKey: not a valid hybrid recipient string.
        """
        data = decode_key(
            text,
            hrp=_RECIPIENT_HRP,
            prefix="age1pq1",
            size=_hazmat.MLKEM768X25519_PUBLIC_KEY_SIZE,
            what="post-quantum recipient",
        )
        try:
            return cls(data)
        except ValueError:
            # The right length but not a valid ML-KEM-768 key.
            raise InvalidKey("malformed post-quantum recipient") from None

    @property
    def public_bytes(self) -> bytes:
        """The raw 1216-byte public key."""
        return self._public

    def wrap(self, file_key: bytes) -> list[Stanza]:
        """One mlkem768x25519 stanza (fresh HPKE encapsulation)."""
        return self.wrap_with_labels(file_key)[0]

    def wrap_with_labels(self, file_key: bytes) -> tuple[list[Stanza], frozenset[str]]:
        """The stanza plus the ``postquantum`` label."""
        if len(file_key) != _FILE_KEY_SIZE:
            raise ValueError("age file keys are 16 bytes")
        enc, body = _hazmat.mlkem768x25519_seal(self._public, file_key, info=_INFO)
        return [Stanza(STANZA_TYPE, (b64_encode(enc),), body)], frozenset({POSTQUANTUM_LABEL})

    def _wrap_with_labels(
        self, file_key: bytes, rand: _hazmat.Rand
    ) -> tuple[list[Stanza], frozenset[str]]:
        # The HPKE encapsulation draws its randomness inside ``cryptography``,
        # which has no deterministic mode: hybrid stanzas are never
        # reproducible, whatever ``rand`` the test seam passes.
        del rand
        return self.wrap_with_labels(file_key)

    def __str__(self) -> str:
        return bech32.encode(_RECIPIENT_HRP, self._public)

    def __repr__(self) -> str:
        return f"HybridRecipient(fingerprint={fingerprint(self._public)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HybridRecipient) and other._public == self._public

    def __hash__(self) -> int:
        return hash((STANZA_TYPE, self._public))


class HybridIdentity:
    """An ``AGE-SECRET-KEY-PQ-1...`` private key (a 32-byte seed).

    ``repr``/``str`` show only a fingerprint of the public key; the secret
    string comes only from :meth:`secret_string`.
    """

    __slots__ = ("_private", "_seed")
    _private: _hazmat.MLKEM768X25519Private
    _seed: bytes

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("use HybridIdentity.generate() or parse_identity()")

    @classmethod
    def _from_seed(cls, seed: bytes) -> HybridIdentity:
        # Private constructor, also the seam for deterministic test keys.
        self = object.__new__(cls)
        self._private = _hazmat.mlkem768x25519_from_seed(seed)
        self._seed = bytes(seed)
        return self

    @classmethod
    def generate(cls) -> HybridIdentity:
        """A fresh identity from the OS CSPRNG."""
        return cls._from_seed(_hazmat.random_bytes(_hazmat.MLKEM768X25519_SEED_SIZE))

    @classmethod
    def parse(cls, text: str) -> HybridIdentity:
        """Parse ``AGE-SECRET-KEY-PQ-1...`` (upper case).

        Raises:
            InvalidKey: not a valid hybrid identity string.
        """
        seed = decode_key(
            text,
            hrp=_IDENTITY_HRP,
            prefix="AGE-SECRET-KEY-PQ-1",
            size=_hazmat.MLKEM768X25519_SEED_SIZE,
            what="post-quantum identity",
        )
        return cls._from_seed(seed)

    def recipient(self) -> HybridRecipient:
        """The matching ``age1pq1...`` recipient."""
        return HybridRecipient(self._private.public_bytes)

    def secret_string(self) -> str:
        """The Bech32 secret key string.  Handle with care: it is the key."""
        return bech32.encode(_IDENTITY_HRP, self._seed)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes:
        """The file key from the first mlkem768x25519 stanza this key opens.

        Raises:
            NoIdentityMatch: no such stanza opens with this key.
            DecryptionError: a mlkem768x25519 stanza is malformed (argument
                count, enc not canonical base64 of 1120 bytes, body not 32
                bytes) or its X25519 share is a small-order point.
        """
        for stanza in stanzas:
            if stanza.type != STANZA_TYPE:
                continue
            if len(stanza.args) != 1:
                raise DecryptionError
            try:
                enc = b64_decode(stanza.args[0])
            except ValueError:
                raise DecryptionError from None
            # Sizes are checked before decapsulating (partitioning oracles).
            if len(enc) != _hazmat.MLKEM768X25519_ENC_SIZE or len(stanza.body) != _BODY_SIZE:
                raise DecryptionError
            try:
                return _hazmat.mlkem768x25519_open(self._private, enc, stanza.body, info=_INFO)
            except _hazmat.LowOrderPoint:
                raise DecryptionError from None
            except _hazmat.InvalidTag:
                continue
        raise NoIdentityMatch

    def __repr__(self) -> str:
        return f"HybridIdentity(fingerprint={fingerprint(self._private.public_bytes)!r})"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("identities are not picklable (that would copy the secret)")
