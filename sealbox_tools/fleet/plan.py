"""Scenario planning: who does what, when -- decided up front from a seed.

A fleet run is a plan executed against a backend.  The plan is pure data,
made here with one ``random.Random(seed)``: the same devices, seed and
scenario mix always give the same plan (:meth:`FleetPlan.fingerprint` says
so in one hash), so a run that found a problem can be repeated exactly.
Only what the network does at run time (thread interleaving, latencies)
varies between runs; the simulated faults are seeded per device too.

The people in a fleet know each other through a *contact graph* grown by
preferential attachment with triad formation (Holme and Kim, 2002): a few
people have many contacts, most have a handful, and friends of friends tend
to be friends -- the heavy tail and the clustering of real messaging
networks, which uniform random recipients lack.  Messages and files go to
contacts only.

Time is divided into rounds, and each round into phases that every device
passes together (a barrier between phases, so a blob is never deleted
while someone is reading the inbox that lists it):

* round 0 ``act``: sign up (account, keys, card) and back up the keys;
* rounds 1..R ``read`` then ``act``: read the inbox, then send messages and
  files to contacts, and live through the round's events -- lose the phone
  and restore on a new one, reinstall the app, rotate keys, change the
  password, share a file with one more contact, go offline with sends
  queued, sleep through a token's lifetime;
* the last round (*settle*): the network heals, queued work is flushed,
  everyone reads what is left, the leavers unregister, and their contacts
  check that they can no longer be found.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "ACTIONS",
    "SCENARIOS",
    "DevicePlan",
    "FleetPlan",
    "Phase",
    "ScenarioMix",
    "Step",
    "average_clustering",
    "contact_graph",
    "make_plan",
    "scenario",
]

#: Every step a device can be told to take.
ACTIONS: Final = frozenset(
    {
        "sign_up",  # create the account, make keys, publish the card
        "backup",  # seal the private keys under the password and store them
        "read",  # list the inbox, download and verify every new blob
        "send_message",  # a small sealed message (stored inline)
        "send_file",  # a larger sealed file (presigned upload to S3)
        "lose_phone",  # a new phone: log in, restore the keys from the backup
        "reinstall",  # the keystore is wiped; logging in restores it
        "rotate",  # new keys and card; the old keys stay for old data
        "change_password",  # new login key and re-sealed backup
        "share",  # give one more contact one of our files (re-sealed)
        "go_offline",  # no network until come_online; sends are queued
        "come_online",  # network back: flush the queued sends
        "freeze_clock",  # the phone sleeps through a token's lifetime
        "thaw_clock",  # ... and its clock catches up after the first request
        "unregister",  # revoke the card and wipe the phone
        "check_revoked",  # a contact of a leaver checks it can't be found
        "know_card",  # look a contact up: the phone pins the card it sees
        "takeover",  # a thief with this person's stolen access token tries to take the identity
        "check_reset",  # a contact of a victim: the reset must be surfaced, never encrypted to
    }
)


@dataclass(frozen=True)
class ScenarioMix:
    """How much of each behaviour a scenario has.

    Fractions are of the fleet's devices; ``*_bytes`` are plaintext size
    ranges, inclusive.  Messages stay under the 64 KiB inline limit (one
    API request); files are above it (presigned S3 upload and commit).
    """

    rounds: int = 3
    sends_per_round: tuple[int, int] = (1, 2)
    file_share: float = 0.25
    max_recipients: int = 3
    message_bytes: tuple[int, int] = (200, 4000)
    file_bytes: tuple[int, int] = (70_000, 160_000)
    contacts: int = 3
    triad: float = 0.5
    lose_phone: float = 0.0
    reinstall: float = 0.0
    rotate: float = 0.0
    change_password: float = 0.0
    share: float = 0.0
    unregister: float = 0.0
    flaky: float = 0.0
    drop_rate: float = 0.05
    skewed: float = 0.0
    max_skew_s: int = 240
    token_expiry: float = 0.0
    offline: float = 0.0
    #: Devices whose access token is stolen (the ``hostile`` scenario).
    takeover: float = 0.0
    #: Groups the ``groups`` scenario makes (sealbox_tools/fleet/groups.py),
    #: the size of the largest (the others draw 3..group_max members) and how
    #: many rounds of sends, reads and racing membership changes they live.
    groups: int = 0
    group_max: int = 8
    group_rounds: int = 3
    #: Lies of each kind the ``lying`` scenario's compromised backend tells
    #: (sealbox_tools/fleet/lying.py) once every phone has signed up.
    lies: int = 0
    #: Simulated time between rounds (in process only: the server's clock
    #: is the simulation's).  Longer than an access token's 15 minutes, so
    #: a phone that slept through it meets an expired token.
    round_gap_s: int = 1200

    def check(self) -> None:
        """Raise ValueError for a mix no plan can follow."""
        if self.rounds < 1:
            raise ValueError("rounds must be at least 1")
        lo, hi = self.sends_per_round
        if not 0 <= lo <= hi:
            raise ValueError("sends_per_round must be (lo, hi) with 0 <= lo <= hi")
        if self.max_recipients < 1:
            raise ValueError("max_recipients must be at least 1")
        if self.contacts < 1:
            raise ValueError("contacts must be at least 1")
        for name in ("message_bytes", "file_bytes"):
            lo, hi = getattr(self, name)
            if not 64 <= lo <= hi:
                raise ValueError(f"{name} must be (lo, hi) with 64 <= lo <= hi")
        if self.message_bytes[1] > 60_000:
            raise ValueError("message_bytes must stay under the 64 KiB inline limit")
        for name in (
            "file_share",
            "triad",
            "lose_phone",
            "reinstall",
            "rotate",
            "change_password",
            "share",
            "unregister",
            "flaky",
            "skewed",
            "token_expiry",
            "offline",
            "takeover",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a fraction in [0, 1]")
        if not 0.0 <= self.drop_rate <= 0.3:
            # Above that, retries stop being a fair model of a phone network.
            raise ValueError("drop_rate must be in [0, 0.3]")
        if not 0 <= self.max_skew_s <= 290:
            # The server accepts cards up to 300 s off its clock
            # (SEALBOX_CARD_MAX_SKEW); a skew beyond it is a phone that
            # can't publish, not one that copes with skew.
            raise ValueError("max_skew_s must be in [0, 290]")
        if self.round_gap_s < 0:
            raise ValueError("round_gap_s must not be negative")
        if self.groups < 0 or self.group_max < 3 or self.group_rounds < 1:
            raise ValueError("need groups >= 0, group_max >= 3 and group_rounds >= 1")
        if not 0 <= self.lies <= 100:
            raise ValueError("lies must be in [0, 100]")

    def with_overrides(self, overrides: Mapping[str, str]) -> ScenarioMix:
        """A copy with fields set from text (``--mix name=value`` on the CLI).

        Raises:
            ValueError: an unknown field or a value of the wrong shape.
        """
        fields = {f.name: f for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for name, text in overrides.items():
            if name not in fields:
                raise ValueError(f"unknown mix setting {name!r} (known: {', '.join(fields)})")
            current = getattr(self, name)
            try:
                if isinstance(current, tuple):
                    lo, _, hi = text.partition(",")
                    changes[name] = (int(lo), int(hi or lo))
                elif isinstance(current, int):
                    changes[name] = int(text)
                else:
                    changes[name] = float(text)
            except ValueError as exc:
                raise ValueError(f"mix setting {name}: cannot read {text!r}") from exc
        mix = dataclasses.replace(self, **changes)
        mix.check()
        return mix


#: The built-in scenarios.  ``standard`` is what ``make demo`` runs: every
#: core behaviour on a healthy network.  ``full`` adds every adverse
#: condition the simulator has.
SCENARIOS: Final[Mapping[str, ScenarioMix]] = {
    "standard": ScenarioMix(
        rounds=3,
        lose_phone=0.06,
        reinstall=0.06,
        rotate=0.10,
        unregister=0.04,
    ),
    "full": ScenarioMix(
        rounds=3,
        file_share=0.2,
        lose_phone=0.08,
        reinstall=0.08,
        rotate=0.12,
        change_password=0.5,
        share=0.06,
        unregister=0.05,
        flaky=0.3,
        drop_rate=0.05,
        skewed=0.3,
        token_expiry=0.1,
        offline=0.1,
    ),
    # Attackers holding stolen access tokens try to take identities over
    # (docs/fleet.md): no contact may ever encrypt to their keys, and every
    # contact that knew the old card must be told.
    "hostile": ScenarioMix(rounds=3, rotate=0.1, takeover=0.15),
    # Group epochs and group content (docs/fleet.md): phones sign up, then
    # groups live through sends, reads, racing admins, removals and a member
    # offline for several epochs; the one-to-one traffic is left out.
    "groups": ScenarioMix(rounds=1, sends_per_round=(0, 0), groups=3, group_max=8),
    # A compromised backend lies about the key directory (docs/fleet.md):
    # substituted cards, a hidden rotation, a forked log; every lie must be
    # caught by the devices, with no alarm where there was none.
    "lying": ScenarioMix(rounds=1, sends_per_round=(0, 0), lies=2),
}


def scenario(name: str, overrides: Mapping[str, str] | None = None) -> ScenarioMix:
    """The named scenario, with ``overrides`` applied.

    Raises:
        ValueError: unknown scenario or override.
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})")
    mix = SCENARIOS[name]
    return mix.with_overrides(overrides) if overrides else mix


