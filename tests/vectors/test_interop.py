"""Round trips with implementations nobody here wrote, in both directions.

* the age CLI (Go, Debian's ``age`` package): X25519, several recipients,
  armor, and scrypt through a pseudo-terminal (age reads passphrases only
  from a terminal);
* pyrage (Rust rage): X25519 and scrypt;
* typage (npm ``age-encryption``): X25519, scrypt and the post-quantum
  ``mlkem768x25519`` hybrid, with keys made by either side.

Sizes straddle the 64 KiB chunk boundaries; the multi-MiB cases are few so
the suite stays fast.
"""

from __future__ import annotations

import hashlib
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

from client_sim import age
from tests.conftest import require_oracle
from tests.oracles import harness

CHUNK = 64 * 1024
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK]
BIG = 3 * 1024 * 1024 + 7
PASSPHRASE = "correct horse battery staple"


def payload(size: int) -> bytes:
    # Deterministic, incompressible-looking data of the given size.
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


def _run(args: list[str], stdin: bytes = b"") -> bytes:
    return subprocess.run(args, input=stdin, check=True, capture_output=True, timeout=120).stdout


# --- the age CLI --------------------------------------------------------------


@pytest.fixture(scope="module")
def age_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, age.X25519Identity]:
    require_oracle(harness.age_cli_available(), "age CLI (apt-get install age)")
    key_file = tmp_path_factory.mktemp("agecli") / "key.txt"
    _run([harness.AGE_KEYGEN_CLI, "-o", str(key_file)])
    (identity,) = age.parse_identities_file(key_file.read_text())
    assert isinstance(identity, age.X25519Identity)
    return key_file, identity


@pytest.mark.parametrize("size", [*SIZES, BIG])
def test_age_cli_encrypts_we_decrypt(size: int, age_keys) -> None:
    _, identity = age_keys
    data = payload(size)
    ciphertext = _run([harness.AGE_CLI, "-r", str(identity.recipient())], data)
    assert age.decrypt_bytes(ciphertext, [identity]) == data


@pytest.mark.parametrize("size", [*SIZES, BIG])
def test_we_encrypt_age_cli_decrypts(size: int, age_keys, tmp_path: Path) -> None:
    key_file, identity = age_keys
    data = payload(size)
    ciphertext = age.encrypt_bytes(data, [identity.recipient()])
    assert _run([harness.AGE_CLI, "-d", "-i", str(key_file)], ciphertext) == data


@pytest.mark.parametrize("size", [0, CHUNK + 1])
def test_armor_both_ways_with_age_cli(size: int, age_keys) -> None:
    key_file, identity = age_keys
    data = payload(size)
    armored = _run([harness.AGE_CLI, "-a", "-r", str(identity.recipient())], data)
    assert armored.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")
    assert age.decrypt_bytes(armored, [identity]) == data
    ours = age.encrypt_bytes(data, [identity.recipient()], armor=True)
    assert _run([harness.AGE_CLI, "-d", "-i", str(key_file)], ours) == data


def test_multiple_recipients_with_age_cli(age_keys, tmp_path: Path) -> None:
    key_file, theirs = age_keys
    ours = age.X25519Identity.generate()
    data = payload(CHUNK + 1)
    # age encrypts to both; each side decrypts with its own key.
    ct = _run([harness.AGE_CLI, "-r", str(ours.recipient()), "-r", str(theirs.recipient())], data)
    assert age.decrypt_bytes(ct, [ours]) == data
    # We encrypt to both; age decrypts with its key, which is the second stanza.
    ct = age.encrypt_bytes(data, [ours.recipient(), theirs.recipient()])
    assert _run([harness.AGE_CLI, "-d", "-i", str(key_file)], ct) == data
    with pytest.raises(age.NoIdentityMatch):
        age.decrypt_bytes(ct, [age.X25519Identity.generate()])


def run_with_tty(args: list[str], passphrase: str, prompts: int) -> tuple[int, bytes]:
    """Run ``args`` on a pseudo-terminal, answering ``prompts`` passphrase
    prompts; returns (exit status, terminal output)."""
    pid, master = pty.fork()
    if pid == 0:  # child: the pty is its controlling terminal
        try:
            os.execv(args[0], args)
        finally:
            os._exit(127)
    seen = b""
    answered = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    break  # the child closed the terminal
                if not data:
                    break
                seen += data
            if answered < prompts and seen.count(b"assphrase") > answered:
                os.write(master, passphrase.encode() + b"\n")
                answered += 1
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
    return os.waitstatus_to_exitcode(status), seen


@pytest.mark.parametrize("size", [0, CHUNK + 1])
def test_scrypt_with_age_cli_through_a_tty(size: int, tmp_path: Path) -> None:
    require_oracle(harness.age_cli_available(), "age CLI (apt-get install age)")
    data = payload(size)
    plain = tmp_path / "plain"
    plain.write_bytes(data)
    # age -p: "Enter passphrase" then "Confirm passphrase" (work factor 18).
    encrypted = tmp_path / "by-age.age"
    code, tty = run_with_tty(
        [harness.AGE_CLI, "-p", "-o", str(encrypted), str(plain)], PASSPHRASE, 2
    )
    assert code == 0, tty
    assert age.decrypt_bytes(encrypted.read_bytes(), [age.ScryptIdentity(PASSPHRASE)]) == data
    # And the other way: our scrypt file, age asks for the passphrase once.
    ours = tmp_path / "by-us.age"
    ours.write_bytes(age.encrypt_bytes(data, [age.ScryptRecipient(PASSPHRASE, work_factor=12)]))
    out = tmp_path / "out"
    code, tty = run_with_tty([harness.AGE_CLI, "-d", "-o", str(out), str(ours)], PASSPHRASE, 1)
    assert code == 0, tty
    # age opens -o lazily, on the first plaintext byte: no file for empty data.
    assert (out.read_bytes() if out.exists() else b"") == data


