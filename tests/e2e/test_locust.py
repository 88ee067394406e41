"""Locust master + two worker processes against ``sealbox local``.

Each worker runs simulated phones (sealbox_tools/locustfile.py) through the
real SDK; every delivery is verified by the recipient from the seed alone.
The run is short (15 s of load) and must end with deliveries verified on
both workers, every request in Locust's CSV statistics and no failure.
"""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import pytest

from bench.locust_rate import spawn_locust
from sealbox_tools.local_stack import free_port
from tests.e2e.conftest import RunningStack


@pytest.mark.slow
def test_locust_master_and_two_workers_verify_every_delivery(
    local_stack: RunningStack, tmp_path: Path
) -> None:
    port = free_port()
    origin = ["--sealbox-storage-origin", local_stack.aws_endpoint, "--sealbox-seed", "e2e"]
    master = spawn_locust(
        [
            "--headless",
            "--master",
            "--master-bind-port",
            str(port),
            "--expect-workers",
            "2",
            "--users",
            "8",
            "--spawn-rate",
            "8",
            "--run-time",
            "15s",
            "--host",
            local_stack.url,
            "--csv",
            str(tmp_path / "run"),
            "--only-summary",
            *origin,
        ],
        tmp_path / "master.log",
    )
    workers = [
        spawn_locust(["--worker", "--master-port", str(port), *origin], tmp_path / f"worker{n}.log")
        for n in range(2)
    ]
    try:
        code = master.wait(timeout=120)
        for worker in workers:
            worker.wait(timeout=30)
    finally:
        for proc in (master, *workers):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    log = (tmp_path / "master.log").read_text()
    assert code == 0, log[-3000:]
    assert "(index 1)" in log  # the second worker took part
    with (tmp_path / "run_stats.csv").open() as stats:
        rows = {(row["Type"], row["Name"]): row for row in csv.DictReader(stats)}
    failed = {
        name: row["Failure Count"] for name, row in rows.items() if row["Failure Count"] != "0"
    }
    assert failed == {}
    assert int(rows[("CHECK", "verify delivery")]["Request Count"]) > 0
    assert int(rows[("SDK", "sign up")]["Request Count"]) == 8
    for route in [("POST", "/v1/users"), ("POST", "/v1/blobs"), ("S3", "GET object")]:
        assert int(rows[route]["Request Count"]) > 0, route
