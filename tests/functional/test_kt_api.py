"""The key-transparency log through the API: every card change is logged, proven and signed.

Device-side checks here use the same pure functions the SDK uses
(``chalicelib.wire.ktverify``, ``checkpoint``, ``merkle``) with only the
log's verifier key, pinned as an app team would pin it.  The attack tests
play an operator who edits the cards table directly.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import boto3
import pytest

from chalicelib.storage.ktlog import pack_leaves as pack
from chalicelib.storage.ktlog import unpack_leaves as unpack
from chalicelib.wire import merkle
from chalicelib.wire.cards import card_from_json
from chalicelib.wire.checkpoint import Checkpoint, open_log_checkpoint
from chalicelib.wire.ktleaf import LeafKind, decode_leaf
from chalicelib.wire.ktverify import CardNotInLog, verify_card_in_log
from chalicelib.wire.note import NoteError, parse_verifier_key
from client_sim.api import ApiClient
from tests.functional.conftest import STAGE_ENV, Raw, log_vkey
from tests.support.directory import (
    User,
    atomic_moto_dynamodb,
    fresh_bundle,
    make_user,
    publish_rotation,
    step_up,
)

CARDS_TABLE = STAGE_ENV["SEALBOX_CARDS_TABLE"]
ORIGIN = STAGE_ENV["SEALBOX_KT_ORIGIN"]


def checkpoint_of(note: str) -> Checkpoint:
    return open_log_checkpoint(note, parse_verifier_key(log_vkey()), origin=ORIGIN)


def latest(raw: Raw) -> Checkpoint:
    reply = raw("GET", "/v1/kt/checkpoint")
    assert reply.status == 200, reply.body
    return checkpoint_of(reply.json()["checkpoint"])


def lookup(raw: Raw, user: User, *identities: str) -> tuple[list[dict[str, Any]], Checkpoint]:
    query = "&".join(f"identity={i}" for i in identities)
    reply = raw("GET", f"/v1/cards?{query}", token=user.access_token)
    assert reply.status == 200, reply.body
    body = reply.json()
    return body["cards"], checkpoint_of(body["checkpoint"])


def consistency(raw: Raw, old: int, new: int) -> list[bytes]:
    reply = raw("GET", f"/v1/kt/consistency?from={old}&to={new}")
    assert reply.status == 200, reply.body
    return [base64.urlsafe_b64decode(h + "=") for h in reply.json()["proof"]]


def all_entries(raw: Raw) -> list[bytes]:
    leaves: list[bytes] = []
    start: int | None = 0
    while start is not None:
        reply = raw("GET", f"/v1/kt/entries?start={start}&limit=2")
        assert reply.status == 200, reply.body
        body = reply.json()
        for entry in body["entries"]:
            assert entry["index"] == len(leaves)
            leaves.append(base64.urlsafe_b64decode(entry["leaf"] + "=" * (-len(entry["leaf"]) % 4)))
        start = body.get("next")
    return leaves


def put_item(item: dict[str, Any]) -> None:
    boto3.client("dynamodb").put_item(TableName=CARDS_TABLE, Item=item)


def get_item(pk: str) -> dict[str, Any]:
    return boto3.client("dynamodb").get_item(TableName=CARDS_TABLE, Key={"pk": {"S": pk}})["Item"]


@pytest.fixture
def alice(api: ApiClient) -> User:
    return make_user(api, "alice")


@pytest.fixture
def bob(api: ApiClient) -> User:
    return make_user(api, "bob")


def test_every_card_change_is_logged_proven_and_consistent(
    api: ApiClient, raw: Raw, alice: User, bob: User
) -> None:
    empty = latest(raw)
    assert (empty.size, empty.root) == (0, merkle.EMPTY_ROOT)
    first = fresh_bundle("alice")
    api.publish_card(alice.access_token, first.card.to_json())
    after_one = latest(raw)
    assert after_one.size == 1
    second = first.rotate(created_at=int(time.time()))
    publish_rotation(api, alice, first, second)
    bobs = fresh_bundle("bob")
    api.publish_card(bob.access_token, bobs.card.to_json())
    api.revoke_card(bob.access_token, bobs.card_id, step_up=step_up(api, bob)["Sealbox-Step-Up"])

    cards, cp = lookup(raw, alice, "alice", "bob")
    assert cp.size == 4
    assert [c["card"]["card_id"] for c in cards] == [second.card_id]
    assert verify_card_in_log(card_from_json(cards[0]["card"]), cards[0], cp) == 1
    # The superseded card is proven too (devices verify old signatures with it).
    reply = raw("GET", f"/v1/cards/{first.card_id}", token=alice.access_token)
    old = reply.json()
    assert verify_card_in_log(first.card, old, checkpoint_of(old["checkpoint"])) == 0

    # Every checkpoint a device saw is consistent with the latest.
    for seen in (empty, after_one):
        proof = consistency(raw, seen.size, cp.size)
        merkle.verify_consistency(seen.size, cp.size, seen.root, cp.root, proof)

    # An auditor rebuilds the same tree from the entries, and reads the events.
    leaves = all_entries(raw)
    assert merkle.root_of([merkle.leaf_hash(leaf) for leaf in leaves]) == cp.root
    events = [decode_leaf(leaf) for leaf in leaves]
    assert [(e.kind, e.identity) for e in events] == [
        (LeafKind.PUBLISH, "alice"),
        (LeafKind.ROTATE, "alice"),
        (LeafKind.PUBLISH, "bob"),
        (LeafKind.REVOKE, "bob"),
    ]
    assert events[3].card_id == bobs.card_id


def test_a_batch_lookup_proves_every_card_to_one_checkpoint(api: ApiClient, raw: Raw) -> None:
    users = [make_user(api, f"kt-user-{i:02d}") for i in range(12)]
    for user in users:
        api.publish_card(user.access_token, fresh_bundle(user.identity).card.to_json())
    cards, cp = lookup(raw, users[0], *(u.identity for u in users))
    assert cp.size == 12
    assert sorted(verify_card_in_log(card_from_json(c["card"]), c, cp) for c in cards) == list(
        range(12)
    )
    for c in cards:
        assert len(c["log_proof"]) <= (cp.size - 1).bit_length()


def test_kt_routes_validate_their_input(raw: Raw, alice: User, api: ApiClient) -> None:
    api.publish_card(alice.access_token, fresh_bundle("alice").card.to_json())
    for path, status in [
        ("/v1/kt/consistency?from=2&to=1", 400),
        ("/v1/kt/consistency?from=0&to=5", 404),
        ("/v1/kt/consistency?from=-1&to=1", 400),
        ("/v1/kt/consistency?from=01&to=1", 400),
        ("/v1/kt/consistency?to=1", 400),
        ("/v1/kt/entries?limit=0", 400),
        ("/v1/kt/entries?limit=101", 400),
        ("/v1/kt/entries?start=x", 400),
        ("/v1/kt/entries?other=1", 400),
        ("/v1/kt/checkpoint?x=1", 400),
    ]:
        reply = raw("GET", path)
        assert reply.status == status, (path, reply.body)
        assert set(reply.json()) == {"error"}
    assert raw("GET", "/v1/kt/entries?start=7").json() == {"entries": []}


def test_racing_publishers_are_all_logged_in_one_consistent_tree(api: ApiClient, raw: Raw) -> None:
    users = [make_user(api, f"racer-{i}") for i in range(6)]
    errors: list[BaseException] = []

    def publish(user: User) -> None:
        try:
            api.publish_card(user.access_token, fresh_bundle(user.identity).card.to_json())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(u,)) for u in users]
    with atomic_moto_dynamodb():
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    cp = latest(raw)
    assert cp.size == 6
    leaves = all_entries(raw)
    assert sorted(decode_leaf(leaf).identity for leaf in leaves) == sorted(
        u.identity for u in users
    )
    assert merkle.root_of([merkle.leaf_hash(leaf) for leaf in leaves]) == cp.root


# --- an operator editing the table ----------------------------------------------------


def test_operator_substituting_a_card_is_caught_by_every_device(
    api: ApiClient, raw: Raw, alice: User, bob: User
) -> None:
    real = fresh_bundle("bob")
    api.publish_card(bob.access_token, real.card.to_json())
    api.publish_card(alice.access_token, fresh_bundle("alice").card.to_json())
    # The operator makes bob's directory entry name keys the operator holds
    # (a self-signed card for "bob", as anyone can make), keeping the log index.
    fake = fresh_bundle("bob")
    head = get_item("identity#bob")
    head["card"] = {"B": fake.card.encode()}
    head["card_id"] = {"S": fake.card_id}
    put_item(head)
    cards, cp = lookup(raw, alice, "bob")
    assert cards[0]["card"]["card_id"] == fake.card_id  # the lie is served...
    with pytest.raises(CardNotInLog):  # ...and refused
        verify_card_in_log(card_from_json(cards[0]["card"]), cards[0], cp)


def test_operator_editing_a_logged_leaf_or_tile_is_caught(
    api: ApiClient, raw: Raw, alice: User, bob: User
) -> None:
    api.publish_card(alice.access_token, fresh_bundle("alice").card.to_json())
    real = fresh_bundle("bob")
    api.publish_card(bob.access_token, real.card.to_json())
    before = latest(raw)
    # Rewrite bob's leaf (still in the head's pending bundle) to name the
    # operator's card: the auditor's rebuilt root no longer matches any
    # signed checkpoint.
    fake = fresh_bundle("bob")
    head = get_item("kt#head")
    from chalicelib.wire.ktleaf import LogLeaf

    forged = LogLeaf.publish(fake.card, time=0, rotation_signature=None).encode()
    pending = unpack(bytes(head["pending"]["B"]))
    head["pending"] = {"B": pack([pending[0], forged, *pending[2:]])}
    put_item(head)
    leaves = all_entries(raw)
    assert leaves[1] == forged
    assert merkle.root_of([merkle.leaf_hash(leaf) for leaf in leaves]) != before.root
    # Rewrite bob's leaf hash in the head's edge (the level-0 tile being
    # filled) to match: a device's proof for alice's card (whose sibling it
    # is) stops verifying.
    head["edge"] = {"B": head["edge"]["B"][:32] + merkle.leaf_hash(forged)}
    put_item(head)
    cards, cp = lookup(raw, alice, "alice")
    with pytest.raises(CardNotInLog):
        verify_card_in_log(card_from_json(cards[0]["card"]), cards[0], cp)


def test_operator_rewriting_the_head_cannot_sign_for_the_log(
    api: ApiClient, raw: Raw, alice: User
) -> None:
    api.publish_card(alice.access_token, fresh_bundle("alice").card.to_json())
    head = get_item("kt#head")
    # Roll the log back to "empty" with a checkpoint text edited by hand.
    note = head["checkpoint"]["S"]
    head["checkpoint"] = {"S": note.replace(f"{ORIGIN}\n1\n", f"{ORIGIN}\n0\n", 1)}
    put_item(head)
    with pytest.raises(NoteError):
        latest(raw)


def test_the_log_key_is_its_own_secret_and_never_served(
    api: ApiClient, raw: Raw, alice: User
) -> None:
    sm = boto3.client("secretsmanager")
    secret = sm.get_secret_value(SecretId=STAGE_ENV["SEALBOX_KT_LOG_KEY_SECRET_ID"])
    skey = secret["SecretString"]
    assert skey.startswith(f"PRIVATE+KEY+{ORIGIN}+")
    assert STAGE_ENV["SEALBOX_KT_LOG_KEY_SECRET_ID"] != STAGE_ENV["SEALBOX_APP_KEY_SECRET_ID"]
    api.publish_card(alice.access_token, fresh_bundle("alice").card.to_json())
    seed_b64 = skey.split("+", 4)[4]
    bodies = [
        raw("GET", "/v1/kt/checkpoint").body,
        raw("GET", "/v1/kt/entries").body,
        raw("GET", "/v1/cards?identity=alice", token=alice.access_token).body,
    ]
    for body in bodies:
        assert seed_b64.encode() not in body
        assert b"PRIVATE+KEY" not in body
