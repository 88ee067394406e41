"""The README's two-device walkthrough, run as written against ``sealbox local``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from client_sim.config import SdkConfig
from tests.conftest import ROOT
from tests.e2e.conftest import RunningStack

README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = str(Path(sys.executable).parent)


def walkthrough() -> str:
    section = README.split("## Two devices on the command line\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match
    return match.group(1)


def test_two_device_walkthrough_runs_as_written(local_stack: RunningStack, tmp_path: Path) -> None:
    script = walkthrough()
    example = "/tmp/sealbox-local-x1y2z3/sdk-config.json"
    assert f"SEALBOX_CONFIG={example}" in script
    config = SdkConfig.load(local_stack.sdk_config_path())
    # The phones pin both protections and the stack's S3.
    assert config.log_key
    assert config.oprf_roots
    assert config.storage_origins == (local_stack.aws_endpoint,)
    script = script.replace(".venv/bin/", BIN + "/").replace(
        example, str(local_stack.sdk_config_path())
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "verified sender: alice\n" in done.stdout
    for out in ("note.out", "note-laptop.out", "note-from-server.out"):
        assert (tmp_path / out).read_text() == "Meet at the usual place at noon.\n"
    assert "identity: alice\n" in done.stdout
    assert "\talice\t" in done.stdout  # bob's inbox lists alice's blob
    assert "previous cards: 1\n" in done.stdout  # the laptop restored both keys
    assert done.stderr == ""
