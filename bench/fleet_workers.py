"""In-process fleets on worker processes: speed-up, and memory per phone.

    python -m bench.fleet_workers [--devices N] [--workers W] [--memory-devices M]
                                  [--scenario standard|full] [--json]

1. **Throughput**: the same number of devices run by ``sealbox fleet
   --workers 1`` and ``--workers W`` (:func:`sealbox_tools.fleet.workers.run_workers`,
   in process on moto, no audit), both through the same code path (one
   spawned process per shard).  Throughput is requests per second of the
   fleet run itself: all requests over the slowest shard's run time (from
   the first phase to the last; process start, backend setup and the audit
   excluded).  The result is the ratio W / 1, measured in the same run.
   On a machine with fewer free cores than W, the ratio says so.
2. **Memory per phone**: peak resident memory of the worker process that
   ran ``--memory-devices`` phones (one worker, in process, with the
   audit's log capture on, as ``sealbox fleet`` runs), divided by the
   number of phones.

Absolute numbers are this machine's; the ratio is what compares.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.results import ratio, record

#: Issue 16's memory goal: peak resident memory per phone.
MIB_PER_PHONE_BUDGET = 1.0


def fleet(devices: int, workers: int, scenario: str, audit: bool) -> dict[str, Any]:
    from sealbox_tools.fleet.runner import FleetConfig
    from sealbox_tools.fleet.workers import BackendSpec, run_workers

    config = FleetConfig(
        devices=devices, scenario=scenario, audit=audit, retry_backoff=0.0, concurrency=8
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as work:
        result = run_workers(config, workers, BackendSpec(), work_dir=Path(work))
    report = result.report
    slowest = max(shard["wall_s"] for shard in report["run"]["shards"])
    return {
        "workers": workers,
        "devices": devices,
        "requests": report["metrics"]["requests"],
        "slowest_shard_s": slowest,
        "requests_per_s": round(report["metrics"]["requests"] / slowest, 1),
        "total_s": round(time.perf_counter() - started, 2),
        "passed": report["verdict"]["passed"],
        "deliveries_verified": report["outcome"]["deliveries_verified"],
    }


def peak_rss_children_mib() -> float:
    # Linux reports ru_maxrss in KiB: the largest of the finished children.
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _ratios(out: dict[str, Any], workers: int) -> list[dict[str, Any]]:
    """Issue 16's goals: the speed-up of ``workers`` processes, memory per phone."""
    t = out["throughput"]
    entries = [
        ratio(
            "fleet_workers_speedup",
            f"in-process fleet, --workers {workers} vs 1, {t['one']['devices']} devices",
            t["speedup"],
            ours=f"{t['many']['requests_per_s']:.0f} req/s",
            baseline=f"--workers 1 {t['one']['requests_per_s']:.0f} req/s",
            goal=">= 1.7",
        )
    ]
    if "memory" in out:
        m = out["memory"]
        entries.append(
            ratio(
                "fleet_memory_per_phone",
                f"in-process fleet, peak RSS per phone ({m['devices']} phones, audit on)",
                m["mib_per_phone"] / MIB_PER_PHONE_BUDGET,
                ours=f"{m['mib_per_phone']:.2f} MiB/phone",
                baseline=f"budget {MIB_PER_PHONE_BUDGET:.0f} MiB/phone",
                goal="<= 1.0",
            )
        )
    return entries


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet_workers", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--devices", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-devices", type=int, default=0, help="0: skip the memory run")
    parser.add_argument("--scenario", default="standard", choices=("standard", "full"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {}
    one = fleet(args.devices, 1, args.scenario, audit=False)
    many = fleet(args.devices, args.workers, args.scenario, audit=False)
    out["throughput"] = {
        "one": one,
        "many": many,
        "speedup": round(many["requests_per_s"] / max(one["requests_per_s"], 1e-9), 2),
    }
    if args.memory_devices:
        # Only the memory run's worker is a child after this point that can
        # exceed the earlier ones: measure the maximum before and after.
        before = peak_rss_children_mib()
        run = fleet(args.memory_devices, 1, args.scenario, audit=True)
        peak = peak_rss_children_mib()
        out["memory"] = {
            "devices": args.memory_devices,
            "peak_rss_mib": round(peak, 1),
            "mib_per_phone": round(peak / args.memory_devices, 3),
            "earlier_peak_mib": round(before, 1),
            "passed": run["passed"],
        }
    out["ratios"] = _ratios(out, args.workers)
    record("fleet_workers", out)
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
        return
    t = out["throughput"]
    print(f"in-process fleet, {args.devices} devices, scenario {args.scenario!r}, no audit")
    for row in (t["one"], t["many"]):
        print(
            f"  --workers {row['workers']}: {row['requests']} requests in "
            f"{row['slowest_shard_s']:.1f} s (slowest shard) = {row['requests_per_s']:.0f}/s; "
            f"{row['total_s']:.1f} s with process start and setup; "
            f"{'PASS' if row['passed'] else 'FAIL'}"
        )
    print(f"  speed-up --workers {args.workers} vs 1: {t['speedup']:.2f}x")
    if "memory" in out:
        m = out["memory"]
        print(
            f"  memory: {m['devices']} phones in one worker peaked at {m['peak_rss_mib']:.0f} MiB "
            f"RSS = {m['mib_per_phone']:.2f} MiB per phone "
            f"({'PASS' if m['passed'] else 'FAIL'})"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
