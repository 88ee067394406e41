"""``sealbox age`` / ``sealbox age-keygen`` through click's CliRunner.

These run in process but touch temporary files, so they live with the
functional tests rather than the pure unit tier.

Exit codes, the one-line error format, flag combinations age refuses,
atomic ``-o`` (nothing partial on failure), SEALBOX_PASSPHRASE, and the
age-keygen file layout.  (test_age_cli_subprocess.py runs the installed console script.)
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from client_sim import age
from sealbox_tools.cli import main


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def key_file(tmp_path: Path, runner: CliRunner) -> Path:
    path = tmp_path / "key.txt"
    result = runner.invoke(main, ["age-keygen", "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


def _recipient_of(key_file: Path) -> str:
    match = re.search(r"^# public key: (\S+)$", key_file.read_text(), re.M)
    assert match
    return str(match.group(1))


def _one_line_error(result) -> str:
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sealbox: error: ")
    return str(lines[0])


def test_keygen_layout_mode_and_no_overwrite(tmp_path: Path, runner: CliRunner) -> None:
    path = tmp_path / "k.txt"
    result = runner.invoke(main, ["age-keygen", "-o", str(path)])
    assert result.exit_code == 0
    lines = path.read_text().splitlines()
    assert re.fullmatch(r"# created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", lines[0])
    assert re.fullmatch(r"# public key: age1[02-9ac-hj-np-z]{58}", lines[1])
    assert lines[2].startswith("AGE-SECRET-KEY-1")
    assert len(lines) == 3
    (identity,) = age.parse_identities_file(path.read_text())
    assert str(identity.recipient()) == lines[1].split()[-1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"Public key: {lines[1].split()[-1]}" in result.stderr
    before = path.read_bytes()
    again = runner.invoke(main, ["age-keygen", "-o", str(path)])
    assert "exists" in _one_line_error(again)
    assert path.read_bytes() == before


def test_keygen_pq_to_stdout_and_y(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(main, ["age-keygen", "--pq"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[1].startswith("# public key: age1pq1")
    assert lines[2].startswith("AGE-SECRET-KEY-PQ-1")
    path = tmp_path / "pq.txt"
    path.write_text(result.stdout)
    converted = runner.invoke(main, ["age-keygen", "-y", str(path)])
    assert converted.exit_code == 0
    assert converted.stdout == lines[1].split()[-1] + "\n"


def test_encrypt_decrypt_files_with_recipient_and_identity(
    tmp_path: Path, runner: CliRunner, key_file: Path
) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(70_000))
    enc = tmp_path / "plain.age"
    result = runner.invoke(main, ["age", "-r", _recipient_of(key_file), "-o", str(enc), str(plain)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    result = runner.invoke(main, ["age", "-d", "-i", str(key_file), "-o", str(out), str(enc)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == plain.read_bytes()


def test_stdin_stdout_armor_and_recipients_file(
    tmp_path: Path, runner: CliRunner, key_file: Path
) -> None:
    recipients = tmp_path / "recipients.txt"
    other = age.X25519Identity.generate()
    recipients.write_text(f"# team\n{_recipient_of(key_file)}\n\n{other.recipient()}\n")
    result = runner.invoke(main, ["age", "-a", "-R", str(recipients)], input=b"hello")
    assert result.exit_code == 0
    assert result.stdout_bytes.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")
    assert age.decrypt_bytes(result.stdout_bytes, [other]) == b"hello"
    back = runner.invoke(main, ["age", "-d", "-i", str(key_file)], input=result.stdout_bytes)
    assert back.exit_code == 0
    assert back.stdout_bytes == b"hello"


def test_encrypt_to_identity_file(tmp_path: Path, runner: CliRunner, key_file: Path) -> None:
    # Like age, -i while encrypting means "to the recipients of these identities".
    result = runner.invoke(main, ["age", "-e", "-i", str(key_file)], input=b"x")
    assert result.exit_code == 0
    (identity,) = age.parse_identities_file(key_file.read_text())
    assert age.decrypt_bytes(result.stdout_bytes, [identity]) == b"x"


def test_passphrase_from_environment(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEALBOX_PASSPHRASE", "hunter2 hunter2")
    result = runner.invoke(main, ["age", "-p"], input=b"by passphrase")
    assert result.exit_code == 0
    header = result.stdout_bytes.split(b"\n")[1]
    assert header.startswith(b"-> scrypt ")
    assert header.endswith(b" 18")  # age's default work factor
    back = runner.invoke(main, ["age", "-d"], input=result.stdout_bytes)
    assert back.exit_code == 0
    assert back.stdout_bytes == b"by passphrase"
    monkeypatch.setenv("SEALBOX_PASSPHRASE", "wrong")
    wrong = runner.invoke(main, ["age", "-d"], input=result.stdout_bytes)
    assert "no identity matched" in _one_line_error(wrong)


def test_passphrase_without_terminal_or_env_fails_cleanly(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEALBOX_PASSPHRASE", raising=False)
    monkeypatch.setattr(os, "open", _no_tty(os.open))
    result = runner.invoke(main, ["age", "-p"], input=b"data")
    assert "SEALBOX_PASSPHRASE" in _one_line_error(result)
    assert result.stdout_bytes == b""


def _no_tty(real_open):
    def fake_open(path, *args, **kwargs):
        if path == "/dev/tty":
            raise OSError(6, "No such device or address")
        return real_open(path, *args, **kwargs)

    return fake_open


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-e", "-d"], "-e/--encrypt can't be used with -d"),
        (["-d", "-a"], "-a/--armor can't be used with -d"),
        (["-d", "-p"], "-p/--passphrase can't be used with -d"),
        (["-d", "-r", "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"], "-r/-R"),
        (["-p", "-r", "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"], "-p"),
        ([], "missing recipients"),
        (["-r", "age1notakey"], "invalid recipient"),
        (["-r", "AGE1ZVKYG2LQZRAA2LNJVQEJ32NKUU0UES2S82HZRYE869XEEXVN73EQUNUJWJ"], "invalid"),
        (["-i", "/nonexistent/key.txt"], "failed to read identity file"),
    ],
)
def test_refused_flag_combinations(runner: CliRunner, args: list[str], needle: str) -> None:
    result = runner.invoke(main, ["age", *args], input=b"data")
    assert needle in _one_line_error(result)


def test_mixing_pq_and_classic_recipients_is_refused(runner: CliRunner) -> None:
    pq = age.HybridIdentity.generate().recipient()
    classic = age.X25519Identity.generate().recipient()
    result = runner.invoke(main, ["age", "-r", str(pq), "-r", str(classic)], input=b"x")
    assert "post-quantum" in _one_line_error(result)


def test_failed_decrypt_leaves_nothing_at_output(
    tmp_path: Path, runner: CliRunner, key_file: Path
) -> None:
    (identity,) = age.parse_identities_file(key_file.read_text())
    ciphertext = bytearray(age.encrypt_bytes(os.urandom(200_000), [identity.recipient()]))
    ciphertext[-1] ^= 1  # the last chunk fails after two good ones were written
    src = tmp_path / "bad.age"
    src.write_bytes(bytes(ciphertext))
    out = tmp_path / "out"
    result = runner.invoke(main, ["age", "-d", "-i", str(key_file), "-o", str(out), str(src)])
    assert "decryption failed" in _one_line_error(result)
    assert set(tmp_path.iterdir()) == {key_file, src}
    # An existing file at -o is left untouched too.
    out.write_bytes(b"previous")
    result = runner.invoke(main, ["age", "-d", "-i", str(key_file), "-o", str(out), str(src)])
    assert result.exit_code == 1
    assert out.read_bytes() == b"previous"
    assert {p.name for p in tmp_path.iterdir()} == {key_file.name, src.name, "out"}


def test_wrong_key_and_garbage_messages(tmp_path: Path, runner: CliRunner, key_file: Path) -> None:
    other = age.encrypt_bytes(b"x", [age.X25519Identity.generate().recipient()])
    result = runner.invoke(main, ["age", "-d", "-i", str(key_file)], input=other)
    assert _one_line_error(result) == "sealbox: error: no identity matched any of the recipients"
    result = runner.invoke(main, ["age", "-d", "-i", str(key_file)], input=b"not an age file\n")
    assert "decryption failed" in _one_line_error(result)


def test_output_mode_follows_umask(tmp_path: Path, runner: CliRunner, key_file: Path) -> None:
    out = tmp_path / "enc.age"
    old = os.umask(0o027)
    try:
        result = runner.invoke(main, ["age", "-i", str(key_file), "-o", str(out)], input=b"x")
    finally:
        os.umask(old)
    assert result.exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_post_quantum_identity_and_recipients_files(tmp_path: Path, runner: CliRunner) -> None:
    key = tmp_path / "pq.txt"
    assert runner.invoke(main, ["age-keygen", "--pq", "-o", str(key)]).exit_code == 0
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(f"# hybrid only\n{_recipient_of(key)}\n")
    enc = runner.invoke(main, ["age", "-R", str(recipients)], input=b"post-quantum")
    assert enc.exit_code == 0
    assert b"\n-> mlkem768x25519 " in enc.stdout_bytes
    dec = runner.invoke(main, ["age", "-d", "-i", str(key)], input=enc.stdout_bytes)
    assert dec.exit_code == 0
    assert dec.stdout_bytes == b"post-quantum"
