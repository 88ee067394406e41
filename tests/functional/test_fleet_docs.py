"""docs/fleet.md states the scenario mixes as the code has them."""

from __future__ import annotations

import dataclasses
import re

from sealbox_tools.fleet.plan import SCENARIOS
from tests.conftest import ROOT

DOC = (ROOT / "docs" / "fleet.md").read_text(encoding="utf-8")


def text(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def test_the_mix_table_matches_the_scenarios() -> None:
    rows = dict(
        (name, (standard, full))
        for name, standard, full in re.findall(
            r"^\| `(\w+)` \| ([^|]+?) \| ([^|]+?) \|", DOC, re.MULTILINE
        )
    )
    fields = [f.name for f in dataclasses.fields(SCENARIOS["standard"])]
    assert sorted(rows) == sorted(fields)
    for name in fields:
        expected = (
            text(getattr(SCENARIOS["standard"], name)),
            text(getattr(SCENARIOS["full"], name)),
        )
        assert rows[name] == expected, name
