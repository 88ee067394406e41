"""Contact pins and chain walking (client_sim.trust), over an in-memory directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from client_sim.card_cache import CachedCard
from client_sim.errors import IdentityChanged
from client_sim.identity import KeyBundle
from client_sim.keystore import DeviceKey, Keystore, KeystoreState
from client_sim.store import DeviceStore
from client_sim.trust import MAX_CHAIN_STEPS, Pins
from tests.identities import bundle

T0 = 1_800_000_000


class Directory:
    """Cards by id, as the server would serve them (with rotation signatures)."""

    def __init__(self) -> None:
        self.cards: dict[str, CachedCard] = {}
        self.fetches = 0

    def publish(self, new: KeyBundle, previous: KeyBundle | None = None) -> CachedCard:
        signature = None if previous is None else previous.sign_rotation(new.card)
        entry = CachedCard(new.card, "active", 0.0, signature)
        self.cards[new.card_id] = entry
        return entry

    def fetch(self, card_id: str) -> CachedCard | None:
        self.fetches += 1
        return self.cards.get(card_id)


@pytest.fixture
def store(tmp_path: Path) -> DeviceStore:
    device = DeviceStore(tmp_path)
    device.keystore = Keystore(tmp_path, device_key=DeviceKey(bytes(32)))
    device.save(KeystoreState("bob", (bundle("bob"),)))
    return device


def chain(directory: Directory, length: int) -> list[KeyBundle]:
    bundles = [KeyBundle.generate("alice", created_at=T0)]
    directory.publish(bundles[0])
    for step in range(length):
        new = bundles[-1].rotate(created_at=T0 + step + 1)
        directory.publish(new, bundles[-1])
        bundles.append(new)
    return bundles


def test_first_contact_pins_then_the_pinned_card_needs_no_request(store) -> None:
    directory = Directory()
    pins = Pins(store, directory.fetch)
    (alice,) = chain(directory, 0)
    pins.check({"alice": directory.cards[alice.card_id]})
    assert store.load().pins == {"alice": alice.card_id}
    pins.check({"alice": directory.cards[alice.card_id]})
    assert directory.fetches == 0


def test_own_identity_is_never_pinned(store) -> None:
    directory = Directory()
    own = directory.publish(KeyBundle.generate("bob", created_at=T0))
    Pins(store, directory.fetch).check({"bob": own})
    assert dict(store.load().pins) == {}


def test_a_chain_of_signed_rotations_moves_the_pin(store) -> None:
    directory = Directory()
    bundles = chain(directory, 5)
    pins = Pins(store, directory.fetch)
    pins.trust("alice", bundles[0].card_id)
    pins.check({"alice": directory.cards[bundles[-1].card_id]})
    assert store.load().pins["alice"] == bundles[-1].card_id
    assert directory.fetches == 5


@pytest.mark.parametrize("broken", ["missing card", "no signature", "wrong signer"])
def test_a_broken_link_anywhere_in_the_chain_is_a_reset(store, broken: str) -> None:
    directory = Directory()
    bundles = chain(directory, 3)
    middle = directory.cards[bundles[2].card_id]
    if broken == "missing card":
        del directory.cards[bundles[1].card_id]
    elif broken == "no signature":
        middle.rotation_signature = None
    else:
        stranger = KeyBundle.generate("alice", created_at=T0)
        middle.rotation_signature = stranger.sign(b"x" * 10)
    pins = Pins(store, directory.fetch)
    pins.trust("alice", bundles[0].card_id)
    with pytest.raises(IdentityChanged) as reset:
        pins.check({"alice": directory.cards[bundles[-1].card_id]})
    assert (reset.value.old_card_id, reset.value.new_card_id) == (
        bundles[0].card_id,
        bundles[-1].card_id,
    )
    assert reset.value.safety_number is not None
    assert store.load().pins["alice"] == bundles[0].card_id


def test_chains_longer_than_the_bound_are_resets_and_cost_bounded_requests(store) -> None:
    directory = Directory()
    bundles = chain(directory, MAX_CHAIN_STEPS + 1)
    pins = Pins(store, directory.fetch)
    pins.trust("alice", bundles[0].card_id)
    with pytest.raises(IdentityChanged):
        pins.check({"alice": directory.cards[bundles[-1].card_id]})
    assert directory.fetches == MAX_CHAIN_STEPS


def test_other_contacts_are_pinned_even_when_one_is_reset(store) -> None:
    directory = Directory()
    pins = Pins(store, directory.fetch)
    (alice,) = chain(directory, 0)
    pins.trust("alice", bundle("alice").card_id)
    carol = directory.publish(KeyBundle.generate("carol", created_at=T0))
    with pytest.raises(IdentityChanged):
        pins.check({"alice": directory.cards[alice.card_id], "carol": carol})
    assert store.load().pins["carol"] == carol.card.card_id
