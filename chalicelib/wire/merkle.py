"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification.

The key-transparency log (docs/spec/transparency.md) is a plain RFC 9162
Merkle tree over SHA-256 with the standard domain separation::

    leaf hash  = SHA-256(0x00 || leaf)
    node hash  = SHA-256(0x01 || left || right)
    empty root = SHA-256("")

Nothing here is Sealbox's own invention: the proof *generation* follows the
recursive definitions of RFC 6962 §2.1.1-2.1.2 (``PATH`` and ``SUBPROOF``)
and the *verification* follows RFC 9162 §2.1.3.2 and §2.1.4.2 step by step,
so any conforming implementation (the Go ``transparency-dev/merkle``
vectors and ``pymerkle`` are the oracles in tests/vectors) agrees with it.

Generation is split in two so that a server never needs the whole tree in
memory: :func:`inclusion_ranges` / :func:`consistency_ranges` say *which*
subtree hashes ``MTH(D[start:end])`` a proof is made of, and
:func:`perfect_nodes` breaks each range into *perfect* (complete, aligned)
subtrees, which the log stores as it grows.  :class:`NodeStore` callers fetch
those few nodes in one batch and :func:`range_hash` folds them.  The
in-memory helpers (:func:`root_of`, :func:`inclusion_proof`,
:func:`consistency_proof`) run the same code over a list of leaf hashes.

Verification raises a :class:`ProofError` (a ``ValueError``) subclass and
returns nothing: a caller cannot forget to look at a boolean.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Final

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_PREFIX",
    "MAX_PROOF_HASHES",
    "MAX_TREE_SIZE",
    "NODE_PREFIX",
    "NodeId",
    "ProofError",
    "ProofMalformed",
    "ProofMismatch",
    "ProofOutOfRange",
    "completed_by",
    "consistency_proof",
    "consistency_ranges",
    "frontier_append",
    "frontier_root",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "perfect_nodes",
    "range_hash",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
# Sizes are u64 on the wire (checkpoints and proofs); a proof for a tree of
# at most 2**63 leaves has at most 63 hashes (64 for a consistency proof).
MAX_TREE_SIZE: Final = 2**63
MAX_PROOF_HASHES: Final = 64

# A perfect subtree: (level, index) covers leaves [index << level, (index + 1) << level).
NodeId = tuple[int, int]


class ProofError(ValueError):
    """A Merkle proof does not verify.  ``code`` is stable and machine-readable."""

    code = "proof_invalid"


class ProofMalformed(ProofError):
    """A hash has the wrong length or the proof has the wrong number of hashes."""

    code = "proof_malformed"


class ProofOutOfRange(ProofError):
    """The leaf index or tree sizes cannot describe a proof (e.g. index >= size)."""

    code = "proof_out_of_range"


class ProofMismatch(ProofError):
    """The proof is well-formed but does not lead to the claimed root(s)."""

    code = "proof_mismatch"


