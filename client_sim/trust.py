"""Contact pins: which card this device trusts for each person it writes to.

A device pins, per contact, the card it accepted for them (in the keystore,
sealed with the device key).  Whenever a lookup returns a contact's active
card, :class:`Pins` compares it with the pin:

* no pin yet: trust on first use -- pin it (key transparency, a later
  issue, will back first contact);
* the pinned card: nothing to do;
* another card: walk back from it through ``previous_card_id`` (each card
  fetched by id and verified, each step's rotation signature checked with
  :func:`chalicelib.wire.cards.verify_rotation`) until the pinned card.
  Reached: a verified rotation, the pin moves silently.  Not reached (a card
  with no previous card, a missing card, a bad or missing signature, or more
  than :data:`MAX_CHAIN_STEPS` steps): an **identity reset**, raised as
  :class:`~client_sim.errors.IdentityChanged` with both card ids and the
  safety number.  The device never switches keys silently; the user accepts
  with :meth:`Pins.trust`.

Pure logic over two injected functions (fetch a card by id, and the
keystore), so it knows nothing of HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from chalicelib.wire.cards import InvalidCard, verify_rotation
from chalicelib.wire.safety import safety_number
from client_sim.card_cache import CachedCard
from client_sim.errors import IdentityChanged
from client_sim.keystore import KeystoreState
from client_sim.store import DeviceStore

__all__ = ["MAX_CHAIN_STEPS", "Pins"]

# Rotations between two lookups of one contact; a monthly rotation for five
# years.  Longer chains are treated as resets (the user is asked), which
# bounds the requests a hostile directory can make a lookup cost.
MAX_CHAIN_STEPS: Final = 64


class Pins:
    """Checks looked-up cards against this device's contact pins.

    Args:
        store: the keystore, where pins are kept.
        fetch: a card by id (verified, with its rotation signature), or None
            when the directory has no such card.
    """

    def __init__(self, store: DeviceStore, fetch: Callable[[str], CachedCard | None]) -> None:
        self._store = store
        self._fetch = fetch

    def check(self, found: Mapping[str, CachedCard]) -> None:
        """Accept ``found`` (identity -> its active card) or raise for a reset.

        First contacts are pinned and verified rotations move their pin (saved
        before anything is raised).  The device's own identity is not pinned.

        Raises:
            IdentityChanged: for the first identity (in ``found``'s order)
                whose card is neither its pin nor a verified successor of it.
            CardVerificationFailed, ServerError, ConnectionFailed: from
                ``fetch`` while walking a chain.
        """
        state = self._store.load()
        if state is None:
            return
        updates: dict[str, str] = {}
        reset: IdentityChanged | None = None
        for identity, entry in found.items():
            new_id = entry.card.card_id
            if identity == state.identity:
                continue
            pinned = state.pins.get(identity)
            if pinned == new_id:
                continue
            if pinned is None or self._continues(pinned, entry):
                updates[identity] = new_id
            elif reset is None:
                reset = IdentityChanged(identity, pinned, new_id, _number(state, identity, new_id))
        if updates:
            self._save(updates)
        if reset is not None:
            raise reset

    def trust(self, identity: str, card_id: str) -> None:
        """Pin ``card_id`` for ``identity`` (the user accepted an identity reset)."""
        self._save({identity: card_id})

    def _continues(self, pinned: str, entry: CachedCard) -> bool:
        """True when a chain of verified rotations leads from ``pinned`` to ``entry``."""
        current = entry
        for _ in range(MAX_CHAIN_STEPS):
            previous_id = current.card.previous_card_id
            if previous_id is None:
                return False  # a first card: whatever came before was reset
            previous = self._fetch(previous_id)
            if previous is None:
                return False
            try:
                # The old key's consent, checked here again: the directory's
                # word that it checked is not enough (DESIGN invariant 7).
                verify_rotation(previous.card, current.card, current.rotation_signature)
            except InvalidCard:
                return False
            if previous_id == pinned:
                return True
            current = previous
        return False

    def _save(self, updates: Mapping[str, str]) -> None:
        # Re-read right before writing so pins never undo another write.
        state = self._store.load()
        if state is None:
            return
        for identity, card_id in updates.items():
            state = state.with_pin(identity, card_id)
        self._store.save(state)


def _number(state: KeystoreState, identity: str, card_id: str) -> str | None:
    own = state.current_card_id
    return None if own is None else safety_number(state.identity, own, identity, card_id)
