"""The X25519 recipient type (c2sp.org/age, "The X25519 recipient type").

A stanza is ``-> X25519 <ephemeral share>`` with a 32-byte body: the file
key sealed with ChaCha20-Poly1305 (all-zero nonce) under
``HKDF-SHA-256(ikm = X25519(ephemeral, recipient), salt = share || recipient,
info = "age-encryption.org/v1/X25519")``.  The all-zero nonce is safe because
every stanza has a fresh ephemeral key, hence a fresh wrap key.
"""

from __future__ import annotations

from collections.abc import Sequence

from client_sim import _hazmat
from client_sim.age import bech32
from client_sim.age._format import Stanza, b64_decode, b64_encode
from client_sim.age._keyutil import decode_key, fingerprint
from client_sim.age.errors import DecryptionError, NoIdentityMatch

__all__ = ["X25519Identity", "X25519Recipient"]

STANZA_TYPE = "X25519"
_LABEL = b"age-encryption.org/v1/X25519"
_RECIPIENT_HRP = "age"
_IDENTITY_HRP = "AGE-SECRET-KEY-"
_KEY_SIZE = _hazmat.X25519_KEY_SIZE
_FILE_KEY_SIZE = 16
_ZERO_NONCE = bytes(_hazmat.CHACHA20_POLY1305_NONCE_SIZE)
_BODY_SIZE = _FILE_KEY_SIZE + _hazmat.CHACHA20_POLY1305_TAG_SIZE


class X25519Recipient:
    """An ``age1...`` public key.  ``str()`` gives its Bech32 form."""

    __slots__ = ("_public",)

    def __init__(self, public_key: bytes) -> None:
        """Wrap a raw 32-byte X25519 public key.

        Raises:
            ValueError: not 32 bytes, or a small-order point (nothing could
                be encrypted to it safely).
        """
        if not isinstance(public_key, bytes) or len(public_key) != _KEY_SIZE:
            raise ValueError("X25519 public keys are 32 bytes")
        self._public = public_key

    @classmethod
    def parse(cls, text: str) -> X25519Recipient:
        """Parse ``age1...`` (lower case, as age writes it).

        Raises:
            InvalidKey: not a valid X25519 recipient string.
        """
        return cls(
            decode_key(text, hrp=_RECIPIENT_HRP, prefix="age1", size=_KEY_SIZE, what="recipient")
        )

    @property
    def public_bytes(self) -> bytes:
        """The raw 32-byte public key."""
        return self._public

    def wrap(self, file_key: bytes) -> list[Stanza]:
        """One X25519 stanza wrapping ``file_key`` (fresh ephemeral key).

        Raises:
            ValueError: ``file_key`` is not 16 bytes, or this recipient is a
                small-order point.
        """
        return self._wrap_with_labels(file_key, _hazmat.random_bytes)[0]

    def _wrap_with_labels(
        self, file_key: bytes, rand: _hazmat.Rand
    ) -> tuple[list[Stanza], frozenset[str]]:
        # Private seam: tests inject ``rand`` to make stanzas reproducible.
        if len(file_key) != _FILE_KEY_SIZE:
            raise ValueError("age file keys are 16 bytes")
        ephemeral = rand(_KEY_SIZE)
        share = _hazmat.x25519_public_from_private(ephemeral)
        try:
            shared = _hazmat.x25519_shared_secret(ephemeral, self._public)
        except _hazmat.LowOrderPoint:
            raise ValueError("the X25519 recipient is a small-order point") from None
        wrap_key = _hazmat.hkdf_sha256(shared, salt=share + self._public, info=_LABEL)
        body = _hazmat.chacha20poly1305_seal(wrap_key, _ZERO_NONCE, file_key)
        return [Stanza(STANZA_TYPE, (b64_encode(share),), body)], frozenset()

    def __str__(self) -> str:
        return bech32.encode(_RECIPIENT_HRP, self._public)

    def __repr__(self) -> str:
        return f"X25519Recipient({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X25519Recipient) and other._public == self._public

    def __hash__(self) -> int:
        return hash((STANZA_TYPE, self._public))


class X25519Identity:
    """An ``AGE-SECRET-KEY-1...`` private key.

    ``repr``/``str`` show only a fingerprint of the public key; the secret
    string comes only from :meth:`secret_string`.
    """

    __slots__ = ("_public", "_secret")
    _public: bytes
    _secret: bytes

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("use X25519Identity.generate() or parse_identity()")

    @classmethod
    def _from_secret(cls, secret: bytes) -> X25519Identity:
        # Private constructor, also the seam for deterministic test keys.
        if len(secret) != _KEY_SIZE:
            raise ValueError("X25519 private keys are 32 bytes")
        self = object.__new__(cls)
        self._secret = bytes(secret)
        self._public = _hazmat.x25519_public_from_private(self._secret)
        return self

    @classmethod
    def generate(cls) -> X25519Identity:
        """A fresh identity from the OS CSPRNG."""
        return cls._from_secret(_hazmat.random_bytes(_KEY_SIZE))

    @classmethod
    def parse(cls, text: str) -> X25519Identity:
        """Parse ``AGE-SECRET-KEY-1...`` (upper case, as age writes it).

        Raises:
            InvalidKey: not a valid X25519 identity string.
        """
        return cls._from_secret(
            decode_key(
                text, hrp=_IDENTITY_HRP, prefix="AGE-SECRET-KEY-1", size=_KEY_SIZE, what="identity"
            )
        )

    def recipient(self) -> X25519Recipient:
        """The matching ``age1...`` recipient."""
        return X25519Recipient(self._public)

    def secret_string(self) -> str:
        """The Bech32 secret key string.  Handle with care: it is the key."""
        return bech32.encode(_IDENTITY_HRP, self._secret)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes:
        """The file key from the first X25519 stanza this key opens.

        Stanzas of other types are ignored.

        Raises:
            NoIdentityMatch: no X25519 stanza opens with this key.
            DecryptionError: an X25519 stanza is malformed (argument count,
                non-canonical or wrong-length share, body not 32 bytes) or
                its share is a small-order point.
        """
        for stanza in stanzas:
            if stanza.type != STANZA_TYPE:
                continue
            if len(stanza.args) != 1:
                raise DecryptionError
            try:
                share = b64_decode(stanza.args[0])
            except ValueError:
                raise DecryptionError from None
            # Length checks come before any decryption attempt, so a body of
            # another size can't be used as a partitioning oracle.
            if len(share) != _KEY_SIZE or len(stanza.body) != _BODY_SIZE:
                raise DecryptionError
            try:
                shared = _hazmat.x25519_shared_secret(self._secret, share)
            except _hazmat.LowOrderPoint:
                raise DecryptionError from None
            wrap_key = _hazmat.hkdf_sha256(shared, salt=share + self._public, info=_LABEL)
            try:
                return _hazmat.chacha20poly1305_open(wrap_key, _ZERO_NONCE, stanza.body)
            except _hazmat.InvalidTag:
                continue
        raise NoIdentityMatch

    def __repr__(self) -> str:
        return f"X25519Identity(fingerprint={fingerprint(self._public)!r})"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("identities are not picklable (that would copy the secret)")