# --- hashing -------------------------------------------------------------------


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 6962 leaf hash: ``SHA-256(0x00 || leaf)``."""
    return hashlib.sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_size(size: int) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_TREE_SIZE:
        raise ProofOutOfRange("tree size out of range")


# --- which subtrees a proof is made of ------------------------------------------


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form the inclusion proof of ``index`` in ``size``.

    Ordered as on the wire: from the leaf's sibling up to the root's child
    (RFC 6962 §2.1.1 ``PATH``).

    Raises:
        ProofOutOfRange: ``index >= size`` or a size out of range.
    """
    _check_size(size)
    if not isinstance(index, int) or not 0 <= index < size:
        raise ProofOutOfRange("leaf index out of range")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    # Walk down from the root, then reverse: the wire order is bottom-up.
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo = lo + k
    out.reverse()
    return out


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form the consistency proof ``old_size -> new_size``.

    RFC 6962 §2.1.2 ``PROOF(m, D[n])``.  Empty when ``old_size`` is 0 or equal
    to ``new_size`` (nothing to prove).

    Raises:
        ProofOutOfRange: ``old_size > new_size`` or a size out of range.
    """
    _check_size(old_size)
    _check_size(new_size)
    if old_size > new_size:
        raise ProofOutOfRange("old tree size is larger than the new one")
    if old_size in (0, new_size):
        return []
    out: list[tuple[int, int]] = []
    m, lo, hi, whole = old_size, 0, new_size, True
    # SUBPROOF(m, D[lo:hi], whole), unrolled: each step appends after the
    # recursive call in the RFC, so collect top-down and reverse at the end.
    while True:
        if m == hi - lo:
            if not whole:
                out.append((lo, hi))
            break
        k = _split(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            m -= k
            lo += k
            whole = False
    out.reverse()
    return out


def perfect_nodes(start: int, end: int) -> list[NodeId]:
    """Split ``D[start:end]`` into perfect subtrees, left to right.

    ``start`` must be aligned the way RFC 6962 subtrees are (a multiple of
    the largest power of two not above ``end - start``); every range from
    :func:`inclusion_ranges` and :func:`consistency_ranges` is.

    Raises:
        ValueError: an empty or misaligned range.
    """
    if not 0 <= start < end:
        raise ValueError("empty leaf range")
    out: list[NodeId] = []
    lo = start
    while lo < end:
        n = end - lo
        level = n.bit_length() - 1
        if lo & ((1 << level) - 1):
            raise ValueError("leaf range is not aligned to a subtree")
        out.append((level, lo >> level))
        lo += 1 << level
    return out


def range_hash(start: int, end: int, nodes: Mapping[NodeId, bytes]) -> bytes:
    """``MTH(D[start:end])`` from the perfect-subtree hashes in ``nodes``.

    Raises:
        KeyError: a needed node is missing from ``nodes``.
        ValueError: an empty or misaligned range.
    """
    parts = [nodes[node] for node in perfect_nodes(start, end)]
    # The RFC tree leans left: the rightmost, smallest subtrees combine first.
    acc = parts[-1]
    for part in reversed(parts[:-1]):
        acc = node_hash(part, acc)
    return acc


def completed_by(
    index: int, leaf_hash_value: bytes, get: Callable[[NodeId], bytes]
) -> list[tuple[NodeId, bytes]]:
    """The perfect subtrees that appending leaf ``index`` completes, with their hashes.

    Always ``(0, index)`` itself, then one more level each time the new node
    is a right child.  ``get`` returns an already stored node (the left
    siblings, which exist because the log is append-only).
    """
    out: list[tuple[NodeId, bytes]] = [((0, index), leaf_hash_value)]
    level, i, acc = 0, index, leaf_hash_value
    while i & 1:
        acc = node_hash(get((level, i - 1)), acc)
        level, i = level + 1, i >> 1
        out.append(((level, i), acc))
    return out


def frontier_append(frontier: Sequence[bytes], size: int, leaf_hash_value: bytes) -> list[bytes]:
    """The frontier of ``size + 1`` leaves from that of ``size`` and the new leaf's hash.

    A tree's *frontier* is the list of its perfect subtrees' hashes, left to
    right (one per set bit of its size).  Appending merges the new leaf with
    the rightmost subtrees as long as it completes them.
    """
    if len(frontier) != size.bit_count():
        raise ValueError("frontier does not match the tree size")
    stack = list(frontier)
    acc, i = leaf_hash_value, size
    while i & 1:
        acc = node_hash(stack.pop(), acc)
        i >>= 1
    stack.append(acc)
    return stack


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """The root of the tree whose frontier is ``frontier`` (``EMPTY_ROOT`` for none)."""
    if not frontier:
        return EMPTY_ROOT
    acc = frontier[-1]
    for part in reversed(frontier[:-1]):
        acc = node_hash(part, acc)
    return acc


# --- in memory -------------------------------------------------------------------


def _nodes_for(
    leaf_hashes: Sequence[bytes], ranges: Sequence[tuple[int, int]]
) -> dict[NodeId, bytes]:
    nodes: dict[NodeId, bytes] = {}
    for start, end in ranges:
        for level, idx in perfect_nodes(start, end):
            nodes[(level, idx)] = _perfect_hash(leaf_hashes, level, idx)
    return nodes


def _perfect_hash(leaf_hashes: Sequence[bytes], level: int, idx: int) -> bytes:
    row = list(leaf_hashes[idx << level : (idx + 1) << level])
    while len(row) > 1:
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)]
    return row[0]


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """``MTH`` of a whole list of leaf hashes (``EMPTY_ROOT`` for none)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    n = len(leaf_hashes)
    return range_hash(0, n, _nodes_for(leaf_hashes, [(0, n)]))


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of ``leaf_hashes``."""
    ranges = inclusion_ranges(index, len(leaf_hashes))
    nodes = _nodes_for(leaf_hashes, ranges)
    return [range_hash(a, b, nodes) for a, b in ranges]


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The consistency proof from the first ``old_size`` leaves to all of them."""
    ranges = consistency_ranges(old_size, len(leaf_hashes))
    nodes = _nodes_for(leaf_hashes, ranges)
    return [range_hash(a, b, nodes) for a, b in ranges]


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ----------------------------------


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProofMalformed(f"{what} is not a {HASH_SIZE}-byte hash")
    return value


