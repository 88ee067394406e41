"""A device identity: its private keys and the card that publishes them.

A :class:`KeyBundle` holds three private keys made on the device and the
self-signed :class:`~chalicelib.wire.cards.Card` that names their public
halves:

* an Ed25519 signing key (card self-signature, sender signatures in
  :mod:`client_sim.sealed`), kept as its 32-byte RFC 8032 seed;
* an X25519 key (age ``X25519`` recipient), kept as its 32-byte secret;
* an ML-KEM-768+X25519 hybrid key (age ``mlkem768x25519`` / ``age1pq1``
  recipient), kept as its 32-byte seed.

Private keys leave the object only through :meth:`KeyBundle.to_bytes`, the
versioned serialization that the keystore and the backup encrypt.  ``repr``
and ``str`` show the identity and the card id, never key material.

Conversion to age objects goes through a narrow adapter (:func:`age_recipients_for`,
:func:`age_identities_for`) that imports :mod:`client_sim.age` only when
called, so this module imports without the age package.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, NoReturn, Protocol

from chalicelib.wire.binary import Reader, lp16, u8
from chalicelib.wire.cards import (
    Card,
    CardContent,
    InvalidCard,
    decode_card,
    sign_card,
    sign_rotation,
)
from client_sim import _hazmat, age

__all__ = [
    "KEY_BUNDLE_LABEL",
    "KEY_BUNDLE_VERSION",
    "AgeIdentity",
    "AgeRecipient",
    "InvalidKeyBundle",
    "KeyBundle",
    "age_identities_for",
    "age_recipients_for",
]

KEY_BUNDLE_LABEL: Final = b"sealbox/v1/key-bundle"
KEY_BUNDLE_VERSION: Final = 1
SEED_SIZE: Final = 32


class InvalidKeyBundle(ValueError):
    """A serialized key bundle is malformed or its keys do not match its card."""


class AgeRecipient(Protocol):
    """The one-method recipient interface of :mod:`client_sim.age`."""

    def wrap(self, file_key: bytes) -> list[Any]: ...


class AgeIdentity(Protocol):
    """The one-method identity interface of :mod:`client_sim.age`."""

    def unwrap(self, stanzas: Sequence[Any]) -> bytes: ...


class KeyBundle:
    """A device's private keys together with their verified card.

    The constructor checks that every private key matches the public key the
    card names, so a bundle can never sign or decrypt for a card it does not
    own.  Bundles are immutable.

    Raises (from the constructor):
        InvalidKeyBundle: a key has the wrong size, the card has no
            ML-KEM-768+X25519 key, or a private key does not match the card.
    """

    __slots__ = ("_card", "_ed25519_seed", "_pq_seed", "_x25519_secret")

    _card: Card
    _ed25519_seed: bytes
    _x25519_secret: bytes
    _pq_seed: bytes

    def __init__(
        self, card: Card, *, ed25519_seed: bytes, x25519_secret: bytes, pq_seed: bytes
    ) -> None:
        if not isinstance(card, Card):
            raise TypeError("card must be a verified Card")
        for name, value in (
            ("ed25519 seed", ed25519_seed),
            ("x25519 secret", x25519_secret),
            ("pq seed", pq_seed),
        ):
            if not isinstance(value, bytes) or len(value) != SEED_SIZE:
                raise InvalidKeyBundle(f"the {name} must be {SEED_SIZE} bytes")
        if card.pq_public_key is None:
            raise InvalidKeyBundle("the card has no ML-KEM-768+X25519 key")
        if (
            _hazmat.ed25519_public_key_of(ed25519_seed) != card.ed25519_public_key
            or _hazmat.x25519_public_from_private(x25519_secret) != card.x25519_public_key
            or _hazmat.mlkem768x25519_from_seed(pq_seed).public_bytes != card.pq_public_key
        ):
            raise InvalidKeyBundle("the private keys do not match the card")
        object.__setattr__(self, "_card", card)
        object.__setattr__(self, "_ed25519_seed", ed25519_seed)
        object.__setattr__(self, "_x25519_secret", x25519_secret)
        object.__setattr__(self, "_pq_seed", pq_seed)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("KeyBundle is immutable")

    # --- making bundles ---------------------------------------------------------

    @classmethod
    def generate(
        cls,
        identity: str,
        *,
        created_at: int | None = None,
        previous_card_id: str | None = None,
        rand: Callable[[int], bytes] = _hazmat.random_bytes,
    ) -> KeyBundle:
        """Make fresh keys for ``identity`` and self-sign their card.

        Args:
            identity: a canonical identity (``normalize_identity`` output).
            created_at: the card's timestamp; defaults to the current time.
            previous_card_id: the card this one replaces (a rotation).
            rand: the randomness source; only tests and the vector generator
                pass anything but the OS CSPRNG.

        Raises:
            InvalidCard: ``identity`` is not canonical, or another card field
                is invalid.
        """
        return cls._from_seeds(
            identity,
            ed25519_seed=rand(SEED_SIZE),
            x25519_secret=rand(SEED_SIZE),
            pq_seed=rand(SEED_SIZE),
            created_at=int(time.time()) if created_at is None else created_at,
            previous_card_id=previous_card_id,
        )

    @classmethod
    def _from_seeds(
        cls,
        identity: str,
        *,
        ed25519_seed: bytes,
        x25519_secret: bytes,
        pq_seed: bytes,
        created_at: int,
        previous_card_id: str | None = None,
    ) -> KeyBundle:
        """Deterministic twin of :meth:`generate` (vectors and tests)."""
        content = CardContent(
            identity=identity,
            created_at=created_at,
            ed25519_public_key=_hazmat.ed25519_public_key_of(ed25519_seed),
            x25519_public_key=_hazmat.x25519_public_from_private(x25519_secret),
            pq_public_key=_hazmat.mlkem768x25519_from_seed(pq_seed).public_bytes,
            previous_card_id=previous_card_id,
        )
        card = sign_card(content, lambda msg: _hazmat.ed25519_sign_with_seed(ed25519_seed, msg))
        return cls(card, ed25519_seed=ed25519_seed, x25519_secret=x25519_secret, pq_seed=pq_seed)

    def rotate(
        self,
        *,
        created_at: int | None = None,
        rand: Callable[[int], bytes] = _hazmat.random_bytes,
    ) -> KeyBundle:
        """Fresh keys for the same identity, whose card names this card as previous.

        Keep this bundle too (the keystore does): data sealed to it, and
        signatures made with it, stay readable only through its keys and card.
        """
        return type(self).generate(
            self.identity,
            created_at=created_at,
            previous_card_id=self.card_id,
            rand=rand,
        )

    # --- public views -----------------------------------------------------------

    @property
    def card(self) -> Card:
        """The verified public card of these keys."""
        return self._card

    @property
    def identity(self) -> str:
        return self._card.identity

    @property
    def card_id(self) -> str:
        return self._card.card_id

    def sign(self, message: bytes) -> bytes:
        """An Ed25519 signature of ``message`` by this bundle's signing key.

        Callers sign only messages that start with a ``sealbox/v1/...`` label
        (cards, rotations, sealed-message trailers), so one key never signs two kinds of
        data that could be confused.
        """
        return _hazmat.ed25519_sign_with_seed(self._ed25519_seed, message)

    def sign_rotation(self, new: Card) -> bytes:
        """This card's key handing the identity on to ``new`` (its rotation signature).

        Raises:
            CardRotationMismatch: ``new`` does not name this card as previous
                (or is older, or of another identity).
        """
        return sign_rotation(self._card, new, self.sign)

    # --- serialization (secret) -------------------------------------------------

    def to_bytes(self) -> bytes:
        """The private bundle, versioned: the card and the three private seeds.

        This is secret material: only the keystore and the backup, which
        encrypt it, should call this.
        """
        return b"".join(
            (
                lp16(KEY_BUNDLE_LABEL),
                lp16(u8(KEY_BUNDLE_VERSION)),
                lp16(self._card.encode()),
                lp16(self._ed25519_seed),
                lp16(self._x25519_secret),
                lp16(self._pq_seed),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyBundle:
        """Parse :meth:`to_bytes` output, verifying the card and the keys.

        Raises:
            InvalidKeyBundle: wrong label or version, truncated, trailing
                bytes, an invalid card, or keys that do not match the card.
        """
        reader = Reader(data)
        try:
            if reader.lp16() != KEY_BUNDLE_LABEL:
                raise InvalidKeyBundle("not a Sealbox key bundle")
            if reader.lp16() != u8(KEY_BUNDLE_VERSION):
                raise InvalidKeyBundle("unsupported key bundle version")
            card = decode_card(reader.lp16())
            ed25519_seed = reader.lp16()
            x25519_secret = reader.lp16()
            pq_seed = reader.lp16()
            reader.finish()
        except InvalidKeyBundle:
            raise
        except InvalidCard as exc:
            raise InvalidKeyBundle("the key bundle's card is invalid") from exc
        except ValueError as exc:
            raise InvalidKeyBundle("the key bundle is malformed") from exc
        return cls(card, ed25519_seed=ed25519_seed, x25519_secret=x25519_secret, pq_seed=pq_seed)

    # --- age --------------------------------------------------------------------

    def age_identities(self) -> list[AgeIdentity]:
        """The age identities that open files sealed to this bundle's card."""
        return [
            age.HybridIdentity._from_seed(self._pq_seed),
            age.X25519Identity._from_secret(self._x25519_secret),
        ]

    # --- no secrets in output, no accidental sharing ----------------------------

    def hpke_open(self, kind: int, enc: bytes, ciphertext: bytes, *, info: bytes) -> bytes:
        """Open an HPKE ciphertext sent to this card (a group epoch wrap).

        ``kind`` 0 is DHKEM(X25519) to the card's ``x25519`` key, 1 is
        MLKEM768-X25519 to its ``mlkem768x25519`` key (docs/spec/groups.md).

        Raises:
            ValueError: unknown kind or wrong sizes.
            _hazmat.InvalidTag, _hazmat.LowOrderPoint: not for this key, or altered.
        """
        if kind == 0:
            return _hazmat.x25519_hpke_open(self._x25519_secret, enc, ciphertext, info=info)
        if kind == 1:
            private = _hazmat.mlkem768x25519_from_seed(self._pq_seed)
            return _hazmat.mlkem768x25519_open(private, enc, ciphertext, info=info)
        raise ValueError("unknown HPKE kind")

    def __repr__(self) -> str:
        return f"KeyBundle(identity={self.identity!r}, card_id={self.card_id!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyBundle):
            return NotImplemented
        return hmac.compare_digest(self.to_bytes(), other.to_bytes())

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> NoReturn:
        # Pickling would copy the seeds into whatever stores the pickle.
        raise TypeError("KeyBundle cannot be pickled; use to_bytes() and encrypt it")


# --- age adapter ----------------------------------------------------------------


def age_recipients_for(cards: Iterable[Card]) -> list[AgeRecipient]:
    """age recipients for a set of cards, one per card.

    When every card has an ML-KEM-768+X25519 key, all recipients are
    post-quantum; otherwise all are X25519.  age's specification says a file
    SHOULD NOT mix the two kinds (a classical stanza would undo the
    post-quantum protection of the others), so the weakest card decides.

    Raises:
        ValueError: ``cards`` is empty.
    """
    cards = list(cards)
    if not cards:
        raise ValueError("at least one recipient card is needed")
    pq_keys = [card.pq_public_key for card in cards]
    if all(key is not None for key in pq_keys):
        return [age.HybridRecipient(key) for key in pq_keys if key is not None]
    return [age.X25519Recipient(card.x25519_public_key) for card in cards]


def age_identities_for(bundles: Iterable[KeyBundle]) -> list[AgeIdentity]:
    """Every age identity of ``bundles`` (current and previous keys alike)."""
    return [identity for bundle in bundles for identity in bundle.age_identities()]
