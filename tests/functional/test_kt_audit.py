"""``sealbox kt audit`` as a library: a third party with only the log key audits the log."""

from __future__ import annotations

import time

import boto3
from click.testing import CliRunner

from chalicelib import wiring
from chalicelib.storage.ktlog import pack_leaves as pack
from chalicelib.storage.ktlog import unpack_leaves as unpack
from chalicelib.wire.cards import rotation_message
from chalicelib.wire.ktleaf import LeafKind, LogLeaf
from client_sim.api import ApiClient
from client_sim.identity import KeyBundle
from sealbox_tools.cli import main
from sealbox_tools.ktaudit import audit_log
from tests.functional.conftest import STAGE_ENV, log_vkey
from tests.identities import seed
from tests.support.directory import fresh_bundle, make_user, publish_rotation, step_up

CARDS_TABLE = STAGE_ENV["SEALBOX_CARDS_TABLE"]


def _history(api: ApiClient) -> None:
    alice, bob = make_user(api, "alice"), make_user(api, "bob")
    first = fresh_bundle("alice")
    api.publish_card(alice.access_token, first.card.to_json())
    publish_rotation(api, alice, first, first.rotate(created_at=int(time.time())))
    bobs = fresh_bundle("bob")
    api.publish_card(bob.access_token, bobs.card.to_json())
    api.revoke_card(bob.access_token, bobs.card_id, step_up=step_up(api, bob)["Sealbox-Step-Up"])
    api.publish_card(
        bob.access_token,
        fresh_bundle("bob").card.to_json(),
        step_up=step_up(api, bob)["Sealbox-Step-Up"],
    )


def test_a_clean_log_audits_clean(api: ApiClient) -> None:
    _history(api)
    report = audit_log(api, log_vkey())
    assert report.ok, report.problems
    assert (report.size, report.identities) == (5, 2)


def test_a_rotation_not_signed_by_the_previous_key_is_found(api: ApiClient) -> None:
    _history(api)
    # The operator logs a "rotation" of alice to keys it holds, with a
    # signature it can't make (the directory itself would refuse it).
    active = wiring.container().cards._store.active("alice")  # type: ignore[attr-defined]
    assert active is not None
    # A card naming alice's active card as its predecessor, "signed" by a
    # key that is not that card's.
    rotated = KeyBundle._from_seeds(
        "alice",
        ed25519_seed=seed("forged", "ed"),
        x25519_secret=seed("forged", "x"),
        pq_seed=seed("forged", "pq"),
        created_at=active.card.created_at + 1,
        previous_card_id=active.card_id,
    )
    signature = rotated.sign(rotation_message(active.card, rotated.card))
    leaf = LogLeaf(
        LeafKind.ROTATE, "alice", rotated.card_id, 1, rotated.card, active.card_id, signature
    )
    log = wiring.container().kt_log
    assert log is not None
    wiring.container().cards._store._tx.transact(log.append_items(log.plan(leaf.encode())))  # type: ignore[attr-defined]
    report = audit_log(api, log_vkey())
    assert report.problems == ["entry 5: rotation of alice not signed by the previous key"], (
        report.problems
    )


def test_a_rewritten_log_contradicts_an_old_checkpoint(api: ApiClient) -> None:
    _history(api)
    old = api.kt_checkpoint()
    client = boto3.client("dynamodb")
    # Fewer than 8 leaves: they are still the head's pending list.
    item = client.get_item(TableName=CARDS_TABLE, Key={"pk": {"S": "kt#head"}})["Item"]
    forged = LogLeaf.publish(fresh_bundle("bob").card, time=0, rotation_signature=None).encode()
    leaves = unpack(bytes(item["pending"]["B"]))
    item["pending"] = {"B": pack([*leaves[:2], forged, *leaves[3:]])}
    client.put_item(TableName=CARDS_TABLE, Item=item)
    report = audit_log(api, log_vkey(), checkpoints=[old])
    assert not report.ok
    assert any("root" in p or "prefix" in p for p in report.problems), report.problems


def test_the_cli_refuses_a_malformed_key() -> None:
    result = CliRunner().invoke(
        main, ["kt", "audit", "--url", "http://127.0.0.1:9", "--log-key", "nope"]
    )
    assert result.exit_code == 2
    assert "malformed" in result.output
