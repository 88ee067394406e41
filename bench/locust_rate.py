"""Locust against the local stack, next to moto's bare request rate on the same calls.

    python -m bench.locust_rate [--users 40] [--run-time 60] [--warmup 20] [--json]

Issue 16's goal: a Locust master and 2 workers of simulated phones
(:mod:`sealbox_tools.locustfile`) against ``sealbox local`` reach at least
0.9 x the request rate moto reaches alone on the same mix.  Both sides are
counted in the same unit, the AWS requests moto serves, and on the same
requests:

1. **The stack under Locust.**  ``sealbox local`` starts with moto's request
   recorder on (``MOTO_ENABLE_RECORDING``: every request moto receives is
   appended to a file, body included).  Locust runs ``--users`` phones on
   two worker processes for ``--run-time`` seconds.  The bench counts the
   recorded requests at ``--warmup`` seconds and two seconds before the end
   (sign-ups and spawning fall before the window, shutdown after it): the
   stack's rate is the requests in that window over its length.  Every
   request Locust reports, and every delivery check, must have succeeded.
2. **moto alone.**  A fresh moto server (the same ``sealbox_tools.moto_server``,
   recorder on as well, so both sides pay for it) receives the recording,
   replayed by the bench's process in order: everything before the window
   untimed on one connection (provisioning, sign-ups: moto reaches the
   window's state), then the window's requests timed, on each of
   ``--replay-clients`` keep-alive connections taking the next request in
   turn (one fresh server per count; 1 and 4 by default).  One connection
   waits for each answer; several keep moto busy while the client works,
   at the price of reordering requests a few places (a read may then
   precede the write it follows: the replay reports its 4xx).  The fastest
   replay is the baseline.

The ratio is (1) / (2), goal >= 0.9.  Two adjustments of the replay, both
toward a faster baseline: an SQS ``ReceiveMessage`` is replayed with
``WaitTimeSeconds`` 0 (a long poll on an empty queue would measure waiting,
not serving), and a ``DeleteMessage`` of a receipt the replay never issued
is answered with an error moto computes quickly, as it is in the real run
when a message was already deleted.  On one 2-core machine the stack's
processes (Locust's master and workers, ``chalice local``, the event
poller) share the cores with moto, where the replay's one client barely
loads them: the ratio is the share of moto's capacity the whole stack
reaches, not a property of Locust alone.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from bench.results import ratio, record
from sealbox_tools.local_stack import LocalStack, free_port

ROOT = Path(__file__).resolve().parent.parent
LOCUST = str(Path(sys.executable).with_name("locust"))
LOCUSTFILE = str(ROOT / "sealbox_tools" / "locustfile.py")
GOAL = ">= 0.9"
# What the replay drops from a recorded request: hop-by-hop and length
# headers (requests sets them for the body it sends) and the old Host.
_DROPPED_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}
_WAIT = re.compile(rb'"WaitTimeSeconds"\s*:\s*\d+')


class Recording:
    """Lines moto's recorder appended to a file, counted as they arrive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._count = 0

    def count(self) -> int:
        """Complete requests recorded so far."""
        if not self.path.exists():
            return 0
        with self.path.open("rb") as recorded:
            recorded.seek(self._offset)
            chunk = recorded.read()
        complete = chunk.rfind(b"\n") + 1
        self._count += chunk.count(b"\n", 0, complete)
        self._offset += complete
        return self._count


