"""The scenario planner: reproducible plans over a realistic contact graph."""

from __future__ import annotations

import random
import statistics
from collections import deque

import pytest

from sealbox_tools.fleet.plan import (
    ACTIONS,
    SCENARIOS,
    ScenarioMix,
    average_clustering,
    contact_graph,
    make_plan,
    scenario,
)


def connected(adjacency) -> bool:
    seen, todo = {0}, deque([0])
    while todo:
        for other in adjacency[todo.popleft()]:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return len(seen) == len(adjacency)


# --- reproducibility ------------------------------------------------------------------


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    full = SCENARIOS["full"]
    first = make_plan(300, full, seed=42, name="full")
    again = make_plan(300, full, seed=42, name="full")
    assert first.fingerprint() == again.fingerprint()
    assert first.to_json() == again.to_json()
    assert make_plan(300, full, seed=43, name="full").fingerprint() != first.fingerprint()
    # The mix is part of the plan: changing one knob changes the fingerprint.
    tweaked = full.with_overrides({"flaky": "0.31"})
    assert make_plan(300, tweaked, seed=42, name="full").fingerprint() != first.fingerprint()


def test_a_plan_does_not_depend_on_global_randomness() -> None:
    random.seed(1)
    first = make_plan(50, SCENARIOS["full"], seed=7).fingerprint()
    random.seed(2)
    random.random()
    assert make_plan(50, SCENARIOS["full"], seed=7).fingerprint() == first


# --- the contact graph ------------------------------------------------------------------


def test_the_contact_graph_is_connected_symmetric_and_reproducible() -> None:
    graph = contact_graph(500, 3, 0.5, random.Random(1))
    assert graph == contact_graph(500, 3, 0.5, random.Random(1))
    assert connected(graph)
    for person, contacts in enumerate(graph):
        assert person not in contacts
        assert len(contacts) >= 3
        assert all(person in graph[other] for other in contacts)


def test_the_contact_graph_has_hubs_and_friends_of_friends() -> None:
    n, m = 2000, 3
    graph = contact_graph(n, m, 0.5, random.Random(5))
    degrees = sorted(len(c) for c in graph)
    # Preferential attachment: a heavy tail, not the narrow band of uniform
    # random contacts (where the largest degree is about twice the median).
    assert degrees[-1] >= 8 * statistics.median(degrees)
    # Triad formation: far more closed triangles than a random graph of the
    # same density (whose clustering is about its edge density).
    density = sum(degrees) / (n * (n - 1))
    assert average_clustering(graph) > 20 * density
    # Without triads, clustering collapses: the knob does what it says.
    assert average_clustering(contact_graph(n, m, 0.0, random.Random(5))) < 0.5 * (
        average_clustering(graph)
    )


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4])
def test_tiny_graphs(n: int) -> None:
    graph = contact_graph(n, 3, 0.5, random.Random(0))
    assert len(graph) == n
    for person, contacts in enumerate(graph):
        assert contacts == frozenset(range(n)) - {person}


# --- what the plan contains ------------------------------------------------------------


def test_the_full_scenario_plans_every_behaviour() -> None:
    plan = make_plan(200, SCENARIOS["full"], seed=3, name="full")
    counts = plan.action_counts()
    # Every behaviour but the hostile scenario's attacks (revocation
    # witnesses know their leaver's card first).
    assert set(counts) == ACTIONS - {"takeover", "check_reset"}
    assert counts["know_card"] == counts["check_revoked"] > 0
    assert counts["sign_up"] == counts["backup"] == 200
    assert sum(1 for d in plan.devices if d.drop_rate > 0) == 60
    assert sum(1 for d in plan.devices if d.skew_s != 0) >= 50
    assert all(abs(d.skew_s) <= SCENARIOS["full"].max_skew_s for d in plan.devices)


