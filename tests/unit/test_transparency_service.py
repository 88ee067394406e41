"""The log's append planning and tile-based proofs, against the in-memory Merkle tree.

Over 600 leaves, so tiles of level 1 (subtrees of 256 leaves) are exercised.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import pytest

from chalicelib.errors import InternalError, InvalidRequest, NotFound
from chalicelib.services.transparency import (
    LEAF_BUNDLE,
    TILE_WIDTH,
    LogHead,
    TileKey,
    TransparencyService,
    plan_append,
)
from chalicelib.wire import merkle
from chalicelib.wire.checkpoint import open_log_checkpoint
from chalicelib.wire.note import NoteSigner

SIGNER = NoteSigner.from_seed("sealbox.test/kt", bytes(range(32)))


class MemoryLog:
    """A LogReader over what plan_append says to write, applied the way the store does."""

    def __init__(self) -> None:
        self._head = LogHead(0, (), "")
        self.leaves_: list[bytes] = []
        self.tiles_: dict[TileKey, list[bytes]] = {}
        self.bundles_: dict[int, list[bytes]] = {}

    def append(self, leaf: bytes, now: int = 1_700_000_000) -> None:
        planned = plan_append(self._head, leaf, signer=SIGNER, now=now)
        assert planned.index == len(self.leaves_)
        if planned.completed_tile is not None:
            key, hashes = planned.completed_tile
            assert key not in self.tiles_  # the store's attribute_not_exists
            self.tiles_[key] = list(hashes)
        if planned.completed_bundle is not None:
            number, leaves = planned.completed_bundle
            assert number not in self.bundles_  # the store's attribute_not_exists
            self.bundles_[number] = list(leaves)
        for key, position, value in planned.tile_entries:
            assert key[0] >= 1  # level-0 tiles are the head's edge until complete
            tile = self.tiles_.setdefault(key, [])
            assert len(tile) == position  # the store's size(h) = position condition
            tile.append(value)
        self.leaves_.append(leaf)
        self._head = planned.head

    def head(self) -> LogHead:
        return self._head

    def tiles(self, keys: Iterable[TileKey]) -> dict[TileKey, list[bytes]]:
        return {k: list(self.tiles_[k]) for k in keys if k in self.tiles_}

    def bundles(self, keys: Iterable[int]) -> dict[int, list[bytes]]:
        return {k: list(self.bundles_[k]) for k in keys if k in self.bundles_}


@pytest.fixture(scope="module")
def log() -> MemoryLog:
    memory = MemoryLog()
    for i in range(600):
        memory.append(i.to_bytes(4, "big"))
    return memory


def test_heads_checkpoints_and_tiles(log: MemoryLog) -> None:
    hashes = [merkle.leaf_hash(leaf) for leaf in log.leaves_]
    head = log.head()
    assert head.root == merkle.root_of(hashes)
    cp = open_log_checkpoint(head.checkpoint, SIGNER.verifier, origin=SIGNER.name)
    assert (cp.size, cp.root) == (600, head.root)
    assert len(log.tiles_[(0, 0)]) == TILE_WIDTH
    # The third level-0 tile is not full: its hashes are the head's edge,
    # not a stored tile.
    assert (0, 2) not in log.tiles_
    assert head.edge_tile == (0, 2)
    assert list(head.edge) == hashes[2 * TILE_WIDTH :]
    # Likewise the leaves: 600 in stored bundles of 8, none left pending ...
    assert sorted(log.bundles_) == list(range(600 // LEAF_BUNDLE))
    assert all(
        log.bundles_[k] == log.leaves_[LEAF_BUNDLE * k : LEAF_BUNDLE * (k + 1)]
        for k in log.bundles_
    )
    assert head.pending == ()
    # ... and in a log of 21, two bundles and 5 leaves in the head.
    small = _log_of(21)
    assert sorted(small.bundles_) == [0, 1]
    assert list(small.head().pending) == small.leaves_[16:]
    assert small.head().edge == tuple(merkle.leaf_hash(leaf) for leaf in small.leaves_)
    # Level 1 holds the two complete 256-leaf subtrees.
    assert log.tiles_[(1, 0)] == [
        merkle.root_of(hashes[:256]),
        merkle.root_of(hashes[256:512]),
    ]


def test_tile_proofs_equal_the_in_memory_ones(log: MemoryLog) -> None:
    hashes = [merkle.leaf_hash(leaf) for leaf in log.leaves_]
    service = TransparencyService(log)
    indexes = [0, 1, 255, 256, 300, 511, 512, 599]
    proofs = service.prove_inclusion(indexes)
    assert proofs.size == 600
    for i in indexes:
        assert proofs.proofs[i] == merkle.inclusion_proof(i, hashes)
    for old in (1, 255, 256, 257, 512, 599, 600):
        assert service.consistency(str(old), "600") == merkle.consistency_proof(old, hashes)


def test_entries_and_bad_arguments(log: MemoryLog) -> None:
    service = TransparencyService(log)
    page, following = service.entries("590", "100")
    assert [i for i, _ in page] == list(range(590, 600))
    assert following is None
    assert [leaf for _, leaf in page] == log.leaves_[590:]
    page, following = service.entries("0", None)
    assert len(page) == 100
    assert following == 100
    for start, limit in (("-1", "1"), ("x", "1"), ("0", "0"), ("0", "101"), ("01", "1")):
        with pytest.raises(InvalidRequest):
            service.entries(start, limit)
    with pytest.raises(InvalidRequest):
        service.consistency("5", "4")
    with pytest.raises(NotFound):
        service.consistency("5", "601")


# --- a head edited in the table (attack tests) --------------------------------------


def _log_of(count: int) -> MemoryLog:
    memory = MemoryLog()
    for i in range(count):
        memory.append(i.to_bytes(4, "big"))
    return memory


def _flip(value: bytes) -> bytes:
    return bytes([value[0] ^ 1]) + value[1:]


def test_an_edited_edge_is_never_stored_as_a_tile() -> None:
    """The operator rewrites a leaf hash in the head's edge: proofs served from
    it fail on devices (tests/functional/test_kt_api.py), and the append that
    completes the tile refuses to store it rather than make the lie permanent."""
    memory = _log_of(255)
    head = memory.head()
    edited = replace(head, edge=(*head.edge[:7], _flip(head.edge[7]), *head.edge[8:]))
    with pytest.raises(InternalError):
        plan_append(edited, b"next", signer=SIGNER, now=1)
    # The honest head completes the tile.
    planned = plan_append(head, b"next", signer=SIGNER, now=1)
    assert planned.completed_tile is not None
    assert planned.completed_tile[0] == (0, 0)
    assert planned.head.edge == ()


def test_an_edited_pending_leaf_is_never_stored_in_a_bundle() -> None:
    """The operator rewrites a pending leaf in the head: an auditor's rebuilt
    root no longer matches, and the append that completes the bundle refuses
    to store it."""
    memory = _log_of(2 * LEAF_BUNDLE - 1)
    head = memory.head()
    edited = replace(head, pending=(b"forged", *head.pending[1:]))
    with pytest.raises(InternalError):
        plan_append(edited, b"next", signer=SIGNER, now=1)
    planned = plan_append(head, b"next", signer=SIGNER, now=1)
    assert planned.completed_bundle == (1, (*head.pending, b"next"))
    assert planned.head.pending == ()


@pytest.mark.parametrize("field", ["frontier", "edge", "pending"])
def test_a_head_whose_lists_do_not_match_its_size_is_refused(field: str) -> None:
    head = _log_of(20).head()
    shorter = replace(head, **{field: getattr(head, field)[:-1]})
    with pytest.raises(InternalError):
        plan_append(shorter, b"next", signer=SIGNER, now=1)
