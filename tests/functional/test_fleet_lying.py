"""The fleet's ``lying`` scenario in process: a compromised backend substitutes
cards, hides a rotation and forks the log; the devices must catch every lie
and raise no alarm where there was none (issue 12's detection goals)."""

from __future__ import annotations

from typing import Any

import pytest

from sealbox_tools.fleet.lying import ATTACKS, phones_needed
from sealbox_tools.fleet.plan import SCENARIOS, scenario
from tests.functional.test_fleet import run


def _check(report: dict[str, Any], lies: int) -> None:
    lying, events = report["lying"], report["metrics"]["events"]
    assert report["crashes"] == []
    assert report["outcome"]["failed_steps"] == 0, report["metrics"]["errors"]
    assert lying["planned"]["fork"] == 2 * max(2, lies)
    for attack in ATTACKS:
        planned = lying["planned"][attack]
        assert planned >= lies > 0
        assert lying["caught"][attack] == planned == events[f"lie_{attack}_caught"], attack
    assert lying["detection_rate"] == 1.0
    assert lying["false_alarms"] == 0
    assert lying["controls"] > 0


def test_every_lie_of_the_directory_is_caught(tmp_path) -> None:
    lies = SCENARIOS["lying"].lies
    result = run(tmp_path, phones_needed(lies) + 1, "lying")
    _check(result.report, lies)
    assert result.report["audit"]["passed"], result.report["audit"]["summary"]


def test_a_fleet_without_the_log_key_reports_the_lies_as_not_run(tmp_path) -> None:
    result = run(tmp_path, phones_needed(1), "lying", overrides={"lies": "1"}, kt=False)
    assert result.report["lying"]["not_run"] == "the devices pin no log key"
    assert not result.passed


def test_the_mix_bounds_the_lies() -> None:
    with pytest.raises(ValueError, match="lies"):
        scenario("lying", {"lies": "-1"})
