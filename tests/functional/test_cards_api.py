"""/v1/cards through chalice.test.Client on moto: publish, rotate, find, fetch, revoke."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

import boto3
import pytest

from chalicelib import wiring
from chalicelib.errors import CardConflict
from chalicelib.services.cards import CardService
from chalicelib.storage.directory import DynamoCardStore
from client_sim.api import ApiClient
from client_sim.errors import ServerError
from tests.functional.conftest import STAGE_ENV
from tests.support.directory import (
    User,
    atomic_moto_dynamodb,
    fresh_bundle,
    make_user,
    publish_rotation,
    rotation_signature,
    step_up,
)

CARDS_TABLE = STAGE_ENV["SEALBOX_CARDS_TABLE"]


def without_kt(view: dict[str, Any]) -> dict[str, Any]:
    """A card answer without its key-transparency fields (checked in test_kt_api.py)."""
    return {k: v for k, v in view.items() if k not in ("checkpoint", "log_proof", "log_index")}


def cards_table() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=CARDS_TABLE)["Items"]
    return sorted(items, key=lambda item: item["pk"]["S"])


def assert_error(reply, status: int, code: str) -> None:
    assert reply.status == status, reply.body
    body = reply.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]


@pytest.fixture
def alice(api: ApiClient) -> User:
    return make_user(api, "alice")


@pytest.fixture
def bob(api: ApiClient) -> User:
    return make_user(api, "bob")


def test_first_registration_then_find_and_fetch(api: ApiClient, alice: User) -> None:
    bundle = fresh_bundle("alice")
    entry = api.publish_card(alice.access_token, bundle.card.to_json())
    assert entry["status"] == "active"
    assert entry["card"] == bundle.card.to_json()
    assert abs(entry["published_at"] - time.time()) < 60

    (found,) = api.find_cards(alice.access_token, ["Alice"])
    assert found["card"]["card_id"] == bundle.card_id
    assert without_kt(api.get_card(alice.access_token, bundle.card_id)) == without_kt(entry)
    # One card item and one head, both holding the public card only, and
    # the transparency log's head (holding the first leaf and its hash until
    # a bundle of 16 leaves and a tile of 256 hashes fill up).
    assert [item["pk"]["S"] for item in cards_table()] == [
        f"card#{bundle.card_id}",
        "identity#alice",
        "kt#head",
    ]


def test_a_second_first_card_is_409_and_changes_nothing(api, raw, alice) -> None:
    api.publish_card(alice.access_token, fresh_bundle("alice").card.to_json())
    before = cards_table()
    body = {"card": fresh_bundle("alice").card.to_json()}
    # Not a rotation while a card is active: an identity reset, which needs a
    # step-up proof first (tests/regressions/test_step_up.py) ...
    assert_error(raw("POST", "/v1/cards", body, token=alice.access_token), 403, "step_up_required")
    # ... and even with one, the card service refuses a second first card.
    reply = raw("POST", "/v1/cards", body, token=alice.access_token, headers=step_up(api, alice))
    assert_error(reply, 409, "card_conflict")
    assert cards_table() == before


def test_republishing_the_active_card_is_409(api, raw, alice) -> None:
    card = fresh_bundle("alice").card.to_json()
    api.publish_card(alice.access_token, card)
    reply = raw(
        "POST", "/v1/cards", {"card": card}, token=alice.access_token, headers=step_up(api, alice)
    )
    assert_error(reply, 409, "card_conflict")


def test_rotation_supersedes_the_previous_card(api: ApiClient, alice: User) -> None:
    first = fresh_bundle("alice")
    api.publish_card(alice.access_token, first.card.to_json())
    second = first.rotate(created_at=int(time.time()))
    entry = publish_rotation(api, alice, first, second)
    assert entry["status"] == "active"
    assert entry["rotation_signature"] == rotation_signature(first, second)

    old = api.get_card(alice.access_token, first.card_id)
    assert old["status"] == "superseded"
    assert old["superseded_by"] == second.card_id
    assert old["status_changed_at"] >= old["published_at"]
    assert "rotation_signature" not in old  # a first card has none
    (found,) = api.find_cards(alice.access_token, ["alice"])
    assert found["card"]["card_id"] == second.card_id
    # Served with the card wherever it is read, so devices can check the chain.
    assert found["rotation_signature"] == entry["rotation_signature"]
    assert without_kt(api.get_card(alice.access_token, second.card_id)) == without_kt(entry)

    # A superseded card can never become active again.
    proof = api.step_up(alice.access_token, alice.keys.login_key_b64)
    with pytest.raises(ServerError) as again:
        api.publish_card(alice.access_token, first.card.to_json(), step_up=proof)
    assert again.value.code == "card_conflict"


def test_rotation_must_name_the_active_card(api, raw, alice) -> None:
    first = fresh_bundle("alice")
    api.publish_card(alice.access_token, first.card.to_json())
    second = first.rotate(created_at=int(time.time()))
    publish_rotation(api, alice, first, second)
    before = cards_table()
    # A rotation of the superseded card (a stale device) loses, signed or not.
    stale = first.rotate(created_at=int(time.time()))
    body = {"card": stale.card.to_json(), "rotation_signature": rotation_signature(first, stale)}
    reply = raw("POST", "/v1/cards", body, token=alice.access_token)
    assert_error(reply, 409, "card_conflict")
    assert cards_table() == before


def test_rotation_that_goes_back_in_time_is_refused(api, raw, alice) -> None:
    now = int(time.time())
    first = fresh_bundle("alice", created_at=now)
    api.publish_card(alice.access_token, first.card.to_json())
    older = first.rotate(created_at=now - 60)
    # The old key can't sign it either: sign_rotation checks the rule first.
    with pytest.raises(ValueError, match="does not succeed"):
        rotation_signature(first, older)
    reply = raw("POST", "/v1/cards", {"card": older.card.to_json()}, token=alice.access_token)
    assert_error(reply, 400, "card_rotation_mismatch")


def test_a_first_card_with_a_rotation_signature_is_refused(api, raw, alice) -> None:
    first = fresh_bundle("alice")
    stray = rotation_signature(first, first.rotate(created_at=int(time.time())))
    body = {"card": first.card.to_json(), "rotation_signature": stray}
    assert_error(
        raw("POST", "/v1/cards", body, token=alice.access_token),
        400,
        "rotation_signature_unexpected",
    )
    assert cards_table() == []


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (123, "card_wrong_type"),
        ("A" * 85, "card_wrong_length"),
        ("A" * 85 + "=", "card_bad_encoding"),
    ],
)
def test_a_malformed_rotation_signature_is_400(api, raw, alice, value, code) -> None:
    first = fresh_bundle("alice")
    api.publish_card(alice.access_token, first.card.to_json())
    before = cards_table()
    second = first.rotate(created_at=int(time.time()))
    body = {"card": second.card.to_json(), "rotation_signature": value}
    assert_error(raw("POST", "/v1/cards", body, token=alice.access_token), 400, code)
    assert cards_table() == before


def test_rotation_without_an_active_card_is_409(api, raw, alice) -> None:
    orphan = fresh_bundle("alice").rotate(created_at=int(time.time()))
    reply = raw("POST", "/v1/cards", {"card": orphan.card.to_json()}, token=alice.access_token)
    assert_error(reply, 409, "card_conflict")
    assert cards_table() == []


def _tampered(card: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(card)
    target = out
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


def _flip(text: str) -> str:
    return ("B" if text[0] == "A" else "A") + text[1:]


def test_invalid_cards_get_the_card_error_code_and_store_nothing(raw, alice) -> None:
    good = fresh_bundle("alice").card.to_json()
    other = fresh_bundle("bob").card.to_json()
    now = int(time.time())
    cases: list[tuple[Any, int, str]] = [
        ({"card": other}, 400, "card_identity_mismatch"),
        (
            {"card": _tampered(good, ("signature",), _flip(good["signature"]))},
            400,
            "bad_card_signature",
        ),
        (
            {"card": _tampered(good, ("keys", "x25519"), _flip(good["keys"]["x25519"]))},
            400,
            "card_id_mismatch",
        ),
        (
            {"card": fresh_bundle("alice", created_at=now - 3600).card.to_json()},
            400,
            "card_clock_skew",
        ),
        (
            {"card": fresh_bundle("alice", created_at=now + 3600).card.to_json()},
            400,
            "card_clock_skew",
        ),
        ({"card": _tampered(good, ("extra",), 1)}, 400, "card_unknown_field"),
        ({"card": _tampered(good, ("signature",), ...)}, 400, "card_missing_field"),
        ({"card": _tampered(good, ("created_at",), True)}, 400, "card_wrong_type"),
        ({"card": _tampered(good, ("version",), 2)}, 400, "unsupported_card_version"),
        ({"card": _tampered(good, ("identity",), "Alice")}, 400, "invalid_card_identity"),
        ({"card": "not a card"}, 400, "card_malformed"),
        ({"card": good, "force": True}, 400, "invalid_request"),
        ({}, 400, "invalid_request"),
        (b'{"card": {"card": 1}, "card": 2}', 400, "invalid_request"),
        ({"card": _tampered(good, ("padding",), "x" * 9000)}, 413, "payload_too_large"),
    ]
    for body, status, code in cases:
        assert_error(raw("POST", "/v1/cards", body, token=alice.access_token), status, code)
    assert cards_table() == []


def test_find_validates_and_batches(api, raw, alice, bob) -> None:
    api.publish_card(alice.access_token, fresh_bundle("alice").card.to_json())
    api.publish_card(bob.access_token, fresh_bundle("bob").card.to_json())
    found = api.find_cards(alice.access_token, ["BOB", "nobody-here", "alice", "bob"])
    assert [entry["card"]["identity"] for entry in found] == ["bob", "alice"]
    assert api.find_cards(alice.access_token, ["nobody-here"]) == []

    token = alice.access_token
    assert_error(raw("GET", "/v1/cards", token=token), 400, "invalid_request")
    assert_error(raw("GET", "/v1/cards?identity=a%2Fb", token=token), 400, "invalid_identity")
    assert_error(raw("GET", "/v1/cards?identity=al%C4%B1ce", token=token), 400, "invalid_identity")
    assert_error(raw("GET", "/v1/cards?identity=alice&x=1", token=token), 400, "invalid_request")
    fifty_one = "&".join(f"identity=user-{i:03d}" for i in range(51))
    assert_error(raw("GET", f"/v1/cards?{fifty_one}", token=token), 400, "invalid_request")
    fifty = "&".join(f"identity=user-{i:03d}" for i in range(50))
    assert without_kt(raw("GET", f"/v1/cards?{fifty}", token=token).json()) == {"cards": []}


def test_fifty_identities_cost_one_batched_read(api, alice) -> None:
    names = [f"user-{i:02d}" for i in range(49)]
    for name in names[:5]:
        user = make_user(api, name)
        api.publish_card(user.access_token, fresh_bundle(user.identity).card.to_json())
    client = wiring.container().dynamodb
    calls: list[str] = []

    def count(model: Any, **_: Any) -> None:
        calls.append(model.name)

    client.meta.events.register("before-call.dynamodb", count)
    found = api.find_cards(alice.access_token, [*names, "alice"])
    client.meta.events.unregister("before-call.dynamodb", count)
    assert len(found) == 5
    # One batched read for the cards and the transparency log's head.  The
    # proofs of a log's last, unfinished tile (here: all 5 leaves) come from
    # the head; in a larger log they add one batched read of the log's tiles
    # (test_kt_storage.py).
    assert calls == ["BatchGetItem"]


def test_get_card_validates_the_id(api, raw, alice) -> None:
    token = alice.access_token
    assert_error(raw("GET", "/v1/cards/short", token=token), 400, "invalid_card_id")
    assert_error(raw("GET", "/v1/cards/" + "A" * 42 + "=", token=token), 400, "invalid_card_id")
    assert_error(raw("GET", "/v1/cards/" + "A" * 43, token=token), 404, "not_found")
    assert_error(raw("GET", "/v1/cards/" + "A" * 42 + "B", token=token), 400, "invalid_card_id")


def test_revoke_lifecycle(api, raw, alice, bob) -> None:
    bundle = fresh_bundle("alice")
    api.publish_card(alice.access_token, bundle.card.to_json())
    path = f"/v1/cards/{bundle.card_id}/revoke"
    # Someone else: the same answer as for a card that doesn't exist.
    denied = raw("POST", path, token=bob.access_token, headers=step_up(api, bob))
    missing = raw(
        "POST",
        "/v1/cards/" + "A" * 43 + "/revoke",
        token=bob.access_token,
        headers=step_up(api, bob),
    )
    assert_error(denied, 404, "not_found")
    assert (denied.status, denied.body) == (missing.status, missing.body)
    assert api.get_card(bob.access_token, bundle.card_id)["status"] == "active"

    # The owner needs a step-up proof too (tests/regressions/test_step_up.py).
    assert_error(raw("POST", path, token=alice.access_token), 403, "step_up_required")
    assert raw("POST", path, token=alice.access_token, headers=step_up(api, alice)).status == 204
    entry = api.get_card(bob.access_token, bundle.card_id)
    assert entry["status"] == "revoked"
    assert "superseded_by" not in entry
    assert api.find_cards(bob.access_token, ["alice"]) == []
    assert_error(
        raw("POST", path, token=alice.access_token, headers=step_up(api, alice)),
        409,
        "card_not_active",
    )
    # A rotation of a revoked card has nothing to rotate, even signed.
    rotated = bundle.rotate(created_at=int(time.time()))
    signed = {
        "card": rotated.card.to_json(),
        "rotation_signature": rotation_signature(bundle, rotated),
    }
    assert_error(
        raw("POST", "/v1/cards", signed, token=alice.access_token),
        409,
        "card_conflict",
    )
    # After unregistering, the identity may register again from scratch:
    # an identity reset, with a step-up proof.
    again = fresh_bundle("alice")
    proof = api.step_up(alice.access_token, alice.keys.login_key_b64)
    api.publish_card(alice.access_token, again.card.to_json(), step_up=proof)
    (found,) = api.find_cards(bob.access_token, ["alice"])
    assert found["card"]["card_id"] == again.card_id


def test_revoking_a_superseded_card_is_409(api, raw, alice) -> None:
    first = fresh_bundle("alice")
    api.publish_card(alice.access_token, first.card.to_json())
    publish_rotation(api, alice, first, first.rotate(created_at=int(time.time())))
    reply = raw(
        "POST",
        f"/v1/cards/{first.card_id}/revoke",
        token=alice.access_token,
        headers=step_up(api, alice),
    )
    assert_error(reply, 409, "card_not_active")


ROUTES = [
    ("POST", "/v1/cards"),
    ("GET", "/v1/cards?identity=alice"),
    ("GET", "/v1/cards/" + "A" * 43),
    ("POST", "/v1/cards/" + "A" * 43 + "/revoke"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_card_route_needs_a_live_access_token(clock, raw, api, method, path) -> None:
    alice = make_user(api, "alice")
    body = {"card": fresh_bundle("alice").card.to_json()} if method == "POST" else None
    for token in (None, "garbage", alice.refresh_token):
        assert_error(raw(method, path, body, token=token), 401, "invalid_token")
    clock.advance(900 + 120)
    assert_error(raw(method, path, body, token=alice.access_token), 401, "invalid_token")
    assert cards_table() == []


# --- races --------------------------------------------------------------------------


def _service() -> CardService:
    return CardService(DynamoCardStore(boto3.client("dynamodb"), CARDS_TABLE), clock=time.time)


def _signed(previous: Any, new: Any) -> str:
    return rotation_signature(previous, new)


class Interleaved(DynamoCardStore):
    """A store that lets a competitor run to completion right after our first read.

    The service reads the identity's active card, then writes conditionally;
    running the competitor between the two is the worst interleaving, made
    deterministic.
    """

    def __init__(self, competitor: Any) -> None:
        super().__init__(boto3.client("dynamodb"), CARDS_TABLE)
        self._competitor = competitor

    def active(self, identity: str):  # type: ignore[no-untyped-def]
        seen = super().active(identity)
        if self._competitor is not None:
            competitor, self._competitor = self._competitor, None
            competitor()
        return seen


def test_racing_first_registrations_one_winner(stack) -> None:
    phone, laptop = fresh_bundle("alice"), fresh_bundle("alice")
    racer = CardService(
        Interleaved(lambda: _service().publish("alice", laptop.card.to_json())), clock=time.time
    )
    with pytest.raises(CardConflict):
        racer.publish("alice", phone.card.to_json())
    items = {item["pk"]["S"]: item for item in cards_table()}
    assert set(items) == {f"card#{laptop.card_id}", "identity#alice"}
    assert items["identity#alice"]["card_id"]["S"] == laptop.card_id


def test_racing_rotations_one_winner_previous_superseded_once(stack) -> None:
    first = fresh_bundle("alice")
    _service().publish("alice", first.card.to_json())
    now = int(time.time())
    a, b = first.rotate(created_at=now), first.rotate(created_at=now)
    racer = CardService(
        Interleaved(lambda: _service().publish("alice", b.card.to_json(), _signed(first, b))),
        clock=time.time,
    )
    with pytest.raises(CardConflict):
        racer.publish("alice", a.card.to_json(), _signed(first, a))
    assert _service().find(["alice"])[0].card_id == b.card_id
    old = _service().get(first.card_id)
    assert (old.status.value, old.superseded_by) == ("superseded", b.card_id)
    assert f"card#{a.card_id}" not in {item["pk"]["S"] for item in cards_table()}


def test_revoke_racing_a_rotation_leaves_one_consistent_outcome(stack) -> None:
    first = fresh_bundle("alice")
    _service().publish("alice", first.card.to_json())
    second = first.rotate(created_at=int(time.time()))

    class RevokeFirst(DynamoCardStore):
        def get(self, card_id: str):  # type: ignore[no-untyped-def]
            seen = super().get(card_id)
            _service().publish("alice", second.card.to_json(), _signed(first, second))
            return seen

    racer = CardService(RevokeFirst(boto3.client("dynamodb"), CARDS_TABLE), clock=time.time)
    with pytest.raises(CardConflict):
        racer.revoke("alice", first.card_id)
    assert _service().find(["alice"])[0].card_id == second.card_id
    assert _service().get(first.card_id).status.value == "superseded"


@pytest.mark.parametrize("kind", ["first-registration", "rotation"])
def test_thread_hammer_on_moto_exactly_one_active_card(stack, kind: str) -> None:
    with atomic_moto_dynamodb():
        now = int(time.time())
        first = fresh_bundle("alice")
        if kind == "rotation":
            _service().publish("alice", first.card.to_json())
            candidates = [first.rotate(created_at=now) for _ in range(12)]
        else:
            candidates = [fresh_bundle("alice", created_at=now) for _ in range(12)]
        start = threading.Barrier(len(candidates))
        outcomes: list[str] = []

        def rotate(bundle) -> None:  # type: ignore[no-untyped-def]
            service = _service()
            start.wait()
            try:
                signature = _signed(first, bundle) if kind == "rotation" else None
                service.publish("alice", bundle.card.to_json(), signature)
                outcomes.append("won")
            except CardConflict:
                outcomes.append("conflict")

        threads = [threading.Thread(target=rotate, args=(b,)) for b in candidates]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["conflict"] * 11 + ["won"]
        items = cards_table()
        heads = [item for item in items if item["pk"]["S"].startswith("identity#")]
        stored = [item for item in items if item["pk"]["S"].startswith("card#")]
        assert len(heads) == 1
        # The one winner (and, for rotations, the card it superseded).
        assert len(stored) == (2 if kind == "rotation" else 1)
        active = [item for item in stored if item["status"]["S"] == "active"]
        assert [item["card_id"]["S"] for item in active] == [heads[0]["card_id"]["S"]]
