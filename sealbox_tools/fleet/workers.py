"""``sealbox fleet --workers N``: one fleet on every core, as N processes.

One Python process runs one fleet's phones on threads, and in process the
server (the app and moto) too: the GIL keeps it on one core.  With
``--workers N`` the run is *sharded*: the devices are split into N shards
of (nearly) equal size, each shard its own plan -- its own contact graph,
seeded from the run's seed and the shard's number, so the same
``--seed``/``--workers`` always gives the same shards -- run by a process of
its own (``spawn``: nothing of the parent's threads or moto state is
inherited).  Contacts stay within a shard: a sharded run is N independent
fleets, not the one-process plan cut in N.

* In process every worker has its own backend (its own moto account, as a
  Lambda container has its own memory; DynamoDB and S3 would be shared in
  AWS) and audits it.
* Over HTTP every worker drives the same stage under usernames of its own;
  the parent runs the privacy audit once over the stage, for every worker's
  secrets.

The merged report adds up the counts, recomputes per-route percentiles
from every worker's samples, and says ``run.workers`` and each shard's
plan fingerprint; ``run.plan_fingerprint`` is the hash of those.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import secrets
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from sealbox_tools.audit import AuditReport, audit, needle
from sealbox_tools.fleet.backends import Backend
from sealbox_tools.fleet.metrics import Metrics
from sealbox_tools.fleet.runner import FleetConfig, FleetResult, run_fleet, verdict

__all__ = ["BackendSpec", "merged_section", "run_workers", "shard_configs"]


@dataclass(frozen=True)
class BackendSpec:
    """How a worker process opens its backend (picklable).

    ``url`` None: in process on moto with ``server_argon2``, pinning the
    seeded OPRF root and log key as ``oprf`` and ``kt`` say; otherwise over
    HTTP to ``url`` with ``storage_origins``, pinning ``oprf_roots`` and
    ``log_key`` (the stage's, from its SDK configuration).
    """

    url: str | None = None
    server_argon2: str = "test"
    storage_origins: tuple[str, ...] = ()
    oprf: bool = True
    kt: bool = True
    oprf_roots: Mapping[int, bytes] | None = None
    log_key: str | None = None


def shard_configs(config: FleetConfig, workers: int) -> list[FleetConfig]:
    """The per-worker configurations: devices split as evenly as possible,
    a seed and a username tag per shard.

    Raises:
        ValueError: fewer than one worker, or fewer than two devices a shard
            (a phone needs someone to write to).
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if config.devices < 2 * workers:
        raise ValueError(f"{config.devices} devices can't make {workers} shards of 2 or more")
    base, extra = divmod(config.devices, workers)
    tag = config.tag or f"f{secrets.token_hex(3)}"
    return [
        replace(
            config,
            devices=base + (1 if shard < extra else 0),
            # Distinct and reproducible: shard k of seed s is always the same plan.
            seed=config.seed * 1_000 + shard,
            tag=f"{tag}w{shard}",
        )
        for shard in range(workers)
    ]


def _worker(
    config: FleetConfig, spec: BackendSpec, work_dir: str
) -> tuple[dict[str, Any], dict[str, Any], list[tuple[str, bytes]], dict[str, Any] | None]:
    """One shard, in a process of its own: (report, raw metrics, secrets, audit json)."""
    import contextlib

    from sealbox_tools.fleet.backends import HttpBackend, InProcessBackend

    opened: contextlib.AbstractContextManager[Backend]
    if spec.url is None:
        opened = InProcessBackend(server_argon2=spec.server_argon2, oprf=spec.oprf, kt=spec.kt)
    else:
        opened = contextlib.nullcontext(
            HttpBackend(
                spec.url,
                storage_origins=spec.storage_origins,
                oprf_roots=spec.oprf_roots,
                log_key=spec.log_key,
            )
        )
    with opened as backend:
        result = run_fleet(config, backend, work_dir=Path(work_dir))
    assert result.metrics is not None  # a single run always has them
    audit_json = result.report["audit"] if config.audit else None
    return result.report, result.metrics.parts(), result.secrets, audit_json


def run_workers(
    config: FleetConfig,
    workers: int,
    spec: BackendSpec,
    *,
    work_dir: Path,
    audit_backend: Backend | None = None,
    progress: IO[str] | None = None,
    extra_secrets: tuple[tuple[str, bytes], ...] = (),
) -> FleetResult:
    """Run ``config`` as ``workers`` shards in as many processes; merge.

    In process each worker audits its own backend (when ``config.audit``).
    Over HTTP the workers don't audit; ``audit_backend`` (the stage, with
    its AWS access) is audited here once for every worker's secrets, if
    ``config.audit``.

    Raises:
        ValueError: as :func:`shard_configs`.
    """
    in_process = spec.url is None
    shards = shard_configs(config, workers)
    if not in_process:
        shards = [replace(shard, audit=False) for shard in shards]
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [
            pool.submit(_worker, shard, spec, str(work_dir / f"worker{k}"))
            for k, shard in enumerate(shards)
        ]
        results = []
        for k, future in enumerate(futures):
            results.append(future.result())
            if progress is not None:
                print(f"worker {k} of {workers} finished", file=progress, flush=True)
    elapsed = time.perf_counter() - started
    reports = [r[0] for r in results]
    metrics = Metrics.merged([r[1] for r in results], elapsed)
    secrets_list = [s for r in results for s in r[2]] + list(extra_secrets)
    report: dict[str, Any] = {
        "run": _merged_run(
            config, workers, reports, elapsed, "in-process" if in_process else "http"
        ),
        "metrics": metrics.snapshot(),
        "outcome": _merged_outcome(reports),
        "cpu": _merged_cpu([r["cpu"] for r in reports]),
        "crashes": [c for r in reports for c in r["crashes"]][:20],
    }
    for section in _SECTIONS:
        parts = [r[section] for r in reports if section in r]
        if parts:
            report[section] = merged_section(parts)
    audit_report: AuditReport | None = None
    if not config.audit:
        report["audit"] = reports[0]["audit"]
    elif in_process:
        report["audit"] = _merged_audits([r[3] or {} for r in results])
    else:
        haystacks = audit_backend.haystacks() if audit_backend is not None else None
        if haystacks is None:
            report["audit"] = {
                "passed": False,
                "summary": "privacy audit: not run (the backend's storage is out of reach)",
            }
        else:
            try:
                audit_report = audit(haystacks, (needle(lbl, s) for lbl, s in secrets_list))
            except LookupError as exc:
                report["audit"] = {"passed": False, "summary": f"privacy audit: not run ({exc})"}
            else:
                assert audit_backend is not None
                audit_report.notes.extend(audit_backend.audit_notes())
                report["audit"] = audit_report.to_json()
    report["verdict"] = verdict(report["outcome"], report.get("audit"), config.audit)
    return FleetResult(report, metrics.latency_samples(), audit_report, secrets_list)


def _merged_run(
    config: FleetConfig,
    workers: int,
    reports: list[dict[str, Any]],
    elapsed: float,
    mode: str,
) -> dict[str, Any]:
    fingerprints = [r["run"]["plan_fingerprint"] for r in reports]
    planned: dict[str, int] = {}
    for r in reports:
        for action, count in r["run"]["planned_steps"].items():
            planned[action] = planned.get(action, 0) + count
    return {
        "devices": config.devices,
        "scenario": config.scenario,
        "mix": dict(config.overrides),
        "seed": config.seed,
        "mode": mode,
        "workers": workers,
        "concurrency": config.concurrency,
        "plan_fingerprint": hashlib.sha256(",".join(fingerprints).encode()).hexdigest(),
        "shards": [
            {
                "devices": r["run"]["devices"],
                "seed": r["run"]["seed"],
                "tag": r["run"]["tag"],
                "plan_fingerprint": r["run"]["plan_fingerprint"],
                "wall_s": r["run"]["wall_s"],
            }
            for r in reports
        ],
        "planned_steps": dict(sorted(planned.items())),
        "tag": ",".join(r["run"]["tag"] for r in reports),
        "wall_s": round(elapsed, 3),
        "simulated_time_s": max(r["run"]["simulated_time_s"] for r in reports),
    }


#: The scenarios' own report sections (``groups``, ``lying``): merged by
#: :func:`merged_section`.
_SECTIONS = ("groups", "lying")
#: Section fields that are a largest value or a time, not a count.
_MAXED = frozenset({"largest_group", "wall_s", "lies_per_attack"})


def merged_section(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    """One scenario section from every worker's: counts added up (nested
    too), largest values and times the maximum, the lying scenario's
    detection rate recomputed from the merged counts, and any worker's
    ``not_run`` reason kept."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, Mapping):
                out[key] = merged_section([out.get(key, {}), value])
            elif isinstance(value, bool) or not isinstance(value, int | float):
                out.setdefault(key, value)
            elif key in _MAXED:
                out[key] = max(out.get(key, value), value)
            else:
                out[key] = out.get(key, 0) + value
    if "planned" in out and "caught" in out:
        planned, caught = sum(out["planned"].values()), sum(out["caught"].values())
        out["detection_rate"] = round(caught / planned, 4) if planned else None
    return out


_SUMMED = (
    "sends_planned",
    "sends_completed",
    "deliveries_expected",
    "deliveries_verified",
    "undelivered",
    "mismatches",
    "failed_steps",
    "retries",
)


def _merged_outcome(reports: list[dict[str, Any]]) -> dict[str, Any]:
    outcome: dict[str, Any] = {key: sum(r["outcome"][key] for r in reports) for key in _SUMMED}
    outcome["undelivered_sample"] = [
        s for r in reports for s in r["outcome"]["undelivered_sample"]
    ][:10]
    return outcome


def _merged_cpu(parts: list[Mapping[str, float]]) -> dict[str, float]:
    """Seconds added up over the workers; shares of the workers' total."""
    seconds: dict[str, float] = {}
    for part in parts:
        for key, value in part.items():
            if key.endswith("_s"):
                seconds[key] = seconds.get(key, 0.0) + value
    buckets = [k for k in seconds if k != "server_processes_s"]
    total = max(sum(seconds[k] for k in buckets), 1e-9)
    out = {key: round(value, 3) for key, value in seconds.items()}
    out.update({f"{k[:-2]}_share": round(seconds[k] / total, 4) for k in buckets})
    return out


def _merged_audits(audits: list[Mapping[str, Any]]) -> dict[str, Any]:
    passed = all(a.get("passed") is True for a in audits)
    summaries = [f"worker {k}: {a.get('summary', 'no audit')}" for k, a in enumerate(audits)]
    return {
        "passed": passed,
        "summary": "\n".join(summaries),
        "hits": [h for a in audits for h in a.get("hits", [])],
        "workers": list(audits),
    }
