"""The local stack's moto writes each recorded request as one whole line.

``bench.locust_rate`` replays what moto's recorder wrote; moto appends a
request's JSON and its newline in two writes, so concurrent requests
interleave into unreadable lines unless the recorder is serialized
(sealbox_tools.moto_server.serialize_recorder).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from moto.moto_api._internal.recorder.models import Recorder

from sealbox_tools import moto_server


class _Request:
    """What the recorder reads of a request (moto.core.request.Request)."""

    def __init__(self, number: int) -> None:
        self.raw_path = f"/bucket/key-{number}"
        self.raw_url = f"http://127.0.0.1:1{self.raw_path}"
        self.method = "PUT"
        self.headers = {"Host": "127.0.0.1:1"}


def _record_concurrently(recorder: Recorder, threads: int = 8, each: int = 40) -> None:
    body = b"x" * 200_000  # large lines: one write() is several syscalls

    def worker(start: int) -> None:
        for number in range(start, start + each):
            recorder._record_request(_Request(number), body)  # type: ignore[arg-type]

    pool = [threading.Thread(target=worker, args=(n * each,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def test_concurrent_requests_are_recorded_as_whole_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Recorder, "_record_request", Recorder._record_request)  # restored after
    moto_server.serialize_recorder()
    moto_server.serialize_recorder()  # idempotent: one lock, not two
    recorder = _recorder(tmp_path, monkeypatch)
    _record_concurrently(recorder)
    lines = (tmp_path / "rec.jsonl").read_bytes().splitlines()
    entries: list[dict[str, Any]] = [json.loads(line) for line in lines]
    assert sorted(e["url"].rsplit("-", 1)[1] for e in entries) == sorted(
        str(n) for n in range(8 * 40)
    )


def _recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    monkeypatch.setenv("MOTO_ENABLE_RECORDING", "True")
    monkeypatch.setenv("MOTO_RECORDER_FILEPATH", str(tmp_path / "rec.jsonl"))
    return Recorder()