# --- the contact graph -----------------------------------------------------------------


def contact_graph(n: int, m: int, triad: float, rng: random.Random) -> tuple[frozenset[int], ...]:
    """Grow an undirected contact graph on ``n`` people (Holme-Kim).

    Start from a complete graph on ``m + 1`` people; each newcomer links to
    ``m`` people: the first chosen with probability proportional to degree
    (the popular get more popular), each further one, with probability
    ``triad``, among the contacts of the previous choice (a friend of a
    friend), otherwise again by degree.  Every person ends with at least
    ``min(m, n - 1)`` contacts and the graph is connected.

    Returns:
        ``adjacency[i]``: the contacts of person ``i``.
    """
    if n < 0 or m < 1 or not 0.0 <= triad <= 1.0:
        raise ValueError("need n >= 0, m >= 1 and 0 <= triad <= 1")
    m = min(m, max(n - 1, 0))
    adjacency: list[set[int]] = [set() for _ in range(n)]
    # Each person appears once per contact: drawing from it is drawing by degree.
    by_degree: list[int] = []

    def link(a: int, b: int) -> None:
        adjacency[a].add(b)
        adjacency[b].add(a)
        by_degree.extend((a, b))

    core = min(n, m + 1)
    for a in range(core):
        for b in range(a):
            link(a, b)
    for newcomer in range(core, n):
        chosen: list[int] = []
        while len(chosen) < m:
            friends = sorted(adjacency[chosen[-1]] - set(chosen)) if chosen and by_degree else []
            if friends and rng.random() < triad:
                pick = rng.choice(friends)
            else:
                pick = rng.choice(by_degree)
                if pick in chosen:
                    continue
            chosen.append(pick)
        for other in chosen:
            link(newcomer, other)
    return tuple(frozenset(contacts) for contacts in adjacency)


