"""``sealbox device`` through click's runner, with the SDK on the in-process app.

The same verbs run over real HTTP in tests/e2e/test_device_sdk_http.py and in
the README walkthrough; here the transport is swapped for ChaliceTransport so
every exit code and message can be checked quickly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from client_sim import device as device_module
from client_sim.transport import ChaliceTransport
from sealbox_tools.cli import main

PASSWORD = "correct horse battery staple"
NEW = "a brand new password, long"
URL = "http://sealbox.invalid"


@pytest.fixture
def run(transport: ChaliceTransport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def connect(home: Any, url: str, **options: Any) -> device_module.Device:
        assert url == URL
        return device_module.Device(home, transport, sleep=lambda _: None, **options)

    monkeypatch.setattr(device_module.Device, "connect", staticmethod(connect))
    monkeypatch.delenv("SEALBOX_PASSWORD", raising=False)
    monkeypatch.delenv("SEALBOX_NEW_PASSWORD", raising=False)

    def invoke(
        home: str, *args: str, env: dict[str, str] | None = None, input: str | None = None
    ) -> Result:
        argv = [
            "device",
            "--home",
            str(tmp_path / home),
            "--url",
            URL,
            "--kdf",
            "simulation",
            *args,
        ]
        return CliRunner().invoke(main, argv, env=env, input=input)

    return invoke


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def fails(result: Result, message: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("sealbox: error: "), result.output
    assert message in lines[-1]


def test_two_devices_through_the_cli(run, tmp_path: Path) -> None:
    env = {"SEALBOX_PASSWORD": PASSWORD}
    assert ok(run("alice", "register", "Alice", env=env)).startswith("registered alice (card ")
    # The password can come from the terminal instead (typed twice to register).
    assert ok(run("bob", "register", "bob", input=f"{PASSWORD}\n{PASSWORD}\n")).count(
        "registered bob"
    )
    assert "alice\t" in ok(run("bob", "find", "alice"))
    assert ok(run("alice", "backup")).strip() == "backup stored (version 1)"

    (tmp_path / "note.txt").write_bytes(b"hello bob\n")
    ok(
        run(
            "alice",
            "encrypt",
            "--to",
            "bob",
            str(tmp_path / "note.txt"),
            str(tmp_path / "note.age"),
        )
    )
    out = ok(
        run(
            "bob",
            "decrypt",
            "--from",
            "alice",
            str(tmp_path / "note.age"),
            str(tmp_path / "note.out"),
        )
    )
    lines = out.splitlines()
    assert lines[0] == "verified sender: alice"
    assert re.fullmatch(r"sealed at: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(sender's clock\)", lines[1])
    assert lines[2:] == ["readers: alice, bob"]
    assert (tmp_path / "note.out").read_bytes() == b"hello bob\n"

    # A new phone logs in and restores the keys from the backup.
    out = ok(run("alice-new", "login", "alice", env=env))
    assert out.startswith("logged in as alice (card ")
    ok(run("alice-new", "decrypt", str(tmp_path / "note.age"), str(tmp_path / "again.out")))

    assert "previous cards: 0" in ok(run("alice", "whoami"))
    assert ok(run("alice", "rotate", env={"SEALBOX_PASSWORD": PASSWORD})).startswith(
        "rotated: card "
    )
    assert "previous cards: 1" in ok(run("alice", "whoami"))

    ok(
        run(
            "alice",
            "change-password",
            env={"SEALBOX_PASSWORD": PASSWORD, "SEALBOX_NEW_PASSWORD": NEW},
        )
    )
    fails(run("probe", "login", "alice", env=env), "wrong username or password")
    ok(run("alice-newer", "login", "alice", env={"SEALBOX_PASSWORD": NEW}))

    # Destructive verbs ask for the password again (a step-up), and check it.
    fails(run("alice", "unregister", env={"SEALBOX_PASSWORD": PASSWORD}), "password")
    assert "the backup is kept" in ok(run("alice", "unregister", env={"SEALBOX_PASSWORD": NEW}))
    assert ok(run("alice", "whoami")).strip() == "nobody: this device holds no account"
    fails(run("bob", "find", "--refresh", "alice"), "no active card for: alice")


def test_failures_are_one_line_and_leave_no_output_file(run, tmp_path: Path) -> None:
    env = {"SEALBOX_PASSWORD": PASSWORD}
    ok(run("alice", "register", "alice", env=env))
    ok(run("carol", "register", "carol", env=env))
    (tmp_path / "in.txt").write_bytes(b"x")
    fails(
        run(
            "alice",
            "encrypt",
            "--to",
            "nobody",
            str(tmp_path / "in.txt"),
            str(tmp_path / "out.age"),
        ),
        "no active card for: nobody",
    )
    assert not (tmp_path / "out.age").exists()
    ok(
        run(
            "alice",
            "encrypt",
            "--to",
            "alice",
            str(tmp_path / "in.txt"),
            str(tmp_path / "self.age"),
        )
    )
    fails(
        run("carol", "decrypt", str(tmp_path / "self.age"), str(tmp_path / "out.txt")),
        "could not be decrypted",
    )
    assert not (tmp_path / "out.txt").exists()
    fails(
        run("carol", "decrypt", str(tmp_path / "missing.age"), str(tmp_path / "o")), "missing.age"
    )
    fails(run("nobody", "backup"), "no private key")
    fails(run("alice", "register", "alice", env={"SEALBOX_PASSWORD": "short"}), "at least 12")
    fails(
        run("dave", "login", "alice", env={"SEALBOX_PASSWORD": "wrong but long enough"}),
        "wrong username or password",
    )


def test_usage_errors_exit_2(run) -> None:
    assert run("alice", "encrypt", "in", "out").exit_code == 2  # --to is required
    result = CliRunner().invoke(main, ["device", "--home", "x", "--url", "ftp://x", "whoami"])
    assert result.exit_code == 2
    assert "--url" in result.output


def test_the_cli_pins_the_transparency_log_key(run) -> None:
    from tests.functional.conftest import log_vkey

    env = {"SEALBOX_PASSWORD": PASSWORD, "SEALBOX_LOG_KEY": log_vkey()}
    ok(run("alice", "register", "alice", env=env))
    ok(run("bob", "register", "bob", env=env))
    assert "alice\t" in ok(run("bob", "find", "alice", env=env))
    assert ok(run("alice", "login", "alice", env=env)).startswith("logged in as alice")
    fails(run("bob", "--log-key", "not-a-key", "find", "alice", env=env), "log key")