def test_the_standard_scenario_has_no_adverse_conditions() -> None:
    plan = make_plan(200, SCENARIOS["standard"], seed=3, name="standard")
    counts = plan.action_counts()
    for adverse in ("go_offline", "freeze_clock", "share", "change_password"):
        assert adverse not in counts
    assert all(d.drop_rate == 0 and d.skew_s == 0 for d in plan.devices)
    for core in ("lose_phone", "reinstall", "rotate", "unregister", "send_file"):
        assert counts[core] > 0


def test_plan_invariants_hold() -> None:
    plan = make_plan(400, SCENARIOS["full"], seed=11, name="full")
    phases = plan.phases
    leavers = {d.index for d in plan.devices if "unregister" in d.actions()}
    for device in plan.devices:
        timeline = [
            (phases[i], step) for i, steps in sorted(device.steps.items()) for step in steps
        ]
        actions = [step.action for _, step in timeline]
        assert actions[:2] == ["sign_up", "backup"]
        offline = False
        for phase, step in timeline:
            if step.to:
                assert set(step.to) <= set(device.contacts), "sends go to contacts only"
                assert len(step.to) <= plan.mix.max_recipients
            if step.action == "go_offline":
                offline = True
            elif step.action == "come_online":
                offline = False
            elif offline:
                # Nothing needing the network is planned while offline, but
                # reads and sends (queued) are.
                assert step.action in {"read", "send_message", "send_file"}, step
            if step.action == "check_revoked":
                assert step.target in leavers
                assert step.target in device.contacts
                assert phase.name == "check"
            if step.action == "unregister":
                assert phase.name == "leave"
        assert not offline, "every device comes back online"
        assert actions.count("freeze_clock") == actions.count("thaw_clock")
        if "freeze_clock" in actions:
            assert actions.index("freeze_clock") < actions.index("thaw_clock")
            # The frozen phone reads (and meets its expired token) before it thaws.
            assert "read" in actions[actions.index("freeze_clock") : actions.index("thaw_clock")]
        if "change_password" in actions:
            assert actions[actions.index("change_password") - 1] == "lose_phone"
        if "share" in actions:
            assert "send_file" in actions[: actions.index("share")]
        assert actions.count("read") == plan.mix.rounds + 1
    last_act = max(i for i, p in enumerate(phases) if p.name == "act")
    for device in plan.devices:
        # Nobody sends after the last activity round: the leavers read all.
        for index, steps in device.steps.items():
            if index > last_act:
                assert not any(s.action.startswith("send") for s in steps)


def test_a_one_device_fleet_sends_nothing() -> None:
    plan = make_plan(1, SCENARIOS["full"], seed=1)
    actions = plan.devices[0].actions()
    assert not [a for a in actions if a.startswith("send") or a in ("share", "unregister")]


# --- the mix ----------------------------------------------------------------------------------


def test_mix_overrides_are_typed_and_checked() -> None:
    mix = scenario("full", {"rounds": "2", "flaky": "0.5", "sends_per_round": "2,4"})
    assert (mix.rounds, mix.flaky, mix.sends_per_round) == (2, 0.5, (2, 4))
    assert scenario("standard", {"sends_per_round": "3"}).sends_per_round == (3, 3)
    for bad, message in (
        ({"nonsense": "1"}, "unknown mix setting"),
        ({"rounds": "two"}, "cannot read"),
        ({"rounds": "0"}, "at least 1"),
        ({"flaky": "1.5"}, "fraction"),
        ({"max_skew_s": "600"}, "290"),
        ({"message_bytes": "100,70000"}, "inline"),
        ({"drop_rate": "0.9"}, "drop_rate"),
    ):
        with pytest.raises(ValueError, match=message):
            scenario("full", bad)
    with pytest.raises(ValueError, match="unknown scenario"):
        scenario("chaos")
    with pytest.raises(ValueError, match="at least one device"):
        make_plan(0, ScenarioMix(), seed=1)
