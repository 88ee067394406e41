"""Shared fixtures and the test-tier rules.

Tiers (a marker each, applied by directory below):

* ``unit``       tests/unit        pure code, no I/O, no AWS.
* ``vectors``    tests/vectors     data files and external oracles.
* ``functional`` tests/functional  moto ``mock_aws`` + ``chalice.test.Client``.
* ``e2e``        tests/e2e         HTTP against ``sealbox local`` started by the test.
* ``regression`` tests/regressions one test per security bug, named after it.

External oracles (the age CLI, npm packages, pyrage) are installed by
``make oracles``.  When ``SEALBOX_REQUIRE_ORACLES=1`` (CI), a missing oracle
is a failure, never a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# pytester drives the pytest plugin's own tests (a suite in a subprocess).
pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors" / "data"

_TIER_BY_DIR = {
    "unit": "unit",
    "vectors": "vectors",
    "functional": "functional",
    "e2e": "e2e",
    "regressions": "regression",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        tier = _TIER_BY_DIR.get(parts[0]) if len(parts) > 1 else None
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))


def require_oracle(available: bool, what: str) -> None:
    """Skip (locally) or fail (CI) when an external oracle is missing."""
    if available:
        return
    if os.environ.get("SEALBOX_REQUIRE_ORACLES") == "1":
        pytest.fail(f"required oracle missing: {what} (run `make oracles`)")
    pytest.skip(f"oracle missing: {what} (run `make oracles`)")
