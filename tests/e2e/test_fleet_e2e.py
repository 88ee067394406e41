"""Fleets over HTTP against ``sealbox local``, with the privacy audit, and
``sealbox demo`` (what ``make demo`` runs) end to end."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from sealbox_tools.local_stack import free_port, stage_environment
from tests.conftest import ROOT
from tests.e2e.conftest import SEALBOX, start_local, stop_local

LOCAL = stage_environment("local")


def sealbox(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SEALBOX, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_a_fleet_over_http_passes_the_audit_and_the_audit_catches_a_leak(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    stack = start_local(free_port(), extra_args=["--log-file", str(log)])
    try:
        report_path = tmp_path / "run.json"
        fleet = sealbox(
            "fleet", "--devices", "12", "--url", stack.url, "--scenario", "full",
            "--seed", "5", "--stage", "local", "--aws-endpoint", stack.aws_endpoint,
            "--server-log", str(log), "--report", str(report_path),
            "--chart", str(tmp_path / "run.html"),
        )  # fmt: skip
        assert fleet.returncode == 0, fleet.stdout + fleet.stderr
        assert "verdict: PASS" in fleet.stdout.splitlines()
        report: dict[str, Any] = json.loads(report_path.read_text())
        outcome, events = report["outcome"], report["metrics"]["events"]
        assert report["run"]["mode"] == "http"
        assert outcome["mismatches"] == outcome["undelivered"] == outcome["failed_steps"] == 0
        assert outcome["deliveries_verified"] == outcome["deliveries_expected"] > 0
        for event in ("new_phone", "reinstalled", "rotated", "shared", "flushed", "retry"):
            assert events[event] > 0, event
        # Over HTTP the server's clock is real: no token can expire in the run.
        assert events["clock_freeze_skipped"] > 0
        audit = report["audit"]
        assert audit["passed"], audit["summary"]
        assert audit["scanned"]["log"] == 1
        assert audit["blobs_checked"] >= outcome["sends_completed"]
        assert (tmp_path / "run.html").read_text().startswith("<!doctype html>")
        needles = tmp_path / "run.needles.json"
        assert needles.stat().st_mode & 0o777 == 0o600

        # The same audit, standalone, against the running stack.
        args = ["audit", "--stage", "local", "--aws-endpoint", stack.aws_endpoint]
        args += ["--needles", str(needles), "--log", str(log)]
        clean = sealbox(*args)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert "verdict: PASS (0 hits)" in clean.stdout

        # A careless code path stores a message's plaintext: caught.
        secret = next(
            n for n in json.loads(needles.read_text())["needles"] if "canary" in n["label"]
        )
        from chalicelib.wire.b64 import b64url_decode

        stack.client("dynamodb").put_item(
            TableName=LOCAL["SEALBOX_BACKUPS_TABLE"],
            Item={
                "identity": {"S": "careless"},
                "name": {"S": "leak"},
                "note": {"S": b64url_decode(secret["secret"]).decode()},
            },
        )
        leaked = sealbox(*args)
        assert leaked.returncode == 1
        assert f"HIT  {secret['label']} in dynamodb-item {LOCAL['SEALBOX_BACKUPS_TABLE']}" in (
            leaked.stdout
        )
        assert leaked.stdout.rstrip().endswith("verdict: FAIL")
    finally:
        stop_local(stack)


def test_sealbox_demo_runs_end_to_end(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    demo = sealbox("demo", "--devices", "8", "--reports", str(reports))
    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = demo.stdout
    assert "ok  verify token against JWKS" in out
    assert "2. A fleet of 8 phones over HTTP" in out
    assert "verdict: PASS (0 hits)" in out
    assert out.rstrip().splitlines()[-1].startswith("Demo passed in ")
    assert out.rstrip().endswith("the stack is stopped.")
    for name in ("demo-report.json", "demo-chart.html", "demo-report.needles.json"):
        assert (reports / name).is_file(), name
    report = json.loads((reports / "demo-report.json").read_text())
    assert report["verdict"]["passed"]
    # The phones pinned both keys: they hardened passwords and checked the log.
    routes = report["metrics"]["routes"]
    assert routes["POST /v1/oprf"]["count"] > 0
    assert routes["GET /v1/kt/checkpoint"]["count"] > 0
    # The walk's own password is among the audit's needles.
    labels = [
        n["label"]
        for n in json.loads((reports / "demo-report.needles.json").read_text())["needles"]
    ]
    assert any(label.startswith("demo-") and label.endswith("password") for label in labels)
    # The API's log was written and audited.
    assert '"event":"request"' in (reports / "demo-server.log").read_text()
    assert report["audit"]["scanned"]["log"] == 1
