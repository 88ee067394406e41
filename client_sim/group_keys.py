"""Group epoch secrets on the device: make, wrap for each member, unwrap, use with age.

An epoch secret is 32 random bytes made on the device of the admin who
changes the roster.  It never leaves a device in the clear:

* it is HPKE-wrapped for every member's current card
  (:func:`wrap_secret`): DHKEM(X25519) for a card without a post-quantum
  key, MLKEM768-X25519 (the hybrid of age's ``age1pq`` recipients) for one
  with it; the HPKE ``info`` binds the group, the epoch and the card, so a
  wrap can't be replayed for another member, epoch or group;
* it derives, with HKDF-SHA256, the epoch's single age identity
  (:meth:`EpochSecret.age_identity`): group content is an ordinary sealed age
  file with one recipient, which ``age``, rage and typage decrypt given the
  exported identity (:meth:`EpochSecret.export_identity`).

docs/spec/groups.md has the labels and sizes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from chalicelib.wire.binary import lp16, u8, u64
from chalicelib.wire.cards import Card, card_id_from_str
from chalicelib.wire.groups import (
    KIND_MLKEM768X25519,
    KIND_X25519,
    WRAP_SIZES,
    epoch_key_id,
)
from client_sim import _hazmat, age
from client_sim.errors import DecryptionFailed
from client_sim.identity import KeyBundle

__all__ = [
    "AGE_IDENTITY_LABEL",
    "SECRET_SIZE",
    "WRAP_INFO_LABEL",
    "EpochSecret",
    "epoch_kind_for",
    "open_wrap",
    "wrap_info",
    "wrap_secret",
]

SECRET_SIZE: Final = 32
WRAP_INFO_LABEL: Final = b"sealbox/v1/group-wrap"
AGE_IDENTITY_LABEL: Final = b"sealbox/v1/group-age-identity"
_ENC_SIZES: Final = {KIND_X25519: 32, KIND_MLKEM768X25519: 1120}


class EpochSecret:
    """One epoch's secret and the age identity it derives.  ``repr`` shows nothing secret."""

    __slots__ = ("_identity", "_secret", "group_id", "kind", "number")

    def __init__(self, secret: bytes, *, group_id: bytes, number: int, kind: int) -> None:
        if len(secret) != SECRET_SIZE:
            raise ValueError("an epoch secret is 32 bytes")
        if kind not in _ENC_SIZES:
            raise ValueError("unknown epoch key kind")
        self._secret = bytes(secret)
        self._identity: age.X25519Identity | age.HybridIdentity | None = None
        self.group_id = group_id
        self.number = number
        self.kind = kind

    @classmethod
    def generate(cls, *, group_id: bytes, number: int, kind: int) -> EpochSecret:
        """A fresh secret from the OS's CSPRNG."""
        return cls(_hazmat.random_bytes(SECRET_SIZE), group_id=group_id, number=number, kind=kind)

    def _seed(self) -> bytes:
        # The salt binds the group and epoch, the info the key kind: the
        # same secret can never give the same age key twice.
        return _hazmat.hkdf_sha256(
            self._secret,
            salt=self.group_id + u64(self.number),
            info=lp16(AGE_IDENTITY_LABEL) + u8(self.kind),
        )

    def age_identity(self) -> age.X25519Identity | age.HybridIdentity:
        """The epoch's age identity (X25519 or ``mlkem768x25519`` by ``kind``)."""
        if self._identity is None:
            # Derived once: expanding an ML-KEM key costs more than sealing a
            # short message, and every message of the epoch uses it.
            if self.kind == KIND_X25519:
                self._identity = age.X25519Identity._from_secret(self._seed())
            else:
                self._identity = age.HybridIdentity._from_seed(self._seed())
        return self._identity

    def public_key(self) -> bytes:
        """The raw public key of :meth:`age_identity` (signed into the epoch)."""
        return self.age_identity().recipient().public_bytes

    def key_id(self) -> bytes:
        """The id a sealed header addresses this epoch with."""
        return epoch_key_id(self.group_id, self.number, self.public_key())

    def export_identity(self) -> str:
        """The ``AGE-SECRET-KEY-1...`` / ``AGE-SECRET-KEY-PQ-1...`` string: whoever
        holds it reads every message of this epoch.  For age-tool interop and audits."""
        return self.age_identity().secret_string()

    def to_bytes(self) -> bytes:
        """The raw secret, for the device's sealed group state only."""
        return self._secret

    def __repr__(self) -> str:
        return f"EpochSecret(epoch={self.number}, kind={self.kind}, <secret>)"

    def __reduce__(self) -> str:
        raise TypeError("EpochSecret cannot be pickled")


def epoch_kind_for(cards: Iterable[Card]) -> int:
    """Post-quantum when every member card has a hybrid key, X25519 otherwise.

    As for age files (docs/spec/sealed.md), one classical wrap would undo the
    post-quantum protection of the others, so the weakest card decides.
    """
    return (
        KIND_MLKEM768X25519
        if all(card.pq_public_key is not None for card in cards)
        else KIND_X25519
    )


def wrap_info(group_id: bytes, number: int, card_id: bytes, kind: int) -> bytes:
    """The HPKE ``info`` of a wrap: label, group, epoch, card and kind."""
    return lp16(WRAP_INFO_LABEL) + group_id + u64(number) + card_id + u8(kind)


def wrap_secret(secret: EpochSecret, card: Card) -> bytes:
    """The wrap body of ``secret`` for ``card``: ``u8(kind) || enc || ct``.

    The kind follows the card (hybrid when it has a PQ key), independently
    of the epoch's own kind.
    """
    card_id = card_id_from_str(card.card_id)
    if card.pq_public_key is not None:
        kind = KIND_MLKEM768X25519
        info = wrap_info(secret.group_id, secret.number, card_id, kind)
        enc, ct = _hazmat.mlkem768x25519_seal(card.pq_public_key, secret.to_bytes(), info=info)
    else:
        kind = KIND_X25519
        info = wrap_info(secret.group_id, secret.number, card_id, kind)
        enc, ct = _hazmat.x25519_hpke_seal(card.x25519_public_key, secret.to_bytes(), info=info)
    return u8(kind) + enc + ct


def open_wrap(
    body: bytes, bundle: KeyBundle, *, group_id: bytes, number: int, epoch_kind: int
) -> EpochSecret:
    """The epoch secret in ``body``, a wrap for ``bundle``'s card.

    Raises:
        DecryptionFailed: wrong size or kind, not for this card, group or epoch,
            or altered (one opaque error for all).
    """
    if not body or body[0] not in WRAP_SIZES or len(body) != WRAP_SIZES[body[0]]:
        raise DecryptionFailed("the wrap could not be opened")
    kind = body[0]
    enc_size = _ENC_SIZES[kind]
    enc, ct = body[1 : 1 + enc_size], body[1 + enc_size :]
    info = wrap_info(group_id, number, card_id_from_str(bundle.card_id), kind)
    try:
        secret = bundle.hpke_open(kind, enc, ct, info=info)
    except (_hazmat.InvalidTag, _hazmat.LowOrderPoint, ValueError) as exc:
        raise DecryptionFailed("the wrap could not be opened") from exc
    if len(secret) != SECRET_SIZE:
        raise DecryptionFailed("the wrap could not be opened")
    return EpochSecret(secret, group_id=group_id, number=number, kind=epoch_kind)
