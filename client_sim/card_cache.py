"""The device's card cache, sealed under the device key like the keystore.

Looked-up cards are kept between runs so a phone doesn't ask the directory
for every message.  The cache is only a cache -- every card in it is
re-verified when read and checked against the contact pins before use -- but
what it says decides which keys data is encrypted to *until it goes stale*,
so it must not be plantable: it lives in the keystore directory as
``keystore/cards.sbs``, sealed with the device key (label
``sealbox/v1/card-cache``; docs/spec/keystore.md).  A file that fails
authentication is refused and treated as an empty cache, never read.

The unauthenticated ``cards.json`` that earlier releases kept beside the
keystore is never read; it is deleted on first use.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from chalicelib.wire.b64 import b64url_encode
from chalicelib.wire.cards import Card, InvalidCard, card_from_json, rotation_signature_from_json
from client_sim.keystore import Keystore, KeystoreCorrupted

__all__ = [
    "CARD_CACHE_FILE",
    "CARD_CACHE_LABEL",
    "CARD_CACHE_MAGIC",
    "CARD_STATUSES",
    "LEGACY_CARD_CACHE_FILE",
    "CachedCard",
    "CardCache",
    "status_time",
]

CARD_CACHE_FILE: Final = "cards.sbs"
CARD_CACHE_MAGIC: Final = b"SBCCACHE"
CARD_CACHE_LABEL: Final = b"sealbox/v1/card-cache"
CARD_CACHE_BODY_VERSION: Final = 1
# About 4000 cards with their envelopes; anything bigger is not ours.
MAX_CARD_CACHE_SIZE: Final = 8 * 1024 * 1024
LEGACY_CARD_CACHE_FILE: Final = "cards.json"
CARD_STATUSES: Final = frozenset({"active", "superseded", "revoked"})


@dataclass
class CachedCard:
    """A verified card as the directory last described it.

    ``rotation_signature`` is the previous card key's signature the
    directory published the card with (None for a first card);
    ``status_changed_at`` is when the card stopped being active (the
    directory's clock, seconds), None while it is active.
    """

    card: Card
    status: str
    fetched_at: float
    rotation_signature: bytes | None = None
    status_changed_at: int | None = None


class CardCache:
    """Reads and writes the sealed card cache of one device.

    Args:
        keystore: the device's keystore (its directory and device key).
        home: the device's home (where the legacy ``cards.json`` was).
    """

    def __init__(self, keystore: Keystore, home: Path) -> None:
        self._keystore = keystore
        self._legacy = home / LEGACY_CARD_CACHE_FILE

    def load(self) -> list[tuple[CachedCard, bool]]:
        """Every cached card and whether it answers a lookup of its identity.

        A missing, unauthenticated or unparsable cache reads as empty; a
        card that no longer verifies is skipped.

        Raises:
            KeystorePermissionError: the keystore directory or file is not
                owner-only (refused, as for the keystore).
        """
        self._legacy.unlink(missing_ok=True)
        try:
            body = self._keystore.read_sealed(
                CARD_CACHE_FILE, CARD_CACHE_MAGIC, CARD_CACHE_LABEL, MAX_CARD_CACHE_SIZE
            )
        except KeystoreCorrupted:
            # Planted or damaged (KeystoreTampered is a KeystoreCorrupted):
            # refuse every entry; the next lookup asks the directory.
            return []
        if body is None:
            return []
        try:
            document = json.loads(body)
        except ValueError:
            return []
        if not isinstance(document, dict) or document.get("version") != CARD_CACHE_BODY_VERSION:
            return []
        entries: list[tuple[CachedCard, bool]] = []
        for item in document.get("cards", []):
            try:
                entries.append((_entry(item), item["lookup"] is True))
            except (InvalidCard, KeyError, TypeError, ValueError):
                continue
        return entries

    def save(self, entries: Iterable[tuple[CachedCard, bool]]) -> None:
        """Replace the cache with ``entries`` (card, answers-a-lookup)."""
        document = {
            "version": CARD_CACHE_BODY_VERSION,
            "cards": [_item(cached, lookup) for cached, lookup in entries],
        }
        body = json.dumps(document, sort_keys=True).encode("utf-8")
        self._keystore.write_sealed(CARD_CACHE_FILE, CARD_CACHE_MAGIC, CARD_CACHE_LABEL, body)

    def clear(self) -> None:
        self._keystore.remove(CARD_CACHE_FILE)
        self._legacy.unlink(missing_ok=True)


def _item(cached: CachedCard, lookup: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "card": cached.card.to_json(),
        "status": cached.status,
        "fetched_at": cached.fetched_at,
        "lookup": lookup,
    }
    if cached.rotation_signature is not None:
        item["rotation_signature"] = b64url_encode(cached.rotation_signature)
    if cached.status_changed_at is not None:
        item["status_changed_at"] = cached.status_changed_at
    return item


def _entry(item: Any) -> CachedCard:
    # Re-verified on every load: authenticated or not, a cache is no trust anchor.
    card = card_from_json(item["card"])
    status = item["status"]
    fetched_at = item["fetched_at"]
    if status not in CARD_STATUSES:
        raise ValueError("unknown status")
    if not isinstance(fetched_at, int | float) or not math.isfinite(fetched_at):
        raise ValueError("bad fetched_at")
    raw = item.get("rotation_signature")
    signature = None if raw is None else rotation_signature_from_json(raw)
    return CachedCard(
        card, status, float(fetched_at), signature, status_time(item.get("status_changed_at"))
    )


def status_time(value: object) -> int | None:
    """A card's ``status_changed_at`` as the directory sends it, checked.

    Raises:
        ValueError: not None and not a non-negative integer of at most 2**53.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1 << 53:
        raise ValueError("bad status_changed_at")
    return value
