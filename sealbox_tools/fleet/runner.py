"""Running a fleet: simulated phones follow a plan against a backend.

:func:`run_fleet` makes the plan (:mod:`sealbox_tools.fleet.plan`), gives every
planned device a :class:`~client_sim.device.Device` of its own -- its own
home directory, keystore, clock and network -- and runs the plan phase by
phase on a thread pool.  Between rounds simulated time passes (in process).
Every message or file received is decrypted and verified by the SDK and
then judged by the :class:`~sealbox_tools.fleet.ledger.Ledger` (content hash
and signer).  At the end the privacy audit scans everything the server side
holds for every secret the run produced.

What each device's network is made of, outermost first::

    Device -> token watch -> FlakyTransport -> MeteredTransport -> backend

so a request the flaky network drops *before* the server is never timed,
one dropped *after* is timed and then lost, and every 401 the server sends
for an expired token is counted.

Failures are counted, never hidden: every exception a device sees is an
error by kind; a transient one (no answer, 5xx, 429) is retried with the
same idempotency key; a step that still fails counts in ``failed_steps``.
A run *passes* when nothing failed, no delivery mismatched, every completed
send arrived, and the audit found nothing.
"""

from __future__ import annotations

import secrets
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from client_sim.passwords import PASSWORD_KDF_SIMULATION, KdfParams
from client_sim.transport import ObjectTransport, Transport
from sealbox_tools.audit import AuditReport, audit, needle
from sealbox_tools.fleet.backends import Backend
from sealbox_tools.fleet.cpu import (
    CpuAccounting,
    ServerTimedObjects,
    ServerTimedTransport,
    instrument_hazmat,
)
from sealbox_tools.fleet.groups import run_groups
from sealbox_tools.fleet.ledger import Ledger
from sealbox_tools.fleet.lying import run_lying
from sealbox_tools.fleet.metrics import Metrics
from sealbox_tools.fleet.needles import Secrets
from sealbox_tools.fleet.phone import Phone
from sealbox_tools.fleet.plan import FleetPlan, Step, make_plan, scenario
from sealbox_tools.fleet.progress import Progress
from sealbox_tools.fleet.transports import MeteredObjects

__all__ = ["FleetConfig", "FleetResult", "run_fleet"]


@dataclass(frozen=True)
class FleetConfig:
    """What to run.

    Args:
        devices: how many simulated phones.
        scenario: ``standard``, ``full``, ``hostile``, ``groups`` or ``lying``
            (:data:`~sealbox_tools.fleet.plan.SCENARIOS`).
        overrides: scenario mix settings to change (``--mix name=value``).
        seed: the plan's seed: same seed, same plan.
        concurrency: devices working at once (threads).
        audit: run the privacy audit at the end.
        attempts: tries per operation on a transient failure.
        retry_backoff: first wait between tries, in seconds (doubling,
            capped at 2 s); 0 in process, where nothing is gained by waiting.
        kdf: the devices' password KDF (the simulation profile: thousands of
            phones would otherwise spend the run in Argon2id).
        tag: prefix of the fleet's usernames (random by default, so fleets
            against the same stage never collide).
    """

    devices: int
    scenario: str = "standard"
    overrides: Mapping[str, str] = field(default_factory=dict)
    seed: int = 1
    concurrency: int = 8
    audit: bool = True
    attempts: int = 8
    retry_backoff: float = 0.05
    kdf: KdfParams = PASSWORD_KDF_SIMULATION
    tag: str | None = None

    def plan(self) -> FleetPlan:
        """The plan this configuration runs (pure: no backend needed)."""
        mix = scenario(self.scenario, self.overrides)
        return make_plan(self.devices, mix, self.seed, name=self.scenario)


@dataclass
class FleetResult:
    """A finished run: the report, raw latencies, the audit, the secrets."""

    report: dict[str, Any]
    samples: dict[str, list[float]]
    audit: AuditReport | None
    #: (label, secret) of every needle, for a needles file.  Secret.
    secrets: list[tuple[str, bytes]] = field(repr=False)
    #: Every send and how it was judged (None for a merged multi-worker run).
    ledger: Ledger | None = field(default=None, repr=False)
    #: The raw counters and samples (None for a merged multi-worker run).
    metrics: Metrics | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return bool(self.report["verdict"]["passed"])


# --- the run ----------------------------------------------------------------------------------


