"""The card directory as a device sees it: lookups, verification, the card cache, publication.

Every card that comes from the server is verified here before anything uses
it -- its self-signature, that its id is the hash of its content, that it
names the identity asked for -- and cached in ``cards.json`` under the
device's home, which is re-verified whenever it is read (a cache, not a
trust anchor).  Publishing this device's own card (registration, rotation)
and revoking it happen here too, so the rules for never losing the private
key of a published card sit next to the cache they update.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from chalicelib.wire.cards import Card, InvalidCard, card_from_json
from client_sim.api import ApiClient
from client_sim.errors import (
    AlreadyRegistered,
    CardVerificationFailed,
    ConcurrentChange,
    ServerError,
    UsersNotFound,
)
from client_sim.files import atomic_output
from client_sim.identity import KeyBundle
from client_sim.keystore import KeystoreState
from client_sim.session import Session
from client_sim.store import PENDING_CARD, DeviceStore, without

__all__ = ["CARD_CACHE_FILE", "CARD_CACHE_VERSION", "LOOKUP_BATCH", "CardDirectory"]

CARD_CACHE_FILE: Final = "cards.json"
CARD_CACHE_VERSION: Final = 1
#: Identities per ``GET /v1/cards`` (the server's limit).
LOOKUP_BATCH: Final = 50
_CARD_STATUSES: Final = frozenset({"active", "superseded", "revoked"})


@dataclass
class _CachedCard:
    card: Card
    status: str
    fetched_at: float


class CardDirectory:
    """Verified cards for one device, cached for ``ttl`` seconds.

    Args:
        api, session: how the directory is reached.
        store: the keystore (publication stages keys in it first).
        ttl: how long a looked-up active card is used without asking again.
    """

    def __init__(
        self,
        api: ApiClient,
        session: Session,
        store: DeviceStore,
        *,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._session = session
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._path = store.home / CARD_CACHE_FILE
        self._loaded = False
        self._by_identity: dict[str, _CachedCard] = {}
        self._by_id: dict[str, _CachedCard] = {}

    # --- lookups ------------------------------------------------------------------------

    def find(self, wanted: Iterable[str], *, refresh: bool = False) -> dict[str, Card]:
        """The verified active cards of canonical identities ``wanted``, in order.

        Cards looked up less than ``ttl`` ago come from the cache without a
        request; the rest are fetched :data:`LOOKUP_BATCH` per request.

        Raises:
            UsersNotFound: some identities have no active card.
            CardVerificationFailed: the server returned a card that doesn't verify.
        """
        wanted = list(dict.fromkeys(wanted))
        self._load()
        now = self._clock()
        found: dict[str, Card] = {}
        missing: list[str] = []
        for identity in wanted:
            cached = self._by_identity.get(identity)
            if cached and not refresh and now - cached.fetched_at < self._ttl:
                found[identity] = cached.card
            else:
                missing.append(identity)
        for start in range(0, len(missing), LOOKUP_BATCH):
            batch = missing[start : start + LOOKUP_BATCH]
            for entry in self._find_cards(batch):
                cached = self._verified(entry, status="active")
                if cached.card.identity not in batch:
                    raise CardVerificationFailed("the server returned a card nobody asked for")
                self._forget_lookup(cached.card.identity)
                self._remember(cached, lookup=True)
                found[cached.card.identity] = cached.card
        absent = [identity for identity in wanted if identity not in found]
        for identity in absent:
            self._forget_lookup(identity)
        if missing:
            self._save()
        if absent:
            raise UsersNotFound(absent)
        return {identity: found[identity] for identity in wanted}

    def card_by_id(self, card_id: str) -> Card | None:
        """A card by id, whatever its status (for checking old signatures); None if unknown."""
        self._load()
        cached = self._by_id.get(card_id)
        # A card's content never changes (its id is its hash); only an
        # active card's status can, so only those are looked up again.
        if cached and (cached.status != "active" or self._fresh(cached)):
            return cached.card
        try:
            fetched = self._fetch(card_id)
        except ServerError as exc:
            if exc.status == 404:
                return None
            raise
        self._remember(fetched, lookup=False)
        self._save()
        return fetched.card

    def is_revoked(self, card_id: str) -> bool:
        """True when the directory last reported ``card_id`` revoked (cache only, no request)."""
        cached = self._by_id.get(card_id)
        return cached is not None and cached.status == "revoked"

    def own_active(self, identity: str) -> Card | None:
        """``identity``'s active card straight from the directory (never cached)."""
        for entry in self._find_cards([identity]):
            cached = self._verified(entry, status="active")
            if cached.card.identity == identity:
                return cached.card
        return None

    # --- this device's own card ------------------------------------------------------

    def publish(self, state: KeystoreState, bundle: KeyBundle) -> None:
        """Publish ``bundle``'s card, never losing the private key of a published card.

        The bundle is saved as current (marked pending) *before* the request,
        so a crash after the server accepted the card can't lose its key; a
        definite refusal takes it out again, and an unanswered request leaves
        it pending for :meth:`settle` to resolve.

        Raises:
            AlreadyRegistered: a first card, and the identity has another.
            ConcurrentChange: a rotation, and another device changed the card first.
            ServerError, ConnectionFailed: as from the API (a 5xx or no
                answer leaves the card pending).
        """
        before = state
        staged = KeystoreState(
            state.identity,
            (bundle, *state.bundles),
            {**state.settings, PENDING_CARD: bundle.card_id},
        )
        self._store.save(staged)
        try:
            self._session.authed_step_up(
                lambda token, proof: self._api.publish_card(token, bundle.card.to_json(), proof)
            )
        except ServerError as exc:
            if exc.status >= 500:
                # The server may have committed before failing: keep it pending.
                raise
            active = self.own_active(state.identity) if exc.status == 409 else None
            if active is None or active.card_id != bundle.card_id:
                self._store.save(without(self._store.load_or(before), bundle.card_id))
                if exc.status == 409:
                    if bundle.card.previous_card_id is None:
                        raise AlreadyRegistered(
                            "this identity already has an active card on another device"
                        ) from exc
                    raise ConcurrentChange(
                        "another device changed this identity's card; restore the backup "
                        "to get its keys"
                    ) from exc
                raise
        current = self._store.load_or(staged)
        self._store.save(current.with_settings(**{PENDING_CARD: None}))
        self._remember(_CachedCard(bundle.card, "active", self._clock()), lookup=True)
        self._save()

    def settle(self, state: KeystoreState) -> KeystoreState:
        """Resolve a card publication whose answer never arrived; the keystore after it."""
        pending = state.settings.get(PENDING_CARD)
        if pending is None:
            return state
        try:
            self._fetch(pending)
        except ServerError as exc:
            if exc.status != 404:
                raise
            # Never published: the key protects nothing; forget it.
            settled = without(state, pending).with_settings(**{PENDING_CARD: None})
        else:
            settled = state.with_settings(**{PENDING_CARD: None})
        self._store.save(settled)
        return settled

    def revoke(self, card_id: str) -> None:
        """``POST /v1/cards/{card_id}/revoke``.

        Raises:
            ServerError: refused (404/409 when the card is not this
                identity's active card any more).
        """
        self._session.authed_step_up(
            lambda token, proof: self._api.revoke_card(token, card_id, proof)
        )

    # --- the cache ---------------------------------------------------------------------

    def clear(self) -> None:
        """Forget every cached card, on disk and in memory."""
        self._path.unlink(missing_ok=True)
        self._by_identity.clear()
        self._by_id.clear()
        self._loaded = False

    def _fetch(self, card_id: str) -> _CachedCard:
        """``GET /v1/cards/{card_id}``, verified: the card's signature, and
        that it is the card asked for (its id is the hash of its content).

        Raises:
            ServerError: the server refused (404: no such card).
            CardVerificationFailed: the answer is not that card, verified.
        """
        entry = self._session.authed(lambda token: self._api.get_card(token, card_id))
        fetched = self._verified(entry)
        if fetched.card.card_id != card_id:
            raise CardVerificationFailed("the server returned another card than the one asked for")
        return fetched

    def _find_cards(self, identities: list[str]) -> list[dict[str, Any]]:
        return self._session.authed(lambda token: self._api.find_cards(token, identities))

    def _verified(self, entry: Any, *, status: str | None = None) -> _CachedCard:
        try:
            card = card_from_json(entry["card"])
            entry_status = entry["status"]
        except (InvalidCard, KeyError, TypeError) as exc:
            raise CardVerificationFailed("the server returned a card that does not verify") from exc
        if entry_status not in _CARD_STATUSES or (status is not None and entry_status != status):
            raise CardVerificationFailed("the server returned a card in an unexpected state")
        return _CachedCard(card, entry_status, self._clock())

    def _fresh(self, cached: _CachedCard) -> bool:
        return self._clock() - cached.fetched_at < self._ttl

    def _forget_lookup(self, identity: str) -> None:
        """Drop ``identity``'s cached active card: it was rotated or revoked.

        Its by-id entry goes too, since its status is no longer known; the
        next signature check by that card asks the directory again.
        """
        previous = self._by_identity.pop(identity, None)
        if previous is not None:
            self._by_id.pop(previous.card.card_id, None)

    def _remember(self, cached: _CachedCard, *, lookup: bool) -> None:
        self._by_id[cached.card.card_id] = cached
        if lookup:
            self._by_identity[cached.card.identity] = cached

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            document = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # no cache, or an unreadable one: an empty cache
        if not isinstance(document, dict) or document.get("version") != CARD_CACHE_VERSION:
            return
        for item in document.get("cards", []):
            try:
                # Re-verified on every load: the file is a cache, not a trust anchor.
                cached = self._verified(item)
                cached.fetched_at = float(item["fetched_at"])
                self._remember(cached, lookup=bool(item["lookup"]))
            except (CardVerificationFailed, KeyError, TypeError, ValueError):
                continue

    def _save(self) -> None:
        document = {
            "version": CARD_CACHE_VERSION,
            "cards": [
                {
                    "card": cached.card.to_json(),
                    "status": cached.status,
                    "fetched_at": cached.fetched_at,
                    "lookup": self._by_identity.get(cached.card.identity) is cached,
                }
                for cached in self._by_id.values()
            ],
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # Not synced to disk: a cache lost in a crash is refilled by the next
        # lookup (an unreadable one reads as empty), and lookups are hot.
        with atomic_output(self._path, durable=False) as out:
            out.write(json.dumps(document, sort_keys=True).encode("utf-8"))
