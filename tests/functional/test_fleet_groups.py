"""The fleet's ``groups`` scenario in process on moto: every group delivery
judged by the ledger, racing admins with no lost epoch, removed members
refused everything sent after their removal, a member offline for several
epochs catching up, history shared with an added member (exactly the shared
epochs readable), and a privacy audit (epoch keys included) at 0 hits."""

from __future__ import annotations

from pathlib import Path

import pytest

from client_sim.group import Group
from client_sim.groups import GroupInfo
from sealbox_tools.fleet.backends import InProcessBackend
from sealbox_tools.fleet.runner import FleetConfig, FleetResult, run_fleet
from sealbox_tools.pytest_plugin.backend import without_pytest_log_capture


def run(tmp_path: Path, devices: int, overrides: dict[str, str]) -> FleetResult:
    config = FleetConfig(
        devices=devices,
        scenario="groups",
        overrides=overrides,
        seed=1313,
        concurrency=4,
        retry_backoff=0.0,
    )
    with without_pytest_log_capture(), InProcessBackend() as backend:
        return run_fleet(config, backend, work_dir=tmp_path / "phones")


def test_groups_live_through_races_removals_and_an_offline_member(tmp_path: Path) -> None:
    result = run(tmp_path, 30, {"groups": "3", "group_max": "9"})
    report = result.report
    outcome, events, groups = report["outcome"], report["metrics"]["events"], report["groups"]
    assert report["crashes"] == []
    assert result.passed, report["verdict"]
    assert outcome["mismatches"] == outcome["failed_steps"] == outcome["undelivered"] == 0
    assert outcome["deliveries_verified"] == outcome["deliveries_expected"] > 100
    assert events["group_delivered"] == outcome["deliveries_verified"]
    assert events["group_sent_message"] > 0
    assert events["group_sent_file"] > 0
    # Three groups, the first of 9 members; 3 rounds of an add and a removal each.
    assert groups["created"] == 3
    assert groups["largest_group"] >= 9
    # Two admins raced whenever a round had both an add and a removal: each
    # race re-based exactly once, and no epoch was lost (the head moved by
    # exactly the number of changes).
    raced, single = events["group_changes_raced"], events.get("group_changes", 0)
    assert raced >= 3
    assert groups["rebased"] == events["group_rebased"] == raced
    assert groups["lost_epochs"] == 0
    assert groups["epochs"] == 3 + 2 * raced + single
    # Removed members tried everything sent after their removal: all refused.
    assert groups["removed_members"] == raced
    assert events["removed_member_refused"] > raced
    assert events.get("removed_member_readable", 0) == 0
    # Members added mid-run can't read what was sent before they joined...
    assert events["history_refused"] > 0
    assert events.get("history_readable", 0) == 0
    # ... unless an admin shares it: in each group the last joiner read
    # exactly what was sent in the shared epochs (the ledger expected it as a
    # recipient of those, and of nothing before the first shared epoch, which
    # it tried and was refused: history_readable above), and a share for a
    # removed member is refused.
    assert events["history_shared"] == 3
    assert events["history_delivered"] == groups["history_shared_reads"] > 0
    assert events["history_share_to_removed_refused"] == groups["removed_members"]
    assert "history_share_skipped" not in events
    # One member per group slept through every change and caught up.
    assert events["group_member_offline"] == 3
    assert groups["missed_epochs_caught_up"] == groups["epochs"] - 3
    audit = report["audit"]
    assert audit["passed"], audit["summary"]
    assert not audit["hits"]
    assert any("epoch" in label and "key" in label for label, _ in result.secrets)


def test_a_removal_that_does_nothing_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SDK whose removal silently keeps the member: the removed member reads
    what was sent after, and the scenario fails on it (and on the epochs)."""

    def keep_everyone(self: Group, identities: object) -> GroupInfo:
        return self.info()

    monkeypatch.setattr(Group, "remove_members", keep_everyone)
    result = run(tmp_path, 12, {"groups": "1", "group_max": "6", "group_rounds": "2"})
    events = result.report["metrics"]["events"]
    assert not result.passed
    assert events["removed_member_readable"] > 0
    assert result.report["metrics"]["errors"]["removed_member_attempt:readable"] > 0
    assert result.report["groups"]["lost_epochs"] > 0
