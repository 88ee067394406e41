"""Fleet run reports: JSON, a human summary, and a self-contained HTML chart.

The chart is one HTML file with inline SVG (no scripts, no network, no
plotting library): per-route latency distributions as box plots on a log
scale, and completed requests per second over the run.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sealbox_tools.fleet.metrics import percentile


def summary_text(report: Mapping[str, Any]) -> str:
    """The human summary printed at the end of a run.

    Leads with what matters -- were the deliveries right -- then the
    events, errors, per-route latencies, CPU split, audit and the verdict.
    """
    lines = []
    run = report.get("run", {})
    lines.append(
        f"fleet: {run.get('devices')} devices, scenario {run.get('scenario')!r}, "
        f"seed {run.get('seed')}, mode {run.get('mode')}, "
        + (f"{run['workers']} worker processes, " if run.get("workers", 1) > 1 else "")
        + f"{report['metrics']['elapsed_s']:.1f} s wall"
    )
    outcome = report.get("outcome")
    if outcome:
        lines.append(
            f"deliveries: {outcome['deliveries_verified']}/{outcome['deliveries_expected']} "
            f"verified (content hash and signer), {outcome['mismatches']} mismatched, "
            f"{outcome['undelivered']} never arrived; {outcome['sends_completed']} of "
            f"{outcome['sends_planned']} sends completed; {outcome['failed_steps']} failed steps"
        )
    events = report["metrics"]["events"]
    lines.append(
        "events: "
        + ", ".join(f"{name} {count}" for name, count in events.items())
        + ("" if events else "none")
    )
    errors = report["metrics"]["errors"]
    lines.append(
        "errors seen by the phones (no answer, 5xx and 429 are retried): "
        + (", ".join(f"{k} {v}" for k, v in errors.items()) if errors else "none")
    )
    lines.append(
        f"requests: {report['metrics']['requests']} ({report['metrics']['requests_per_s']:.1f}/s)"
    )
    lines.append(f"  {'route':<40} {'count':>7} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}")
    for route, row in report["metrics"]["routes"].items():
        lines.append(
            f"  {route:<40} {row['count']:>7} {row['p50_ms']:>9.2f} "
            f"{row['p95_ms']:>9.2f} {row['p99_ms']:>9.2f}"
        )
    cpu = report.get("cpu")
    if cpu:
        lines.append(
            "process CPU: "
            + ", ".join(
                f"{name} {cpu[f'{name}_s']:.1f} s ({cpu[f'{name}_share'] * 100:.0f}%)"
                for name in ("kdf", "crypto", "server", "other")
                if f"{name}_s" in cpu and (name != "server" or cpu[f"{name}_s"] > 0)
            )
            + (
                f"; the server's own processes {cpu['server_processes_s']:.1f} s"
                if "server_processes_s" in cpu
                else ""
            )
        )
    for crash in report.get("crashes", []):
        lines.append(f"  CRASH {crash}")
    audit = report.get("audit")
    if audit:
        lines.append(audit["summary"])
    verdict = report.get("verdict")
    if verdict:
        lines.append(
            "verdict: PASS"
            if verdict["passed"]
            else "verdict: FAIL (" + "; ".join(verdict["reasons"]) + ")"
        )
    return "\n".join(lines)


def write_json(report: Mapping[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_html(report: Mapping[str, Any], samples: Mapping[str, list[float]], path: Path) -> None:
    """Write the chart page for a run."""
    title = "Sealbox fleet run"
    body = [
        f"<h1>{title}</h1>",
        f"<pre>{html.escape(summary_text(report))}</pre>",
        "<h2>Latency by route (log scale)</h2>",
        _box_plot(samples),
        "<h2>Completed requests per second</h2>",
        _timeline(report["metrics"]["timeline"]),
    ]
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "pre{background:#f6f6f6;padding:1em;overflow:auto}"
        "svg text{font-size:11px;font-family:monospace}</style>"
        "</head><body>" + "\n".join(body) + "</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")


def _box_plot(samples: Mapping[str, list[float]]) -> str:
    routes = [r for r in sorted(samples) if samples[r]]
    if not routes:
        return "<p>no requests</p>"
    row, left, width = 26, 300, 560
    height = row * len(routes) + 40
    all_ms = [s * 1000 for r in routes for s in samples[r]]
    lo = math.log10(max(min(all_ms), 0.01))
    hi = math.log10(max(max(all_ms), 0.02))
    hi = hi if hi > lo else lo + 1

    def x(ms: float) -> float:
        return left + (math.log10(max(ms, 0.01)) - lo) / (hi - lo) * width

    parts = [f"<svg width='{left + width + 40}' height='{height}' role='img'>"]
    for i, route in enumerate(routes):
        ms = [s * 1000 for s in samples[route]]
        p5, p25, p50, p75, p95 = (percentile(ms, q) for q in (0.05, 0.25, 0.5, 0.75, 0.95))
        y = 20 + i * row
        parts.append(f"<text x='4' y='{y + 14}'>{html.escape(route[:44])}</text>")
        parts.append(
            f"<line x1='{x(p5):.1f}' x2='{x(p95):.1f}' y1='{y + 10}' y2='{y + 10}' stroke='#888'/>"
        )
        parts.append(
            f"<rect x='{x(p25):.1f}' y='{y + 3}' width='{max(x(p75) - x(p25), 1):.1f}' "
            f"height='14' fill='#9cc3e6' stroke='#35618f'/>"
        )
        parts.append(
            f"<line x1='{x(p50):.1f}' x2='{x(p50):.1f}' y1='{y + 2}' y2='{y + 18}' "
            "stroke='#b00' stroke-width='2'/>"
        )
    for exp in range(math.floor(lo), math.ceil(hi) + 1):
        tick = 10.0**exp
        if lo <= exp <= hi:
            parts.append(
                f"<text x='{x(tick) - 10:.1f}' y='{height - 6}'>{tick:g} ms</text>"
                f"<line x1='{x(tick):.1f}' x2='{x(tick):.1f}' y1='14' y2='{height - 20}' "
                "stroke='#ddd'/>"
            )
    parts.append("</svg><p>box: p25-p75, red: p50, whiskers: p5-p95</p>")
    return "".join(parts)


def _timeline(per_second: list[int]) -> str:
    if not per_second:
        return "<p>no requests</p>"
    width, height, left = 860, 200, 50
    peak = max(max(per_second), 1)
    step = width / max(len(per_second), 1)
    points = " ".join(
        f"{left + i * step:.1f},{height - 20 - count / peak * (height - 40):.1f}"
        for i, count in enumerate(per_second)
    )
    return (
        f"<svg width='{left + width + 20}' height='{height}' role='img'>"
        f"<polyline fill='none' stroke='#35618f' stroke-width='1.5' points='{points}'/>"
        f"<text x='4' y='24'>{peak}/s</text><text x='4' y='{height - 20}'>0</text>"
        f"<text x='{left}' y='{height - 4}'>0 s</text>"
        f"<text x='{left + width - 40}' y='{height - 4}'>{len(per_second)} s</text>"
        "</svg>"
    )
