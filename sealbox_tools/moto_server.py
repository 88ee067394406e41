"""moto's server for the local stack, with DynamoDB requests applied one at a time.

(It also completes S3 multipart uploads without holding the object in
memory: :mod:`sealbox_tools.moto_multipart`.)

DynamoDB applies every item write atomically and isolates transactions:
two ``UpdateItem ... ADD`` on one item both count, and of two
``TransactWriteItems`` whose conditions name the same item version exactly
one succeeds.  moto's server handles requests on threads and applies them
without a lock, so under concurrency it can lose an ``ADD`` (a quota count
off by one blob) or let two conditional transactions both pass (a blob
settled twice).  Sealbox's invariants rest on those guarantees (DESIGN
invariant 5), so the local stack runs moto with every DynamoDB request
serialized: what the code sees locally is what AWS promises.  Other
services are untouched.

With moto's request recorder on (``MOTO_ENABLE_RECORDING``, used by
``bench.locust_rate``), each request's line is written whole: moto appends
a request's JSON and its newline in two writes, which concurrent requests
interleave into lines nobody can read back.

Run as ``python -m sealbox_tools.moto_server`` with moto's own arguments.
"""

from __future__ import annotations

import threading
from typing import Any

from sealbox_tools.moto_multipart import assemble_by_streaming

__all__ = ["main", "serialize_dynamodb", "serialize_recorder"]

_lock = threading.Lock()
_recorder_lock = threading.Lock()


def serialize_dynamodb() -> None:
    """Make moto's DynamoDB handler apply one request at a time (idempotent)."""
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    if getattr(original, "sealbox_serialized", False):
        return

    def call_action(self: Any) -> Any:
        with _lock:
            return original(self)

    call_action.sealbox_serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def serialize_recorder() -> None:
    """Make moto's recorder write one request's line at a time (idempotent)."""
    from moto.moto_api._internal.recorder.models import Recorder

    original = Recorder._record_request
    if getattr(original, "sealbox_serialized", False):
        return

    def record_request(self: Any, request: Any, body: bytes | None = None) -> None:
        with _recorder_lock:
            original(self, request, body)

    record_request.sealbox_serialized = True  # type: ignore[attr-defined]
    Recorder._record_request = record_request  # type: ignore[method-assign]


def main() -> None:
    serialize_dynamodb()
    serialize_recorder()
    assemble_by_streaming()
    from moto.server import main as moto_main

    moto_main()


if __name__ == "__main__":
    main()
