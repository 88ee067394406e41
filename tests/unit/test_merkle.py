"""RFC 6962 hashing and proofs: generation and verification agree, and tampering is caught.

The external oracles are in tests/vectors/test_merkle_vectors.py; these tests
cover every small tree exhaustively and the server-side pieces (ranges,
perfect nodes, the nodes an append completes).
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.wire import merkle

LEAVES = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(40)]


def test_domain_separation() -> None:
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert merkle.node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert merkle.root_of([]) == hashlib.sha256(b"").digest()
    assert merkle.root_of(LEAVES[:1]) == LEAVES[0]


@pytest.mark.parametrize("size", range(1, 34))
def test_every_inclusion_proof_verifies_and_no_other(size: int) -> None:
    leaves = LEAVES[:size]
    root = merkle.root_of(leaves)
    for index in range(size):
        proof = merkle.inclusion_proof(index, leaves)
        assert len(proof) <= (size - 1).bit_length()
        merkle.verify_inclusion(leaves[index], index, size, proof, root)
        with pytest.raises(merkle.ProofMismatch):
            merkle.verify_inclusion(LEAVES[39], index, size, proof, root)
        if size > 1:
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(leaves[index], (index + 1) % size, size, proof, root)
        for k in range(len(proof)):
            bad = list(proof)
            bad[k] = bytes([bad[k][0] ^ 1]) + bad[k][1:]
            with pytest.raises(merkle.ProofMismatch):
                merkle.verify_inclusion(leaves[index], index, size, bad, root)
        with pytest.raises(merkle.ProofMalformed):
            merkle.verify_inclusion(leaves[index], index, size, [*proof, LEAVES[0]], root)


@pytest.mark.parametrize("new", range(1, 34))
def test_every_consistency_proof_verifies_and_forks_do_not(new: int) -> None:
    new_root = merkle.root_of(LEAVES[:new])
    forked = list(LEAVES[:new])
    for old in range(0, new + 1):
        proof = merkle.consistency_proof(old, LEAVES[:new])
        old_root = merkle.root_of(LEAVES[:old])
        merkle.verify_consistency(old, new, old_root, new_root, proof)
        if 0 < old < new:
            # A log that rewrote a leaf the old checkpoint covered: caught.
            forked[old - 1] = LEAVES[39]
            fork_root = merkle.root_of(forked)
            forked[old - 1] = LEAVES[old - 1]
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(
                    old, new, old_root, fork_root, merkle.consistency_proof(old, LEAVES[:new])
                )
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(old, new, LEAVES[39], new_root, proof)


def test_sizes_out_of_range() -> None:
    with pytest.raises(merkle.ProofOutOfRange):
        merkle.verify_inclusion(LEAVES[0], 1, 1, [], LEAVES[0])
    with pytest.raises(merkle.ProofOutOfRange):
        merkle.verify_inclusion(LEAVES[0], -1, 1, [], LEAVES[0])
    with pytest.raises(merkle.ProofOutOfRange):
        merkle.verify_consistency(2, 1, LEAVES[0], LEAVES[0], [])
    with pytest.raises(merkle.ProofOutOfRange):
        merkle.inclusion_ranges(0, 2**64)
    with pytest.raises(merkle.ProofMalformed):
        merkle.verify_inclusion(b"short", 0, 1, [], LEAVES[0])


def test_perfect_nodes_and_range_hash() -> None:
    assert merkle.perfect_nodes(0, 8) == [(3, 0)]
    assert merkle.perfect_nodes(8, 13) == [(2, 2), (0, 12)]
    with pytest.raises(ValueError, match="aligned"):
        merkle.perfect_nodes(1, 5)
    with pytest.raises(ValueError, match="empty"):
        merkle.perfect_nodes(3, 3)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.data())
def test_stored_nodes_answer_every_proof(size: int, data: st.DataObject) -> None:
    """What the log stores (the perfect nodes each append completes) is enough."""
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    stored: dict[merkle.NodeId, bytes] = {}
    for i, leaf in enumerate(leaves):
        for node, value in merkle.completed_by(i, leaf, stored.__getitem__):
            assert node not in stored
            stored[node] = value
    root = merkle.range_hash(0, size, stored)
    assert root == merkle.root_of(leaves)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = [merkle.range_hash(a, b, stored) for a, b in merkle.inclusion_ranges(index, size)]
    assert proof == merkle.inclusion_proof(index, leaves)
    old = data.draw(st.integers(min_value=0, max_value=size))
    cproof = [merkle.range_hash(a, b, stored) for a, b in merkle.consistency_ranges(old, size)]
    merkle.verify_consistency(old, size, merkle.root_of(leaves[:old]), root, cproof)


def test_proof_size_bound() -> None:
    # The goal: at most 32 * ceil(log2 n) bytes per card.
    for size in (2, 3, 1000, 4_000_000, 2**40 + 3):
        longest = max(len(merkle.inclusion_ranges(i, size)) for i in (0, size // 2, size - 1))
        assert longest * 32 <= 32 * (size - 1).bit_length()
