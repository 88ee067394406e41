"""``sealbox_fleet``: a fleet run on the test's backend, judged, explained.

A fleet run (:func:`sealbox_tools.fleet.runner.run_fleet`) checks every
delivery against its ledger (content hash and signer) and ends with the
privacy audit.  :class:`FleetOutcome` holds the report, the ledger and the
audit; :meth:`FleetOutcome.assert_passed` fails a test with what went wrong
first (the verdict's reasons, undelivered samples, crashes, the audit's
hits) and where the full JSON report was written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealbox_tools.audit import AuditReport
from sealbox_tools.fleet.backends import InProcessBackend
from sealbox_tools.fleet.ledger import Ledger
from sealbox_tools.fleet.runner import FleetConfig, FleetResult, run_fleet
from sealbox_tools.pytest_plugin.backend import TestBackend, without_pytest_log_capture

__all__ = ["FleetOutcome", "FleetRunner"]


@dataclass(frozen=True)
class FleetOutcome:
    """A finished fleet run on a test's backend.

    Attributes:
        result: everything :func:`run_fleet` returned.
        report_path: the JSON report, written for every run.
    """

    result: FleetResult
    report_path: Path

    @property
    def report(self) -> dict[str, Any]:
        return self.result.report

    @property
    def passed(self) -> bool:
        return self.result.passed

    @property
    def ledger(self) -> Ledger:
        """Every send of the run and how it was judged."""
        assert self.result.ledger is not None  # a single run always has one
        return self.result.ledger

    @property
    def audit(self) -> AuditReport | None:
        """The privacy audit (None when it could not run: over HTTP without a stage)."""
        return self.result.audit

    @property
    def outcome(self) -> Mapping[str, Any]:
        """Sends, deliveries verified, mismatches, undelivered, failed steps."""
        return dict(self.report["outcome"])

    def explain(self) -> str:
        """Why the run failed (or that it passed), most telling first."""
        verdict = self.report["verdict"]
        run = self.report["run"]
        head = (
            f"fleet of {run['devices']} phones, scenario {run['scenario']!r}, seed {run['seed']} "
            f"({run['mode']}): {'passed' if verdict['passed'] else 'FAILED'}"
        )
        lines = [head]
        lines += [f"  - {reason}" for reason in verdict["reasons"]]
        outcome = self.report["outcome"]
        lines.append(
            f"  deliveries verified {outcome['deliveries_verified']}/"
            f"{outcome['deliveries_expected']}, sends completed {outcome['sends_completed']}/"
            f"{outcome['sends_planned']}"
        )
        for sample in outcome.get("undelivered_sample", []):
            lines.append(f"  never arrived: {sample}")
        errors = self.report["metrics"]["errors"]
        if errors:
            lines.append("  errors by kind: " + ", ".join(f"{k} {v}" for k, v in errors.items()))
        for crash in self.report.get("crashes", []):
            lines.append(f"  crash: {crash}")
        audit = self.report.get("audit") or {}
        if audit.get("summary"):
            lines.append("  " + str(audit["summary"]).replace("\n", "\n  "))
        lines.append(f"  full report: {self.report_path}")
        return "\n".join(lines)

    def assert_passed(self) -> None:
        """Raise AssertionError with :meth:`explain` unless the run passed."""
        if not self.passed:
            raise AssertionError(self.explain())


class FleetRunner:
    """Callable: ``sealbox_fleet(devices=20, scenario="standard", **options)``."""

    def __init__(self, backend: TestBackend, work_dir: Path) -> None:
        self._backend = backend
        self._work = work_dir
        self._runs = 0

    def __call__(
        self,
        devices: int = 20,
        scenario: str = "standard",
        *,
        seed: int = 1,
        mix: Mapping[str, str | int | float] | None = None,
        concurrency: int = 4,
        audit: bool | None = None,
    ) -> FleetOutcome:
        """Run a fleet; see docs/fleet.md for scenarios and ``mix`` settings.

        ``audit`` defaults to "when the backend's storage is reachable" (in
        process always; over HTTP with ``--sealbox-stage``).

        Raises:
            ValueError: an unknown scenario or mix setting.
        """
        from sealbox_tools.fleet.report import write_json

        self._runs += 1
        config = FleetConfig(
            devices=devices,
            scenario=scenario,
            overrides={k: str(v) for k, v in (mix or {}).items()},
            seed=seed,
            concurrency=concurrency,
            audit=self._backend.auditable if audit is None else audit,
            retry_backoff=0.0 if self._backend.mode == "in-process" else 0.05,
            # Per test and per run: fleets sharing a stage never collide.
            tag=f"{self._backend.tag}f{self._runs}",
        )
        work = self._work / f"run{self._runs}"
        backend = self._backend.backend
        with contextlib.ExitStack() as scope:
            scope.enter_context(without_pytest_log_capture())
            if isinstance(backend, InProcessBackend):
                # The audit scans the server's logs: capture them while it runs.
                scope.enter_context(backend.logs_captured())
            result = run_fleet(config, backend, work_dir=work / "phones")
        report_path = work / "report.json"
        write_json(result.report, report_path)
        return FleetOutcome(result, report_path)
