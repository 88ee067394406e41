"""bench.locust_rate's replay: what it counts and what it changes in a recorded request."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from bench.locust_rate import Recording, _send

pytestmark = pytest.mark.unit


def test_only_complete_lines_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    counter = Recording(path)
    assert counter.count() == 0  # nothing recorded yet
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c"')
    assert counter.count() == 2
    with path.open("ab") as more:
        more.write(b": 3}\n")
    assert counter.count() == 3


class _Session:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.sent.append({"method": method, "url": url, **kwargs})
        return type("Reply", (), {"status_code": 200})()


def test_a_request_goes_to_the_new_server_with_its_body() -> None:
    session = _Session()
    body = b"\x00binary"
    _send(
        session,
        "http://127.0.0.1:9",
        {
            "method": "PUT",
            "url": "http://127.0.0.1:5000/bucket/key?partNumber=1&uploadId=u",
            "headers": {"Host": "127.0.0.1:5000", "Content-Length": "7", "X-Amz-Date": "d"},
            "body": base64.b64encode(body).decode(),
            "body_encoded": True,
        },
    )
    [sent] = session.sent
    assert sent["url"] == "http://127.0.0.1:9/bucket/key?partNumber=1&uploadId=u"
    assert sent["data"] == body
    assert sent["headers"] == {"X-Amz-Date": "d"}  # requests sets Host and length itself


def test_a_long_poll_is_replayed_without_waiting() -> None:
    session = _Session()
    _send(
        session,
        "http://127.0.0.1:9",
        {
            "method": "POST",
            "url": "http://127.0.0.1:5000/",
            "headers": {"X-Amz-Target": "AmazonSQS.ReceiveMessage"},
            "body": json.dumps({"QueueUrl": "q", "WaitTimeSeconds": 20}),
        },
    )
    assert json.loads(session.sent[0]["data"])["WaitTimeSeconds"] == 0
