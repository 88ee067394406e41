"""The key-transparency log: appending card events and proving them.

Pure code (no chalice, no boto3).  The log is an RFC 9162 Merkle tree
(:mod:`chalicelib.wire.merkle`) over card-event leaves
(:mod:`chalicelib.wire.ktleaf`); docs/spec/transparency.md describes it.

Storage shape (what a :class:`LogReader` serves and the card store writes):

* **head**: the tree size, its *frontier* (the hashes of the perfect subtrees
  the tree is made of, left to right: one per set bit of the size) and the
  signed checkpoint of that size.  Appending needs nothing else: the new
  frontier, the nodes the leaf completes and the new root all follow from
  it (:func:`plan_append`).
* **leaves**, for auditors (``GET /v1/kt/entries``), in *bundles* of
  :data:`LEAF_BUNDLE` (c2sp.org/tlog-tiles' entry bundles, smaller): bundle
  ``k`` holds leaves ``8 k`` to ``8 k + 7``.  The bundle being filled (the
  last ``size % 8`` leaves) is the head's *pending* list; a bundle is stored
  as its own item once, whole, by the append that completes it.
* **tiles** (c2sp.org/tlog-tiles' idea, height 8): tile ``(L, k)`` lists the
  hashes of the perfect subtrees of height ``8 L`` numbered ``256 k`` to
  ``256 k + 255``, in order, as they complete.  Any perfect subtree of the
  tree is the fold of a run of one tile, so an inclusion proof needs
  ``ceil(log256 n)`` tiles per card and a 50-card lookup's proofs fit one
  batched read.  The level-0 tile being filled (the last ``size % 256`` leaf
  hashes) is the head's *edge*, rewritten with the head on every append; a
  level-0 tile is stored as its own item once, whole, by the append that
  completes it.

So an append writes one item, the head, plus a bundle once every 8 appends
and a tile once every 256 (instead of the head, a leaf and a tile update
every time: in-process, each item of a transaction is most of a publish's
cost).

Every append is written with the directory change that causes it, in one
conditional transaction on the head's size (the sequencing): of two
concurrent appends exactly one commits, the other is planned again on the
new head.  The checkpoint is signed inline, so a card is in a signed
checkpoint as soon as its publish returns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from chalicelib.errors import InternalError, InvalidRequest, NotFound
from chalicelib.wire import merkle
from chalicelib.wire.checkpoint import sign_checkpoint
from chalicelib.wire.note import NoteSigner

__all__ = [
    "LEAF_BUNDLE",
    "MAX_ENTRIES_PAGE",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "InclusionProofs",
    "LogHead",
    "LogReader",
    "PlannedAppend",
    "TileKey",
    "TransparencyService",
    "empty_head",
    "leaves_from_bundles",
    "node_from_tiles",
    "plan_append",
    "tiles_for_nodes",
]

TILE_HEIGHT: Final = 8
TILE_WIDTH: Final = 1 << TILE_HEIGHT
MAX_ENTRIES_PAGE: Final = 100
# Leaves per stored bundle; divides TILE_WIDTH, so the pending leaves are
# always the last entries of the head's edge.
LEAF_BUNDLE: Final = 8

# (tile level L, tile index k)
TileKey = tuple[int, int]


@dataclass(frozen=True)
class LogHead:
    """The log's state: ``size`` leaves, their frontier and signed checkpoint.

    ``edge`` holds the leaf hashes of the level-0 tile being filled (tile
    ``size // 256``): exactly ``size % 256`` of them.  ``pending`` holds the
    leaves of the bundle being filled (bundle ``size // 8``): exactly
    ``size % 8`` of them.
    """

    size: int
    frontier: tuple[bytes, ...]
    checkpoint: str
    edge: tuple[bytes, ...] = ()
    pending: tuple[bytes, ...] = ()

    @property
    def edge_tile(self) -> TileKey | None:
        """The level-0 tile the edge stands for (None when the size is a multiple of 256)."""
        return (0, self.size >> TILE_HEIGHT) if self.size % TILE_WIDTH else None

    @property
    def root(self) -> bytes:
        """The RFC 6962 root of the tree (``EMPTY_ROOT`` when empty)."""
        return _fold(self.frontier)


def _fold(frontier: Sequence[bytes]) -> bytes:
    return merkle.frontier_root(frontier)


@dataclass(frozen=True)
class PlannedAppend:
    """What appending one leaf writes: the new head, the leaf, the tiles it fills."""

    index: int
    leaf: bytes
    head: LogHead
    # (tile key, position in the tile, hash): one per completed subtree of
    # height 8, 16, ... (tiles of level >= 1, extended in place).
    tile_entries: tuple[tuple[TileKey, int, bytes], ...]
    signed_at: int
    # The level-0 tile this append completes (every 256th append), written
    # once and whole; its hashes were the head's edge.
    completed_tile: tuple[TileKey, tuple[bytes, ...]] | None = None
    # The leaf bundle this append completes (every 8th append), written
    # once and whole; its leaves were the head's pending list.
    completed_bundle: tuple[int, tuple[bytes, ...]] | None = None


def plan_append(head: LogHead, leaf: bytes, *, signer: NoteSigner, now: int) -> PlannedAppend:
    """Append ``leaf`` to ``head``: the new frontier, edge, tiles and signed checkpoint.

    Raises:
        InternalError: ``head`` is inconsistent (e.g. edited in the table):
            a frontier, edge or pending list of the wrong length; or, checked
            before they are stored for good, pending leaves whose hashes are
            not the edge's last entries (when they fill a bundle) or an edge
            whose hashes do not fold to the subtree the frontier holds (when
            it fills a tile).  Either would store leaves or tiles of a tree
            no checkpoint signed.
    """
    index = head.size
    if (
        len(head.frontier) != index.bit_count()
        or len(head.edge) != index % TILE_WIDTH
        or len(head.pending) != index % LEAF_BUNDLE
    ):
        raise InternalError()
    acc = merkle.leaf_hash(leaf)
    edge = (*head.edge, acc)
    pending = (*head.pending, leaf)
    bundle: tuple[int, tuple[bytes, ...]] | None = None
    if len(pending) == LEAF_BUNDLE:
        if tuple(merkle.leaf_hash(p) for p in pending) != edge[-LEAF_BUNDLE:]:
            raise InternalError()
        bundle, pending = (index // LEAF_BUNDLE, pending), ()
    completed: tuple[TileKey, tuple[bytes, ...]] | None = None
    stack = list(head.frontier)
    level, i = 0, index
    entries: list[tuple[TileKey, int, bytes]] = []
    # Each time the new node is a right child it completes its parent, whose
    # left sibling is the rightmost frontier entry.
    while i & 1:
        acc = merkle.node_hash(stack.pop(), acc)
        level, i = level + 1, i >> 1
        if level % TILE_HEIGHT == 0:
            if level == TILE_HEIGHT:
                # The edge is a full tile now.  Its fold must be the subtree
                # the frontier gave, or the stored tile would serve proofs
                # of a tree no checkpoint signed.
                if _fold_run(edge) != acc:
                    raise InternalError()
                completed, edge = ((0, index >> TILE_HEIGHT), edge), ()
            tile_level = level // TILE_HEIGHT
            entries.append(((tile_level, i >> TILE_HEIGHT), i % TILE_WIDTH, acc))
    stack.append(acc)
    size = index + 1
    checkpoint = sign_checkpoint(signer.name, size, _fold(stack), now, signer)
    return PlannedAppend(
        index,
        leaf,
        LogHead(size, tuple(stack), checkpoint, edge, pending),
        tuple(entries),
        now,
        completed,
        bundle,
    )


def empty_head(*, signer: NoteSigner, now: int) -> LogHead:
    """The head of a log with no leaves (its checkpoint signs the empty root)."""
    return LogHead(0, (), sign_checkpoint(signer.name, 0, merkle.EMPTY_ROOT, now, signer))


def _tile_of(node: merkle.NodeId) -> tuple[TileKey, int, int]:
    """The tile holding ``node``'s run, the run's start and length."""
    level, idx = node
    tile_level, rest = divmod(level, TILE_HEIGHT)
    first = idx << rest  # index of the run's first entry at height 8 L
    return (tile_level, first >> TILE_HEIGHT), first % TILE_WIDTH, 1 << rest


def tiles_for_nodes(nodes: Iterable[merkle.NodeId]) -> set[TileKey]:
    """The tiles that hold the given perfect subtrees."""
    return {_tile_of(node)[0] for node in nodes}


def node_from_tiles(node: merkle.NodeId, tiles: Mapping[TileKey, Sequence[bytes]]) -> bytes:
    """A perfect subtree's hash, folded from its tile's run.

    Raises:
        KeyError: the tile is missing, or lacks entries of the run.
    """
    key, start, length = _tile_of(node)
    run = tiles[key][start : start + length]
    if len(run) != length:
        raise KeyError(node)
    return _fold_run(run)


def _fold_run(run: Sequence[bytes]) -> bytes:
    """The root of the perfect subtree over ``run`` (a power of two of hashes)."""
    level = list(run)
    while len(level) > 1:
        level = [merkle.node_hash(level[j], level[j + 1]) for j in range(0, len(level), 2)]
    return level[0]


def _read_tiles(
    reader: LogReader, head: LogHead, keys: Iterable[TileKey]
) -> dict[TileKey, Sequence[bytes]]:
    """The tiles ``keys`` of the tree ``head``: its edge from the head, the rest stored."""
    wanted = set(keys)
    edge_key = head.edge_tile
    tiles: dict[TileKey, Sequence[bytes]] = {}
    if edge_key in wanted:
        wanted.discard(edge_key)
        tiles[edge_key] = head.edge
    tiles.update(reader.tiles(wanted) if wanted else {})
    return tiles


# --- reading and proving ---------------------------------------------------------


class LogReader(Protocol):
    """Reads of the stored log (implemented by ``chalicelib.storage.ktlog``)."""

    def head(self) -> LogHead:
        """The current head (a strongly consistent read)."""

    def tiles(self, keys: Iterable[TileKey]) -> dict[TileKey, list[bytes]]:
        """The listed tiles, in one batched read; absent tiles are left out."""

    def bundles(self, keys: Iterable[int]) -> dict[int, list[bytes]]:
        """The listed stored leaf bundles, in one batched read; absent ones are left out."""


def leaves_from_bundles(
    reader: LogReader, head: LogHead, indexes: Sequence[int]
) -> dict[int, bytes]:
    """Leaves by index of the tree ``head`` (those below its size): the pending
    ones from the head, the rest from stored bundles (one batched read)."""
    first_pending = head.size - len(head.pending)
    wanted = [i for i in indexes if 0 <= i < head.size]
    stored = {i // LEAF_BUNDLE for i in wanted if i < first_pending}
    bundles = reader.bundles(stored) if stored else {}
    out: dict[int, bytes] = {}
    for i in wanted:
        if i >= first_pending:
            out[i] = head.pending[i - first_pending]
            continue
        bundle = bundles.get(i // LEAF_BUNDLE)
        if bundle is not None and len(bundle) == LEAF_BUNDLE:
            out[i] = bundle[i % LEAF_BUNDLE]
    return out


@dataclass(frozen=True)
class InclusionProofs:
    """Proofs of some leaves to one checkpoint."""

    checkpoint: str
    size: int
    proofs: dict[int, list[bytes]]


class TransparencyService:
    """Serve checkpoints, proofs and entries of the log."""

    def __init__(self, reader: LogReader) -> None:
        self._reader = reader

    def checkpoint(self) -> str:
        """The latest signed checkpoint."""
        return self._reader.head().checkpoint

    def prove_inclusion(
        self, indexes: Iterable[int], *, head: LogHead | None = None
    ) -> InclusionProofs:
        """Inclusion proofs of ``indexes`` to the latest checkpoint (one tile read,
        none when every proof lies in the head's edge)."""
        head = head or self._reader.head()
        wanted = sorted({i for i in indexes if 0 <= i < head.size})
        ranges = {i: merkle.inclusion_ranges(i, head.size) for i in wanted}
        nodes = {n for rs in ranges.values() for a, b in rs for n in merkle.perfect_nodes(a, b)}
        tiles = _read_tiles(self._reader, head, tiles_for_nodes(nodes))
        values = {n: node_from_tiles(n, tiles) for n in nodes}
        proofs = {i: [merkle.range_hash(a, b, values) for a, b in rs] for i, rs in ranges.items()}
        return InclusionProofs(head.checkpoint, head.size, proofs)

    def consistency(self, old_size: object, new_size: object) -> list[bytes]:
        """The consistency proof between two sizes, at most the current one.

        Raises:
            InvalidRequest: sizes that are not integers, or ``old > new``.
            NotFound: ``new_size`` is beyond the log's current size.
        """
        old, new = _size(old_size, "from"), _size(new_size, "to")
        if old > new:
            raise InvalidRequest("'from' must not exceed 'to'.")
        head = self._reader.head()
        if new > head.size:
            raise NotFound("The log is not that large yet.")
        ranges = merkle.consistency_ranges(old, new)
        nodes = {n for a, b in ranges for n in merkle.perfect_nodes(a, b)}
        tiles = _read_tiles(self._reader, head, tiles_for_nodes(nodes))
        values = {n: node_from_tiles(n, tiles) for n in nodes}
        return [merkle.range_hash(a, b, values) for a, b in ranges]

    def entries(self, start: object, limit: object) -> tuple[list[tuple[int, bytes]], int | None]:
        """Leaves ``start`` to ``start + limit - 1`` (those that exist) and the next start.

        Raises:
            InvalidRequest: malformed ``start`` or ``limit``.
        """
        first = _size(start, "start")
        count = _size(limit, "limit") if limit is not None else MAX_ENTRIES_PAGE
        if not 1 <= count <= MAX_ENTRIES_PAGE:
            raise InvalidRequest(f"'limit' must be between 1 and {MAX_ENTRIES_PAGE}.")
        head = self._reader.head()
        size = head.size
        indexes = list(range(first, min(first + count, size)))
        leaves = leaves_from_bundles(self._reader, head, indexes)
        out = [(i, leaves[i]) for i in indexes if i in leaves]
        end = first + len(out)
        return out, (end if end < size else None)


_DECIMAL_RE = re.compile(r"0|[1-9][0-9]{0,18}")


def _size(value: object, name: str) -> int:
    if isinstance(value, str) and _DECIMAL_RE.fullmatch(value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise InvalidRequest(f"'{name}' must be a non-negative integer.")
    return value
