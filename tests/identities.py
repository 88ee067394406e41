"""Deterministic key bundles for tests (no CSPRNG, same keys every run)."""

from __future__ import annotations

import functools
import hashlib

from client_sim.identity import KeyBundle

CREATED_AT = 1_700_000_000


def seed(*parts: object) -> bytes:
    """32 bytes derived from ``parts``: distinct labels give unrelated keys."""
    return hashlib.sha256(repr(parts).encode()).digest()


@functools.cache
def bundle(identity: str, generation: int = 0) -> KeyBundle:
    """``identity``'s bundle after ``generation`` rotations (each names the one before)."""
    previous = bundle(identity, generation - 1).card_id if generation else None
    return KeyBundle._from_seeds(
        identity,
        ed25519_seed=seed(identity, generation, "ed25519"),
        x25519_secret=seed(identity, generation, "x25519"),
        pq_seed=seed(identity, generation, "pq"),
        created_at=CREATED_AT + 100 * generation,
        previous_card_id=previous,
    )
