"""Cold-start cost: ``import app`` next to ``import chalice, boto3``.

    python -m bench.import_time [--runs N] [--json]

Each figure is the wall time of a fresh interpreter doing only that import
(minus a bare interpreter start), median of ``--runs``.  ``app`` defers
boto3 until the first request that needs AWS, so a cold Lambda that is
answering from cache, or rejecting bad input, doesn't pay for it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "python -c pass": "pass",
    "import chalice": "import chalice",
    "import chalice, boto3": "import chalice, boto3",
    "import app": "import app",
    "import app + first AWS client": (
        "import app; from chalicelib.wiring import Container; from chalicelib.config import "
        "Settings; from sealbox_tools.local_stack import stage_environment; "
        "Container(Settings.from_env(stage_environment('test'))).dynamodb"
    ),
}


def measure(code: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            check=True,
            env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"},
        )
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    raw = {name: measure(code, args.runs) for name, code in CASES.items()}
    base = raw["python -c pass"]
    result = {name: round(ms - base, 1) for name, ms in raw.items() if name != "python -c pass"}
    result["interpreter_start_ms"] = round(base, 1)
    result["app_over_chalice_boto3"] = round(
        result["import app"] / result["import chalice, boto3"], 3
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"import cost above a bare interpreter start ({base:.1f} ms), median of {args.runs}:")
    for name, ms in result.items():
        if name.endswith("_ms") or name.startswith("app_over"):
            continue
        print(f"  {name:<32} {ms:7.1f} ms")
    print(f"  import app / import chalice, boto3: {result['app_over_chalice_boto3']}")


if __name__ == "__main__":
    main()
