"""Fleet reports: the summary leads with the deliveries and ends with the verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sealbox_tools.audit import AuditReport
from sealbox_tools.fleet.metrics import Metrics
from sealbox_tools.fleet.report import summary_text, write_html, write_json


def a_report(*, passed: bool) -> tuple[dict[str, Any], dict[str, list[float]]]:
    metrics = Metrics()
    for ms in (3, 4, 5, 40):
        metrics.request("GET /v1/blobs/{id}", 200, ms / 1000)
    metrics.request("POST /v1/blobs", None, 0.2)
    metrics.count("delivered", 7)
    metrics.error("no_answer")
    audit = AuditReport(scanned={"log": 1}, scanned_bytes={"log": 10}, needles=3)
    if not passed:
        audit.hits.append(("dynamodb-item", "sealbox-test-users", "canary of r.1.1 (message)"))
    report = {
        "run": {"devices": 3, "scenario": "full", "seed": 9, "mode": "in-process"},
        "metrics": metrics.snapshot(),
        "outcome": {
            "sends_planned": 5,
            "sends_completed": 5,
            "deliveries_expected": 7,
            "deliveries_verified": 7 if passed else 6,
            "undelivered": 0 if passed else 1,
            "mismatches": 0,
            "failed_steps": 0,
        },
        "cpu": {
            "kdf_s": 0.1,
            "kdf_share": 0.01,
            "crypto_s": 1.0,
            "crypto_share": 0.1,
            "server_s": 0.0,
            "server_share": 0.0,
            "other_s": 8.9,
            "other_share": 0.89,
            "server_processes_s": 12.5,
        },
        "crashes": [] if passed else ["read: KeyError at runner.py:400"],
        "audit": audit.to_json(),
        "verdict": {
            "passed": passed,
            "reasons": [] if passed else ["1 deliveries never arrived", "audit"],
        },
    }
    return report, metrics.latency_samples()


def test_a_passing_summary() -> None:
    report, _ = a_report(passed=True)
    text = summary_text(report)
    lines = text.splitlines()
    assert lines[0] == "fleet: 3 devices, scenario 'full', seed 9, mode in-process, " + (
        f"{report['metrics']['elapsed_s']:.1f} s wall"
    )
    assert lines[1].startswith("deliveries: 7/7 verified (content hash and signer), 0 mismatched")
    assert "events: delivered 7" in text
    assert "no_answer 1" in text
    assert "GET /v1/blobs/{id}" in text
    assert "POST /v1/blobs" in text
    # The server's share is left out when nothing ran in process, and the
    # stack's own processes are named.
    assert "process CPU: kdf 0.1 s (1%), crypto 1.0 s (10%), other 8.9 s (89%)" in text
    assert "the server's own processes 12.5 s" in text
    assert "privacy audit: 3 secrets searched" in text
    assert lines[-1] == "verdict: PASS"


def test_a_failing_summary_says_why() -> None:
    report, _ = a_report(passed=False)
    text = summary_text(report)
    assert "deliveries: 6/7 verified" in text
    assert "1 never arrived" in text
    assert "CRASH read: KeyError at runner.py:400" in text
    assert "HIT  canary of r.1.1 (message) in dynamodb-item sealbox-test-users" in text
    assert text.splitlines()[-1] == "verdict: FAIL (1 deliveries never arrived; audit)"


def test_json_and_chart_files(tmp_path: Path) -> None:
    report, samples = a_report(passed=True)
    samples["GET <script>"] = [0.001]
    write_json(report, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["verdict"]["passed"] is True
    write_html(report, samples, tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert page.count("<svg") == 2  # latencies and throughput
    assert "GET &lt;script&gt;" in page
    assert "<script" not in page
    assert "deliveries: 7/7 verified" in page
