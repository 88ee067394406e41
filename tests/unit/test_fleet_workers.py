"""Sharding a fleet over worker processes, and merging what they report."""

from __future__ import annotations

import pytest

from sealbox_tools.fleet.metrics import Metrics
from sealbox_tools.fleet.runner import FleetConfig
from sealbox_tools.fleet.workers import (
    _merged_cpu,
    _merged_outcome,
    merged_section,
    shard_configs,
)


def test_shards_split_the_devices_and_are_reproducible() -> None:
    config = FleetConfig(devices=11, seed=7, tag="run1")
    shards = shard_configs(config, 3)
    assert [s.devices for s in shards] == [4, 4, 3]
    assert [s.seed for s in shards] == [7000, 7001, 7002]
    assert [s.tag for s in shards] == ["run1w0", "run1w1", "run1w2"]
    # Same seed and workers: the same plans (their fingerprints say so).
    again = shard_configs(config, 3)
    assert [s.plan().fingerprint() for s in shards] == [s.plan().fingerprint() for s in again]
    assert len({s.plan().fingerprint() for s in shards}) == 3


@pytest.mark.parametrize(("devices", "workers"), [(3, 2), (10, 0)])
def test_too_few_devices_or_workers_are_refused(devices: int, workers: int) -> None:
    with pytest.raises(ValueError, match=r"workers|shards"):
        shard_configs(FleetConfig(devices=devices), workers)


def test_merged_metrics_recompute_percentiles_from_every_sample() -> None:
    a, b = Metrics(), Metrics()
    for ms in (1, 2, 3):
        a.request("GET /v1/me", 200, ms / 1000)
    for ms in (10, 20, 30, 40):
        b.request("GET /v1/me", 200 if ms < 40 else 503, ms / 1000)
    a.count("delivered", 2)
    b.count("delivered", 3)
    b.error("http_503")
    b.observe("revoked_card_still_served_s", 4.0)
    merged = Metrics.merged([a.parts(), b.parts()], elapsed=2.0).snapshot()
    route = merged["routes"]["GET /v1/me"]
    assert route["count"] == 7
    assert route["p50_ms"] == 10.0  # nearest rank over all seven samples
    assert route["max_ms"] == 40.0
    assert route["statuses"] == {"200": 6, "503": 1}
    assert merged["events"] == {"delivered": 5}
    assert merged["errors"] == {"http_503": 1}
    assert merged["observed"]["revoked_card_still_served_s"]["max"] == 4.0
    assert merged["requests"] == 7
    assert 1.9 <= merged["elapsed_s"] <= 2.5


def test_merged_outcome_and_cpu_add_up() -> None:
    def report(n: int) -> dict:
        return {
            "outcome": {
                "sends_planned": n,
                "sends_completed": n,
                "deliveries_expected": 2 * n,
                "deliveries_verified": 2 * n - 1,
                "undelivered": 1,
                "undelivered_sample": [f"m{n} -> x"],
                "mismatches": 0,
                "failed_steps": 0,
                "retries": n,
            }
        }

    outcome = _merged_outcome([report(3), report(5)])
    assert outcome["sends_planned"] == 8
    assert outcome["deliveries_verified"] == 14
    assert outcome["undelivered"] == 2
    assert outcome["undelivered_sample"] == ["m3 -> x", "m5 -> x"]
    cpu = _merged_cpu(
        [
            {"kdf_s": 1.0, "server_s": 3.0, "other_s": 0.0, "kdf_share": 0.25},
            {"kdf_s": 1.0, "server_s": 1.0, "other_s": 2.0, "kdf_share": 0.25},
        ]
    )
    assert cpu["server_s"] == 4.0
    assert cpu["server_share"] == 0.5
    assert cpu["kdf_share"] == 0.25


def test_scenario_sections_are_merged_not_dropped() -> None:
    groups = merged_section(
        [
            {"groups": 2, "largest_group": 8, "epochs": 7, "lost_epochs": 0, "wall_s": 3.5},
            {"groups": 1, "largest_group": 30, "epochs": 4, "lost_epochs": 1, "wall_s": 9.0},
        ]
    )
    assert groups == {
        "groups": 3, "largest_group": 30, "epochs": 11, "lost_epochs": 1, "wall_s": 9.0
    }  # fmt: skip
    lying = merged_section(
        [
            {"lies_per_attack": 2, "planned": {"fork": 4, "substitute": 2},
             "caught": {"fork": 4, "substitute": 2}, "detection_rate": 1.0, "false_alarms": 0},
            {"lies_per_attack": 2, "planned": {"fork": 4, "substitute": 2},
             "caught": {"fork": 2, "substitute": 2}, "detection_rate": 0.6667, "false_alarms": 1},
        ]
    )  # fmt: skip
    assert lying["planned"] == {"fork": 8, "substitute": 4}
    assert lying["caught"] == {"fork": 6, "substitute": 4}
    assert lying["detection_rate"] == 0.8333  # recomputed, not added up
    assert lying["false_alarms"] == 1
    assert lying["lies_per_attack"] == 2
    assert merged_section([{"not_run": "the devices pin no log key"}, {}]) == {
        "not_run": "the devices pin no log key"
    }