class Run:
    """What every phone of one run shares."""

    def __init__(
        self,
        config: FleetConfig,
        plan: FleetPlan,
        backend: Backend,
        work_dir: Path,
        progress: Progress,
        sleep: Callable[[float], None],
    ) -> None:
        self.config = config
        self.plan = plan
        self.backend = backend
        self.work_dir = work_dir
        self.progress = progress
        self.sleep = sleep
        self.tag = config.tag or f"f{secrets.token_hex(3)}"
        self.metrics = Metrics()
        self.cpu = CpuAccounting()
        self.ledger = Ledger()
        self.secrets = Secrets()
        self.crashes: list[str] = []
        #: identity -> the card a thief published for it (the hostile scenario)
        self.attacker_cards: dict[str, str] = {}
        #: identity -> when (simulation clock) its card was revoked
        self.revoked_at: dict[str, float] = {}
        self._lock = threading.Lock()
        api: Transport = backend.api()
        objects: ObjectTransport = backend.objects()
        if backend.mode == "in-process":
            # The server runs in the devices' threads: its CPU is its own.
            api = ServerTimedTransport(api, self.cpu)
            objects = ServerTimedObjects(objects, self.cpu)
        self.api = api
        self.objects: ObjectTransport = MeteredObjects(objects, self.metrics)
        self.storage_origins = backend.storage_origins()
        self.oprf_roots = backend.oprf_roots()
        self.log_key = backend.log_key()

    def identity(self, index: int) -> str:
        return f"{self.tag}-{index:05d}"

    def backoff(self, attempt: int) -> None:
        if self.config.retry_backoff > 0:
            self.sleep(min(self.config.retry_backoff * 2**attempt, 2.0))

    def fail(self, step: Step, kind: str) -> None:
        self.fail_named(step.action, kind)

    def fail_named(self, action: str, kind: str) -> None:
        self.metrics.count("failed_steps")
        self.metrics.error(f"{action}:{kind}")

    def crash(self, step: Step, exc: Exception) -> None:
        # Type and code location only: an exception's message may quote data.
        frames = traceback.extract_tb(exc.__traceback__)[-3:]
        where = " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in reversed(frames))
        self.metrics.count("failed_steps")
        self.metrics.error(f"{step.action}:crash_{type(exc).__name__}")
        with self._lock:
            if len(self.crashes) < 20:
                self.crashes.append(f"{step.action}: {type(exc).__name__} at {where}")


