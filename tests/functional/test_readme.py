"""The README's commands are the product's front door: run them as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = str(Path(sys.executable).parent)


def section_code(heading: str) -> str:
    section = README.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, heading
    return match.group(1)


def test_readme_opens_with_exactly_the_two_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.DOTALL)
    assert first_block
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_age_walkthrough_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("the README's secret\n")
    script = section_code("age-compatible encryption on the command line").replace(
        ".venv/bin/", BIN + "/"
    )
    env = {k: v for k, v in os.environ.items() if k != "SEALBOX_PASSPHRASE"}
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, check=True)
    assert (tmp_path / "secret.out").read_text() == "the README's secret\n"
    assert (tmp_path / "recipient.txt").read_text().startswith("age1")
    assert (tmp_path / "secret.asc").read_text().startswith("-----BEGIN AGE ENCRYPTED FILE-----")
