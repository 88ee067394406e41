"""The fleet's ``hostile`` scenario (issue 11): attackers holding stolen access
tokens (then also the password) try to take identities over, in process on moto."""

from __future__ import annotations

from sealbox_tools.fleet.plan import SCENARIOS, make_plan
from tests.functional.test_fleet import run


def test_the_hostile_scenario_plans_takeovers_and_witnesses() -> None:
    plan = make_plan(60, SCENARIOS["hostile"], seed=20240601, name="hostile")
    counts = plan.action_counts()
    assert counts["takeover"] >= 5
    assert counts["check_reset"] == counts["know_card"] >= counts["takeover"]
    victims = {d.index for d in plan.devices if "takeover" in d.actions()}
    for device in plan.devices:
        for steps in device.steps.values():
            for step in steps:
                assert not set(step.to) & victims, "nobody is planned to send to a victim"


def test_stolen_tokens_never_make_a_contact_encrypt_to_the_attacker(tmp_path) -> None:
    result = run(tmp_path, 40, "hostile")
    report = result.report
    outcome, events = report["outcome"], report["metrics"]["events"]
    planned = report["run"]["planned_steps"]
    assert report["crashes"] == []
    assert outcome["failed_steps"] == 0, report["metrics"]["errors"]
    assert outcome["mismatches"] == 0, events
    assert outcome["undelivered"] == 0, outcome["undelivered_sample"]
    # With a stolen token alone, every forged rotation was refused by the
    # directory and every revocation by the step-up check ...
    assert events["takeover_rotation_refused"] == planned["takeover"] > 0
    assert events["takeover_revoke_refused"] == planned["takeover"]
    # ... and a thief who had the password too managed a reset, which every
    # contact that knew the old card was told of: its lookup and its
    # encryption both raised IdentityChanged naming the thief's card, so 0
    # contacts encrypted to attacker keys.
    assert events["takeover_reset"] == planned["takeover"]
    assert events["card_known"] == planned["know_card"]
    assert events["reset_surfaced"] == planned["check_reset"] > 0
    assert events["rotated"] == planned["rotate"] > 0  # honest rotations stayed silent
    assert report["audit"]["passed"], report["audit"]["summary"]
