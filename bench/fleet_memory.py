"""Where an in-process fleet's memory goes, per phone.

    python -m bench.fleet_memory [--small N] [--large M] [--top K] [--frames F]
                                 [--scenario standard|full]

Runs the same in-process fleet (one worker, audit and log capture on, as
``sealbox fleet`` and ``bench.fleet_workers --memory-devices`` run it) at
two phone counts, each in a fresh process.  Per run: the peak RSS of the
phases (read just before the privacy audit starts), the peak with the
audit, and the RSS before the audit; their growth from ``N`` to ``M``
phones divided by ``M - N`` is the cost of one more phone, what doesn't
grow is fixed.  Just before the audit (everything the run holds: phones,
ledger, needles, the server's state) it takes a census of live objects by
type, and of the larger byte strings by what holds them, and prints what
grows per phone.  With ``--frames F`` it also runs under :mod:`tracemalloc`
(F frames; about ten times slower) and compares allocation sites.

A diagnostic: ``bench.fleet_workers --memory-devices`` gives the
peak-per-phone figure the goal is stated in.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import tracemalloc
from collections import defaultdict
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parent.parent)


def _rss_mib(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak so far) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _owner(obj: object, depth: int = 3) -> str:
    """Who holds ``obj``: the types up the first chain of referrers."""
    import gc

    names = []
    current = obj
    for _ in range(depth):
        holders = [
            r
            for r in gc.get_referrers(current)
            if type(r).__name__ not in ("frame", "list_iterator", "list_reverseiterator")
        ]
        if not holders:
            break
        current = holders[0]
        names.append(type(current).__qualname__)
        if not isinstance(current, dict | list | tuple | set):
            break
    return " < ".join(names) or "?"


def _census() -> dict[str, Any]:
    """Objects by type (count, bytes), and who holds the larger byte strings."""
    import gc
    import random as rnd

    gc.collect()
    objects = gc.get_objects()
    by_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    blobs = []
    for obj in objects:
        row = by_type[type(obj).__qualname__]
        row[0] += 1
        row[1] += sys.getsizeof(obj)
    # Byte strings aren't tracked by the collector: find them through their holders.
    for obj in objects:
        if isinstance(obj, dict | list | tuple):
            values = obj.values() if isinstance(obj, dict) else obj
            for value in values:
                if isinstance(value, bytes | bytearray) and len(value) >= 512:
                    blobs.append((len(value), obj))
    owners: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    sample = rnd.Random(0).sample(blobs, min(len(blobs), 3000))
    scale = len(blobs) / max(len(sample), 1)
    for size, holder in sample:
        row = owners[type(holder).__qualname__ + " < " + _owner(holder)]
        row[0] += round(scale)
        row[1] += round(size * scale)
    return {"types": dict(by_type), "bytes_owners": dict(owners)}


def _child(devices: int, scenario: str, frames: int, out: Path) -> None:
    if frames:
        tracemalloc.start(frames)
    from sealbox_tools.fleet.backends import InProcessBackend
    from sealbox_tools.fleet.runner import FleetConfig, run_fleet

    config = FleetConfig(
        devices=devices, scenario=scenario, audit=True, retry_backoff=0.0, concurrency=8
    )
    numbers: dict[str, Any] = {"devices": devices}

    def before_audit(backend: Any, secrets: Any) -> None:
        numbers["peak_rss_phases_mib"] = _rss_mib("VmHWM")
        census = _census()
        numbers["rss_before_audit_mib"] = _rss_mib("VmRSS")
        with open(out.with_suffix(".census"), "w") as handle:
            json.dump(census, handle)
        if frames:
            snapshot = tracemalloc.take_snapshot().filter_traces(
                (tracemalloc.Filter(False, tracemalloc.__file__),)
            )
            with open(out.with_suffix(".snap"), "wb") as handle:
                pickle.dump(snapshot, handle)

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as work, InProcessBackend() as backend:
        result = run_fleet(config, backend, work_dir=Path(work), before_audit=before_audit)
    numbers["peak_rss_mib"] = _rss_mib("VmHWM")
    numbers["passed"] = result.passed
    numbers["deliveries_verified"] = result.report["outcome"]["deliveries_verified"]
    out.write_text(json.dumps(numbers))


def _site(trace: tracemalloc.StatisticDiff | tracemalloc.Statistic) -> str:
    """An allocation site: the innermost frame and the innermost frames of our code."""
    frames = list(reversed(trace.traceback))  # innermost first
    ours = [f for f in frames if f.filename.startswith(_ROOT) and "/.venv/" not in f.filename]
    shown = [frames[0], *[f for f in ours[:3] if f is not frames[0]]]
    return " < ".join(f"{_short(f.filename)}:{f.lineno}" for f in shown)


def _short(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if path.startswith(_ROOT):
        return path[len(_ROOT) + 1 :]
    return path.rsplit("/", 2)[-1]


def _by_site(snapshot: tracemalloc.Snapshot) -> dict[str, int]:
    sizes: dict[str, int] = defaultdict(int)
    for stat in snapshot.statistics("traceback"):
        sizes[_site(stat)] += stat.size
    return sizes


def _run(devices: int, scenario: str, frames: int, work: Path) -> tuple[dict[str, Any], Any, Any]:
    out = work / f"run-{devices}.json"
    subprocess.run(
        [
            *(sys.executable, "-m", "bench.fleet_memory", "--child", str(devices)),
            *("--out", str(out), "--scenario", scenario, "--frames", str(frames)),
        ],
        check=True,
        cwd=_ROOT,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    snapshot = None
    if frames:
        with open(out.with_suffix(".snap"), "rb") as handle:
            snapshot = pickle.load(handle)
    census = json.loads(out.with_suffix(".census").read_text())
    return json.loads(out.read_text()), census, snapshot


def _growth(a: dict[str, list[int]], b: dict[str, list[int]], span: int, top: int) -> None:
    rows = sorted(((b.get(k, [0, 0])[1] - a.get(k, [0, 0])[1], k) for k in {*a, *b}), reverse=True)
    for size, key in rows[:top]:
        count = b.get(key, [0, 0])[0] - a.get(key, [0, 0])[0]
        print(f"  {size / span / 1024:8.1f} KiB  {count / span:9.1f} objects  {key}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet_memory", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--large", type=int, default=150)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--frames", type=int, default=0, help="tracemalloc frames (0: off)")
    parser.add_argument("--scenario", default="standard", choices=("standard", "full"))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.scenario, args.frames, args.out)
        return
    if args.large <= args.small:
        parser.error("--large must be more phones than --small")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        small, census_small, snap_small = _run(args.small, args.scenario, args.frames, Path(tmp))
        large, census_large, snap_large = _run(args.large, args.scenario, args.frames, Path(tmp))
    for numbers in (small, large):
        print(
            f"{numbers['devices']} phones: peak RSS {numbers['peak_rss_phases_mib']} MiB in the "
            f"phases, {numbers['peak_rss_mib']} MiB with the audit; RSS before the audit "
            f"{numbers['rss_before_audit_mib']} MiB; {numbers['deliveries_verified']} "
            f"deliveries verified; {'PASS' if numbers['passed'] else 'FAIL'}"
        )
    span = args.large - args.small
    for name in ("peak_rss_phases_mib", "peak_rss_mib", "rss_before_audit_mib"):
        print(f"  {name} per extra phone: {(large[name] - small[name]) / span * 1024:.0f} KiB")
    print(f"objects held before the audit, by type, growth per phone (top {args.top}):")
    _growth(census_small["types"], census_large["types"], span, args.top)
    print("byte strings of 512 bytes or more, by holder, growth per phone (sampled):")
    _growth(census_small["bytes_owners"], census_large["bytes_owners"], span, args.top)
    if snap_small is not None and snap_large is not None:
        a, b = _by_site(snap_small), _by_site(snap_large)
        print(f"allocation sites by growth per phone (top {args.top}):")
        _growth(
            {k: [0, v] for k, v in a.items()}, {k: [0, v] for k, v in b.items()}, span, args.top
        )


if __name__ == "__main__":
    main()
