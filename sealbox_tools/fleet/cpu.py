"""Client CPU attribution: cryptography, key derivation, server, the rest.

Every primitive a device runs goes through ``client_sim._hazmat``; while a
:class:`CpuAccounting` is installed, each call's *thread* CPU time is added to
one of two buckets -- ``kdf`` (Argon2id and scrypt: deliberately expensive)
or ``crypto`` (everything else).  In-process fleets also run the server in
the device's thread, so the in-process transport's time is counted as
``server`` and subtracted from the client's share.  What remains of the
process CPU time is ``other`` (the SDK, JSON, the simulator itself).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from client_sim import _hazmat
from client_sim.transport import HttpReply, ObjectResponse, ObjectTransport, Readable, Transport

KDF_FUNCTIONS = frozenset({"argon2id", "scrypt_derive"})
_SKIP = frozenset({"random_bytes", "timing_safe_equal"})


class CpuAccounting:
    """Thread-CPU seconds spent per bucket, summed over threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self.seconds: dict[str, float] = {"kdf": 0.0, "crypto": 0.0, "server": 0.0}

    def add(self, bucket: str, seconds: float) -> None:
        with self._lock:
            self.seconds[bucket] += seconds

    @contextmanager
    def measure(self, bucket: str) -> Iterator[None]:
        """Count this thread's CPU time in ``bucket`` (outermost call only)."""
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        started = time.thread_time()
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                self.add(bucket, time.thread_time() - started)

    def breakdown(self, total_cpu: float) -> dict[str, float]:
        """Seconds and shares of ``total_cpu`` (the process CPU of the run)."""
        with self._lock:
            seconds = dict(self.seconds)
        seconds["other"] = max(0.0, total_cpu - sum(seconds.values()))
        total = max(total_cpu, 1e-9)
        out: dict[str, float] = {f"{k}_s": round(v, 3) for k, v in seconds.items()}
        out.update({f"{k}_share": round(v / total, 4) for k, v in seconds.items()})
        return out


@contextmanager
def instrument_hazmat(accounting: CpuAccounting) -> Iterator[None]:
    """Wrap every public ``_hazmat`` function while the context is active."""
    originals: dict[str, Callable[..., Any]] = {}
    for name in _hazmat.__all__:
        fn = getattr(_hazmat, name)
        if not callable(fn) or isinstance(fn, type) or name in _SKIP:
            continue
        bucket = "kdf" if name in KDF_FUNCTIONS else "crypto"
        originals[name] = fn

        def wrapped(*args: Any, _fn: Any = fn, _bucket: str = bucket, **kwargs: Any) -> Any:
            with accounting.measure(_bucket):
                return _fn(*args, **kwargs)

        setattr(_hazmat, name, functools.wraps(fn)(wrapped))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(_hazmat, name, fn)


class ServerTimedTransport:
    """For in-process fleets: the wrapped transport's CPU counts as ``server``."""

    def __init__(self, inner: Transport, accounting: CpuAccounting) -> None:
        self._inner = inner
        self._accounting = accounting

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        with self._accounting.measure("server"):
            return self._inner.request(method, path, body=body, headers=headers)


class ServerTimedObjects:
    """For in-process fleets: presigned transfers run moto's S3 in the
    caller's thread, so their CPU counts as ``server`` too."""

    def __init__(self, inner: ObjectTransport, accounting: CpuAccounting) -> None:
        self._inner = inner
        self._accounting = accounting

    def put(
        self, url: str, body: Readable, *, length: int, headers: Mapping[str, str]
    ) -> HttpReply:
        with self._accounting.measure("server"):
            return self._inner.put(url, body, length=length, headers=headers)

    def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> ObjectResponse:
        with self._accounting.measure("server"):
            return self._inner.get(url, headers=headers)
