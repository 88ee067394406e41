"""The card directory as a device sees it: lookups, verification, the card cache, publication.

Every card that comes from the server is verified here before anything uses
it -- its self-signature, that its id is the hash of its content, that it
names the identity asked for -- then checked against the contact's pin
(:mod:`client_sim.trust`: a verified rotation moves the pin, anything else
raises :class:`~client_sim.errors.IdentityChanged`), and cached in the
sealed card cache (:mod:`client_sim.card_cache`), which is re-verified
whenever it is read.  A looked-up card is used for at most ``ttl`` seconds
(:data:`MAX_CARD_CACHE_TTL`, 5 minutes, at most): that bounds how long a
revoked or superseded contact card keeps being encrypted to.  Publishing
this device's own card (registration, rotation, with its rotation
signature) and revoking it happen here too, so the rules for never losing
the private key of a published card sit next to the cache they update.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from chalicelib.wire.b64 import b64url_encode
from chalicelib.wire.cards import Card, InvalidCard, card_from_json, rotation_signature_from_json
from client_sim.api import ApiClient
from client_sim.card_cache import (
    CARD_CACHE_FILE,
    CARD_STATUSES,
    CachedCard,
    CardCache,
    status_time,
)
from client_sim.errors import (
    AlreadyRegistered,
    CardVerificationFailed,
    ConcurrentChange,
    InvalidInput,
    LogVerificationFailed,
    ServerError,
    UsersNotFound,
)
from client_sim.identity import KeyBundle
from client_sim.keystore import KeystoreState
from client_sim.session import Session
from client_sim.store import PENDING_CARD, DeviceStore, without
from client_sim.transparency import LogMonitor
from client_sim.trust import Pins

__all__ = ["CARD_CACHE_FILE", "LOOKUP_BATCH", "MAX_CARD_CACHE_TTL", "CardDirectory"]

#: Identities per ``GET /v1/cards`` (the server's limit).
LOOKUP_BATCH: Final = 50
#: The longest a looked-up card is used without asking the directory again,
#: in seconds: the bound on how long a revoked or superseded contact card
#: keeps receiving new encryptions (docs/security.md).
MAX_CARD_CACHE_TTL: Final = 300.0


class CardDirectory:
    """Verified cards for one device, cached for ``ttl`` seconds.

    Args:
        api, session: how the directory is reached.
        store: the keystore (publication stages keys in it first).
        ttl: how long a looked-up active card is used without asking again
            (0 < ttl <= :data:`MAX_CARD_CACHE_TTL`).

    Raises (from the constructor):
        ValueError: ``ttl`` is out of range.
    """

    def __init__(
        self,
        api: ApiClient,
        session: Session,
        store: DeviceStore,
        *,
        ttl: float = MAX_CARD_CACHE_TTL,
        clock: Callable[[], float] = time.time,
        log: LogMonitor | None = None,
    ) -> None:
        if not 0 < ttl <= MAX_CARD_CACHE_TTL:
            raise ValueError(f"the card cache lifetime is at most {MAX_CARD_CACHE_TTL:.0f} s")
        self._api = api
        self._session = session
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._cache = CardCache(store.keystore, store.home)
        self._pins = Pins(store, self._entry_by_id)
        self._loaded = False
        self._by_identity: dict[str, CachedCard] = {}
        self._by_id: dict[str, CachedCard] = {}
        # The key-transparency log (client_sim.transparency): when pinned,
        # no card is used unless the log proves it.
        self._log = log

    # --- lookups ------------------------------------------------------------------------

    def find(self, wanted: Iterable[str], *, refresh: bool = False) -> dict[str, Card]:
        """The verified, trusted active cards of canonical identities ``wanted``, in order.

        Cards looked up less than ``ttl`` ago come from the cache without a
        request; the rest are fetched :data:`LOOKUP_BATCH` per request.
        Every card is then checked against the contact's pin.

        Raises:
            UsersNotFound: some identities have no active card.
            CardVerificationFailed: the server returned a card that doesn't verify.
            IdentityChanged: a contact's card is neither the pinned one nor a
                verified rotation of it (an identity reset); nothing may be
                encrypted to it until :meth:`trust` accepts it.
        """
        wanted = list(dict.fromkeys(wanted))
        self._load()
        found: dict[str, CachedCard] = {}
        missing: list[str] = []
        for identity in wanted:
            cached = self._by_identity.get(identity)
            if cached and not refresh and self._fresh(cached):
                found[identity] = cached
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
                found[cached.card.identity] = cached
        absent = [identity for identity in wanted if identity not in found]
        for identity in absent:
            self._forget_lookup(identity)
        if missing:
            self._save()
        if absent:
            raise UsersNotFound(absent)
        self._pins.check({identity: found[identity] for identity in wanted})
        return {identity: found[identity].card for identity in wanted}

    def trust(self, identity: str, card_id: str) -> Card:
        """Accept ``card_id`` as ``identity``'s card after an identity reset.

        The card must be the identity's active card in the directory right
        now (fetched, verified); it becomes the pin, so lookups and
        encryption use it from then on.

        Raises:
            InvalidInput: ``identity`` is this device's own, or ``card_id``
                is not its active card (it changed again: look it up anew).
            UsersNotFound: the identity has no active card.
            CardVerificationFailed: the directory's answer doesn't verify.
        """
        state = self._store.load()
        if state is not None and state.identity == identity:
            raise InvalidInput("a device does not pin its own identity")
        self._load()
        active = next(
            (
                cached
                for cached in map(self._active_entry, self._find_cards([identity]))
                if cached.card.identity == identity
            ),
            None,
        )
        if active is None:
            raise UsersNotFound([identity])
        if active.card.card_id != card_id:
            raise InvalidInput(f"{card_id} is not {identity}'s active card")
        self._forget_lookup(identity)
        self._remember(active, lookup=True)
        self._save()
        self._pins.trust(identity, card_id)
        return active.card

    def card_by_id(self, card_id: str) -> Card | None:
        """A card by id, whatever its status (for checking old signatures); None if unknown."""
        entry = self._entry_by_id(card_id)
        return None if entry is None else entry.card

    def _entry_by_id(self, card_id: str) -> CachedCard | None:
        self._load()
        cached = self._by_id.get(card_id)
        # A card's content never changes (its id is its hash); only an
        # active card's status can, so only those are looked up again.
        if cached and (cached.status != "active" or self._fresh(cached)):
            return cached
        try:
            fetched = self._fetch(card_id)
        except ServerError as exc:
            if exc.status == 404:
                return None
            raise
        self._remember(fetched, lookup=False)
        self._save()
        return fetched

    def status_of(self, card_id: str) -> tuple[str, int | None] | None:
        """A card's status and when it stopped being active (None while active),
        as the directory last said; asked again when that is stale for an
        active card.  None if the directory doesn't know the card.

        Raises:
            CardVerificationFailed, ServerError, ConnectionFailed: as
                :meth:`card_by_id`.
        """
        entry = self._entry_by_id(card_id)
        return None if entry is None else (entry.status, entry.status_changed_at)

    def own_active(self, identity: str) -> Card | None:
        """``identity``'s active card straight from the directory (never cached)."""
        for entry in self._find_cards([identity]):
            cached = self._active_entry(entry)
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
        # A rotation carries the previous card key's consent (DESIGN invariant 7).
        signature: bytes | None = None
        if bundle.card.previous_card_id is not None:
            previous = state.bundle_for(bundle.card.previous_card_id)
            if previous is None:
                raise ValueError("a rotation is signed by the previous card's key, not here")
            signature = previous.sign_rotation(bundle.card)
        rotation_signature = None if signature is None else b64url_encode(signature)
        staged = state.with_bundles(
            (bundle, *state.bundles), {**state.settings, PENDING_CARD: bundle.card_id}
        )
        self._store.save(staged)
        try:
            self._session.authed_step_up(
                lambda token, proof: self._api.publish_card(
                    token, bundle.card.to_json(), rotation_signature, proof
                )
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
        self._remember(CachedCard(bundle.card, "active", self._clock(), signature), lookup=True)
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
        self._cache.clear()
        self._by_identity.clear()
        self._by_id.clear()
        self._loaded = False

    def _fetch(self, card_id: str) -> CachedCard:
        """``GET /v1/cards/{card_id}``, verified: the card's signature, and
        that it is the card asked for (its id is the hash of its content).

        Raises:
            ServerError: the server refused (404: no such card).
            CardVerificationFailed: the answer is not that card, verified.
        """
        entry = self._session.authed(lambda token: self._api.get_card(token, card_id))
        self._check_logged([entry], entry.get("checkpoint") if isinstance(entry, dict) else None)
        fetched = self._verified(entry)
        if fetched.card.card_id != card_id:
            raise CardVerificationFailed("the server returned another card than the one asked for")
        return fetched

    def _find_cards(self, identities: list[str]) -> list[dict[str, Any]]:
        if self._log is None:
            return self._session.authed(lambda token: self._api.find_cards(token, identities))
        entries, checkpoint = self._session.authed(
            lambda token: self._api.find_cards_proven(token, identities)
        )
        self._check_logged(entries, checkpoint)
        return entries

    def _check_logged(self, entries: list[dict[str, Any]], checkpoint: Any) -> None:
        """Every card of a directory answer is in the log (a no-op without a pinned log)."""
        if self._log is None or not entries:
            return
        if not isinstance(checkpoint, str):
            raise LogVerificationFailed("the directory answered without a log checkpoint")
        cards = []
        for entry in entries:
            try:
                cards.append((card_from_json(entry["card"]), entry))
            except (InvalidCard, KeyError, TypeError) as exc:
                raise CardVerificationFailed(
                    "the server returned a card that does not verify"
                ) from exc
        self._log.verify_cards(cards, checkpoint)

    def _active_entry(self, entry: Any) -> CachedCard:
        return self._verified(entry, status="active")

    def _verified(self, entry: Any, *, status: str | None = None) -> CachedCard:
        try:
            card = card_from_json(entry["card"])
            entry_status = entry["status"]
            raw = entry.get("rotation_signature")
            signature = None if raw is None else rotation_signature_from_json(raw)
            changed_at = status_time(entry.get("status_changed_at"))
        except (InvalidCard, KeyError, TypeError, AttributeError, ValueError) as exc:
            raise CardVerificationFailed("the server returned a card that does not verify") from exc
        if entry_status not in CARD_STATUSES or (status is not None and entry_status != status):
            raise CardVerificationFailed("the server returned a card in an unexpected state")
        return CachedCard(card, entry_status, self._clock(), signature, changed_at)

    def _fresh(self, cached: CachedCard) -> bool:
        # A fetched_at in the future (a clock that went back, or a planted
        # entry) is stale: age is never negative.
        age = self._clock() - cached.fetched_at
        return 0 <= age < self._ttl

    def _forget_lookup(self, identity: str) -> None:
        """Drop ``identity``'s cached active card: it was rotated or revoked.

        Its by-id entry goes too, since its status is no longer known; the
        next signature check by that card asks the directory again.
        """
        previous = self._by_identity.pop(identity, None)
        if previous is not None:
            self._by_id.pop(previous.card.card_id, None)

    def _remember(self, cached: CachedCard, *, lookup: bool) -> None:
        self._by_id[cached.card.card_id] = cached
        if lookup:
            self._by_identity[cached.card.identity] = cached

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for cached, lookup in self._cache.load():
            self._remember(cached, lookup=lookup)

    def _save(self) -> None:
        self._cache.save(
            (cached, self._by_identity.get(cached.card.identity) is cached)
            for cached in self._by_id.values()
        )
