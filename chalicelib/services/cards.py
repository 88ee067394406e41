"""The key directory: publish, find, fetch and revoke cards.

The directory never makes a card (DESIGN invariant 2).  A device makes its
keys, self-signs the card naming them, and publishes it here; the service
checks the self-signature (proof of possession), that the card names the
caller's identity, that its timestamp is close to the server clock, and that
it fits the identity's history:

* **first registration**: the identity has no active card and the card names
  no previous card;
* **rotation**: the card names the identity's active card as
  ``previous_card_id``, :func:`~chalicelib.wire.cards.check_rotation` holds,
  and the request carries a rotation signature by the *previous* card's key
  (:func:`~chalicelib.wire.cards.verify_rotation`), checked before anything
  is written; the previous card becomes *superseded* in the same write.
  An access token alone can't rotate: only the holder of the old private key
  can hand the identity on (DESIGN invariant 7).

Lifecycle (one transition function, :func:`card_transition`)::

    (none) --publish--> ACTIVE --supersede--> SUPERSEDED
                          \\
                           --revoke--> REVOKED

Each identity has at most one ACTIVE card.  The service decides what to
write; the store writes it as one conditional transaction whose conditions
are the transition's preconditions, so two devices racing to register or
rotate produce exactly one winner, and the loser's request changes nothing
(:class:`~chalicelib.errors.CardConflict`).  Reads done before the write are
only for choosing the error message; correctness rests on the conditions.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

from chalicelib.errors import (
    CardConflict,
    CardIdentityMismatch,
    CardNotActive,
    CardRejected,
    InvalidCardId,
    InvalidIdentity,
    InvalidRequest,
    NotFound,
)
from chalicelib.services.lifecycle import InvalidTransition, Lifecycle
from chalicelib.services.transparency import InclusionProofs, LogHead, TransparencyService
from chalicelib.wire.cards import (
    DEFAULT_MAX_CLOCK_SKEW,
    Card,
    InvalidCard,
    RotationSignatureUnexpected,
    card_from_json,
    card_id_from_str,
    check_created_at,
    rotation_signature_from_json,
    verify_rotation,
)
from chalicelib.wire.identity import InvalidIdentity as _BadIdentity
from chalicelib.wire.identity import normalize_identity

# DESIGN §3: one call answers up to 50 identities (one BatchGetItem's worth
# of keys is 100, so a single batched read always suffices).
MAX_LOOKUP_IDENTITIES: Final = 50


# --- lifecycle ----------------------------------------------------------------


class CardStatus(enum.Enum):
    """Where a card is in its life.  Values are the wire and storage strings."""

    ACTIVE = "active"
    SUPERSEDED = "superseded"
    REVOKED = "revoked"


class CardEvent(enum.Enum):
    PUBLISH = "publish"
    SUPERSEDE = "supersede"
    REVOKE = "revoke"


class InvalidCardTransition(InvalidTransition):
    """``event`` is not allowed from the card's current status.

    A subclass of the shared :class:`~chalicelib.services.lifecycle.InvalidTransition`
    (still a ``ValueError``), kept so its name and every ``except`` written
    against it stay as they were.
    """


CARD_LIFECYCLE: Final = Lifecycle[CardStatus, CardEvent](
    {
        (None, CardEvent.PUBLISH): CardStatus.ACTIVE,
        (CardStatus.ACTIVE, CardEvent.SUPERSEDE): CardStatus.SUPERSEDED,
        (CardStatus.ACTIVE, CardEvent.REVOKE): CardStatus.REVOKED,
    },
    error=InvalidCardTransition,
)


def card_transition(status: CardStatus | None, event: CardEvent) -> CardStatus:
    """The status after ``event`` happens to a card in ``status`` (``None``: not stored).

    SUPERSEDED and REVOKED are final: nothing leaves them.

    Raises:
        InvalidCardTransition: the event is not allowed from ``status``.
    """
    return CARD_LIFECYCLE.transition(status, event)


def card_preconditions(event: CardEvent) -> frozenset[CardStatus | None]:
    """The statuses from which ``event`` may happen (what a store's condition checks)."""
    return CARD_LIFECYCLE.sources(event)


# --- records and the store -------------------------------------------------------


@dataclass(frozen=True)
class CardRecord:
    """A card as the directory holds it.

    ``status_changed_at`` and ``superseded_by`` are set once the card leaves
    ACTIVE (``superseded_by`` only for SUPERSEDED).  ``rotation_signature``
    is the previous card key's signature that let a rotation in (None for a
    first card); it is served with the card so devices can check the chain.
    """

    card: Card
    status: CardStatus
    published_at: int
    status_changed_at: int | None = None
    superseded_by: str | None = None
    rotation_signature: bytes | None = None
    # Index of the card's publish leaf in the key-transparency log (None
    # when the log is off, or for cards published before it was on).
    log_index: int | None = None

    @property
    def card_id(self) -> str:
        return self.card.card_id

    @property
    def identity(self) -> str:
        return self.card.identity


class CardStore(Protocol):
    """Persistence for cards (implemented by ``chalicelib.storage.directory``)."""

    def publish(self, record: CardRecord, *, replaces: str | None) -> bool:
        """Store ``record`` (ACTIVE) as its identity's active card, atomically.

        ``replaces=None``: the identity must have no active card.
        ``replaces=id``: card ``id`` must be the identity's active card, and
        it becomes SUPERSEDED (``superseded_by`` = the new card) in the same
        write.  In both cases no card with the new id may exist yet.

        Returns False, having changed nothing, when a condition failed.
        """

    def revoke(self, identity: str, card_id: str, *, at: int) -> bool:
        """Make ``card_id`` REVOKED and leave ``identity`` without an active card.

        Returns False, having changed nothing, unless the card is the
        identity's active card.
        """

    def get(self, card_id: str) -> CardRecord | None:
        """The card with this id, whatever its status."""

    def active(self, identity: str) -> CardRecord | None:
        """The identity's active card (a strongly consistent read)."""

    def active_many(self, identities: Sequence[str]) -> dict[str, CardRecord]:
        """Active cards of up to :data:`MAX_LOOKUP_IDENTITIES` distinct identities,
        in one batched read; identities without one are absent."""


@runtime_checkable
class CardStoreWithLogHead(Protocol):
    """A card store that reads the transparency log's head with a batch of cards."""

    def active_many_and_log_head(
        self, identities: Sequence[str]
    ) -> tuple[dict[str, CardRecord], LogHead | None]:
        """:meth:`CardStore.active_many` and the log head, in one batched read."""


# --- the service -------------------------------------------------------------------


class CardService:
    """Publish, look up and revoke cards for authenticated identities."""

    def __init__(
        self,
        store: CardStore,
        *,
        clock: Callable[[], float],
        max_skew: int = DEFAULT_MAX_CLOCK_SKEW,
        log: TransparencyService | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._max_skew = max_skew
        self._log = log

    def find_proven(self, identities: object) -> tuple[list[CardRecord], InclusionProofs | None]:
        """:meth:`find`, with the cards' inclusion proofs (None when the log is off).

        A store that can read the log head with the cards does (one batched
        read for both); the proofs then take one more batched read of tiles.

        Raises: as :meth:`find`.
        """
        wanted = self._wanted(identities)
        if self._log is None or not isinstance(self._store, CardStoreWithLogHead):
            records = self.find(identities)
            return records, self.prove(records)
        found, head = self._store.active_many_and_log_head(wanted)
        records = [found[identity] for identity in wanted if identity in found]
        indexes = [r.log_index for r in records if r.log_index is not None]
        return records, self._log.prove_inclusion(indexes, head=head)

    def prove(self, records: Sequence[CardRecord]) -> InclusionProofs | None:
        """Inclusion proofs of ``records``' publish leaves to the latest checkpoint.

        None when the key-transparency log is off.  Records without a log
        index (published before the log was on) get no proof; devices
        refuse such cards (docs/spec/transparency.md).
        """
        if self._log is None:
            return None
        return self._log.prove_inclusion(r.log_index for r in records if r.log_index is not None)

    def publish(
        self, identity: str, card_json: object, rotation_signature: object = None
    ) -> CardRecord:
        """Publish the card ``card_json`` for the authenticated ``identity``.

        ``rotation_signature`` (base64url JSON string, or None) is required
        for a rotation and refused for a first card.  Every check runs before
        the write, so a refused request stores nothing.

        Raises:
            CardRejected: the card does not parse or verify, its timestamp is
                too far from the server clock, a rotation breaks
                ``check_rotation``, lacks its rotation signature
                (``rotation_signature_required``) or carries one that does not
                verify under the previous card's key (``bad_rotation_signature``),
                or a first card carries one (``rotation_signature_unexpected``);
                the code is the card error's code.
            CardIdentityMismatch: the card names another identity.
            CardConflict: the identity already has an active card and this is
                not a valid rotation of it, the card was published before, or
                another request won a race (nothing was stored).
        """
        card = _parse_card(card_json)
        if card.identity != identity:
            raise CardIdentityMismatch()
        now = int(self._clock())
        try:
            check_created_at(card, now=now, max_skew=self._max_skew)
            signature = (
                None
                if rotation_signature is None
                else rotation_signature_from_json(rotation_signature)
            )
            if signature is not None and card.previous_card_id is None:
                raise RotationSignatureUnexpected(field="rotation_signature")
        except InvalidCard as exc:
            raise _rejected(exc) from exc

        current = self._store.active(identity)
        if card.previous_card_id is None:
            if current is not None:
                raise CardConflict(
                    "This identity already has an active card; publish a rotation "
                    "naming it as previous_card_id."
                )
        else:
            if current is None or current.card_id != card.previous_card_id:
                raise CardConflict("previous_card_id is not the identity's active card.")
            try:
                # The old key's consent, checked against the card that is
                # active now; the store's condition pins that same card.
                verify_rotation(current.card, card, signature)
            except InvalidCard as exc:
                raise _rejected(exc) from exc
            # The previous card must be able to leave ACTIVE; the store's
            # condition re-checks this at write time.
            card_transition(current.status, CardEvent.SUPERSEDE)

        record = CardRecord(
            card=card,
            status=card_transition(None, CardEvent.PUBLISH),
            published_at=now,
            rotation_signature=signature,
        )
        if not self._store.publish(record, replaces=card.previous_card_id):
            raise CardConflict()
        return record

    def find(self, identities: object) -> list[CardRecord]:
        """Active cards of 1 to 50 identities, in request order (duplicates folded).

        Identities without an active card are simply absent.

        Raises:
            InvalidRequest: no identity, or more than 50 distinct ones.
            InvalidIdentity: one of them is not a valid identity.
        """
        wanted = self._wanted(identities)
        found = self._store.active_many(wanted)
        return [found[identity] for identity in wanted if identity in found]

    def _wanted(self, identities: object) -> list[str]:
        """The distinct canonical identities asked for, validated (see :meth:`find`)."""
        if not isinstance(identities, list | tuple) or not identities:
            raise InvalidRequest("Give 1 to 50 identity parameters.")
        if len(identities) > 2 * MAX_LOOKUP_IDENTITIES:
            # Bounded before any normalisation work.
            raise InvalidRequest(f"At most {MAX_LOOKUP_IDENTITIES} identities per lookup.")
        wanted: list[str] = []
        for raw in identities:
            try:
                identity = normalize_identity(raw)
            except _BadIdentity as exc:
                raise InvalidIdentity() from exc
            if identity not in wanted:
                wanted.append(identity)
        if len(wanted) > MAX_LOOKUP_IDENTITIES:
            raise InvalidRequest(f"At most {MAX_LOOKUP_IDENTITIES} identities per lookup.")
        return wanted

    def get(self, card_id: object) -> CardRecord:
        """One card by id, whatever its status (cards are public).

        Raises:
            InvalidCardId: the id is not 43 characters of canonical base64url.
            NotFound: no such card.
        """
        record = self._store.get(_card_id(card_id))
        if record is None:
            raise NotFound("No card with this id.")
        return record

    def revoke(self, identity: str, card_id: object) -> None:
        """Revoke the caller's active card (unregister).

        Raises:
            InvalidCardId: malformed id.
            NotFound: no such card, or it belongs to another identity (the
                same answer, so this route is no existence oracle).
            CardNotActive: the card is already superseded or revoked.
            CardConflict: a concurrent rotation or revocation won the race.
        """
        record = self._store.get(_card_id(card_id))
        if record is None or record.identity != identity:
            raise NotFound("No card with this id.")
        try:
            card_transition(record.status, CardEvent.REVOKE)
        except InvalidCardTransition as exc:
            raise CardNotActive() from exc
        if not self._store.revoke(identity, record.card_id, at=int(self._clock())):
            raise CardConflict("The card stopped being active while it was being revoked.")


def _parse_card(card_json: object) -> Card:
    try:
        return card_from_json(card_json)
    except InvalidCard as exc:
        raise _rejected(exc) from exc


def _rejected(exc: InvalidCard) -> CardRejected:
    # The card error's message names the field at fault, never its value.
    return CardRejected(exc.code, str(exc))


def _card_id(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidCardId()
    try:
        card_id_from_str(value)
    except InvalidCard as exc:
        raise InvalidCardId() from exc
    return value
