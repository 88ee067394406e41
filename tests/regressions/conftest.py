"""The functional tier's fixtures (moto ``mock_aws``, ``chalice.test.Client``),
for regression tests that reproduce a bug through the API or the device SDK."""

from __future__ import annotations

from tests.functional.conftest import (  # noqa: F401 - fixtures are found by name
    api,
    aws,
    chalice_client,
    clock,
    fresh_wiring,
    raw,
    stack,
    transport,
)
