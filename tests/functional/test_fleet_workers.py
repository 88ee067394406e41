"""``--workers 2`` in process: two processes, each its own moto, one merged report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

SEALBOX = str(Path(sys.executable).with_name("sealbox"))


@pytest.mark.slow
def test_a_fleet_on_two_worker_processes_merges_into_one_passing_report(tmp_path: Path) -> None:
    report_path = tmp_path / "run.json"
    done = subprocess.run(
        [
            SEALBOX,
            "fleet",
            "--devices",
            "10",
            "--workers",
            "2",
            "--mix",
            "rounds=1",
            "--report",
            str(report_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(report_path.read_text())
    run = report["run"]
    assert run["workers"] == 2
    assert [shard["devices"] for shard in run["shards"]] == [5, 5]
    assert len({shard["plan_fingerprint"] for shard in run["shards"]}) == 2
    assert report["verdict"] == {"passed": True, "reasons": []}
    outcome = report["outcome"]
    assert outcome["deliveries_verified"] == outcome["deliveries_expected"] > 0
    # Each worker audited its own backend, and both passed.
    assert [w["passed"] for w in report["audit"]["workers"]] == [True, True]
    assert report["metrics"]["requests"] == sum(
        row["count"] for row in report["metrics"]["routes"].values()
    )
    assert "2 worker processes" in done.stdout
    # The workers' phones pin the OPRF root and the log key, as one process's do.
    routes = report["metrics"]["routes"]
    assert routes["POST /v1/oprf"]["count"] > 0
    assert routes["GET /v1/kt/checkpoint"]["count"] > 0
