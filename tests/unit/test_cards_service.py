"""CardService and the card lifecycle with an in-memory store (no I/O)."""

from __future__ import annotations

import contextlib
import itertools

import pytest

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
from chalicelib.services.cards import (
    CardEvent,
    CardService,
    CardStatus,
    InvalidCardTransition,
    card_preconditions,
    card_transition,
)
from chalicelib.wire.b64 import b64url_encode
from client_sim.identity import KeyBundle
from tests.support.fakes import FakeClock, MemoryCards

T0 = 1_800_000_000


def bundle(identity: str = "alice", *, created_at: int = T0) -> KeyBundle:
    return KeyBundle.generate(identity, created_at=created_at)


def signed(previous: KeyBundle, new: KeyBundle) -> str:
    """``new``'s rotation signature by ``previous``'s key, as a device sends it."""
    return b64url_encode(previous.sign_rotation(new.card))


@pytest.fixture
def store() -> MemoryCards:
    return MemoryCards()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(float(T0))


@pytest.fixture
def service(store: MemoryCards, clock: FakeClock) -> CardService:
    return CardService(store, clock=clock, max_skew=300)


# --- the lifecycle ---------------------------------------------------------------


def test_transition_table_is_exactly_the_documented_one() -> None:
    allowed = {}
    for status, event in itertools.product([None, *CardStatus], CardEvent):
        with contextlib.suppress(InvalidCardTransition):
            allowed[(status, event)] = card_transition(status, event)
    assert allowed == {
        (None, CardEvent.PUBLISH): CardStatus.ACTIVE,
        (CardStatus.ACTIVE, CardEvent.SUPERSEDE): CardStatus.SUPERSEDED,
        (CardStatus.ACTIVE, CardEvent.REVOKE): CardStatus.REVOKED,
    }
    assert card_preconditions(CardEvent.REVOKE) == {CardStatus.ACTIVE}
    assert card_preconditions(CardEvent.PUBLISH) == {None}


@pytest.mark.parametrize("final", [CardStatus.SUPERSEDED, CardStatus.REVOKED])
def test_final_states_are_final(final: CardStatus) -> None:
    for event in CardEvent:
        with pytest.raises(InvalidCardTransition, match=final.value):
            card_transition(final, event)


# --- publish -------------------------------------------------------------------------


def test_publish_first_then_rotate(service: CardService, store: MemoryCards) -> None:
    first = bundle()
    record = service.publish("alice", first.card.to_json())
    assert (record.status, record.published_at) == (CardStatus.ACTIVE, T0)
    second = first.rotate(created_at=T0 + 1)
    service.publish("alice", second.card.to_json(), signed(first, second))
    assert store.active("alice").card_id == second.card_id  # type: ignore[union-attr]
    old = store.get(first.card_id)
    assert old is not None
    assert (old.status, old.superseded_by) == (CardStatus.SUPERSEDED, second.card_id)


def test_publish_refuses_a_card_for_someone_else(service, store) -> None:
    with pytest.raises(CardIdentityMismatch):
        service.publish("alice", bundle("bob").card.to_json())
    assert store.cards == {}


@pytest.mark.parametrize("offset", [-301, 301])
def test_publish_refuses_clock_skew(service, store, offset) -> None:
    with pytest.raises(CardRejected) as refused:
        service.publish("alice", bundle(created_at=T0 + offset).card.to_json())
    assert refused.value.code == "card_clock_skew"
    assert store.cards == {}


@pytest.mark.parametrize("offset", [-300, 300])
def test_publish_accepts_the_edge_of_the_skew(service, offset) -> None:
    service.publish("alice", bundle(created_at=T0 + offset).card.to_json())


def test_publish_refuses_garbage_with_the_card_code(service) -> None:
    with pytest.raises(CardRejected) as refused:
        service.publish("alice", ["not", "a", "card"])
    assert refused.value.code == "card_malformed"
    assert refused.value.status == 400


def test_second_first_card_conflicts(service, store) -> None:
    service.publish("alice", bundle().card.to_json())
    before = dict(store.cards)
    with pytest.raises(CardConflict):
        service.publish("alice", bundle().card.to_json())
    assert store.cards == before


def test_rotation_of_a_stale_card_conflicts(service, store) -> None:
    first = bundle()
    service.publish("alice", first.card.to_json())
    second = first.rotate(created_at=T0)
    service.publish("alice", second.card.to_json(), signed(first, second))
    stale = first.rotate(created_at=T0)
    with pytest.raises(CardConflict):
        service.publish("alice", stale.card.to_json(), signed(first, stale))


def test_losing_the_race_after_the_read_is_a_conflict(service, store) -> None:
    """The store's condition, not the service's read, decides."""
    first = bundle()
    service.publish("alice", first.card.to_json())
    mine, theirs = first.rotate(created_at=T0), first.rotate(created_at=T0)
    real_active = store.active

    def active_then_competitor(identity: str):  # type: ignore[no-untyped-def]
        seen = real_active(identity)
        store.active = real_active  # type: ignore[method-assign]
        service.publish("alice", theirs.card.to_json(), signed(first, theirs))
        return seen

    store.active = active_then_competitor  # type: ignore[method-assign]
    with pytest.raises(CardConflict):
        service.publish("alice", mine.card.to_json(), signed(first, mine))
    assert store.active("alice").card_id == theirs.card_id  # type: ignore[union-attr]
    assert mine.card_id not in store.cards


# --- find, get, revoke ------------------------------------------------------------


def test_find_normalises_dedupes_and_uses_one_batch(service, store) -> None:
    for name in ("alice", "bob"):
        service.publish(name, bundle(name).card.to_json())
    found = service.find(["BOB", "bob", "carol", "Alice"])
    assert [record.identity for record in found] == ["bob", "alice"]
    assert store.batch_reads == 1


@pytest.mark.parametrize(
    ("identities", "error"),
    [
        ([], InvalidRequest),
        ("alice", InvalidRequest),
        ([f"user-{i}" for i in range(51)], InvalidRequest),
        (["alice"] * 101, InvalidRequest),
        (["a/b"], InvalidIdentity),
        ([7], InvalidIdentity),
    ],
)
def test_find_validates(service, store, identities, error) -> None:
    with pytest.raises(error):
        service.find(identities)
    assert store.batch_reads == 0


def test_find_accepts_fifty_and_repeats_of_them(service) -> None:
    names = [f"user-{i}" for i in range(50)]
    assert service.find(names + names[:10]) == []


@pytest.mark.parametrize("card_id", ["", "A" * 42, "A" * 44, "A" * 42 + "B", None, 5])
def test_get_and_revoke_validate_the_id(service, card_id) -> None:
    with pytest.raises(InvalidCardId):
        service.get(card_id)
    with pytest.raises(InvalidCardId):
        service.revoke("alice", card_id)


def test_revoke_is_owner_only_and_once(service, store) -> None:
    card = bundle()
    service.publish("alice", card.card.to_json())
    with pytest.raises(NotFound):
        service.revoke("bob", card.card_id)
    with pytest.raises(NotFound):
        service.revoke("alice", "A" * 43)
    service.revoke("alice", card.card_id)
    assert service.get(card.card_id).status is CardStatus.REVOKED
    assert service.find(["alice"]) == []
    with pytest.raises(CardNotActive):
        service.revoke("alice", card.card_id)
