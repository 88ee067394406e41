"""The Python examples in docs/spec/age.md run as written."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def test_age_spec_examples_run() -> None:
    text = (ROOT / "docs" / "spec" / "age.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/spec/age.md", "exec"), {})
