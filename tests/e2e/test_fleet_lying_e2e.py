"""The fleet's ``lying`` scenario over HTTP against ``sealbox local``: the
compromised backend stands between the phones and the API, holding the stage's
tables and log key (reached through --aws-endpoint), and every lie is caught."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sealbox_tools.fleet.lying import phones_needed
from sealbox_tools.local_stack import free_port
from tests.e2e.conftest import start_local, stop_local
from tests.e2e.test_fleet_e2e import sealbox
from tests.functional.test_fleet_lying import _check


def test_the_lying_scenario_over_http(tmp_path: Path) -> None:
    config = tmp_path / "sdk-config.json"
    stack = start_local(free_port(), extra_args=["--sdk-config", str(config)])
    try:
        report_path = tmp_path / "run.json"
        fleet = sealbox(
            "fleet", "--devices", str(phones_needed(1)), "--url", stack.url,
            "--scenario", "lying", "--mix", "lies=1", "--config", str(config),
            "--stage", "local", "--aws-endpoint", stack.aws_endpoint,
            "--report", str(report_path),
        )  # fmt: skip
        assert fleet.returncode == 0, fleet.stdout + fleet.stderr
        report: dict[str, Any] = json.loads(report_path.read_text())
        assert report["run"]["mode"] == "http"
        _check(report, 1)
    finally:
        stop_local(stack)
