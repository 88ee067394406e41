"""``sealbox device --config`` (and ``SEALBOX_CONFIG``): the SDK configuration's pins apply.

The device's HTTP transport is swapped for the in-process app, as in
tests/functional/test_device_cli.py; the configuration holds the test
stage's real log key and OPRF root.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from chalicelib.wire.note import generate_signer
from chalicelib.wire.oprf_keys import parse_oprf_secret
from client_sim import device as device_module
from client_sim.config import SdkConfig
from client_sim.transport import ChaliceTransport
from sealbox_tools.cli import main
from tests.functional.conftest import STAGE_ENV, aws_client, log_vkey

pytestmark = pytest.mark.functional

PASSWORD = "correct horse battery staple"
URL = "http://sealbox.invalid"


def stage_config(**changes: Any) -> SdkConfig:
    value = aws_client("secretsmanager").get_secret_value(
        SecretId=STAGE_ENV["SEALBOX_OPRF_KEY_SECRET_ID"], VersionStage="AWSCURRENT"
    )
    oprf = parse_oprf_secret(value["SecretString"])
    fields: dict[str, Any] = {
        "url": URL,
        "log_key": log_vkey(),
        "oprf_roots": {oprf.version: oprf.root_public},
        "storage_origins": (),
    }
    fields.update(changes)
    return SdkConfig(**fields)


@pytest.fixture
def connected(
    transport: ChaliceTransport, stack: Any, monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, Any]]:
    """What ``Device.connect`` was given, per call; the device runs in process."""
    calls: list[dict[str, Any]] = []

    def connect(home: Any, url: str, **options: Any) -> device_module.Device:
        calls.append({"url": url, **options})
        return device_module.Device(home, transport, sleep=lambda _: None, **options)

    monkeypatch.setattr(device_module.Device, "connect", staticmethod(connect))
    for name in ("SEALBOX_PASSWORD", "SEALBOX_URL", "SEALBOX_CONFIG", "SEALBOX_LOG_KEY"):
        monkeypatch.delenv(name, raising=False)
    return calls


def invoke(home: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    argv = ["device", "--home", str(home), "--kdf", "simulation", *args]
    return CliRunner().invoke(main, argv, env={"SEALBOX_PASSWORD": PASSWORD, **(env or {})})


def test_the_configuration_pins_the_log_key_and_the_oprf_root(
    connected: list[dict[str, Any]], tmp_path: Path
) -> None:
    config = stage_config()
    path = config.write(tmp_path / "sdk-config.json")
    done = invoke(tmp_path / "alice", "--config", str(path), "register", "alice")
    assert done.exit_code == 0, done.output
    (call,) = connected
    assert call["url"] == URL
    assert call["log_key"] == config.log_key
    assert call["oprf_roots"] == dict(config.oprf_roots)
    # The environment variable works the same, with no --url at all.
    done = invoke(tmp_path / "bob", "register", "bob", env={"SEALBOX_CONFIG": str(path)})
    assert done.exit_code == 0, done.output
    assert connected[1]["log_key"] == config.log_key
    done = invoke(tmp_path / "bob", "--config", str(path), "find", "alice")
    assert done.exit_code == 0, done.output


def test_a_card_the_pinned_log_does_not_vouch_for_is_refused(
    connected: list[dict[str, Any]], tmp_path: Path
) -> None:
    good = stage_config().write(tmp_path / "good.json")
    assert invoke(tmp_path / "alice", "--config", str(good), "register", "alice").exit_code == 0
    assert invoke(tmp_path / "bob", "--config", str(good), "register", "bob").exit_code == 0
    # A configuration pinning some other log (the server's log can't sign for it).
    other = generate_signer(STAGE_ENV["SEALBOX_KT_ORIGIN"]).verifier.vkey
    bad = stage_config(log_key=other).write(tmp_path / "bad.json")
    done = invoke(tmp_path / "carol", "--config", str(bad), "register", "carol")
    if done.exit_code == 0:
        done = invoke(tmp_path / "carol", "--config", str(bad), "find", "alice")
    assert done.exit_code == 1, done.output
    assert "sealbox: error: the log's checkpoint does not verify" in done.output


def test_an_invalid_configuration_is_a_usage_error(
    connected: list[dict[str, Any]], tmp_path: Path
) -> None:
    path = tmp_path / "sdk-config.json"
    document = stage_config().to_json()
    document["version"] = 2
    path.write_text(json.dumps(document), encoding="utf-8")
    done = invoke(tmp_path / "alice", "--config", str(path), "whoami")
    assert done.exit_code == 2
    assert "version 2 is not supported" in done.output
    assert connected == []


def test_without_url_or_configuration_nothing_runs(
    connected: list[dict[str, Any]], tmp_path: Path
) -> None:
    done = invoke(tmp_path / "alice", "whoami")
    assert done.exit_code == 2
    assert "--url or --config" in done.output


def test_explicit_flags_add_to_the_configuration(
    connected: list[dict[str, Any]], tmp_path: Path
) -> None:
    path = stage_config(storage_origins=("http://127.0.0.1:9",)).write(tmp_path / "c.json")
    done = invoke(
        tmp_path / "alice",
        "--config",
        str(path),
        "--storage-origin",
        "http://127.0.0.1:10",
        "register",
        "alice",
    )
    assert done.exit_code == 0, done.output
    assert connected[0]["storage_origins"] == ("http://127.0.0.1:9", "http://127.0.0.1:10")
