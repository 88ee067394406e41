"""The installed ``sealbox`` console script, as a user or a script runs it."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from client_sim import age

SEALBOX = shutil.which("sealbox", path=str(Path(sys.executable).parent)) or "sealbox"


def _sealbox(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None):
    return subprocess.run(
        [SEALBOX, *args], input=stdin, capture_output=True, timeout=60, env=env, check=False
    )


def test_pipeline_with_env_passphrase(tmp_path: Path) -> None:
    env = {**os.environ, "SEALBOX_PASSPHRASE": "pipeline secret"}
    enc = _sealbox("age", "-p", stdin=b"scripted", env=env)
    assert enc.returncode == 0, enc.stderr
    dec = _sealbox("age", "-d", stdin=enc.stdout, env=env)
    assert dec.returncode == 0, dec.stderr
    assert dec.stdout == b"scripted"


def test_exit_status_and_single_line_error() -> None:
    result = _sealbox("age", "-d", "-i", "/nonexistent", stdin=b"")
    assert result.returncode == 1
    assert result.stderr.decode().count("\n") == 1
    assert result.stderr.startswith(b"sealbox: error: ")


def test_refuses_binary_output_to_a_terminal(tmp_path: Path) -> None:
    recipient = str(age.X25519Identity.generate().recipient())
    plain = tmp_path / "plain"
    plain.write_bytes(b"binary")
    pid, master = pty.fork()
    if pid == 0:  # child: stdout is the terminal
        os.execv(SEALBOX, [SEALBOX, "age", "-r", recipient, str(plain)])
    output = b""
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        output += data
    _, status = os.waitpid(pid, 0)
    os.close(master)
    assert os.waitstatus_to_exitcode(status) == 1
    assert b"refusing to output binary to the terminal" in output
    assert b"age-encryption.org" not in output


@pytest.mark.parametrize("armor", [False, True])
def test_files_interoperate_with_keygen_output(tmp_path: Path, armor: bool) -> None:
    key = tmp_path / "key.txt"
    assert _sealbox("age-keygen", "-o", str(key)).returncode == 0
    flags = ["-a"] if armor else []
    enc = _sealbox("age", *flags, "-i", str(key), "-o", str(tmp_path / "f.age"), stdin=b"z" * 99)
    assert enc.returncode == 0, enc.stderr
    dec = _sealbox("age", "-d", "-i", str(key), str(tmp_path / "f.age"))
    assert dec.stdout == b"z" * 99


def test_usage_errors_and_help_are_still_clicks() -> None:
    # The console script parses plain `sealbox age` lines itself and leaves
    # everything else to click: same usage error, status 2, same help.
    bogus = _sealbox("age", "--bogus")
    assert bogus.returncode == 2
    assert b"No such option '--bogus'" in bogus.stderr
    shown = _sealbox("age", "--help")
    assert shown.returncode == 0
    assert b"-r, --recipient RECIPIENT" in shown.stdout


@pytest.mark.parametrize("decrypt", [False, True])
def test_a_write_failing_midway_leaves_nothing_at_the_output(tmp_path: Path, decrypt: bool) -> None:
    # The output is written from a second thread (client_sim.pipeline.WriteBehind):
    # a file-size limit makes the kernel refuse a write halfway through, and
    # the command must still fail with the one-line i/o error and leave
    # neither the output nor its temporary file behind.
    import resource

    identity = age.X25519Identity.generate()
    key = tmp_path / "key.txt"
    key.write_text(identity.secret_string() + "\n")
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(4 * 1024 * 1024))
    enc = tmp_path / "plain.age"
    enc.write_bytes(age.encrypt_bytes(plain.read_bytes(), [identity.recipient()]))
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def limit_file_size() -> None:  # python ignores SIGXFSZ: the write gets EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, 1024 * 1024))

    args = (
        ["-d", "-i", str(key), str(enc)]
        if decrypt
        else ["-r", str(identity.recipient()), str(plain)]
    )
    done = subprocess.run(
        [SEALBOX, "age", "-o", str(out_dir / "result"), *args],
        capture_output=True,
        timeout=60,
        preexec_fn=limit_file_size,  # only a resource limit, before exec
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.decode().startswith("sealbox: error: i/o error: File too large")
    assert done.stderr.count(b"\n") == 1
    assert list(out_dir.iterdir()) == []