def spawn_locust(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """``locust -f sealbox_tools/locustfile.py ARGS`` in its own process group,
    output to ``log``, with no AWS settings of ours (nor moto's recorder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.pop("MOTO_ENABLE_RECORDING", None)
    with log.open("wb") as out:
        return subprocess.Popen(
            [LOCUST, "-f", LOCUSTFILE, *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def stack_under_locust(
    work: Path, *, users: int, run_time: int, warmup: int
) -> tuple[dict[str, Any], Path]:
    """Run Locust against a recording local stack; the window's rate and the recording."""
    recording = work / "stack.jsonl"
    os.environ["MOTO_ENABLE_RECORDING"] = "True"
    os.environ["MOTO_RECORDER_FILEPATH"] = str(recording)
    try:
        with (work / "stack.log").open("w") as log:
            stack = LocalStack(log=log).start()
    finally:
        del os.environ["MOTO_ENABLE_RECORDING"], os.environ["MOTO_RECORDER_FILEPATH"]
    counter = Recording(recording)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        port = free_port()
        common = ["--sealbox-storage-origin", stack.aws_endpoint, "--sealbox-seed", "bench"]
        procs.append(
            spawn_locust(
                [
                    "--headless",
                    "--master",
                    "--master-bind-port",
                    str(port),
                    "--expect-workers",
                    "2",
                    "--users",
                    str(users),
                    "--spawn-rate",
                    str(users),
                    "--run-time",
                    f"{run_time}s",
                    "--host",
                    stack.url,
                    "--csv",
                    str(work / "run"),
                    "--only-summary",
                    *common,
                ],
                work / "master.log",
            )
        )
        procs += [
            spawn_locust(["--worker", "--master-port", str(port), *common], work / f"worker{n}.log")
            for n in range(2)
        ]
        started = _wait_for_spawning(work / "master.log", procs[0])
        time.sleep(max(0.0, started + warmup - time.monotonic()))
        first, first_at = counter.count(), time.monotonic()
        time.sleep(max(0.0, started + run_time - 2 - time.monotonic()))
        last, last_at = counter.count(), time.monotonic()
        code = procs[0].wait(timeout=120)
        for proc in procs[1:]:
            proc.wait(timeout=60)
    finally:
        _stop(procs)
        stack.stop()
    stats = _locust_stats(work / "run_stats.csv")
    master_log = (work / "master.log").read_text(errors="replace")
    if code != 0 or stats["failures"]:
        raise SystemExit(f"locust reported failures {stats['failures']}: {master_log[-2000:]}")
    window = last_at - first_at
    return (
        {
            "users": users,
            "run_time_s": run_time,
            "window": [first, last],
            "window_s": round(window, 2),
            "aws_requests": last - first,
            "aws_requests_per_s": round((last - first) / window, 1),
            "locust": stats,
        },
        recording,
    )


def _wait_for_spawning(log: Path, master: subprocess.Popen[bytes]) -> float:
    """When the master started its users (both workers connected)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "Ramping to" in text or "All users spawned" in text:
            return time.monotonic()
        if master.poll() is not None:
            raise SystemExit(f"locust master exited: {text[-2000:]}")
        time.sleep(0.2)
    raise SystemExit("locust master never started its users")


def _locust_stats(path: Path) -> dict[str, Any]:
    with path.open() as stats:
        rows = {(row["Type"], row["Name"]): row for row in csv.DictReader(stats)}
    total = rows.pop(("", "Aggregated"), None)
    failures = {
        f"{kind} {name}": int(row["Failure Count"])
        for (kind, name), row in rows.items()
        if row["Failure Count"] != "0"
    }
    verified = rows.get(("CHECK", "verify delivery"), {}).get("Request Count", "0")
    return {
        "requests": int(total["Request Count"]) if total else 0,
        "deliveries_verified": int(verified),
        "failures": failures,
    }


def moto_alone(
    work: Path, recording: Path, window: tuple[int, int], clients: int
) -> dict[str, Any]:
    """Replay the recording on a fresh moto server; the window's rate."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(MOTO_ENABLE_RECORDING="True", MOTO_RECORDER_FILEPATH=str(work / "replay.jsonl"))
    with (work / "moto.log").open("wb") as log:
        moto = subprocess.Popen(
            [sys.executable, "-m", "sealbox_tools.moto_server", "-H", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        return _replay(f"http://127.0.0.1:{port}", recording, window, clients)
    finally:
        _stop([moto])


def _replay(origin: str, recording: Path, window: tuple[int, int], clients: int) -> dict[str, Any]:
    """Replay ``recording`` on ``origin``: lines before the window untimed, then the
    window's with ``clients`` connections, each taking the next request in order."""
    import requests

    session = requests.Session()
    deadline = time.monotonic() + 60
    while True:
        try:
            session.get(f"{origin}/moto-api/", timeout=2)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    first, last = window
    with recording.open("rb") as recorded:
        lines = iter(recorded)
        for _ in range(first):
            _send(session, origin, json.loads(next(lines)))
        todo = [json.loads(next(lines)) for _ in range(last - first)]
    taken = iter(todo)
    lock = threading.Lock()
    statuses: list[int] = []

    def client() -> None:
        own = requests.Session()
        while True:
            with lock:
                entry = next(taken, None)
            if entry is None:
                return
            statuses.append(_send(own, origin, entry))

    started = time.perf_counter()
    pool = [threading.Thread(target=client) for _ in range(clients)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "aws_requests": len(statuses),
        "replay_s": round(elapsed, 2),
        "aws_requests_per_s": round(len(statuses) / elapsed, 1),
        "client_errors": sum(400 <= status < 500 for status in statuses),
        "server_errors": sum(status >= 500 for status in statuses),
    }


def _send(session: Any, origin: str, entry: dict[str, Any]) -> int:
    body: bytes = (
        base64.b64decode(entry["body"])
        if entry.get("body_encoded")
        else (entry.get("body") or "").encode()
    )
    headers = {
        name: value
        for name, value in entry["headers"].items()
        if name.lower() not in _DROPPED_HEADERS
    }
    if "ReceiveMessage" in headers.get("X-Amz-Target", ""):
        body = _WAIT.sub(b'"WaitTimeSeconds": 0', body)
    url = urlsplit(entry["url"])
    target = f"{origin}{url.path}" + (f"?{url.query}" if url.query else "")
    reply = session.request(entry["method"], target, headers=headers, data=body, timeout=60)
    return int(reply.status_code)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.locust_rate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--users", type=int, default=40, help="phones, over 2 workers")
    parser.add_argument("--run-time", type=int, default=60, help="seconds of Locust load")
    parser.add_argument("--warmup", type=int, default=20, help="seconds before the window")
    parser.add_argument(
        "--replay-clients",
        default="1,4",
        help="connections replaying to moto alone, one replay each (the fastest is the baseline)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.run_time - 2 <= args.warmup:
        parser.error("--run-time must exceed --warmup by more than 2 s")
    with tempfile.TemporaryDirectory(prefix="bench-locust-") as scratch:
        work = Path(scratch)
        stack, recording = stack_under_locust(
            work, users=args.users, run_time=args.run_time, warmup=args.warmup
        )
        window = (stack["window"][0], stack["window"][1])
        replays = [
            moto_alone(work, recording, window, int(clients))
            for clients in args.replay_clients.split(",")
        ]
    bare = max(replays, key=lambda replay: float(replay["aws_requests_per_s"]))
    value = stack["aws_requests_per_s"] / bare["aws_requests_per_s"]
    out: dict[str, Any] = {
        "stack": stack,
        "moto_alone": bare,
        "replays": replays,
        "ratios": [
            ratio(
                "locust_vs_bare_moto",
                "Locust, 2 workers, against the local stack: AWS requests/s vs moto alone",
                value,
                ours=f"{stack['aws_requests_per_s']:.0f} req/s",
                baseline=f"moto alone {bare['aws_requests_per_s']:.0f} req/s",
                goal=GOAL,
            )
        ],
    }
    record("locust_rate", out)
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
        return
    _print(out, sys.stdout)


def _print(out: dict[str, Any], stream: TextIO) -> None:
    stack = out["stack"]
    print(
        f"Locust, {stack['users']} phones on 2 workers, {stack['run_time_s']} s against "
        f"sealbox local: {stack['locust']['requests']} Locust requests, "
        f"{stack['locust']['deliveries_verified']} deliveries verified, 0 failures",
        file=stream,
    )
    print(
        f"  window of {stack['window_s']:.1f} s: {stack['aws_requests']} AWS requests = "
        f"{stack['aws_requests_per_s']:.0f}/s at moto",
        file=stream,
    )
    for replay in out["replays"]:
        print(
            f"  moto alone, the same {replay['aws_requests']} requests on "
            f"{replay['clients']} connection(s): {replay['replay_s']:.1f} s = "
            f"{replay['aws_requests_per_s']:.0f}/s ({replay['client_errors']} 4xx, "
            f"{replay['server_errors']} 5xx)",
            file=stream,
        )
    entry = out["ratios"][0]
    print(f"  ratio {entry['value']:.3f} (goal {GOAL}: {'met' if entry['met'] else 'NOT met'})")


if __name__ == "__main__":
    main()
