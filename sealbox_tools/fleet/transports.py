"""Transport wrappers for fleets: timing, and an unreliable network."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping

from client_sim.errors import ConnectionFailed
from client_sim.transport import HttpReply, ObjectResponse, ObjectTransport, Readable, Transport
from sealbox_tools.fleet.metrics import Metrics, route_template


class MeteredTransport:
    """Times every request into ``metrics``, grouped by route template."""

    def __init__(self, inner: Transport, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        route = route_template(method, path)
        started = time.perf_counter()
        try:
            reply = self._inner.request(method, path, body=body, headers=headers)
        except ConnectionFailed:
            self._metrics.request(route, None, time.perf_counter() - started)
            raise
        self._metrics.request(route, reply.status, time.perf_counter() - started)
        return reply


class FlakyTransport:
    """Drops a fraction of requests, seeded, like a phone on a bad network.

    A drop happens either *before* the request reaches the server (nothing
    happened) or *after* (the server acted but the answer was lost) -- the
    second kind is what makes idempotency keys and retries matter.  While
    :attr:`offline` is set, every request fails without reaching the server.
    :attr:`drop_rate` may be changed while it runs (0 heals the network).
    """

    def __init__(self, inner: Transport, *, drop_rate: float, seed: int) -> None:
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError("drop_rate must be in [0, 1)")
        self._inner = inner
        self.drop_rate = drop_rate
        self._rng = random.Random(seed)  # noqa: S311 - simulated network faults, not secrets
        self._lock = threading.Lock()
        self.offline = False
        self.dropped_before = 0
        self.dropped_after = 0

    def _roll(self) -> tuple[bool, bool]:
        with self._lock:
            drop = self._rng.random() < self.drop_rate
            after = self._rng.random() < 0.5
        return drop and not after, drop and after

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        if self.offline:
            raise ConnectionFailed(f"{method} {path}: offline")
        before, after = self._roll()
        if before:
            self.dropped_before += 1
            raise ConnectionFailed(f"{method} {path}: connection reset (simulated)")
        reply = self._inner.request(method, path, body=body, headers=headers)
        if after:
            self.dropped_after += 1
            raise ConnectionFailed(f"{method} {path}: reply lost (simulated)")
        return reply


class MeteredObjects:
    """Times presigned transfers into ``metrics`` as ``PUT object`` and
    ``GET object`` (a GET's time is until the reply's headers; the body is
    streamed by the caller)."""

    def __init__(self, inner: ObjectTransport, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def put(
        self, url: str, body: Readable, *, length: int, headers: Mapping[str, str]
    ) -> HttpReply:
        started = time.perf_counter()
        try:
            reply = self._inner.put(url, body, length=length, headers=headers)
        except ConnectionFailed:
            self._metrics.request("PUT object", None, time.perf_counter() - started)
            raise
        self._metrics.request("PUT object", reply.status, time.perf_counter() - started)
        return reply

    def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> ObjectResponse:
        started = time.perf_counter()
        try:
            response = self._inner.get(url, headers=headers)
        except ConnectionFailed:
            self._metrics.request("GET object", None, time.perf_counter() - started)
            raise
        self._metrics.request("GET object", response.status, time.perf_counter() - started)
        return response
