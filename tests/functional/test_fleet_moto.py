"""The in-process fleet's moto patches change cost, not behaviour.

Each test runs the same calls with and without :func:`scaled_moto` on
fresh moto state and compares what moto answers and stores.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sealbox_tools.fleet._moto import scaled_moto
from tests.support.aws import moto_aws


def ddb() -> Any:
    return boto3.client("dynamodb", region_name="us-east-1")


def s3() -> Any:
    return boto3.client("s3", region_name="us-east-1")


def transaction_outcome() -> dict[str, Any]:
    client = ddb()
    for name in ("a", "b"):
        client.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    client.put_item(TableName="a", Item={"pk": {"S": "kept"}, "n": {"N": "1"}})
    client.put_item(TableName="a", Item={"pk": {"S": "doomed"}, "n": {"N": "2"}})
    client.put_item(TableName="b", Item={"pk": {"S": "other"}, "n": {"N": "3"}})
    client.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": "b", "Item": {"pk": {"S": "fresh"}, "n": {"N": "4"}}}},
            {
                "Update": {
                    "TableName": "a",
                    "Key": {"pk": {"S": "kept"}},
                    "UpdateExpression": "SET n = n + :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
        ]
    )
    error = ""
    try:
        # Every operation but the last would succeed: all must be undone.
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "b", "Item": {"pk": {"S": "new"}, "n": {"N": "5"}}}},
                {"Put": {"TableName": "b", "Item": {"pk": {"S": "other"}, "n": {"N": "6"}}}},
                {
                    "Update": {
                        "TableName": "a",
                        "Key": {"pk": {"S": "kept"}},
                        "UpdateExpression": "SET n = :big",
                        "ExpressionAttributeValues": {":big": {"N": "99"}},
                    }
                },
                {"Delete": {"TableName": "a", "Key": {"pk": {"S": "doomed"}}}},
                {
                    "ConditionCheck": {
                        "TableName": "b",
                        "Key": {"pk": {"S": "fresh"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    except ClientError as exc:
        error = exc.response["Error"]["Code"]
    return {
        "error": error,
        "a": sorted(str(i) for i in client.scan(TableName="a")["Items"]),
        "b": sorted(str(i) for i in client.scan(TableName="b")["Items"]),
    }


def listing_outcome() -> list[Any]:
    client = s3()
    client.create_bucket(Bucket="bucket")
    client.put_bucket_versioning(Bucket="bucket", VersioningConfiguration={"Status": "Enabled"})
    for name in ("blobs/a", "blobs/ab", "blobs/b/c", "quarantine/a", "zzz"):
        for body in (b"one", b"two"):
            client.put_object(Bucket="bucket", Key=name, Body=body)
    client.delete_object(Bucket="bucket", Key="blobs/ab")
    answers: list[Any] = []
    for kwargs in (
        {"Prefix": "blobs/a"},
        {"Prefix": "blobs/", "Delimiter": "/"},
        {"Prefix": "blobs/", "MaxKeys": 2},
        {"Prefix": "nothing"},
        {},
        {"MaxKeys": 3},
    ):
        pages = client.get_paginator("list_object_versions").paginate(Bucket="bucket", **kwargs)
        answers.append(
            [
                (
                    [
                        (v["Key"], v["IsLatest"], v["Size"], v["ETag"], v["StorageClass"])
                        for v in page.get("Versions", [])
                    ],
                    [(m["Key"], m["IsLatest"]) for m in page.get("DeleteMarkers", [])],
                    [p["Prefix"] for p in page.get("CommonPrefixes", [])],
                )
                for page in pages
            ]
        )
    # Listing copied nothing it should have: every stored version still reads.
    for page in client.get_paginator("list_object_versions").paginate(Bucket="bucket"):
        for v in page.get("Versions", []):
            body = client.get_object(Bucket="bucket", Key=v["Key"], VersionId=v["VersionId"])
            answers.append((v["Key"], body["Body"].read()))
    return answers


def query_outcome() -> list[Any]:
    client = ddb()
    client.create_table(
        TableName="grants",
        KeySchema=[
            {"AttributeName": "recipient", "KeyType": "HASH"},
            {"AttributeName": "created_key", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "recipient", "AttributeType": "S"},
            {"AttributeName": "created_key", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for who in ("alice", "bob", "carol"):
        for n in range(7):
            client.put_item(
                TableName="grants",
                Item={
                    "recipient": {"S": who},
                    "created_key": {"S": f"{n:03d}"},
                    "n": {"N": str(n)},
                },
            )
    answers: list[Any] = []
    for kwargs in (
        {"KeyConditionExpression": "recipient = :r"},
        {"KeyConditionExpression": "recipient = :r", "ScanIndexForward": False, "Limit": 3},
        {
            "KeyConditionExpression": "recipient = :r AND created_key < :before",
            "ScanIndexForward": False,
            "Limit": 2,
        },
        {"KeyConditionExpression": "recipient = :r", "FilterExpression": "n > :two"},
    ):
        for who in ("bob", "nobody"):
            values = {":r": {"S": who}, ":before": {"S": "005"}, ":two": {"N": "2"}}
            used = {k: v for k, v in values.items() if k in str(kwargs)}
            pages = client.get_paginator("query").paginate(
                TableName="grants", ExpressionAttributeValues=used, **kwargs
            )
            answers.append([(page["Items"], page.get("LastEvaluatedKey")) for page in pages])
    answers.append(sorted(str(i) for i in client.scan(TableName="grants")["Items"]))
    return answers


@pytest.mark.parametrize("scenario", [transaction_outcome, listing_outcome, query_outcome])
def test_patched_moto_answers_like_moto(monkeypatch: pytest.MonkeyPatch, scenario: Any) -> None:
    with moto_aws(monkeypatch):
        plain = scenario()
    with moto_aws(monkeypatch), scaled_moto():
        patched = scenario()
    assert patched == plain
    if scenario is transaction_outcome:
        assert plain["error"] == "TransactionCanceledException"


def test_the_patches_are_removed_and_reentrant() -> None:
    from moto.core.common_models import BaseModel
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.s3.models import S3Backend

    def current() -> tuple[Any, ...]:
        return (
            DynamoDBBackend.transact_write_items,
            S3Backend.list_object_versions,
            Table.query,
            vars(BaseModel)["__new__"],
        )

    original = current()
    with scaled_moto():
        patched = current()
        with scaled_moto():
            pass
        assert current() == patched
    assert all(a is not b for a, b in zip(patched, original, strict=True))
    assert current() == original


def tracked_models() -> int:
    """How many model objects moto keeps for its dashboard."""
    from moto.core.model_instances import model_data

    return sum(
        len(getattr(model, "instances_tracked", ()))
        for models in model_data.values()
        for model in models.values()
    )


def presigned_round_trip(body: bytes) -> int:
    """A presigned PUT and GET through moto's ``responses`` mock; the
    number of calls the mock then remembers."""
    import requests
    from moto.core.models import responses_mock

    client = s3()
    client.create_bucket(Bucket="transfers")
    put = client.generate_presigned_url(
        "put_object", Params={"Bucket": "transfers", "Key": "k"}, ExpiresIn=60
    )
    assert requests.put(put, data=body, timeout=5).status_code == 200
    get = client.generate_presigned_url(
        "get_object", Params={"Bucket": "transfers", "Key": "k"}, ExpiresIn=60
    )
    assert requests.get(get, timeout=5).content == body
    return len(responses_mock.calls) + sum(len(r.calls) for r in responses_mock.registered())


def test_moto_keeps_no_model_objects_in_a_fleet(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every item copy a query returns and every version a listing copies
    # (value included) stayed reachable until the next tidy: in a phase of
    # a 1,000-phone fleet, that is the phase's whole traffic.
    with moto_aws(monkeypatch):
        listing_outcome()
        query_outcome()
        assert tracked_models() > 0  # what moto does on its own
    with moto_aws(monkeypatch), scaled_moto():
        listing_outcome()
        query_outcome()
        assert tracked_models() == 0


def test_moto_records_no_presigned_transfers_in_a_fleet(monkeypatch: pytest.MonkeyPatch) -> None:
    # moto's responses mock kept every transfer's request and response,
    # bodies included, in two lists.
    body = b"ciphertext " * 1000
    with moto_aws(monkeypatch):
        assert presigned_round_trip(body) >= 2  # what moto does on its own
    with moto_aws(monkeypatch), scaled_moto():
        assert presigned_round_trip(body) == 0
    with moto_aws(monkeypatch):
        # Recording again once the fleet's context is gone.
        assert presigned_round_trip(body) >= 2


def test_version_listings_copy_no_stored_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    # The audit lists the whole bucket page by page; moto deep-copied every
    # stored version, value included, for every page.
    from moto.s3.models import FakeKey

    copied: list[str] = []
    real = FakeKey.__getstate__

    def spy(self: Any) -> dict[str, Any]:
        copied.append(self.name)
        return real(self)

    monkeypatch.setattr(FakeKey, "__getstate__", spy)
    with moto_aws(monkeypatch):
        listing_outcome()
        assert copied  # what moto does on its own
    copied.clear()
    with moto_aws(monkeypatch), scaled_moto():
        listing_outcome()
    assert copied == []