def average_clustering(adjacency: Sequence[frozenset[int]]) -> float:
    """Mean local clustering coefficient (people with < 2 contacts count 0)."""
    if not adjacency:
        return 0.0
    total = 0.0
    for contacts in adjacency:
        k = len(contacts)
        if k < 2:
            continue
        ordered = sorted(contacts)
        closed = sum(
            1 for i, a in enumerate(ordered) for b in ordered[i + 1 :] if b in adjacency[a]
        )
        total += closed / (k * (k - 1) / 2)
    return total / len(adjacency)


# --- plans ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One thing one device does.

    ``to`` are recipients (device indexes) of a send; ``size`` its
    plaintext size; ``target`` the contact a ``share`` adds or whose
    revocation ``check_revoked`` checks.
    """

    action: str
    to: tuple[int, ...] = ()
    size: int = 0
    target: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action}
        if self.to:
            out["to"] = list(self.to)
        if self.size:
            out["size"] = self.size
        if self.target is not None:
            out["target"] = self.target
        return out


@dataclass(frozen=True)
class Phase:
    """A stretch of the run that every device finishes before the next starts."""

    round: int
    name: str  # "act", "read", "flush", "leave", "check"

    @property
    def label(self) -> str:
        return f"round {self.round} {self.name}"


@dataclass(frozen=True)
class DevicePlan:
    """What one simulated phone does, phase by phase, and its conditions."""

    index: int
    contacts: tuple[int, ...]
    #: Per phase (index into :attr:`FleetPlan.phases`): the steps, in order.
    steps: Mapping[int, tuple[Step, ...]]
    drop_rate: float = 0.0
    skew_s: int = 0

    def step_count(self) -> int:
        return sum(len(steps) for steps in self.steps.values())

    def actions(self) -> list[str]:
        return [step.action for _, steps in sorted(self.steps.items()) for step in steps]

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "contacts": list(self.contacts),
            "drop_rate": self.drop_rate,
            "skew_s": self.skew_s,
            "steps": {
                str(phase): [step.to_json() for step in steps]
                for phase, steps in sorted(self.steps.items())
            },
        }


@dataclass(frozen=True)
class FleetPlan:
    """The whole run: phases in order and every device's plan."""

    seed: int
    scenario: str
    mix: ScenarioMix
    phases: tuple[Phase, ...]
    devices: tuple[DevicePlan, ...]
    graph: tuple[frozenset[int], ...] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "scenario": self.scenario,
            "mix": dataclasses.asdict(self.mix),
            "phases": [[p.round, p.name] for p in self.phases],
            "devices": [d.to_json() for d in self.devices],
        }

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of the plan: equal plans, equal hashes."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def step_count(self) -> int:
        return sum(d.step_count() for d in self.devices)

    def action_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for device in self.devices:
            for action in device.actions():
                counts[action] = counts.get(action, 0) + 1
        return dict(sorted(counts.items()))


