"""The local stand-in for Lambda's SQS event source.

On AWS, S3 reports new blob objects to an SQS queue and Lambda's event
source mapping hands them, in batches, to the ``blob_events`` function.
``chalice local`` serves HTTP only, so ``sealbox local`` runs this poller
next to it: it long-polls the stage's queue on the moto server, builds the
same SQS event Lambda would, calls the very same handler from ``app.py``,
and deletes the messages only when the handler succeeds (on failure they
come back after the queue's visibility timeout, as on AWS).

    python -m sealbox_tools.local_events

It reads the stage from its environment (the stage's variables from
``.chalice/config.json`` and ``AWS_ENDPOINT_URL``), which
:class:`sealbox_tools.local_stack.LocalStack` provides; SIGINT or SIGTERM stops
it after the current batch.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import uuid
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

_WAIT_SECONDS = 1
_BATCH = 10


@dataclass
class _Context:
    """The parts of a Lambda context the handler may read."""

    function_name: str = "blob_events"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source builds for ``messages``."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


def run(stop: threading.Event) -> None:
    """Poll the stage's blob-events queue until ``stop`` is set."""
    import boto3

    import app  # the Chalice app: its blob_events handler is what runs on Lambda

    region = os.environ.get("AWS_REGION", "us-east-1")
    session: Any = boto3.session.Session()
    sqs = session.client("sqs", region_name=region)
    queue_url = sqs.get_queue_url(QueueName=os.environ["SEALBOX_BLOB_EVENTS_QUEUE"])["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    print("polling blob events", flush=True)
    while not stop.is_set():
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=_BATCH,
            WaitTimeSeconds=_WAIT_SECONDS,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            continue
        try:
            app.blob_events(sqs_event(messages, queue_arn, region), _Context())
        except Exception as exc:  # noqa: BLE001 - like Lambda: report, leave the batch queued
            print(f"blob_events failed: {type(exc).__name__}", file=sys.stderr, flush=True)
            continue
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    run(stop)


if __name__ == "__main__":
    main()
