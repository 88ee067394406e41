"""The log's DynamoDB layout past its first bundles and tiles, and racing appends across them.

The head holds the leaves of the bundle being filled (``pending``) and the
leaf hashes of the level-0 tile being filled (``edge``); bundles of 8
leaves and tiles of 256 hashes are put once, whole, by the append that
completes them (docs/spec/transparency.md, storage).  These tests write
through the real store and read through the public routes, so the items'
encoding, their conditions and the readers are what is checked.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3

from chalicelib import wiring
from chalicelib.services.transparency import LEAF_BUNDLE
from chalicelib.storage.ktlog import unpack_leaves as unpack
from chalicelib.wire import merkle
from chalicelib.wire.ktleaf import decode_leaf
from client_sim.api import ApiClient
from client_sim.identity import KeyBundle
from tests.functional.conftest import STAGE_ENV, Raw
from tests.functional.test_kt_api import all_entries, consistency, latest
from tests.support.directory import atomic_moto_dynamodb, make_user

CARDS_TABLE = STAGE_ENV["SEALBOX_CARDS_TABLE"]


def _kt_items() -> dict[str, dict[str, Any]]:
    client = boto3.client("dynamodb")
    items: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": CARDS_TABLE}
    while True:
        page = client.scan(**kwargs)
        items |= {i["pk"]["S"]: i for i in page["Items"] if i["pk"]["S"].startswith("kt#")}
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_300_appends_store_bundles_and_tiles_and_serve_one_tree(api: ApiClient, raw: Raw) -> None:
    assert latest(raw).size == 0  # (the first request sets the stage's container up)
    log = wiring.container().kt_log
    assert log is not None
    tx = wiring.container().cards._store._tx  # type: ignore[attr-defined]
    leaves = [f"leaf {i:03d}".encode() for i in range(300)]
    for leaf in leaves:
        planned = log.plan(leaf, fresh=False)
        assert tx.transact(log.append_items(planned))
        log.committed(planned)
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]

    items = _kt_items()
    assert sorted(k for k in items if k.startswith("kt#bundle#")) == sorted(
        f"kt#bundle#{k}" for k in range(300 // LEAF_BUNDLE)
    )
    assert [bytes(v["B"]) for v in items["kt#bundle#17"]["leaves"]["L"]] == leaves[136:144]
    assert [bytes(v["B"]) for v in items["kt#tile#0#0"]["h"]["L"]] == hashes[:256]
    assert [bytes(v["B"]) for v in items["kt#tile#1#0"]["h"]["L"]] == [merkle.root_of(hashes[:256])]
    assert "kt#tile#0#1" not in items  # still the head's edge
    head = items["kt#head"]
    assert list(unpack(bytes(head["pending"]["B"]))) == leaves[296:]
    assert bytes(head["edge"]["B"]) == b"".join(hashes[256:])

    # What an auditor and a device get through the routes is that tree.
    cp = latest(raw)
    assert (cp.size, cp.root) == (300, merkle.root_of(hashes))
    assert all_entries(raw) == leaves
    for old in (1, 8, 255, 256, 257, 296, 299):
        proof = consistency(raw, old, 300)
        assert proof == merkle.consistency_proof(old, hashes)
        merkle.verify_consistency(old, 300, merkle.root_of(hashes[:old]), cp.root, proof)
    service = wiring.container().transparency
    assert service is not None
    client = wiring.container().dynamodb
    calls: list[str] = []

    def count(model: Any, **_: Any) -> None:
        calls.append(model.name)

    client.meta.events.register("before-call.dynamodb", count)
    proofs = service.prove_inclusion([0, 7, 8, 255, 256, 295, 296, 299])
    client.meta.events.unregister("before-call.dynamodb", count)
    for index, proof in proofs.proofs.items():
        assert proof == merkle.inclusion_proof(index, hashes)
    # The head, then one batched read of the stored tiles the proofs need.
    assert calls == ["GetItem", "BatchGetItem"]


def test_racing_publishers_across_a_bundle_boundary_all_land_once(api: ApiClient, raw: Raw) -> None:
    assert latest(raw).size == 0
    cards = wiring.container().cards
    now = int(time.time())
    first = [KeyBundle.generate(f"early-{i:02d}", created_at=now) for i in range(10)]
    for bundle in first:
        cards.publish(bundle.identity, bundle.card.to_json())
    racers = [KeyBundle.generate(f"racer-{i:02d}", created_at=now) for i in range(12)]
    errors: list[BaseException] = []

    def publish(bundle: KeyBundle) -> None:
        try:
            cards.publish(bundle.identity, bundle.card.to_json())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(b,)) for b in racers]
    with atomic_moto_dynamodb():
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    cp = latest(raw)
    assert cp.size == 22
    leaves = all_entries(raw)
    identities = [decode_leaf(leaf).identity for leaf in leaves]
    assert identities[:10] == [b.identity for b in first]
    assert sorted(identities[10:]) == sorted(b.identity for b in racers)
    assert merkle.root_of([merkle.leaf_hash(leaf) for leaf in leaves]) == cp.root
    # Bundles 0 and 1 were put once with the first 16 leaves (the racers
    # completed the second); the other 6 are pending.
    items = _kt_items()
    assert [bytes(v["B"]) for v in items["kt#bundle#0"]["leaves"]["L"]] == leaves[:8]
    assert [bytes(v["B"]) for v in items["kt#bundle#1"]["leaves"]["L"]] == leaves[8:16]
    assert list(unpack(bytes(items["kt#head"]["pending"]["B"]))) == leaves[16:]
    # Each racer's card item names the index its leaf landed at.
    client = boto3.client("dynamodb")
    for bundle in racers:
        key = {"pk": {"S": f"identity#{bundle.identity}"}}
        item = client.get_item(TableName=CARDS_TABLE, Key=key)["Item"]
        assert identities[int(item["kt_index"]["N"])] == bundle.identity


def test_a_stale_append_completing_a_bundle_and_a_tile_changes_nothing(
    api: ApiClient, raw: Raw
) -> None:
    """Two appends planned on one head: the loser fails on the head *and* on
    the bundle and tiles the winner stored, and leaves the table as it was."""
    assert latest(raw).size == 0
    log = wiring.container().kt_log
    assert log is not None
    tx = wiring.container().cards._store._tx  # type: ignore[attr-defined]
    for i in range(255):
        planned = log.plan(f"leaf {i:03d}".encode(), fresh=False)
        assert tx.transact(log.append_items(planned))
        log.committed(planned)
    winner, loser = log.plan(b"winner"), log.plan(b"loser")
    assert winner.completed_bundle is not None
    assert winner.completed_tile is not None
    assert tx.transact(log.append_items(winner))
    before = _kt_items()
    items = log.append_items(loser)
    failed = tx.transact_failures(items)
    # The head's size condition; attribute_not_exists on the bundle, the
    # level-0 tile and the level-1 tile its root starts.
    assert failed == set(range(len(items)))
    assert len(items) == 4
    assert _kt_items() == before
    assert all_entries(raw)[-1] == b"winner"


def test_a_head_of_another_layout_is_refused_and_nothing_is_appended(
    api: ApiClient, raw: Raw
) -> None:
    """The head names its layout; one this code can't read (an unreleased
    earlier layout had none) is a 500 that writes nothing, never a tree
    rebuilt from fields that mean something else."""
    carol = make_user(api, "carol")  # an account, no card yet
    log = wiring.container().kt_log
    assert log is not None
    tx = wiring.container().cards._store._tx  # type: ignore[attr-defined]
    planned = log.plan(b"first")
    assert tx.transact(log.append_items(planned))
    client = boto3.client("dynamodb")
    head = client.get_item(TableName=CARDS_TABLE, Key={"pk": {"S": "kt#head"}})["Item"]
    assert head["layout"] == {"N": "2"}
    for layout in (None, "1", "3"):
        edited = dict(head)
        if layout is None:
            edited.pop("layout")
        else:
            edited["layout"] = {"N": layout}
        client.put_item(TableName=CARDS_TABLE, Item=edited)
        before = _kt_items()
        assert raw("GET", "/v1/kt/checkpoint").status == 500
        bundle = KeyBundle.generate(carol.identity)
        reply = raw("POST", "/v1/cards", {"card": bundle.card.to_json()}, token=carol.access_token)
        assert reply.status == 500, reply.body
        assert _kt_items() == before
