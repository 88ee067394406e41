"""Fleet building blocks: route templates, metrics, fault injection, CPU, report."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import pytest

from client_sim import _hazmat
from client_sim.errors import ConnectionFailed
from client_sim.transport import HttpReply
from sealbox_tools.fleet.cpu import CpuAccounting, instrument_hazmat
from sealbox_tools.fleet.metrics import Metrics, percentile, route_template
from sealbox_tools.fleet.report import summary_text, write_html, write_json
from sealbox_tools.fleet.transports import FlakyTransport, MeteredTransport


class Echo:
    def __init__(self) -> None:
        self.calls = 0

    def request(self, method, path, *, body=None, headers=None):
        self.calls += 1
        return HttpReply(200, {}, b"{}")


def test_route_templates_group_ids() -> None:
    assert route_template("get", "/v1/blobs/AbCdEfGhIjKlMnOpQrStUv12") == "GET /v1/blobs/{id}"
    assert route_template("GET", "/v1/cards?identity=a&identity=b") == "GET /v1/cards"
    assert route_template("POST", "/v1/sessions") == "POST /v1/sessions"


def test_percentile_nearest_rank() -> None:
    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 0.5) == 50.0
    assert percentile(samples, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0


def test_metrics_are_thread_safe_and_summarised() -> None:
    metrics = Metrics()
    transport = MeteredTransport(Echo(), metrics)

    def hammer() -> None:
        for _ in range(500):
            transport.request("GET", "/v1/me")

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = metrics.snapshot()
    assert snap["requests"] == 2000
    assert snap["routes"]["GET /v1/me"]["statuses"] == {"200": 2000}
    assert sum(snap["timeline"]) == 2000


def test_flaky_transport_drops_before_and_after_reproducibly() -> None:
    def run(seed: int) -> tuple[int, int, int]:
        inner = Echo()
        flaky = FlakyTransport(inner, drop_rate=0.3, seed=seed)
        for _ in range(1000):
            with contextlib.suppress(ConnectionFailed):
                flaky.request("POST", "/v1/blobs")
        return flaky.dropped_before, flaky.dropped_after, inner.calls

    before, after, reached = run(7)
    assert run(7) == (before, after, reached)
    assert 200 < before + after < 400
    # Requests lost *after* the server acted still reached it.
    assert reached == 1000 - before
    flaky = FlakyTransport(Echo(), drop_rate=0.0, seed=1)
    flaky.offline = True
    with pytest.raises(ConnectionFailed):
        flaky.request("GET", "/v1/me")


def test_cpu_accounting_attributes_kdf_and_crypto_and_restores() -> None:
    original = _hazmat.argon2id
    accounting = CpuAccounting()
    with instrument_hazmat(accounting):
        assert _hazmat.argon2id is not original
        _hazmat.argon2id(
            b"x" * 16, salt=b"s" * 16, memory_kib=8 * 1024, iterations=2, lanes=1, length=32
        )
        _hazmat.hkdf_sha256(b"k" * 32, salt=b"", info=b"i")
    assert _hazmat.argon2id is original
    assert accounting.seconds["kdf"] > 0
    assert accounting.seconds["crypto"] >= 0
    shares = accounting.breakdown(total_cpu=accounting.seconds["kdf"] * 2)
    assert 0.45 < shares["kdf_share"] < 0.55


def test_report_files(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.request("GET /v1/me", 200, 0.004)
    metrics.request("GET /v1/me", 200, 0.006)
    metrics.count("delivered", 2)
    report = {
        "run": {"devices": 2, "scenario": "standard", "seed": 1, "mode": "in-process"},
        "metrics": metrics.snapshot(),
    }
    text = summary_text(report)
    assert "delivered 2" in text
    assert "GET /v1/me" in text
    write_json(report, tmp_path / "r.json")
    write_html(report, metrics.latency_samples(), tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert page.startswith("<!doctype html>")
    assert "<svg" in page
    assert "<script" not in page
