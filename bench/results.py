"""Benchmark results as JSON: what each benchmark measured, and its ratios.

Every benchmark that compares Sealbox with a baseline measured in the same
run reports each comparison as a *ratio* through :func:`ratio`, and hands
its whole result to :func:`record`.  ``make bench`` (``python -m bench``)
points :data:`RESULTS_ENV` at a scratch directory, runs every benchmark,
and merges what they recorded into ``bench/results/latest.json`` with the
machine, the git commit and the time (:func:`assemble`), so numbers can be
compared across commits.  The README's benchmark table is rendered from
that file by :mod:`bench.report`.

A ratio is oriented so that its goal reads as written in the issue that set
it: ``sealbox wall / age CLI wall <= 1.0``, ``sealbox MB/s / raw MB/s >=
0.95``.  ``met`` is computed here, never typed in.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS_ENV",
    "RESULTS_PATH",
    "ROOT",
    "assemble",
    "git_commit",
    "machine",
    "meets",
    "ratio",
    "record",
]

ROOT = Path(__file__).resolve().parent.parent
#: Where ``make bench`` writes the merged results.
RESULTS_PATH = ROOT / "bench" / "results" / "latest.json"
#: The directory benchmarks write their partial results to (set by ``python -m bench``).
RESULTS_ENV = "SEALBOX_BENCH_RESULTS"


def meets(value: float, goal: str) -> bool:
    """Whether ``value`` satisfies ``goal`` (``"<= 1.0"`` or ``">= 0.95"``).

    Raises:
        ValueError: a goal in another form.
    """
    op, _, bound = goal.strip().partition(" ")
    limit = float(bound)
    if op == "<=":
        return value <= limit
    if op == ">=":
        return value >= limit
    raise ValueError(f"a goal is '<= X' or '>= X', not {goal!r}")


def ratio(
    key: str,
    what: str,
    value: float,
    *,
    ours: str,
    baseline: str,
    goal: str | None = None,
) -> dict[str, Any]:
    """One comparison, as it goes into the JSON and the README table.

    Args:
        key: a stable identifier (``age_cli_encrypt_wall``).
        what: what was compared, for people.
        value: the ratio, oriented as ``goal`` reads.
        ours: our measurement, with its unit (``"0.61 s"``).
        baseline: the baseline and its measurement (``"age CLI 0.55 s"``).
        goal: ``"<= X"`` or ``">= X"``, or None for a ratio reported only.
    """
    entry: dict[str, Any] = {
        "key": key,
        "what": what,
        "value": round(value, 3),
        "ours": ours,
        "baseline": baseline,
        "goal": goal,
        "met": None if goal is None else meets(round(value, 3), goal),
    }
    return entry


def record(name: str, result: dict[str, Any]) -> None:
    """Hand one benchmark's result (with a ``ratios`` list) to ``python -m bench``.

    Does nothing when the benchmark runs alone (no :data:`RESULTS_ENV`).
    """
    directory = os.environ.get(RESULTS_ENV)
    if not directory:
        return
    path = Path(directory) / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def git_commit() -> dict[str, Any]:
    """The commit the benchmarks ran on, and whether the tree had changes."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(changed)}


def machine() -> dict[str, Any]:
    """What the numbers were measured on (they mean little elsewhere)."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    try:
        import cryptography

        crypto_version = cryptography.__version__
    except ImportError:  # pragma: no cover - a dependency of the project
        crypto_version = ""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load,
        "cryptography": crypto_version,
    }


def assemble(
    directory: Path,
    *,
    started: float,
    finished: float,
    machine_info: dict[str, Any],
    git_info: dict[str, Any],
) -> dict[str, Any]:
    """Merge the benchmarks' partial results from ``directory`` into one document.

    ``git_info`` is :func:`git_commit` as it was when the run started (the
    code that was measured), not after.
    """
    benchmarks: dict[str, Any] = {}
    for path in sorted(directory.glob("*.json")):
        benchmarks[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    ratios = [entry for result in benchmarks.values() for entry in result.get("ratios", [])]
    return {
        "format": 1,
        "machine": machine_info,
        "git": git_info,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(finished - started, 1),
        "ratios": ratios,
        "benchmarks": benchmarks,
    }
