"""The log's append planning and tile-based proofs, against the in-memory Merkle tree.

Over 600 leaves, so tiles of level 1 (subtrees of 256 leaves) are exercised.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytest

from chalicelib.errors import InvalidRequest, NotFound
from chalicelib.services.transparency import (
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

    def append(self, leaf: bytes, now: int = 1_700_000_000) -> None:
        planned = plan_append(self._head, leaf, signer=SIGNER, now=now)
        assert planned.index == len(self.leaves_)
        for key, position, value in planned.tile_entries:
            tile = self.tiles_.setdefault(key, [])
            assert len(tile) == position  # the store's size(h) = position condition
            tile.append(value)
        self.leaves_.append(leaf)
        self._head = planned.head

    def head(self) -> LogHead:
        return self._head

    def tiles(self, keys: Iterable[TileKey]) -> dict[TileKey, list[bytes]]:
        return {k: list(self.tiles_[k]) for k in keys if k in self.tiles_}

    def leaves(self, indexes: Sequence[int]) -> dict[int, bytes]:
        return {i: self.leaves_[i] for i in indexes}


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
    assert len(log.tiles_[(0, 2)]) == 600 - 2 * TILE_WIDTH
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
