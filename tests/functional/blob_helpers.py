"""Shared pieces of the blob functional tests: users, clients, AWS views."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chalice.test import Client

from chalicelib.wire.b64 import b64url_encode
from client_sim import age
from client_sim.api import ApiClient
from client_sim.blobs import BlobClient
from client_sim.transport import ChaliceTransport
from tests.functional.conftest import STAGE_ENV, aws_client
from tests.support.objects import MOTO_STORAGE_ORIGINS, MotoObjects

BUCKET = STAGE_ENV["SEALBOX_BLOBS_BUCKET"]
QUEUE = STAGE_ENV["SEALBOX_BLOB_EVENTS_QUEUE"]
TABLES = (
    STAGE_ENV["SEALBOX_BLOBS_TABLE"],
    STAGE_ENV["SEALBOX_BLOB_GRANTS_TABLE"],
    STAGE_ENV["SEALBOX_BLOB_USAGE_TABLE"],
)


@dataclass
class User:
    name: str
    token: str
    key: age.X25519Identity
    blobs: BlobClient
    objects: MotoObjects

    def recipient(self) -> age.X25519Recipient:
        return self.key.recipient()


def make_user(api: ApiClient, transport: ChaliceTransport, name: str) -> User:
    login_key = b64url_encode(name.encode().ljust(32, b"=")[:32])
    api.register(name, login_key)
    token = api.access_token(api.login(name, login_key).refresh_token).access_token
    objects = MotoObjects()
    blobs = BlobClient(
        transport, lambda: token, objects=objects, storage_origins=MOTO_STORAGE_ORIGINS
    )
    return User(name, token, age.X25519Identity.generate(), blobs, objects)


def versions(prefix: str = "") -> list[dict[str, Any]]:
    """Every object version and delete marker in the blob bucket."""
    out = aws_client("s3").list_object_versions(Bucket=BUCKET, Prefix=prefix)
    return list(out.get("Versions", [])) + list(out.get("DeleteMarkers", []))


def bucket_bytes() -> bytes:
    """Every byte of every object version in the blob bucket."""
    s3 = aws_client("s3")
    data = b""
    for version in aws_client("s3").list_object_versions(Bucket=BUCKET).get("Versions", []):
        body = s3.get_object(Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"])
        data += body["Body"].read()
    return data


def table_items(table: str) -> list[dict[str, Any]]:
    return list(aws_client("dynamodb").scan(TableName=table)["Items"])


def usage(identity: str) -> tuple[int, int]:
    item = (
        aws_client("dynamodb")
        .get_item(TableName=TABLES[2], Key={"identity": {"S": identity}})
        .get("Item", {})
    )
    return (
        int(item["bytes"]["N"]) if "bytes" in item else 0,
        int(item["blobs"]["N"]) if "blobs" in item else 0,
    )


def drain_events(chalice: Client) -> int:
    """Deliver every S3 notification waiting in the queue to the blob_events
    function, as Lambda's SQS event source would; returns how many."""
    sqs = aws_client("sqs")
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    delivered = 0
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return delivered
        event = chalice.events.generate_sqs_event(
            message_bodies=[m["Body"] for m in messages], queue_name=QUEUE
        )
        chalice.lambda_.invoke("blob_events", event)
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        delivered += len(messages)


def s3_event(blob_id: str, *, bucket: str = BUCKET, key_prefix: str = "blobs/") -> str:
    """The body S3 sends for one new object (the shape moto and AWS use)."""
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                        "object": {"key": key_prefix + blob_id, "size": 1},
                    },
                }
            ]
        }
    )