def _pick(rng: random.Random, population: Sequence[int], fraction: float) -> set[int]:
    """``round(fraction * len)`` distinct members, at least one if fraction > 0."""
    if fraction <= 0 or not population:
        return set()
    k = min(len(population), max(1, round(fraction * len(population))))
    return set(rng.sample(list(population), k))


def make_plan(devices: int, mix: ScenarioMix, seed: int, *, name: str = "custom") -> FleetPlan:
    """Plan a run of ``devices`` phones through ``mix``; pure and reproducible.

    Raises:
        ValueError: ``devices`` < 1 or an invalid mix.
    """
    if devices < 1:
        raise ValueError("a fleet has at least one device")
    mix.check()
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not secrets
    graph = contact_graph(devices, mix.contacts, mix.triad, rng)
    rounds = mix.rounds
    settle = rounds + 1
    phases: list[Phase] = [Phase(0, "act")]
    for r in range(1, rounds + 1):
        phases += [Phase(r, "read"), Phase(r, "act")]
    phases += [Phase(settle, n) for n in ("flush", "read", "leave", "check")]
    where = {(p.round, p.name): i for i, p in enumerate(phases)}
    everyone = list(range(devices))
    social = [i for i in everyone if graph[i]]

    # Conditions and life events, each a seeded draw over the fleet.
    flaky = _pick(rng, everyone, mix.flaky)
    skewed = _pick(rng, everyone, mix.skewed)
    leavers = _pick(rng, social, mix.unregister) if devices > 1 else set()
    lost = _pick(rng, everyone, mix.lose_phone)
    new_password = _pick(rng, sorted(lost), mix.change_password)
    reinstall = _pick(rng, [i for i in everyone if i not in lost], mix.reinstall)
    rotate = _pick(rng, everyone, mix.rotate)
    sharers = _pick(rng, social, mix.share) if rounds >= 2 else set()
    offline = _pick(rng, everyone, mix.offline)
    sleepers = _pick(rng, [i for i in everyone if i not in offline], mix.token_expiry)
    # Victims lead otherwise quiet lives (no events, no sends, always
    # online), so every outcome is the takeover's.  Drawn last and only when
    # asked for, so other scenarios' plans are unchanged.
    busy = leavers | lost | reinstall | rotate | sharers | offline | sleepers
    victims = _pick(rng, [i for i in social if i not in busy], mix.takeover)

    steps: dict[int, dict[int, list[Step]]] = {i: {} for i in everyone}

    def add(device: int, phase: tuple[int, str], step: Step) -> None:
        steps[device].setdefault(where[phase], []).append(step)

    def reachable(device: int) -> list[int]:
        # Nobody sends to a victim: their contacts' devices refuse to (the
        # check_reset step proves it), and the ledger would wait for ever.
        return sorted(c for c in graph[device] if c not in victims)

    def recipients(device: int) -> tuple[int, ...]:
        contacts = reachable(device)
        k = 1 if rng.random() < 0.7 else rng.randint(2, max(2, mix.max_recipients))
        return tuple(sorted(rng.sample(contacts, min(k, len(contacts), mix.max_recipients))))

    def send(device: int, *, force_file: bool = False) -> Step:
        is_file = force_file or rng.random() < mix.file_share
        lo, hi = mix.file_bytes if is_file else mix.message_bytes
        return Step(
            "send_file" if is_file else "send_message",
            to=recipients(device),
            size=rng.randint(lo, hi),
        )

    for device in everyone:
        add(device, (0, "act"), Step("sign_up"))
        add(device, (0, "act"), Step("backup"))
        offline_round = rng.randint(1, rounds) if device in offline else None
        # Life events need the network: never in the device's offline round.
        online = [r for r in range(1, rounds + 1) if r != offline_round]
        event_round = {
            name: rng.choice(online)
            for name, members in (
                ("lose_phone", lost),
                ("reinstall", reinstall),
                ("rotate", rotate),
            )
            if device in members and online
        }
        sleep_round = rng.randint(1, rounds) if device in sleepers else None
        later = [r for r in online if r >= 2]
        share_round = rng.choice(later) if device in sharers and later else None
        share_file: Step | None = None
        for r in range(1, rounds + 1):
            if r == offline_round:
                add(device, (r, "read"), Step("go_offline"))
            if offline_round is not None and r == offline_round + 1:
                add(device, (r, "read"), Step("come_online"))
            add(device, (r, "read"), Step("read"))
            if sleep_round is not None and r == sleep_round + 1:
                add(device, (r, "act"), Step("thaw_clock"))
            lo, hi = mix.sends_per_round
            sends = [send(device) for _ in range(rng.randint(lo, hi))] if reachable(device) else []
            if device in victims:
                sends = [Step("takeover")] if r == 1 else []
            if share_round is not None and r == 1:
                # The file the share step re-seals later: sent in round 1.
                share_file = send(device, force_file=True)
                sends.append(share_file)
            events: list[Step] = []
            for name, when in event_round.items():
                if when == r:
                    events.append(Step(name))
                    if name == "lose_phone" and device in new_password:
                        # The classic reason: sign the lost phone out everywhere.
                        events.append(Step("change_password"))
            if r == share_round and share_file is not None:
                others = sorted(set(everyone) - set(share_file.to) - {device} - victims)
                near = [c for c in sorted(graph[device]) if c in others]
                if others:
                    events.append(Step("share", target=rng.choice(near or others)))
            # Life events happen before or after the round's sends.
            act = events + sends if rng.random() < 0.5 else sends + events
            for step in act:
                add(device, (r, "act"), step)
            if r == sleep_round:
                add(device, (r, "act"), Step("freeze_clock"))
        if offline_round == rounds:
            add(device, (settle, "flush"), Step("come_online"))
        add(device, (settle, "read"), Step("read"))
        if sleep_round == rounds:
            add(device, (settle, "leave"), Step("thaw_clock"))
        if device in leavers:
            add(device, (settle, "leave"), Step("unregister"))
    for victim in sorted(victims):
        witnesses = sorted(c for c in graph[victim] if c not in busy | victims)
        for witness in witnesses:
            add(witness, (1, "read"), Step("know_card", target=victim))
            add(witness, (settle, "check"), Step("check_reset", target=victim))
    for leaver in sorted(leavers):
        stayers = sorted(c for c in graph[leaver] if c not in leavers)
        if stayers:
            # The witness looks the leaver up just before it leaves, so its
            # cache holds the card the revocation retires: the check then
            # measures how long the phone still had it to encrypt to.
            witness = rng.choice(stayers)
            add(witness, (settle, "read"), Step("know_card", target=leaver))
            add(witness, (settle, "check"), Step("check_revoked", target=leaver))

    plans = tuple(
        DevicePlan(
            index=i,
            contacts=tuple(sorted(graph[i])),
            steps={phase: tuple(items) for phase, items in sorted(steps[i].items())},
            drop_rate=mix.drop_rate if i in flaky else 0.0,
            skew_s=rng.randint(-mix.max_skew_s, mix.max_skew_s) if i in skewed else 0,
        )
        for i in everyone
    )
    return FleetPlan(
        seed=seed, scenario=name, mix=mix, phases=tuple(phases), devices=plans, graph=graph
    )
