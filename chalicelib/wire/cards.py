"""Cards: a device's public keys, self-signed, with one canonical encoding.

A card says "identity X holds these public keys".  The device that owns the
keys makes it and signs it with its own Ed25519 key; the backend verifies the
self-signature (proof of possession) before publishing, and every device
verifies it again on the way in.  This module is the only definition of the
format: the backend imports it to check published cards and ``client_sim``
imports it to make and read them.  It is pure (no chalice, no boto3, no I/O)
and reaches cryptography only through :mod:`chalicelib.crypto`.

Canonical content (docs/spec/cards.md has the byte-by-byte layout)::

    content = lp16("sealbox/v1/card") || lp16(version) || lp16(identity)
              || lp16(created_at u64) || lp16(ed25519) || lp16(x25519)
              || lp16(mlkem768x25519 or empty) || lp16(previous card id or empty)
    card_id   = base64url(SHA-256(content))
    signature = Ed25519(lp16("sealbox/v1/card-signature") || content)
    encoded card = content || lp16(signature)

Every field has one fixed position and one accepted length, so two different
cards never share an encoding and one card never has two.  The JSON form used
by the HTTP API carries the same values plus the ``card_id``, which a reader
recomputes and compares.

Every parsing failure is an :class:`InvalidCard` (a ``ValueError``) subclass
with a stable ``code`` that the backend maps to an HTTP 400 body.  Whether a
card's ``created_at`` is acceptable *now* is a policy of the caller, checked
with :func:`check_created_at`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from chalicelib import crypto
from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.binary import Reader, lp16, u8, u64
from chalicelib.wire.identity import InvalidIdentity, normalize_identity
from chalicelib.wire.strictjson import StrictJSONError, loads_strict

__all__ = [
    "CARD_CONTENT_LABEL",
    "CARD_ROTATION_LABEL",
    "CARD_SIGNATURE_LABEL",
    "CARD_VERSION",
    "DEFAULT_MAX_CLOCK_SKEW",
    "MAX_CARD_JSON_SIZE",
    "MAX_CARD_SIZE",
    "ROTATION_SIGNATURE_SIZE",
    "BadCardSignature",
    "BadRotationSignature",
    "Card",
    "CardClockSkew",
    "CardContent",
    "CardEncoding",
    "CardFieldLength",
    "CardFieldType",
    "CardIdMismatch",
    "CardMalformed",
    "CardRotationMismatch",
    "CardTooLarge",
    "CardValueOutOfRange",
    "InvalidCard",
    "InvalidCardIdentity",
    "MissingCardField",
    "RotationSignatureRequired",
    "RotationSignatureUnexpected",
    "UnknownCardField",
    "UnsupportedCardVersion",
    "card_from_json",
    "card_from_json_text",
    "card_id_from_str",
    "card_id_to_str",
    "check_created_at",
    "check_rotation",
    "decode_card",
    "rotation_message",
    "rotation_signature_from_json",
    "sign_card",
    "sign_rotation",
    "verify_rotation",
]

# --- constants ----------------------------------------------------------------

CARD_VERSION: Final = 1
CARD_CONTENT_LABEL: Final = b"sealbox/v1/card"
CARD_SIGNATURE_LABEL: Final = b"sealbox/v1/card-signature"
# Signed by the *previous* card's key over both card ids: the proof that the
# holder of the old keys hands the identity on to the new ones.
CARD_ROTATION_LABEL: Final = b"sealbox/v1/card-rotation"

CARD_ID_SIZE: Final = 32  # SHA-256
ED25519_KEY_SIZE: Final = 32
X25519_KEY_SIZE: Final = 32
# age's ``age1pq1`` recipient: the 1184-byte ML-KEM-768 encapsulation key
# followed by the 32-byte X25519 public key (MLKEM768-X25519, HPKE KEM 0x647a).
MLKEM768X25519_KEY_SIZE: Final = 1184 + 32
SIGNATURE_SIZE: Final = 64
ROTATION_SIGNATURE_SIZE: Final = SIGNATURE_SIZE

# Integer seconds since the Unix epoch.  2^53 - 1 keeps the value exact in
# every JSON implementation (JavaScript numbers included).
MAX_CREATED_AT: Final = 2**53 - 1
DEFAULT_MAX_CLOCK_SKEW: Final = 300

KEY_ED25519: Final = "ed25519"
KEY_X25519: Final = "x25519"
KEY_MLKEM768X25519: Final = "mlkem768x25519"

_JSON_FIELDS: Final = frozenset(
    {"version", "identity", "created_at", "keys", "previous_card_id", "signature", "card_id"}
)
_REQUIRED_KEYS: Final = frozenset({KEY_ED25519, KEY_X25519})
_KEY_SIZES: Final[Mapping[str, int]] = {
    KEY_ED25519: ED25519_KEY_SIZE,
    KEY_X25519: X25519_KEY_SIZE,
    KEY_MLKEM768X25519: MLKEM768X25519_KEY_SIZE,
}

# The largest canonical encoding: every optional field present and the
# longest identity.  Anything bigger is refused before it is parsed.
MAX_CARD_SIZE: Final = (
    2 * 8  # eight content fields' length prefixes
    + len(CARD_CONTENT_LABEL)
    + 1
    + 64
    + 8
    + ED25519_KEY_SIZE
    + X25519_KEY_SIZE
    + MLKEM768X25519_KEY_SIZE
    + CARD_ID_SIZE
    + 2
    + SIGNATURE_SIZE
)
# The JSON form of the largest card is about 2 KiB; 8 KiB leaves room for
# whitespace without letting a client make the parser work on megabytes.
MAX_CARD_JSON_SIZE: Final = 8192


# --- errors -------------------------------------------------------------------


class InvalidCard(ValueError):
    """A card failed to parse or verify.

    ``code`` is stable and machine-readable (the backend returns it in HTTP
    400 bodies); ``field`` names the offending JSON field when there is one.
    Messages never echo the submitted values.
    """

    code: str = "invalid_card"
    default_message: str = "The card is invalid."

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.field = field
        text = message or self.default_message
        super().__init__(f"{text} ({field})" if field else text)


class CardTooLarge(InvalidCard):
    code = "card_too_large"
    default_message = "The card is larger than any valid card."


class CardMalformed(InvalidCard):
    """Not a JSON object / not well-formed JSON / the binary layout is wrong."""

    code = "card_malformed"
    default_message = "The card is not a well-formed card encoding."


class UnknownCardField(InvalidCard):
    code = "card_unknown_field"
    default_message = "The card has a field this version does not define."


class MissingCardField(InvalidCard):
    code = "card_missing_field"
    default_message = "The card lacks a required field."


class CardFieldType(InvalidCard):
    code = "card_wrong_type"
    default_message = "A card field has the wrong type."


class CardFieldLength(InvalidCard):
    code = "card_wrong_length"
    default_message = "A card field has the wrong length."


class CardEncoding(InvalidCard):
    code = "card_bad_encoding"
    default_message = "A card field is not canonical unpadded base64url."


class CardValueOutOfRange(InvalidCard):
    code = "card_value_out_of_range"
    default_message = "A card field is outside its allowed range."


class UnsupportedCardVersion(InvalidCard):
    code = "unsupported_card_version"
    default_message = "The card format version is not supported."


class InvalidCardIdentity(InvalidCard):
    code = "invalid_card_identity"
    default_message = "The card identity is not a canonical Sealbox identity."


class CardIdMismatch(InvalidCard):
    code = "card_id_mismatch"
    default_message = "The card_id is not the hash of the card content."


class BadCardSignature(InvalidCard):
    code = "bad_card_signature"
    default_message = "The card self-signature does not verify."


class CardClockSkew(InvalidCard):
    code = "card_clock_skew"
    default_message = "The card created_at is too far from the current time."


class CardRotationMismatch(InvalidCard):
    code = "card_rotation_mismatch"
    default_message = "The card does not succeed the current card."


class RotationSignatureRequired(InvalidCard):
    code = "rotation_signature_required"
    default_message = "A rotation must carry a signature by the previous card's key."


class RotationSignatureUnexpected(InvalidCard):
    code = "rotation_signature_unexpected"
    default_message = "A card that names no previous card carries no rotation signature."


class BadRotationSignature(InvalidCard):
    code = "bad_rotation_signature"
    default_message = "The rotation signature does not verify under the previous card's key."


# --- card ids -----------------------------------------------------------------


def card_id_to_str(raw: bytes) -> str:
    """The text form (unpadded base64url, 43 characters) of a 32-byte card id."""
    if len(raw) != CARD_ID_SIZE:
        raise ValueError("card ids are 32 bytes")
    return b64url_encode(raw)


def card_id_from_str(text: object, *, field: str = "card_id") -> bytes:
    """The 32 bytes a card id string stands for.

    Raises:
        CardFieldType: ``text`` is not a string.
        CardFieldLength: it is not 43 characters long.
        CardEncoding: it is not canonical base64url.
    """
    return _decode_fixed(text, CARD_ID_SIZE, field)


def _encoded_length(n: int) -> int:
    return (4 * n + 2) // 3


def _decode_fixed(text: object, size: int, field: str) -> bytes:
    if not isinstance(text, str):
        raise CardFieldType(field=field)
    # The character count pins the byte length, so a wrong length is reported
    # as such (and never decoded) rather than as a bad encoding.
    if len(text) != _encoded_length(size):
        raise CardFieldLength(field=field)
    try:
        return b64url_decode(text, max_len=size)
    except ValueError as exc:
        raise CardEncoding(field=field) from exc


# --- content and card ---------------------------------------------------------


@dataclass(frozen=True, repr=False)
class CardContent:
    """The signed part of a card; validated on construction.

    Raises (from the constructor):
        UnsupportedCardVersion, InvalidCardIdentity, CardFieldType,
        CardFieldLength, CardValueOutOfRange: a field is invalid.
    """

    identity: str
    created_at: int
    ed25519_public_key: bytes
    x25519_public_key: bytes
    pq_public_key: bytes | None = None
    previous_card_id: str | None = None
    version: int = CARD_VERSION
    _encoded: bytes = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.version) is not int:
            raise CardFieldType(field="version")
        if self.version != CARD_VERSION:
            raise UnsupportedCardVersion(field="version")
        if not isinstance(self.identity, str):
            raise CardFieldType(field="identity")
        try:
            canonical = normalize_identity(self.identity)
        except InvalidIdentity as exc:
            raise InvalidCardIdentity(field="identity") from exc
        # A card names its identity in canonical form only; "Alice" is refused
        # rather than folded so the signed bytes are what everyone compares.
        if canonical != self.identity:
            raise InvalidCardIdentity(field="identity")
        if type(self.created_at) is not int:
            raise CardFieldType(field="created_at")
        if not 0 <= self.created_at <= MAX_CREATED_AT:
            raise CardValueOutOfRange(field="created_at")
        _check_bytes(self.ed25519_public_key, ED25519_KEY_SIZE, f"keys.{KEY_ED25519}")
        _check_bytes(self.x25519_public_key, X25519_KEY_SIZE, f"keys.{KEY_X25519}")
        if self.pq_public_key is not None:
            _check_bytes(self.pq_public_key, MLKEM768X25519_KEY_SIZE, f"keys.{KEY_MLKEM768X25519}")
        previous_raw = b""
        if self.previous_card_id is not None:
            previous_raw = card_id_from_str(self.previous_card_id, field="previous_card_id")
        encoded = b"".join(
            (
                lp16(CARD_CONTENT_LABEL),
                lp16(u8(self.version)),
                lp16(self.identity.encode("ascii")),
                lp16(u64(self.created_at)),
                lp16(self.ed25519_public_key),
                lp16(self.x25519_public_key),
                lp16(self.pq_public_key or b""),
                lp16(previous_raw),
            )
        )
        object.__setattr__(self, "_encoded", encoded)

    def encode(self) -> bytes:
        """The canonical content bytes (what the card id hashes)."""
        return self._encoded

    @property
    def card_id(self) -> str:
        """``base64url(SHA-256(content))``."""
        return card_id_to_str(crypto.sha256(self._encoded))

    def signing_message(self) -> bytes:
        """What the self-signature covers: the signature label, then the content."""
        return lp16(CARD_SIGNATURE_LABEL) + self._encoded

    def __repr__(self) -> str:
        return f"CardContent(identity={self.identity!r}, card_id={self.card_id!r})"


def _check_bytes(value: object, size: int, name: str) -> None:
    if not isinstance(value, bytes):
        raise CardFieldType(field=name)
    if len(value) != size:
        raise CardFieldLength(field=name)


@dataclass(frozen=True, repr=False)
class Card:
    """A card whose self-signature has been verified.

    Constructing a ``Card`` verifies the signature, so holding one means the
    content was signed by the Ed25519 key it names.  (It says nothing about
    whether the server accepted it or whether it is still the identity's
    active card; those are the directory's business.)

    Raises (from the constructor):
        CardFieldType, CardFieldLength: the signature is not 64 bytes.
        BadCardSignature: it does not verify.
    """

    content: CardContent
    signature: bytes
    card_id: str = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.content, CardContent):
            raise TypeError("content must be a CardContent")
        _check_bytes(self.signature, SIGNATURE_SIZE, "signature")
        try:
            public_key = crypto.ed25519_public_from_raw(self.content.ed25519_public_key)
            crypto.ed25519_verify(public_key, self.signature, self.content.signing_message())
        except (crypto.InvalidSignature, ValueError) as exc:
            raise BadCardSignature(field="signature") from exc
        object.__setattr__(self, "card_id", self.content.card_id)

    # Read-only views of the content, so callers rarely reach through .content.
    @property
    def version(self) -> int:
        return self.content.version

    @property
    def identity(self) -> str:
        return self.content.identity

    @property
    def created_at(self) -> int:
        return self.content.created_at

    @property
    def ed25519_public_key(self) -> bytes:
        return self.content.ed25519_public_key

    @property
    def x25519_public_key(self) -> bytes:
        return self.content.x25519_public_key

    @property
    def pq_public_key(self) -> bytes | None:
        return self.content.pq_public_key

    @property
    def previous_card_id(self) -> str | None:
        return self.content.previous_card_id

    def encode(self) -> bytes:
        """The canonical encoding: content followed by ``lp16(signature)``."""
        return self.content.encode() + lp16(self.signature)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the HTTP API (binary fields in unpadded base64url)."""
        keys = {
            KEY_ED25519: b64url_encode(self.ed25519_public_key),
            KEY_X25519: b64url_encode(self.x25519_public_key),
        }
        if self.pq_public_key is not None:
            keys[KEY_MLKEM768X25519] = b64url_encode(self.pq_public_key)
        return {
            "version": self.version,
            "identity": self.identity,
            "created_at": self.created_at,
            "keys": keys,
            "previous_card_id": self.previous_card_id,
            "signature": b64url_encode(self.signature),
            "card_id": self.card_id,
        }

    def __repr__(self) -> str:
        return f"Card(identity={self.identity!r}, card_id={self.card_id!r})"


def sign_card(content: CardContent, sign: Callable[[bytes], bytes]) -> Card:
    """Self-sign ``content`` with ``sign`` (an Ed25519 signing function).

    The result is verified like any other card, so a ``sign`` that uses a key
    other than ``content.ed25519_public_key`` is caught here.

    Raises:
        BadCardSignature: ``sign`` did not produce a valid self-signature.
    """
    return Card(content, sign(content.signing_message()))


# --- parsing ------------------------------------------------------------------


def decode_card(data: bytes) -> Card:
    """Parse and verify the canonical binary encoding of a card.

    Raises:
        CardTooLarge: ``data`` is longer than :data:`MAX_CARD_SIZE`.
        CardMalformed: wrong label, truncated, or bytes after the signature.
        InvalidCard: any field-level failure (see :class:`CardContent` and
            :class:`Card`).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CardMalformed()
    if len(data) > MAX_CARD_SIZE:
        raise CardTooLarge()
    reader = Reader(bytes(data))
    try:
        if reader.lp16() != CARD_CONTENT_LABEL:
            raise CardMalformed("The card does not start with the card label.")
        version = reader.lp16()
        if len(version) != 1:
            raise CardFieldLength(field="version")
        identity_raw = reader.lp16()
        created_at = reader.lp16()
        if len(created_at) != 8:
            raise CardFieldLength(field="created_at")
        ed25519 = reader.lp16()
        x25519 = reader.lp16()
        pq = reader.lp16()
        previous = reader.lp16()
        if len(previous) not in (0, CARD_ID_SIZE):
            raise CardFieldLength(field="previous_card_id")
        signature = reader.lp16()
        reader.finish()
    except ValueError as exc:
        if isinstance(exc, InvalidCard):
            raise
        raise CardMalformed() from exc
    try:
        identity = identity_raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise InvalidCardIdentity(field="identity") from exc
    content = CardContent(
        identity=identity,
        created_at=int.from_bytes(created_at, "big"),
        ed25519_public_key=ed25519,
        x25519_public_key=x25519,
        pq_public_key=pq or None,
        previous_card_id=card_id_to_str(previous) if previous else None,
        version=version[0],
    )
    return Card(content, signature)


def card_from_json(obj: object) -> Card:
    """Parse and verify the JSON form of a card (an already-decoded object).

    Checks, in order: shape and field names, types, lengths and encodings,
    that ``card_id`` is the hash of the content, then the self-signature.

    Raises:
        CardMalformed: ``obj`` is not a JSON object.
        UnknownCardField / MissingCardField: the field set is wrong (also
            inside ``keys``).
        CardFieldType, CardFieldLength, CardEncoding, CardValueOutOfRange,
        UnsupportedCardVersion, InvalidCardIdentity: a field is invalid.
        CardIdMismatch: ``card_id`` is not the hash of the content.
        BadCardSignature: the self-signature does not verify.
    """
    if not isinstance(obj, dict):
        raise CardMalformed("A card must be a JSON object.")
    _check_field_set(obj, _JSON_FIELDS, _JSON_FIELDS, prefix="")
    keys = obj["keys"]
    if not isinstance(keys, dict):
        raise CardFieldType(field="keys")
    _check_field_set(keys, frozenset(_KEY_SIZES), _REQUIRED_KEYS, prefix="keys.")
    decoded = {
        name: _decode_fixed(value, _KEY_SIZES[name], f"keys.{name}") for name, value in keys.items()
    }
    previous = obj["previous_card_id"]
    if previous is not None:
        card_id_from_str(previous, field="previous_card_id")
    content = CardContent(
        identity=obj["identity"],
        created_at=obj["created_at"],
        ed25519_public_key=decoded[KEY_ED25519],
        x25519_public_key=decoded[KEY_X25519],
        pq_public_key=decoded.get(KEY_MLKEM768X25519),
        previous_card_id=previous,
        version=obj["version"],
    )
    claimed_id = obj["card_id"]
    card_id_from_str(claimed_id)
    if claimed_id != content.card_id:
        raise CardIdMismatch(field="card_id")
    signature = _decode_fixed(obj["signature"], SIGNATURE_SIZE, "signature")
    return Card(content, signature)


def _check_field_set(
    obj: Mapping[str, object],
    allowed: frozenset[str],
    required: frozenset[str],
    *,
    prefix: str,
) -> None:
    unknown = sorted(str(k) for k in obj if k not in allowed)
    if unknown:
        raise UnknownCardField(field=prefix + unknown[0][:64])
    missing = sorted(required - obj.keys())
    if missing:
        raise MissingCardField(field=prefix + missing[0])


def card_from_json_text(raw: bytes | str) -> Card:
    """Parse and verify a card from JSON text, bounding the work first.

    Refuses input longer than :data:`MAX_CARD_JSON_SIZE` before parsing,
    duplicate object keys (which parsers resolve differently), and
    ``NaN``/``Infinity``.

    Raises:
        CardTooLarge: the text is too long.
        CardMalformed: not UTF-8, not JSON, or duplicate keys.
        InvalidCard: see :func:`card_from_json`.
    """
    # A character is at least one byte, so the cheap length check comes
    # first and the encoded size is measured only for short enough text.
    if len(raw) > MAX_CARD_JSON_SIZE:
        raise CardTooLarge()
    if isinstance(raw, str) and len(raw.encode("utf-8")) > MAX_CARD_JSON_SIZE:
        raise CardTooLarge()
    try:
        obj = loads_strict(raw)
    except StrictJSONError as exc:
        raise CardMalformed("The card is not valid JSON.") from exc
    return card_from_json(obj)


# --- policy checks the directory applies -------------------------------------


def check_created_at(card: Card, *, now: int, max_skew: int = DEFAULT_MAX_CLOCK_SKEW) -> None:
    """Refuse a card whose ``created_at`` is more than ``max_skew`` seconds from ``now``.

    The format accepts any timestamp; the server calls this with its own
    clock when a card is published, so a device can neither backdate a card
    nor publish one from the future.

    Raises:
        CardClockSkew: ``|card.created_at - now| > max_skew``.
        ValueError: ``max_skew`` is negative.
    """
    if max_skew < 0:
        raise ValueError("max_skew must not be negative")
    if abs(card.created_at - now) > max_skew:
        raise CardClockSkew(field="created_at")


def check_rotation(new: Card, current: Card) -> None:
    """Check that ``new`` can replace ``current`` as the identity's active card.

    A rotation names the card it replaces, belongs to the same identity, is
    a different card and is not older.

    Raises:
        CardRotationMismatch: any of those does not hold.
    """
    if (
        new.identity != current.identity
        or new.previous_card_id != current.card_id
        or new.card_id == current.card_id
        or new.created_at < current.created_at
    ):
        raise CardRotationMismatch(field="previous_card_id")


# --- rotations: the old key hands the identity on ----------------------------


def rotation_message(previous: Card, new: Card) -> bytes:
    """What a rotation signature covers.

    ``lp16("sealbox/v1/card-rotation") || lp16(previous card id) || lp16(new card id)``
    (raw 32-byte ids).  A card id is the SHA-256 of the whole card content
    (identity, created_at, every public key and ``previous_card_id``), so the
    two ids bind both cards completely; the label keeps the message apart from
    card self-signatures and sealed-message signatures made by the same key.
    """
    return b"".join(
        (
            lp16(CARD_ROTATION_LABEL),
            lp16(card_id_from_str(previous.card_id)),
            lp16(card_id_from_str(new.card_id)),
        )
    )


def sign_rotation(previous: Card, new: Card, sign: Callable[[bytes], bytes]) -> bytes:
    """Sign the rotation ``previous -> new`` with ``sign`` (the previous card's Ed25519 key).

    The result is verified before it is returned, so a ``sign`` holding
    another key, or a ``new`` card that is no rotation of ``previous``, is
    caught here rather than by the directory.

    Raises:
        CardRotationMismatch: ``new`` does not succeed ``previous``.
        BadRotationSignature: ``sign`` did not use the previous card's key.
    """
    signature = sign(rotation_message(previous, new))
    verify_rotation(previous, new, signature)
    return signature


def verify_rotation(previous: Card, new: Card, signature: bytes | None) -> None:
    """Check that ``new`` is a rotation of ``previous`` signed by ``previous``'s key.

    Both the directory (before it publishes) and every device (when it walks
    a contact's card history) apply this one rule.

    Raises:
        CardRotationMismatch: ``new`` does not name ``previous``, has another
            identity, is the same card or is older (:func:`check_rotation`).
        RotationSignatureRequired: ``signature`` is None.
        BadRotationSignature: it is not 64 bytes or does not verify (strict
            RFC 8032) under ``previous.ed25519_public_key``.
    """
    check_rotation(new, previous)
    if signature is None:
        raise RotationSignatureRequired(field="rotation_signature")
    if not isinstance(signature, bytes) or len(signature) != ROTATION_SIGNATURE_SIZE:
        raise BadRotationSignature(field="rotation_signature")
    try:
        public_key = crypto.ed25519_public_from_raw(previous.ed25519_public_key)
        crypto.ed25519_verify(public_key, signature, rotation_message(previous, new))
    except (crypto.InvalidSignature, ValueError) as exc:
        raise BadRotationSignature(field="rotation_signature") from exc


def rotation_signature_from_json(value: object) -> bytes:
    """The 64 bytes of a JSON ``rotation_signature`` (canonical unpadded base64url).

    Raises:
        CardFieldType, CardFieldLength, CardEncoding: not such a string.
    """
    return _decode_fixed(value, ROTATION_SIGNATURE_SIZE, "rotation_signature")