def run_fleet(
    config: FleetConfig,
    backend: Backend,
    *,
    work_dir: Path,
    progress: IO[str] | None = None,
    tty: bool | None = None,
    before_audit: Callable[[Backend, Sequence[tuple[str, bytes]]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    extra_secrets: Sequence[tuple[str, bytes]] = (),
) -> FleetResult:
    """Run ``config`` against ``backend`` (entered already) and judge it.

    Args:
        work_dir: where the phones' home directories go (emptied as they go).
        progress: where the progress bar or lines go (None: nowhere).
        tty: force the progress form (see :class:`Progress`).
        before_audit: called with the backend and the run's secrets just
            before the audit; tests use it to plant a leak.
        sleep: waits between retries (injected by tests).
        extra_secrets: more (label, secret) pairs for the audit to look for.
    """
    plan = config.plan()
    if config.concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    progress_view = Progress(plan.step_count(), progress, tty=tty)
    run = Run(config, plan, backend, work_dir, progress_view, sleep)

    progress_view.stats = run.metrics.live
    work_dir.mkdir(parents=True, exist_ok=True)
    wall = time.perf_counter()
    cpu_started = time.process_time()
    server_started = backend.server_cpu_seconds()
    with instrument_hazmat(run.cpu), ThreadPoolExecutor(config.concurrency) as pool:
        phones = [Phone(run, device) for device in plan.devices]
        last_round = 0
        for index, phase in enumerate(plan.phases):
            if phase.round != last_round and phase.round > 1 and backend.can_advance_time:
                # Time passes between rounds (one access-token lifetime and more).
                backend.advance_time(plan.mix.round_gap_s)
            last_round = phase.round
            progress_view.start_phase(phase.label)
            if phase.name == "flush":
                # The final checks run on a healed network: an unlucky
                # streak of drops must not pass for a lost delivery.
                for phone in phones:
                    phone.network.drop_rate = 0.0
            busy = [p for p in phones if index in p.plan.steps]
            for future in [pool.submit(p.run_phase, index) for p in busy]:
                future.result()
            backend.tidy()
        # The groups scenario's groups live once every phone has signed up.
        group_report = run_groups(run, phones) if plan.mix.groups else None
        lying_report = run_lying(run, phones) if plan.mix.lies else None
        for phone in phones:
            phone.harvest()
    cpu_total = time.process_time() - cpu_started
    elapsed = time.perf_counter() - wall
    server_now = backend.server_cpu_seconds()
    progress_view.close()
    run.secrets.derived_keys(config.kdf, backend.oprf_audit_keys())
    for label, secret in extra_secrets:
        run.secrets.add(label, secret)
    metrics = run.metrics.snapshot()
    outcome = _outcome(run, metrics["events"])
    report: dict[str, Any] = {
        "run": {
            "devices": config.devices,
            "scenario": config.scenario,
            "mix": dict(config.overrides),
            "seed": config.seed,
            "mode": backend.mode,
            "concurrency": config.concurrency,
            "plan_fingerprint": plan.fingerprint(),
            "planned_steps": plan.action_counts(),
            "tag": run.tag,
            "wall_s": round(elapsed, 3),
            "simulated_time_s": round(backend.clock.offset, 1),
        },
        "metrics": metrics,
        "outcome": outcome,
        "cpu": {
            **run.cpu.breakdown(cpu_total),
            **(
                {"server_processes_s": round(server_now - server_started, 3)}
                if server_now is not None and server_started is not None
                else {}
            ),
        },
        "crashes": list(run.crashes),
    }
    if group_report is not None:
        report["groups"] = group_report
    if lying_report is not None:
        report["lying"] = lying_report
    audit_report: AuditReport | None = None
    secrets_list = run.secrets.items()
    if config.audit:
        haystacks = backend.haystacks()
        if haystacks is None:
            report["audit"] = {
                "passed": False,
                "summary": "privacy audit: not run (the backend's storage is out of reach)",
            }
        else:
            if before_audit is not None:
                before_audit(backend, secrets_list)
            started = time.perf_counter()
            try:
                audit_report = audit(haystacks, (needle(label, s) for label, s in secrets_list))
            except LookupError as exc:
                # The stage's storage isn't where the backend looked (over
                # HTTP, a --stage or --aws-endpoint that names another one):
                # nothing was audited, which is a failed run, not a pass.
                report["audit"] = {"passed": False, "summary": f"privacy audit: not run ({exc})"}
            else:
                audit_report.notes.extend(backend.audit_notes())
                report["audit"] = {**audit_report.to_json(), "seconds": _secs(started)}
    else:
        # Allowed (a stage its operator won't scan), but the summary must not
        # read like an audited pass.
        report["audit"] = {
            "passed": None,
            "skipped": True,
            "summary": "privacy audit: skipped (--no-audit): this run says nothing "
            "about what the server side holds",
        }
    report["verdict"] = _verdict(outcome, report.get("audit"), config.audit)
    return FleetResult(
        report,
        run.metrics.latency_samples(),
        audit_report,
        secrets_list,
        ledger=run.ledger,
        metrics=run.metrics,
    )


def _secs(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def _outcome(run: Run, events: Mapping[str, int]) -> dict[str, Any]:
    mismatches = sum(v for k, v in events.items() if k.startswith("mismatch"))
    undelivered = run.ledger.undelivered()
    return {
        "sends_planned": len(run.ledger),
        "sends_completed": run.ledger.completed(),
        "deliveries_expected": run.ledger.expected_deliveries(),
        "deliveries_verified": run.ledger.delivered(),
        "undelivered": len(undelivered),
        "undelivered_sample": [f"{m} -> {r}" for m, r in undelivered[:10]],
        "mismatches": mismatches,
        "failed_steps": events.get("failed_steps", 0),
        "retries": events.get("retry", 0),
    }


def verdict(outcome: Mapping[str, Any], audit_json: Any, audited: bool) -> dict[str, Any]:
    """A run's verdict from its outcome and audit (also for merged runs)."""
    return _verdict(outcome, audit_json, audited)


def _verdict(outcome: Mapping[str, Any], audit_json: Any, audited: bool) -> dict[str, Any]:
    reasons = []
    if outcome["mismatches"]:
        reasons.append(f"{outcome['mismatches']} mismatched deliveries")
    if outcome["undelivered"]:
        reasons.append(f"{outcome['undelivered']} deliveries never arrived")
    if outcome["failed_steps"]:
        reasons.append(f"{outcome['failed_steps']} steps failed")
    if audited and not (audit_json or {}).get("passed"):
        reasons.append("the privacy audit did not pass")
    return {"passed": not reasons, "reasons": reasons}