# --- pyrage (rage) --------------------------------------------------------------


@pytest.fixture(scope="module")
def pyrage_mod():
    require_oracle(harness.pyrage_available(), "pyrage (pip install pyrage)")
    import pyrage

    return pyrage


@pytest.mark.parametrize("size", SIZES)
def test_pyrage_x25519_both_ways(size: int, pyrage_mod) -> None:
    data = payload(size)
    theirs = pyrage_mod.x25519.Identity.generate()
    ours = age.parse_identity(str(theirs))
    assert str(ours.recipient()) == str(theirs.to_public())
    ct = pyrage_mod.encrypt(data, [theirs.to_public()])
    assert age.decrypt_bytes(ct, [ours]) == data
    ct = age.encrypt_bytes(data, [ours.recipient()])
    assert pyrage_mod.decrypt(ct, [theirs]) == data


def test_pyrage_scrypt_both_ways(pyrage_mod) -> None:
    data = payload(CHUNK + 1)
    # rage calibrates its work factor to about a second of its own time, so
    # one file from it is enough (and armored, to cover that too).
    ct = pyrage_mod.passphrase.encrypt(data, PASSPHRASE, True)
    assert age.decrypt_bytes(ct, [age.ScryptIdentity(PASSPHRASE)]) == data
    for armored in (False, True):
        # pyrage refuses work factors above 20 when decrypting; stay below.
        ours = age.encrypt_bytes(
            data, [age.ScryptRecipient(PASSPHRASE, work_factor=12)], armor=armored
        )
        assert pyrage_mod.passphrase.decrypt(ours, PASSPHRASE) == data


# --- typage ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def typage_ok() -> None:
    require_oracle(harness.typage_available(), "npm age-encryption@0.3.1 and node")


def _typage_keygen(kind: str) -> tuple[str, str]:
    identity, recipient = harness.typage("keygen", kind).decode().split()
    return identity, recipient


@pytest.mark.parametrize("kind", ["x25519", "pq"])
def test_typage_keys_agree_with_ours(kind: str, typage_ok) -> None:
    identity, recipient = _typage_keygen(kind)
    assert str(age.parse_identity(identity).recipient()) == recipient
    ours = age.HybridIdentity.generate() if kind == "pq" else age.X25519Identity.generate()
    derived = harness.typage("to-recipient", ours.secret_string()).decode().strip()
    assert derived == str(ours.recipient())


# One multi-MiB typage case (hybrid) per direction keeps the suite fast.
TYPAGE_CASES = [(kind, size) for kind in ("x25519", "pq") for size in SIZES] + [("pq", BIG)]


@pytest.mark.parametrize(("kind", "size"), TYPAGE_CASES)
def test_typage_encrypts_we_decrypt(kind: str, size: int, typage_ok) -> None:
    data = payload(size)
    identity, recipient = _typage_keygen(kind)
    ct = harness.typage("encrypt", recipient, stdin=data)
    assert age.decrypt_bytes(ct, [age.parse_identity(identity)]) == data


@pytest.mark.parametrize(("kind", "size"), TYPAGE_CASES)
def test_we_encrypt_typage_decrypts(kind: str, size: int, typage_ok) -> None:
    data = payload(size)
    identity, recipient = _typage_keygen(kind)
    ct = age.encrypt_bytes(data, [age.parse_recipient(recipient)])
    assert harness.typage("decrypt", identity, stdin=ct) == data


def test_typage_pq_multiple_recipients_and_armor(typage_ok) -> None:
    data = payload(CHUNK)
    theirs, their_recipient = _typage_keygen("pq")
    ours = age.HybridIdentity.generate()
    ct = harness.typage("encrypt", "--armor", their_recipient, str(ours.recipient()), stdin=data)
    assert age.decrypt_bytes(ct, [ours]) == data
    ct = age.encrypt_bytes(
        data, [ours.recipient(), age.parse_recipient(their_recipient)], armor=True
    )
    assert harness.typage("decrypt", theirs, stdin=ct) == data


def test_typage_scrypt_both_ways(typage_ok) -> None:
    data = payload(CHUNK + 1)
    env = {**os.environ, "TYPAGE_SCRYPT_WORK_FACTOR": "12"}
    ct = harness.typage("encrypt-passphrase", PASSPHRASE, stdin=data, env=env)
    assert age.decrypt_bytes(ct, [age.ScryptIdentity(PASSPHRASE)]) == data
    ours = age.encrypt_bytes(data, [age.ScryptRecipient(PASSPHRASE, work_factor=12)])
    assert harness.typage("decrypt-passphrase", PASSPHRASE, stdin=ours) == data


def test_typage_refuses_what_we_refuse_to_make(typage_ok) -> None:
    # Mixing post-quantum and classic recipients is refused by us at encryption.
    _, pq_recipient = _typage_keygen("pq")
    with pytest.raises(ValueError, match="post-quantum"):
        age.encrypt_bytes(
            b"x", [age.parse_recipient(pq_recipient), age.X25519Identity.generate().recipient()]
        )
