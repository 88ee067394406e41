"""Run every benchmark with sizes that finish in about a minute.

    python -m bench          (or: make bench)

Each benchmark is also runnable alone, with larger sizes, as
``python -m bench.<name> --help`` explains.  Results are ratios against a
baseline measured in the same run, because absolute times on a shared
machine are noise.
"""

from __future__ import annotations

import subprocess
import sys

RUNS = [
    ["bench.import_time", "--runs", "7"],
    ["bench.tokens", "--tokens", "5000"],
    ["bench.login", "--logins", "30"],
    ["bench.directory", "--users", "60", "--rounds", "20"],
    ["bench.kt", "--leaves", "100000", "--publishes", "60"],
    ["bench.age_throughput", "--size", "64MiB", "--rss-sizes", "1MiB,256MiB"],
    ["bench.blobs", "--size", "100MiB", "--rss-sizes", "1MiB,100MiB"],
    ["bench.fleet", "--devices", "60", "--scenario", "full"],
    ["bench.chunk_randomness", "--chunks", "100000", "--bytes-chunks", "2600"],
]


def main() -> int:
    failed = 0
    for argv in RUNS:
        print(f"\n$ python -m {' '.join(argv)}", flush=True)
        failed += subprocess.call([sys.executable, "-m", *argv]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
