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
    answers = []
    for kwargs in (
        {"Prefix": "blobs/a"},
        {"Prefix": "blobs/", "Delimiter": "/"},
        {"Prefix": "blobs/", "MaxKeys": 2},
        {"Prefix": "nothing"},
        {},
    ):
        pages = client.get_paginator("list_object_versions").paginate(Bucket="bucket", **kwargs)
        answers.append(
            [
                (
                    [(v["Key"], v["IsLatest"], v["Size"]) for v in page.get("Versions", [])],
                    [(m["Key"], m["IsLatest"]) for m in page.get("DeleteMarkers", [])],
                    [p["Prefix"] for p in page.get("CommonPrefixes", [])],
                )
                for page in pages
            ]
        )
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
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.s3.models import S3Backend

    def current() -> tuple[Any, ...]:
        return (DynamoDBBackend.transact_write_items, S3Backend.list_object_versions, Table.query)

    original = current()
    with scaled_moto():
        patched = current()
        with scaled_moto():
            pass
        assert current() == patched
    assert all(a is not b for a, b in zip(patched, original, strict=True))
    assert current() == original
