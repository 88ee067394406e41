"""A device fleet in process on moto: throughput, latencies, where the CPU goes.

    python -m bench.fleet [--devices N] [--scenario standard|full] [--seed S]
                          [--concurrency C] [--no-audit] [--report FILE] [--json]

Runs :func:`sealbox_tools.fleet.runner.run_fleet` against the Chalice app in
this process (``InProcessBackend``: moto's ``mock_aws``, one serialized warm
container) and reports:

* wall time, requests per second and wall time per device;
* per-route p50 and p99 latencies, and their ratio (the tail against the
  median, measured in the same run).  In process a request's latency
  includes its wait for the one server lock, as on a single warm Lambda
  container with queued requests;
* the process CPU split: password KDF, other cryptography (both on the
  devices, counted per call to ``client_sim._hazmat``), the server (the
  in-process app and moto, counted per request) and everything else (the
  SDK, JSON, the simulator);
* the privacy audit: what it scanned, and how long the scan took.

Absolute numbers are this machine's; the shares and ratios are what
compare across machines.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Routes shown in the table (every route is in --json).
_MAIN_ROUTES = (
    "POST /v1/users",
    "POST /v1/sessions",
    "POST /v1/tokens",
    "GET /v1/cards",
    "POST /v1/cards",
    "PUT /v1/backups/primary",
    "POST /v1/blobs",
    "PUT /v1/blobs/{id}/content",
    "PUT object",
    "POST /v1/blobs/{id}/commit",
    "GET /v1/blobs",
    "GET /v1/blobs/{id}",
    "GET object",
)


def run(devices: int, scenario: str, seed: int, concurrency: int, audit: bool) -> dict[str, Any]:
    from sealbox_tools.fleet.backends import InProcessBackend
    from sealbox_tools.fleet.runner import FleetConfig, run_fleet

    config = FleetConfig(
        devices=devices,
        scenario=scenario,
        seed=seed,
        concurrency=concurrency,
        audit=audit,
        retry_backoff=0.0,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as work, InProcessBackend() as backend:
        result = run_fleet(config, backend, work_dir=Path(work), progress=sys.stderr)
    report = result.report
    report["bench"] = {"total_s": round(time.perf_counter() - started, 3)}
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--scenario", default="full", choices=("standard", "full"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-audit", dest="audit", action="store_false")
    parser.add_argument("--report", type=Path, help="also write the full JSON report here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.devices < 2:
        parser.error("--devices must be at least 2")
    # Keep the app's per-request log lines off the terminal; the fleet's
    # capture still sees them (it replaces the handler while it runs).
    logging.getLogger("sealbox").handlers.clear()
    r = run(args.devices, args.scenario, args.seed, args.concurrency, args.audit)
    if args.report:
        args.report.write_text(json.dumps(r, indent=2, sort_keys=True) + "\n")
    if args.json:
        print(json.dumps(r, indent=2, sort_keys=True))
        return
    metrics, cpu, outcome = r["metrics"], r["cpu"], r["outcome"]
    wall = r["run"]["wall_s"]
    print(
        f"fleet in process on moto: {args.devices} devices, scenario {args.scenario!r}, "
        f"seed {args.seed}, concurrency {args.concurrency}"
    )
    print(
        f"  run {wall:.1f} s wall ({wall / args.devices * 1000:.0f} ms per device), "
        f"{metrics['requests']} requests ({metrics['requests_per_s']:.0f}/s), "
        f"{r['bench']['total_s']:.1f} s with setup and audit"
    )
    print(
        f"  deliveries {outcome['deliveries_verified']}/{outcome['deliveries_expected']} verified, "
        f"{outcome['mismatches']} mismatched, {outcome['undelivered']} missing, "
        f"{outcome['failed_steps']} failed steps, {outcome['retries']} retries"
    )
    print(f"  {'route':<30} {'count':>7} {'p50 ms':>9} {'p99 ms':>9} {'p99/p50':>8}")
    for route in _MAIN_ROUTES:
        row = metrics["routes"].get(route)
        if row:
            ratio = row["p99_ms"] / max(row["p50_ms"], 1e-6)
            print(
                f"  {route:<30} {row['count']:>7} {row['p50_ms']:>9.2f} "
                f"{row['p99_ms']:>9.2f} {ratio:>8.1f}"
            )
    total = sum(cpu[f"{k}_s"] for k in ("kdf", "crypto", "server", "other"))
    print(
        f"  process CPU {total:.1f} s: "
        + ", ".join(
            f"{k} {cpu[f'{k}_share'] * 100:.1f}%" for k in ("kdf", "crypto", "server", "other")
        )
        + f"; device crypto+KDF vs the rest of the device's work: "
        f"{(cpu['kdf_s'] + cpu['crypto_s']) / max(cpu['other_s'], 1e-9):.2f}"
    )
    audit = r.get("audit")
    if audit and "scanned" in audit:
        scanned = sum(audit["scanned_bytes"].values())
        print(
            f"  audit: {audit['needles']} secrets over {scanned / 1e6:.1f} MB in "
            f"{audit['seconds']:.1f} s ({scanned / 1e6 / max(audit['seconds'], 1e-9):.0f} MB/s), "
            f"{'PASS' if audit['passed'] else 'FAIL'}"
        )
    print(f"  verdict: {'PASS' if r['verdict']['passed'] else 'FAIL'}")


if __name__ == "__main__":
    main()
