"""Thread-safe run metrics: per-route latencies, outcomes, throughput."""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Path segments that are ids, not routes: replaced by a placeholder so that
# latencies group by route template (``/v1/blobs/{id}``), not by object.
_ID_SEGMENT = re.compile(r"^(?:[A-Za-z0-9_-]{20,}|\d+)$")


def route_template(method: str, path: str) -> str:
    """``GET /v1/blobs/abc...`` -> ``GET /v1/blobs/{id}`` (query string dropped)."""
    bare = path.split("?", 1)[0]
    parts = ["{id}" if _ID_SEGMENT.match(p) else p for p in bare.split("/")]
    return f"{method.upper()} {'/'.join(parts)}"


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of a non-empty list."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Metrics:
    """Everything a fleet run counts.  All methods are thread-safe."""

    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    # (second since start) -> completed requests, for throughput over time.
    timeline: Counter[int] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    # Measured quantities (seconds, ...) by name, for bounds a run checks.
    observed: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def request(self, route: str, status: int | None, seconds: float) -> None:
        """One request finished (``status`` None: no HTTP answer)."""
        with self._lock:
            self.latencies[route].append(seconds)
            self.statuses[route][status if status is not None else 0] += 1
            self.timeline[int(self.clock() - self.started)] += 1

    def count(self, event: str, n: int = 1) -> None:
        """A scenario event: ``delivered``, ``mismatch``, ``retry``, ..."""
        with self._lock:
            self.events[event] += n

    def observe(self, name: str, value: float) -> None:
        """A measured value (e.g. ``revoked_card_still_served_s``)."""
        with self._lock:
            self.observed[name].append(value)

    def error(self, kind: str) -> None:
        """An error a device saw, by kind (``transport``, ``http_409``, ...)."""
        with self._lock:
            self.errors[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready view of the counters and per-route percentiles."""
        with self._lock:
            routes = {}
            for route, samples in sorted(self.latencies.items()):
                routes[route] = {
                    "count": len(samples),
                    "p50_ms": round(percentile(samples, 0.50) * 1000, 2),
                    "p95_ms": round(percentile(samples, 0.95) * 1000, 2),
                    "p99_ms": round(percentile(samples, 0.99) * 1000, 2),
                    "max_ms": round(max(samples) * 1000, 2),
                    "statuses": {str(k): v for k, v in sorted(self.statuses[route].items())},
                }
            elapsed = max(self.clock() - self.started, 1e-9)
            total = sum(len(s) for s in self.latencies.values())
            return {
                "elapsed_s": round(elapsed, 3),
                "requests": total,
                "requests_per_s": round(total / elapsed, 1),
                "routes": routes,
                "events": dict(sorted(self.events.items())),
                "errors": dict(sorted(self.errors.items())),
                "observed": {
                    name: {
                        "count": len(values),
                        "p50": round(percentile(values, 0.50), 3),
                        "max": round(max(values), 3),
                    }
                    for name, values in sorted(self.observed.items())
                },
                "timeline": [self.timeline.get(s, 0) for s in range(int(elapsed) + 1)],
            }

    def parts(self) -> dict[str, Any]:
        """The raw counters and samples as plain data (picklable, JSON-ready),
        for :meth:`merged` in another process."""
        with self._lock:
            return {
                "latencies": {k: list(v) for k, v in self.latencies.items()},
                "statuses": {k: dict(v) for k, v in self.statuses.items()},
                "timeline": dict(self.timeline),
                "events": dict(self.events),
                "errors": dict(self.errors),
                "observed": {k: list(v) for k, v in self.observed.items()},
            }

    @classmethod
    def merged(
        cls,
        parts: list[dict[str, Any]],
        elapsed: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> Metrics:
        """Several runs' :meth:`parts` as one run of ``elapsed`` seconds (their
        timelines, each counted from its own start, are added second by second)."""
        out = cls(clock=clock)
        out.started = clock() - elapsed
        for part in parts:
            for route, samples in part["latencies"].items():
                out.latencies[route].extend(samples)
            for route, statuses in part["statuses"].items():
                out.statuses[route].update({int(k): v for k, v in statuses.items()})
            out.timeline.update({int(k): v for k, v in part["timeline"].items()})
            out.events.update(part["events"])
            out.errors.update(part["errors"])
            for name, values in part["observed"].items():
                out.observed[name].extend(values)
        return out

    def live(self) -> tuple[float, int]:
        """(requests per second so far, errors so far), for progress displays."""
        with self._lock:
            elapsed = max(self.clock() - self.started, 1e-9)
            requests = sum(len(s) for s in self.latencies.values())
            return requests / elapsed, sum(self.errors.values())

    def latency_samples(self) -> dict[str, list[float]]:
        """Copies of the raw latency samples (seconds), for charts."""
        with self._lock:
            return {route: list(samples) for route, samples in self.latencies.items()}
