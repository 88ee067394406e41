"""Leaves of the key-transparency log: one per card event.

Every change to the directory (a first card, a rotation, a revocation)
appends one leaf to the log (docs/spec/transparency.md).  An identity reset
is a revocation followed by a first card; it needs no kind of its own.  The
leaf carries everything an auditor needs to re-check the event with no other
input: the whole encoded card (self-signed) and, for a rotation, the
previous card key's rotation signature::

    leaf = lp16("sealbox/v1/kt-leaf") || u8(version = 1) || u8(kind)
           || lp16(identity) || card_id (32 bytes) || lp16(previous card id or empty)
           || u64(time) || lp16(encoded card, or empty for a revocation)
           || lp16(rotation signature, or empty)

``kind`` is 1 (publish: a first card), 2 (rotate) or 3 (revoke: ``card_id``
is the revoked card).  ``time`` is the server clock when the event was
written (unix seconds).  :func:`decode_leaf` checks every rule a single leaf
can be checked against (self-signature, ids agree, fields present exactly
when the kind needs them); whether a rotation signature is valid needs the
previous card and is the auditor's check (:func:`chalicelib.wire.cards.verify_rotation`).

Failures raise :class:`InvalidLeaf` (a ``ValueError``) with a stable ``code``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from chalicelib.wire.binary import Reader, lp16, u8, u64
from chalicelib.wire.cards import (
    CARD_ID_SIZE,
    ROTATION_SIGNATURE_SIZE,
    Card,
    InvalidCard,
    card_id_from_str,
    card_id_to_str,
    decode_card,
)
from chalicelib.wire.identity import InvalidIdentity, normalize_identity

__all__ = [
    "KT_LEAF_LABEL",
    "KT_LEAF_VERSION",
    "MAX_LEAF_SIZE",
    "InvalidLeaf",
    "LeafKind",
    "LogLeaf",
    "decode_leaf",
]

KT_LEAF_LABEL: Final = b"sealbox/v1/kt-leaf"
KT_LEAF_VERSION: Final = 1
MAX_LEAF_SIZE: Final = 4096  # a card is at most ~1.5 KiB


class InvalidLeaf(ValueError):
    """A log leaf is malformed or inconsistent.  ``code`` is stable."""

    code = "kt_leaf_invalid"


class LeafKind(enum.IntEnum):
    """What happened to the identity's cards."""

    PUBLISH = 1
    ROTATE = 2
    REVOKE = 3


@dataclass(frozen=True)
class LogLeaf:
    """One card event, as logged.

    ``card`` is None exactly for REVOKE; ``rotation_signature`` is set
    exactly for ROTATE; ``previous_card_id`` is set exactly for ROTATE and
    equals the card's own ``previous_card_id``.
    """

    kind: LeafKind
    identity: str
    card_id: str
    time: int
    card: Card | None = None
    previous_card_id: str | None = None
    rotation_signature: bytes | None = None

    def __post_init__(self) -> None:
        _check(self)

    def encode(self) -> bytes:
        """The canonical leaf bytes (what the Merkle leaf hash covers)."""
        return b"".join(
            (
                lp16(KT_LEAF_LABEL),
                u8(KT_LEAF_VERSION),
                u8(int(self.kind)),
                lp16(self.identity.encode("ascii")),
                card_id_from_str(self.card_id),
                lp16(card_id_from_str(self.previous_card_id) if self.previous_card_id else b""),
                u64(self.time),
                lp16(self.card.encode() if self.card is not None else b""),
                lp16(self.rotation_signature or b""),
            )
        )

    @classmethod
    def publish(cls, card: Card, *, time: int, rotation_signature: bytes | None) -> LogLeaf:
        """The leaf for publishing ``card`` (a rotation when it names a previous card)."""
        kind = LeafKind.ROTATE if card.previous_card_id else LeafKind.PUBLISH
        return cls(
            kind,
            card.identity,
            card.card_id,
            time,
            card,
            card.previous_card_id,
            rotation_signature,
        )

    @classmethod
    def revoke(cls, identity: str, card_id: str, *, time: int) -> LogLeaf:
        """The leaf for revoking ``card_id``."""
        return cls(LeafKind.REVOKE, identity, card_id, time)


def _check(leaf: LogLeaf) -> None:
    try:
        if normalize_identity(leaf.identity) != leaf.identity:
            raise InvalidLeaf("identity is not canonical")
    except InvalidIdentity as exc:
        raise InvalidLeaf("invalid identity") from exc
    if not 0 <= leaf.time < 2**63:
        raise InvalidLeaf("time out of range")
    if leaf.kind is LeafKind.REVOKE:
        if leaf.card is not None or leaf.previous_card_id or leaf.rotation_signature:
            raise InvalidLeaf("a revocation carries only the revoked card id")
        return
    card = leaf.card
    if card is None:
        raise InvalidLeaf("a publish or rotate leaf carries the card")
    if card.identity != leaf.identity or card.card_id != leaf.card_id:
        raise InvalidLeaf("the card does not match the leaf's identity or card id")
    if card.previous_card_id != leaf.previous_card_id:
        raise InvalidLeaf("the card names another previous card")
    if leaf.kind is LeafKind.PUBLISH:
        if leaf.previous_card_id is not None or leaf.rotation_signature is not None:
            raise InvalidLeaf("a first card names no previous card and has no rotation signature")
    elif leaf.previous_card_id is None or (
        leaf.rotation_signature is None or len(leaf.rotation_signature) != ROTATION_SIGNATURE_SIZE
    ):
        raise InvalidLeaf("a rotation names the previous card and carries its signature")


def decode_leaf(data: bytes) -> LogLeaf:
    """Parse and check one leaf.

    Raises:
        InvalidLeaf: wrong label or version, unknown kind, truncated,
            trailing bytes, a card that does not verify, or fields that do
            not fit the kind.
    """
    if not isinstance(data, bytes) or len(data) > MAX_LEAF_SIZE:
        raise InvalidLeaf("leaf is too large")
    reader = Reader(data)
    try:
        if reader.lp16() != KT_LEAF_LABEL:
            raise InvalidLeaf("not a Sealbox log leaf")
        if reader.u8() != KT_LEAF_VERSION:
            raise InvalidLeaf("unsupported leaf version")
        try:
            kind = LeafKind(reader.u8())
        except ValueError as exc:
            raise InvalidLeaf("unknown leaf kind") from exc
        identity = reader.lp16().decode("ascii")
        card_id = card_id_to_str(reader.take(CARD_ID_SIZE))
        previous = reader.lp16()
        time = reader.u64()
        card_bytes = reader.lp16()
        signature = reader.lp16()
        reader.finish()
    except InvalidLeaf:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidLeaf("malformed leaf") from exc
    if len(previous) not in (0, CARD_ID_SIZE):
        raise InvalidLeaf("previous card id is not 32 bytes")
    try:
        card = decode_card(card_bytes) if card_bytes else None
    except InvalidCard as exc:
        raise InvalidLeaf("the logged card does not verify") from exc
    return LogLeaf(
        kind,
        identity,
        card_id,
        time,
        card,
        card_id_to_str(previous) if previous else None,
        signature or None,
    )
