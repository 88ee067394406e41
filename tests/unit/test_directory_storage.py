"""The key-directory DynamoDB adapters against a scripted client (no AWS, no moto).

What moto can't make happen on demand: partial BatchGetItem answers,
transactions cancelled by a concurrent transaction, throttling.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from chalicelib.errors import InternalError, ServiceUnavailable
from chalicelib.services.cards import CardRecord, CardStatus
from chalicelib.storage.directory import DynamoCardStore
from tests.identities import bundle


def head_item(identity: str) -> dict[str, Any]:
    card = bundle(identity).card
    return {
        "pk": {"S": f"identity#{identity}"},
        "card_id": {"S": card.card_id},
        "identity": {"S": identity},
        "card": {"B": card.encode()},
        "published_at": {"N": "1"},
    }


def key(identity: str) -> dict[str, Any]:
    return {"pk": {"S": f"identity#{identity}"}}


def cancelled(*codes: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
            "CancellationReasons": [{"Code": code} for code in codes],
        },
        "TransactWriteItems",
    )


class ScriptedClient:
    """Answers each call with the next scripted reply (or raises it)."""

    def __init__(self, *replies: Any) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _next(self, name: str, kwargs: dict[str, Any]) -> Any:
        self.calls.append((name, kwargs))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def batch_get_item(self, **kwargs: Any) -> Any:
        return self._next("BatchGetItem", kwargs)

    def transact_write_items(self, **kwargs: Any) -> Any:
        return self._next("TransactWriteItems", kwargs)

    def get_item(self, **kwargs: Any) -> Any:
        return self._next("GetItem", kwargs)


def store(client: ScriptedClient) -> tuple[DynamoCardStore, list[float]]:
    sleeps: list[float] = []
    return DynamoCardStore(client, "cards", sleep=sleeps.append), sleeps  # type: ignore[arg-type]


def test_unprocessed_keys_are_asked_for_again_with_backoff() -> None:
    client = ScriptedClient(
        {
            "Responses": {"cards": [head_item("alice")]},
            "UnprocessedKeys": {"cards": {"Keys": [key("bob")], "ConsistentRead": True}},
        },
        {"Responses": {"cards": [head_item("bob")]}, "UnprocessedKeys": {}},
    )
    cards, sleeps = store(client)
    found = cards.active_many(["alice", "bob", "carol"])
    assert sorted(found) == ["alice", "bob"]
    assert [name for name, _ in client.calls] == ["BatchGetItem", "BatchGetItem"]
    assert client.calls[1][1]["RequestItems"]["cards"]["Keys"] == [key("bob")]
    assert len(sleeps) == 1


def test_keys_never_processed_become_503_after_bounded_rounds() -> None:
    stuck = {"Responses": {}, "UnprocessedKeys": {"cards": {"Keys": [key("bob")]}}}
    client = ScriptedClient(*[stuck] * 5)
    cards, sleeps = store(client)
    with pytest.raises(ServiceUnavailable):
        cards.active_many(["bob"])
    assert len(client.calls) == 5
    assert sleeps == sorted(sleeps)


def test_lookups_are_bounded_and_distinct() -> None:
    cards, _ = store(ScriptedClient())
    with pytest.raises(ValueError, match="50"):
        cards.active_many([f"user-{i}" for i in range(51)])
    with pytest.raises(ValueError, match="distinct"):
        cards.active_many(["alice", "alice"])
    assert cards.active_many([]) == {}


def record() -> CardRecord:
    return CardRecord(card=bundle("alice").card, status=CardStatus.ACTIVE, published_at=1)


def test_a_failed_condition_is_a_lost_race_not_an_error() -> None:
    client = ScriptedClient(cancelled("None", "ConditionalCheckFailed"))
    cards, _ = store(client)
    assert cards.publish(record(), replaces=None) is False


def test_a_concurrent_transaction_is_retried_then_decided() -> None:
    client = ScriptedClient(cancelled("TransactionConflict", "None"), {})
    cards, sleeps = store(client)
    assert cards.publish(record(), replaces=None) is True
    assert len(client.calls) == 2
    assert len(sleeps) == 1


def test_persistent_transaction_conflicts_become_503() -> None:
    client = ScriptedClient(*[cancelled("TransactionConflict")] * 3)
    cards, _ = store(client)
    with pytest.raises(ServiceUnavailable):
        cards.publish(record(), replaces=None)


def test_a_rotation_is_one_transaction_of_three_conditional_writes() -> None:
    client = ScriptedClient({})
    cards, _ = store(client)
    assert cards.publish(record(), replaces="A" * 43)
    ((_, call),) = client.calls
    items = call["TransactItems"]
    assert [next(iter(item)) for item in items] == ["Put", "Put", "Update"]
    assert all("ConditionExpression" in next(iter(item.values())) for item in items)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            ClientError({"Error": {"Code": "ValidationException"}}, "TransactWriteItems"),
            InternalError,
        ),
        (
            ClientError({"Error": {"Code": "ThrottlingException"}}, "TransactWriteItems"),
            ServiceUnavailable,
        ),
        (EndpointConnectionError(endpoint_url="https://dynamodb.invalid"), ServiceUnavailable),
    ],
)
def test_other_failures_become_domain_errors(error, expected) -> None:
    cards, _ = store(ScriptedClient(error))
    with pytest.raises(expected):
        cards.revoke("alice", "A" * 43, at=1)


def test_only_new_active_cards_are_published() -> None:
    cards, _ = store(ScriptedClient())
    revoked = CardRecord(card=bundle("alice").card, status=CardStatus.REVOKED, published_at=1)
    with pytest.raises(ValueError, match="active"):
        cards.publish(revoked, replaces=None)


def test_a_corrupted_stored_card_is_an_internal_error() -> None:
    item = head_item("alice")
    item["card"] = {"B": b"garbage"}
    cards, _ = store(ScriptedClient({"Item": item}))
    with pytest.raises(InternalError):
        cards.active("alice")
