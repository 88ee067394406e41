"""Run every benchmark, write ``bench/results/latest.json`` and the README table.

    python -m bench          (or: make bench)
    python -m bench --quick  (smaller sizes, for a look; still writes the JSON)
    python -m bench --only bench.blobs   (rerun one benchmark of the full run and
                                          replace its results in latest.json)

Each benchmark is also runnable alone, with other sizes, as
``python -m bench.<name> --help`` explains.  Results are ratios against a
baseline measured in the same run, because absolute times on a shared
machine are noise; the ones with a goal are listed in the README's table
(:mod:`bench.report`), every number is in the JSON (:mod:`bench.results`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import report
from bench.results import RESULTS_ENV, RESULTS_PATH, ROOT, assemble, git_commit, machine

# The sizes the goals are stated at (issue 17): 256 MiB through the age
# command line, peak RSS from 1 MiB to 1 GiB, blobs of 100 MiB and 1 GiB.
FULL = [
    ["bench.import_time", "--runs", "7"],
    ["bench.tokens", "--tokens", "5000"],
    ["bench.login", "--logins", "30"],
    ["bench.oprf", "--evaluations", "500", "--rounds", "3"],
    ["bench.directory", "--users", "60", "--rounds", "20"],
    ["bench.kt", "--leaves", "100000", "--publishes", "300"],
    ["bench.api_overhead", "--requests", "200"],
    ["bench.age_throughput", "--size", "256MiB", "--rss-sizes", "1MiB,1GiB", "--runs", "5"],
    [
        "bench.blobs",
        "--sizes",
        "100MiB,1GiB",
        "--rss-sizes",
        "1MiB,1GiB",
        "--runs",
        "5",
        "--large-runs",
        "3",
    ],
    ["bench.fleet", "--devices", "60", "--scenario", "full"],
    # Memory per phone at the size issue 16 states its goal for (fixed costs amortized).
    ["bench.fleet_workers", "--devices", "60", "--workers", "2", "--memory-devices", "1000"],
    ["bench.locust_rate", "--users", "40", "--run-time", "60"],
    ["bench.chunk_randomness", "--chunks", "100000", "--bytes-chunks", "2600"],
    # The transport count registers a real device per member (about 1 s each
    # under load); what a member downloads doesn't depend on the group's size,
    # the baseline's roster does: 200 shows it.
    [
        "bench.groups",
        "--members",
        "1000",
        "--rounds",
        "2",
        "--messages",
        "100",
        "--transport-members",
        "200",
    ],
]
QUICK = [
    ["bench.api_overhead", "--requests", "60"],
    ["bench.age_throughput", "--size", "64MiB", "--rss-sizes", "1MiB,64MiB", "--runs", "3"],
    ["bench.blobs", "--sizes", "32MiB", "--rss-sizes", "1MiB,32MiB", "--runs", "1"],
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer benchmarks")
    parser.add_argument(
        "--no-readme", action="store_true", help="write the JSON but leave README.md alone"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="MODULE",
        help="rerun this benchmark of the full run only and merge it into latest.json",
    )
    args = parser.parse_args(argv)
    runs = QUICK if args.quick else FULL
    if args.only:
        # "--only MODULE" reruns it as in the full run; "--only 'MODULE ARGS'"
        # with other arguments (which the rerun record then shows).
        full = {argv_[0]: argv_ for argv_ in FULL}
        runs = []
        for only in args.only:
            module, *extra = only.split()
            if module not in full:
                parser.error(f"--only takes modules of the full run: {sorted(full)}")
            runs.append([module, *extra] if extra else full[module])
    machine_info = machine()
    git_info = git_commit()
    started = time.time()
    failed = 0
    with tempfile.TemporaryDirectory(prefix="sealbox-bench-") as scratch:
        env = {**os.environ, RESULTS_ENV: scratch}
        for argv_ in runs:
            print(f"\n$ python -m {' '.join(argv_)}", flush=True)
            failed += subprocess.call([sys.executable, "-m", *argv_], env=env) != 0
        results = assemble(
            Path(scratch),
            started=started,
            finished=time.time(),
            machine_info=machine_info,
            git_info=git_info,
        )
    results["quick"] = args.quick
    if args.only and failed:
        print("\na rerun failed: bench/results/latest.json and README.md left as they were")
        return 1
    if args.only:
        # Keep the earlier full run; this run's benchmarks replace their own
        # results there, and the rerun is said (when, on which commit).
        earlier = json.loads(RESULTS_PATH.read_text(encoding="utf-8"))
        rerun = set(results["benchmarks"])
        earlier["benchmarks"].update(results["benchmarks"])
        earlier.setdefault("reruns", []).append(
            {
                "benchmarks": sorted(rerun),
                "argv": [" ".join(argv_) for argv_ in runs],
                "started": results["started"],
                "git": results["git"],
            }
        )
        earlier["ratios"] = [
            entry for result in earlier["benchmarks"].values() for entry in result.get("ratios", [])
        ]
        results = earlier
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {RESULTS_PATH.relative_to(ROOT)}")
    print(report.render(results))
    if not args.no_readme:
        report.main(["--write"])
        print("README.md's benchmark table rewritten from it")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
