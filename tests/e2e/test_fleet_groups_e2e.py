"""The fleet's ``groups`` scenario over HTTP against ``sealbox local`` (small):
group messages and files, racing admins, removals, an offline member, audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sealbox_tools.local_stack import free_port
from tests.e2e.conftest import start_local, stop_local
from tests.e2e.test_fleet_e2e import sealbox


def test_the_groups_scenario_over_http(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    stack = start_local(free_port(), extra_args=["--log-file", str(log)])
    try:
        report_path = tmp_path / "run.json"
        fleet = sealbox(
            "fleet", "--devices", "9", "--url", stack.url, "--scenario", "groups",
            "--mix", "groups=1", "--mix", "group_max=6", "--mix", "group_rounds=2",
            "--seed", "13", "--stage", "local", "--aws-endpoint", stack.aws_endpoint,
            "--server-log", str(log), "--report", str(report_path),
        )  # fmt: skip
        assert fleet.returncode == 0, fleet.stdout + fleet.stderr
        report: dict[str, Any] = json.loads(report_path.read_text())
        outcome, events, groups = report["outcome"], report["metrics"]["events"], report["groups"]
        assert report["run"]["mode"] == "http"
        assert outcome["mismatches"] == outcome["undelivered"] == outcome["failed_steps"] == 0
        assert outcome["deliveries_verified"] == outcome["deliveries_expected"] > 0
        assert groups["largest_group"] >= 6
        assert groups["lost_epochs"] == 0
        assert groups["rebased"] == events["group_changes_raced"] > 0
        assert events["removed_member_refused"] > 0
        assert events.get("removed_member_readable", 0) == 0
        assert report["audit"]["passed"], report["audit"]["summary"]
    finally:
        stop_local(stack)