def _lsb(x: int) -> bool:
    return bool(x & 1)


def verify_inclusion(
    leaf_hash_value: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash_value`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Raises:
        ProofOutOfRange: ``index >= size``.
        ProofMalformed: a hash of the wrong length, or the wrong number of hashes.
        ProofMismatch: the proof leads to another root.
    """
    _check_size(size)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
        raise ProofOutOfRange("leaf index out of range")
    r = _check_hash(leaf_hash_value, "leaf hash")
    _check_hash(root, "root hash")
    if len(proof) != len(inclusion_ranges(index, size)):
        raise ProofMalformed("inclusion proof has the wrong number of hashes")
    fn, sn = index, size - 1
    for p in proof:
        _check_hash(p, "proof hash")
        if sn == 0:
            raise ProofMalformed("inclusion proof is too long")
        if _lsb(fn) or fn == sn:
            r = node_hash(p, r)
            if not _lsb(fn):
                while not _lsb(fn) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofMalformed("inclusion proof is too short")
    if r != root:
        raise ProofMismatch("inclusion proof does not lead to the root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``(new_size, new_root)`` extends ``(old_size, old_root)``.

    Raises:
        ProofOutOfRange: ``old_size > new_size``.
        ProofMalformed: a hash of the wrong length, or the wrong number of hashes.
        ProofMismatch: the proof does not connect the two roots.
    """
    _check_size(old_size)
    _check_size(new_size)
    if old_size > new_size:
        raise ProofOutOfRange("old tree size is larger than the new one")
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    for p in proof:
        _check_hash(p, "proof hash")
    if old_size == new_size:
        if proof:
            raise ProofMalformed("consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofMismatch("equal tree sizes with different roots")
        return
    if old_size == 0:
        # Every tree extends the empty one; there is nothing to prove.
        if proof:
            raise ProofMalformed("consistency proof from the empty tree must be empty")
        return
    if len(proof) != len(consistency_ranges(old_size, new_size)):
        raise ProofMalformed("consistency proof has the wrong number of hashes")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while _lsb(fn):
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofMalformed("consistency proof is too long")
        if _lsb(fn) or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not _lsb(fn):
                while not _lsb(fn) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofMalformed("consistency proof is too short")
    if fr != old_root or sr != new_root:
        raise ProofMismatch("consistency proof does not connect the two roots")
