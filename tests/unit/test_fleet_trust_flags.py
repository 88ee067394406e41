"""``sealbox fleet``'s trust flags: --config and --kt are checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from client_sim.config import SdkConfig
from sealbox_tools.cli import main

pytestmark = pytest.mark.unit


def fleet(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(main, ["fleet", "--devices", "4", *args])
    return done.exit_code, done.output


def test_config_goes_with_url(tmp_path: Path) -> None:
    path = SdkConfig(url="http://127.0.0.1:9").write(tmp_path / "c.json")
    code, out = fleet("--config", str(path))
    assert code == 2
    assert "--config" in out


def test_kt_over_http_needs_a_configured_log_key(tmp_path: Path) -> None:
    path = SdkConfig(url="http://127.0.0.1:9").write(tmp_path / "c.json")
    code, out = fleet("--url", "http://127.0.0.1:9", "--config", str(path), "--kt", "--no-audit")
    assert code == 2
    assert "--kt over HTTP needs a --config with a log key" in out


def test_an_invalid_config_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"version": 1}', encoding="utf-8")
    code, out = fleet("--url", "http://127.0.0.1:9", "--config", str(path))
    assert code == 2
    assert "missing field" in out
