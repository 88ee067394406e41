"""False-positive rate of the commit check's ciphertext test on random data.

    python -m bench.chunk_randomness [--chunks N] [--bytes-chunks M] [--json]

The commit check refuses an upload whose first payload chunk has a
chi-squared statistic above ``agefile.CHI_SQUARED_LIMIT``
(``chalicelib/wire/agefile.py``).  Ciphertext is indistinguishable from
random bytes, so the rate at which *random* chunks are refused is the rate
at which legitimate uploads would be.  This measures it over chunk lengths
that occur (``MIN_TESTED_CHUNK`` bytes up to a full STREAM chunk of
64 KiB + 16), in two ways:

* ``--chunks N`` statistics drawn from the exact distribution of the byte
  counts of N uniformly random chunks (a multinomial draw per chunk, with
  numpy when it is installed: the counts are all the statistic depends on,
  and a million chunks of 64 KiB of real random bytes would take hours here);
* ``--bytes-chunks M`` chunks of real ``os.urandom`` bytes through the very
  function the server runs (``agefile.chi_squared``), as a cross-check.

Reports, per length and overall, the largest statistic seen and how many
were over the limit; with none over, the 95% upper bound on the rate is
3/N (the rule of three).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any

from chalicelib.wire import agefile

#: Lengths of the first chunk's bytes within the sniffed prefix: the shortest
#: tested, small files, and the full chunk (64 KiB of plaintext + the tag).
LENGTHS = (64, 65, 80, 100, 128, 200, 256, 512, 1024, 4096, 16384, 32768, 65536 + 16)


def _count_draws(chunks: int, seed: int) -> dict[int, tuple[float, int]]:
    np: Any = importlib.import_module("numpy")
    rng = np.random.default_rng(seed)
    uniform = np.full(256, 1 / 256)
    per_length = chunks // len(LENGTHS)
    out: dict[int, tuple[float, int]] = {}
    for n in LENGTHS:
        worst, over, left = 0.0, 0, per_length
        while left:
            batch = min(left, 50_000)
            counts = rng.multinomial(n, uniform, size=batch).astype(np.float64)
            stats = (counts**2).sum(axis=1) * 256 / n - n
            worst = max(worst, float(stats.max()))
            over += int((stats > agefile.CHI_SQUARED_LIMIT).sum())
            left -= batch
        out[n] = (worst, over)
    return out


def _byte_draws(chunks: int) -> dict[int, tuple[float, int]]:
    per_length = max(1, chunks // len(LENGTHS))
    out: dict[int, tuple[float, int]] = {}
    for n in LENGTHS:
        stats = [agefile.chi_squared(os.urandom(n)) for _ in range(per_length)]
        out[n] = (max(stats), sum(s > agefile.CHI_SQUARED_LIMIT for s in stats))
    return out


def _summary(kind: str, results: dict[int, tuple[float, int]], per_length: int) -> dict[str, Any]:
    total = per_length * len(results)
    over = sum(o for _, o in results.values())
    return {
        "kind": kind,
        "limit": agefile.CHI_SQUARED_LIMIT,
        "chunks": total,
        "over_limit": over,
        "rate": over / total if total else None,
        "rate_95_upper": (over or 3) / total if total else None,
        "max_statistic": max(w for w, _ in results.values()),
        "per_length": {str(n): {"max": round(w, 2), "over": o} for n, (w, o) in results.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--bytes-chunks", type=int, default=13_000)
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    reports = []
    try:
        results = _count_draws(args.chunks, args.seed)
        reports.append(_summary("multinomial counts", results, args.chunks // len(LENGTHS)))
    except ModuleNotFoundError:
        print("numpy is not installed: skipping the count draws", file=sys.stderr)
    per = max(1, args.bytes_chunks // len(LENGTHS))
    reports.append(_summary("os.urandom bytes", _byte_draws(args.bytes_chunks), per))
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for r in reports:
            print(
                f"{r['kind']}: {r['chunks']} chunks, {r['over_limit']} over "
                f"{r['limit']:g} (95% upper bound on the rate {r['rate_95_upper']:.1e}); "
                f"largest statistic {r['max_statistic']:.1f}"
            )
            for n, row in r["per_length"].items():
                print(f"  {n:>6} bytes: max {row['max']:>7.2f}  over {row['over']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
