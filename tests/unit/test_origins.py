"""Storage origins: the rules a transfer URL must pass (client_sim/origins.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from client_sim.device import Device
from client_sim.errors import InvalidInput, StorageOriginRefused
from client_sim.origins import Origin, StorageOrigins, parse_origin, s3_bucket_origins
from client_sim.transport import ChaliceTransport, HttpTransport
from sealbox_tools.cli import main

SECRET = "X-Amz-Credential=AKIA&X-Amz-Signature=deadbeef"


@pytest.mark.parametrize(
    ("text", "origin"),
    [
        ("http://127.0.0.1:9000", Origin("http", "127.0.0.1", 9000)),
        ("http://127.0.0.1:9000/", Origin("http", "127.0.0.1", 9000)),
        ("https://Bucket.S3.amazonaws.com", Origin("https", "bucket.s3.amazonaws.com", 443)),
        ("HTTPS://h.example:443", Origin("https", "h.example", 443)),
        ("http://h.example", Origin("http", "h.example", 80)),
        ("http://[::1]:8080", Origin("http", "[::1]", 8080)),
        ("https://xn--bcher-kva.example", Origin("https", "xn--bcher-kva.example", 443)),
    ],
)
def test_origins_are_normalised(text: str, origin: Origin) -> None:
    assert parse_origin(text) == origin


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1:9000",  # no scheme
        "ftp://h.example",
        "https://*.s3.amazonaws.com",  # no wildcards
        "https://h.example/path",
        "https://h.example?x=1",
        "https://h.example#x",
        "https://user@h.example",
        "https://user:pw@h.example",
        "https://h.example:0",
        "https://h.example:65536",
        "https://h.example:port",
        "https://bücher.example",  # IDN: give the xn-- form
        "https://%68.example",
        "https://h.example\\@evil",
        "https://h .example",
        "https://[::1",
        "",
    ],
)
def test_anything_but_an_origin_is_refused_as_configuration(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_origin(text)


def test_default_ports_are_the_same_origin_and_others_are_not() -> None:
    origins = StorageOrigins(["https://b.s3.amazonaws.com", "http://h.example:80"])
    origins.check(f"https://b.s3.amazonaws.com:443/k?{SECRET}")
    origins.check(f"https://B.S3.AMAZONAWS.COM/k?{SECRET}")
    origins.check(f"http://h.example/k?{SECRET}")
    for url in (
        f"https://b.s3.amazonaws.com:80/k?{SECRET}",
        f"http://b.s3.amazonaws.com/k?{SECRET}",
        f"https://h.example/k?{SECRET}",
        f"http://h.example:8080/k?{SECRET}",
        f"https://b.s3.amazonaws.com./k?{SECRET}",  # a trailing dot is another name here
        f"https://evil.example/b.s3.amazonaws.com?{SECRET}",
        f"https://b.s3.amazonaws.com.evil.example/k?{SECRET}",
        f"/k?{SECRET}",
        f"//b.s3.amazonaws.com/k?{SECRET}",
    ):
        with pytest.raises(StorageOriginRefused) as refused:
            origins.check(url)
        assert SECRET not in str(refused.value), url


def test_the_refusal_shows_a_hostile_host_escaped() -> None:
    with pytest.raises(StorageOriginRefused) as refused:
        StorageOrigins([]).check(f"http://evil\u202eexample.com:81/k?{SECRET}")
    assert refused.value.origin == "http://evil%E2%80%AEexample.com:81"
    assert str(refused.value).isascii()


def test_the_api_origin_is_a_storage_origin_over_http_only() -> None:
    over_http = StorageOrigins.for_transport(
        HttpTransport("https://api.example/stage"), ["http://h:1"]
    )
    assert over_http.origins == ("http://h:1", "https://api.example")
    assert StorageOrigins.for_transport(ChaliceTransport(object())).origins == ()
    assert repr(over_http) == "StorageOrigins(['http://h:1', 'https://api.example'])"
    with pytest.raises(StorageOriginRefused):
        StorageOrigins.for_transport(ChaliceTransport(object())).check("https://a.example/")


def test_a_lone_string_is_not_a_list_of_origins() -> None:
    with pytest.raises(TypeError):
        StorageOrigins("https://h.example")
    with pytest.raises(TypeError):
        StorageOrigins.for_transport(HttpTransport("https://api.example"), "https://h.example")


def test_s3_bucket_origins_are_virtual_hosted_https() -> None:
    assert s3_bucket_origins("sealbox-prod-blobs", "eu-west-1") == (
        "https://sealbox-prod-blobs.s3.amazonaws.com",
        "https://sealbox-prod-blobs.s3.eu-west-1.amazonaws.com",
    )
    with pytest.raises(InvalidInput):
        s3_bucket_origins("evil/bucket", "eu-west-1")


def _connected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str, **env: str) -> Any:
    seen: dict[str, Any] = {}

    class Phone:
        def logout(self) -> None:
            pass

    def connect(home: Any, url: str, **options: Any) -> Phone:
        seen.update(options)
        return Phone()

    monkeypatch.setattr(Device, "connect", staticmethod(connect))
    monkeypatch.delenv("SEALBOX_STORAGE_ORIGINS", raising=False)
    argv = ["device", "--home", str(tmp_path), "--url", "http://127.0.0.1:8000", *args, "logout"]
    result = CliRunner().invoke(main, argv, env=env)
    return result, seen


def test_the_cli_takes_storage_origins_from_flags_and_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    flags = ["--storage-origin", "http://127.0.0.1:9000", "--storage-origin", "https://b.example"]
    result, seen = _connected(monkeypatch, tmp_path, *flags)
    assert result.exit_code == 0, result.output
    assert seen["storage_origins"] == ("http://127.0.0.1:9000", "https://b.example")
    env = {"SEALBOX_STORAGE_ORIGINS": "http://127.0.0.1:9000 https://b.example"}
    result, seen = _connected(monkeypatch, tmp_path, **env)
    assert result.exit_code == 0, result.output
    assert seen["storage_origins"] == ("http://127.0.0.1:9000", "https://b.example")


def test_the_cli_refuses_a_bad_storage_origin_as_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result, seen = _connected(monkeypatch, tmp_path, "--storage-origin", "https://*.example")
    assert result.exit_code == 2
    assert "--storage-origin" in result.output
    assert seen == {}


@pytest.mark.parametrize(
    "args",
    [
        ["--url", "http://127.0.0.1:1", "--storage-origin", "https://*.example"],
        ["--storage-origin", "https://b.example"],  # over HTTP only
    ],
)
def test_the_fleet_refuses_a_bad_storage_origin_before_running(args: list[str]) -> None:
    result = CliRunner().invoke(main, ["fleet", "--devices", "1", *args])
    assert result.exit_code == 2, result.output
    assert "--storage-origin" in result.output
