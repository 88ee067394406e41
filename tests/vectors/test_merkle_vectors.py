"""The Merkle log's hashing and proofs against implementations nobody here wrote.

* transparency-dev/merkle's published vectors (tests/vectors/data/transparency-dev-merkle/,
  copied verbatim with their commit): inclusion and consistency proofs, nearly all
  failure cases, plus the reference tree's roots for every size from 0 to 8;
* pymerkle (PyPI): roots for every size and inclusion paths for every leaf, computed
  by its own tree, compared with ours.
"""

from __future__ import annotations

import base64
import importlib.util
import json
from typing import Any

import pytest

from chalicelib.wire import merkle
from tests.conftest import VECTORS, require_oracle

DATA = VECTORS / "transparency-dev-merkle"

# Where we are deliberately stricter than the Go library: it compares the
# roots of two equal-size trees as opaque byte strings, we refuse any root
# that is not a 32-byte SHA-256 hash before comparing anything.
STRICTER = {"testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}


def _cases(kind: str) -> list[dict[str, Any]]:
    doc = json.loads((DATA / f"{kind}.json").read_text(encoding="utf-8"))
    assert doc["source"] == "https://github.com/transparency-dev/merkle"
    cases: list[dict[str, Any]] = doc["cases"]
    return cases


def _b(text: str) -> bytes:
    return base64.b64decode(text)


@pytest.mark.parametrize("case", _cases("inclusion"), ids=lambda c: c["file"])
def test_inclusion_vectors(case: dict[str, Any]) -> None:
    args = (
        _b(case["leafHash"]),
        case["leafIdx"],
        case["treeSize"],
        [_b(p) for p in case["proof"] or []],
        _b(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("case", _cases("consistency"), ids=lambda c: c["file"])
def test_consistency_vectors(case: dict[str, Any]) -> None:
    args = (
        case["size1"],
        case["size2"],
        _b(case["root1"]),
        _b(case["root2"]),
        [_b(p) for p in case["proof"] or []],
    )
    if case["wantErr"] or case["file"] in STRICTER:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def test_vector_files_are_mostly_failures() -> None:
    for kind in ("inclusion", "consistency"):
        cases = _cases(kind)
        assert len(cases) == 98
        assert sum(c["wantErr"] for c in cases) == 92


def test_happy_path_proofs_are_the_ones_we_generate() -> None:
    ref = json.loads((DATA / "reference_tree.json").read_text(encoding="utf-8"))
    leaves = [merkle.leaf_hash(bytes.fromhex(x)) for x in ref["leaves_hex"]]
    checked = 0
    for case in _cases("inclusion"):
        if case["desc"] == "happy path" and case["treeSize"] <= len(leaves):
            proof = merkle.inclusion_proof(case["leafIdx"], leaves[: case["treeSize"]])
            assert proof == [_b(p) for p in case["proof"] or []]
            checked += 1
    for case in _cases("consistency"):
        if case["desc"] == "happy path" and 0 < case["size1"] < case["size2"] <= len(leaves):
            proof = merkle.consistency_proof(case["size1"], leaves[: case["size2"]])
            assert proof == [_b(p) for p in case["proof"] or []]
            checked += 1
    assert checked >= 8


def test_reference_tree_roots() -> None:
    ref = json.loads((DATA / "reference_tree.json").read_text(encoding="utf-8"))
    leaves = [merkle.leaf_hash(bytes.fromhex(x)) for x in ref["leaves_hex"]]
    for size, root in enumerate(ref["roots_hex_by_size"]):
        assert merkle.root_of(leaves[:size]).hex() == root


# --- pymerkle ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pymerkle_tree() -> Any:
    require_oracle(importlib.util.find_spec("pymerkle") is not None, "pymerkle (pip)")
    import pymerkle

    tree = pymerkle.InmemoryTree(algorithm="sha256")
    for i in range(70):
        tree.append_entry(i.to_bytes(2, "big") * (i % 5))
    return tree


def test_pymerkle_roots_and_leaves(pymerkle_tree: Any) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(2, "big") * (i % 5)) for i in range(70)]
    for i, leaf in enumerate(leaves):
        assert pymerkle_tree.get_leaf(i + 1) == leaf  # pymerkle counts from 1
    for size in range(1, 71):
        assert pymerkle_tree.get_root(size) == merkle.root_of(leaves[:size])


def test_pymerkle_inclusion_paths(pymerkle_tree: Any) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(2, "big") * (i % 5)) for i in range(70)]
    for size in (1, 2, 3, 7, 8, 9, 31, 64, 70):
        for index in range(size):
            theirs = pymerkle_tree.prove_inclusion(index + 1, size).serialize()["path"]
            ours = merkle.inclusion_proof(index, leaves[:size])
            # pymerkle's path starts with the leaf itself, then the RFC audit path.
            assert [bytes.fromhex(h) for h in theirs] == [leaves[index], *ours]
            merkle.verify_inclusion(leaves[index], index, size, ours, pymerkle_tree.get_root(size))


def test_pymerkle_roots_are_consistent_by_our_proofs(pymerkle_tree: Any) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(2, "big") * (i % 5)) for i in range(70)]
    for old in range(1, 70, 3):
        for new in range(old, 71, 5):
            merkle.verify_consistency(
                old,
                new,
                pymerkle_tree.get_root(old),
                pymerkle_tree.get_root(new),
                merkle.consistency_proof(old, leaves[:new]),
            )
