"""client_sim.config: the SDK trust configuration file is read strictly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.wire.b64 import b64url_encode
from chalicelib.wire.note import generate_signer
from client_sim.config import ConfigError, SdkConfig
from client_sim.device import Device

pytestmark = pytest.mark.unit

LOG_KEY = generate_signer("sealbox.invalid/test/kt").verifier.vkey
ROOT = bytes(range(32))


def document(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "url": "https://api.example.com/api/",
        "log_key": LOG_KEY,
        "oprf_roots": {"1": b64url_encode(ROOT)},
        "storage_origins": ["https://bucket.s3.amazonaws.com"],
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not _DROP}


_DROP = object()


def write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "sdk-config.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_a_written_configuration_loads_back(tmp_path: Path) -> None:
    config = SdkConfig.load(write(tmp_path, document()))
    assert config.url == "https://api.example.com/api/"
    assert config.log_key == LOG_KEY
    assert dict(config.oprf_roots) == {1: ROOT}
    assert config.storage_origins == ("https://bucket.s3.amazonaws.com",)
    again = SdkConfig.load(config.write(tmp_path / "copy" / "sdk-config.json"))
    assert again == config


def test_null_log_key_and_no_roots_mean_no_protection(tmp_path: Path) -> None:
    config = SdkConfig.load(write(tmp_path, document(log_key=None, oprf_roots={})))
    assert config.device_options() == {
        "log_key": None,
        "oprf_roots": None,
        "storage_origins": ("https://bucket.s3.amazonaws.com",),
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"version": 2}, "version 2 is not supported"),
        ({"version": "1"}, "'version' must be an integer"),
        ({"version": True}, "'version' must be an integer"),
        ({"version": _DROP}, "'version' must be an integer"),
        ({"url": _DROP}, "missing field 'url'"),
        ({"log_key": _DROP}, "missing field 'log_key'"),
        ({"extra": 1}, "unknown field 'extra'"),
        ({"url": "ftp://x"}, "'url' must be an http"),
        ({"url": 5}, "'url' must be a string"),
        ({"log_key": "not a key"}, "'log_key' is not a log verifier key"),
        ({"log_key": 7}, "'log_key' must be a string"),
        ({"oprf_roots": {"1": b64url_encode(ROOT[:31])}}, "must be a 32-byte key"),
        ({"oprf_roots": {"1": b64url_encode(ROOT + b"x")}}, "is not base64url"),
        ({"oprf_roots": {"01": b64url_encode(ROOT)}}, "is not a version"),
        ({"oprf_roots": {"0": b64url_encode(ROOT)}}, "out of range"),
        ({"oprf_roots": {"x": b64url_encode(ROOT)}}, "is not a version"),
        ({"oprf_roots": {"1": 5}}, "must be a string"),
        ({"oprf_roots": [ROOT.hex()]}, "'oprf_roots' must be an object"),
        ({"storage_origins": "https://a.example"}, "must be a list of strings"),
        ({"storage_origins": ["https://*.s3.amazonaws.com"]}, "no wildcards"),
        ({"storage_origins": ["https://a.example/path"]}, "not a storage origin"),
    ],
)
def test_a_bad_field_is_refused_by_name(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        SdkConfig.load(write(tmp_path, document(**changes)))
    assert str(tmp_path) in str(caught.value)


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b"\xff\xfe", b"1"])
def test_not_a_configuration_document(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError):
        SdkConfig.load(path)


def test_a_missing_or_huge_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="can't read"):
        SdkConfig.load(tmp_path / "absent.json")
    big = tmp_path / "big.json"
    big.write_text(" " * 70_000 + json.dumps(document()), encoding="utf-8")
    with pytest.raises(ConfigError, match="larger than"):
        SdkConfig.load(big)


def test_connect_pins_the_configuration(tmp_path: Path) -> None:
    path = write(tmp_path, document())
    device = Device.connect(tmp_path / "home", config=path)
    # The pins are in place: the log monitor and the hardening exist.
    assert device._log is not None
    assert device._accounts._hardening is not None
    explicit = Device.connect(tmp_path / "home2", config=path, log_key=None, oprf_roots=None)
    assert explicit._log is None
    assert explicit._accounts._hardening is None


def test_connect_needs_a_url_or_a_configuration(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="URL or an SDK configuration"):
        Device.connect(tmp_path / "home")
