"""End-to-end tier: ``sealbox local`` started as a real process, used over HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sealbox_tools.local_stack import FAKE_CREDENTIALS, free_port
from tests.conftest import ROOT

SEALBOX = str(Path(sys.executable).with_name("sealbox"))


@dataclass
class RunningStack:
    proc: subprocess.Popen[str]
    url: str
    aws_endpoint: str
    lines: list[str]

    def sdk_config_path(self, timeout: float = 10.0) -> Path:
        """The SDK configuration the stack wrote (its ``sdk config`` line)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if line.startswith("sdk config "):
                    return Path(line.removeprefix("sdk config "))
            assert time.monotonic() < deadline, self.lines
            time.sleep(0.1)

    def client(self, service: str) -> Any:
        import boto3

        session: Any = boto3.session.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )
        return session.client(service, endpoint_url=self.aws_endpoint)


def start_local(port: int, timeout: float = 90.0, extra_args: Sequence[str] = ()) -> RunningStack:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [SEALBOX, "local", "--port", str(port), *extra_args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("listening on "):
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise RuntimeError(f"sealbox local did not start: {lines}")
    endpoint = next(line for line in lines if line.startswith("aws endpoint "))
    url = next(line for line in lines if line.startswith("listening on "))
    return RunningStack(
        proc=proc,
        url=url.removeprefix("listening on "),
        aws_endpoint=endpoint.removeprefix("aws endpoint "),
        lines=lines,
    )


def stop_local(stack: RunningStack, sig: int = signal.SIGTERM) -> int:
    stack.proc.send_signal(sig)
    try:
        return stack.proc.wait(timeout=30)
    finally:
        if stack.proc.poll() is None:
            os.killpg(stack.proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def local_stack() -> Iterator[RunningStack]:
    stack = start_local(free_port())
    try:
        yield stack
    finally:
        stop_local(stack)


def port_of(url: str) -> int:
    match = re.search(r":(\d+)$", url)
    assert match, url
    return int(match.group(1))
