"""``sealbox age`` loads the age library and click, not the rest of the kit.

The ``sealbox`` entry point registers its verbs lazily (sealbox_tools/cli.py):
a verb's module is imported when that verb runs.  What a command line pays
at start-up is counted in modules in a fresh interpreter, like
tests/unit/test_import_budget.py does for ``import app`` (a count does not
drift with the machine; ``python -m bench.age_throughput`` times the whole
process against the age CLI).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def modules_after(argv: list[str]) -> list[str]:
    """Modules loaded once ``sealbox <argv>`` has run, in a fresh interpreter."""
    code = (
        "import sys, json\n"
        "from sealbox_tools.cli import main\n"
        f"try:\n    main({argv!r}, prog_name='sealbox')\n"
        "except SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    status, loaded = _run_listing_modules(code, ROOT)
    assert status == 0
    return loaded


def _run_listing_modules(code: str, cwd: Path) -> tuple[int, list[str]]:
    """Run ``code`` (which prints the loaded modules as its last stderr line)
    in a fresh interpreter; its exit status and those modules."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=False
    )
    loaded: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return done.returncode, loaded


def under(modules: list[str], *packages: str) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)]


def test_sealbox_age_loads_neither_the_device_sdk_nor_the_tooling() -> None:
    loaded = modules_after(["age", "--help"])
    assert "client_sim.age_cli" in loaded
    assert (
        under(
            loaded,
            "client_sim.device",
            "client_sim.device_cli",
            "client_sim.api",
            "client_sim.transport",
            "sealbox_tools.fleet",
            "sealbox_tools.local_stack",
            "sealbox_tools.provisioning",
            "sealbox_tools.demo",
            "chalicelib",
            "boto3",
            "botocore",
            "requests",
        )
        == []
    )
    # The serialization package (PEM, SSH, PKCS#12) costs megabytes of RSS.
    assert "cryptography.hazmat.primitives.serialization.ssh" not in loaded


def test_every_verb_is_still_listed_and_reachable() -> None:
    from click.testing import CliRunner

    from sealbox_tools.cli import main

    listing = CliRunner().invoke(main, ["--help"])
    assert listing.exit_code == 0
    for verb in ("age", "age-keygen", "audit", "demo", "device", "fleet", "local"):
        assert f"  {verb} " in listing.output, verb
        shown = CliRunner().invoke(main, [verb, "--help"])
        assert shown.exit_code == 0, (verb, shown.output)
    assert CliRunner().invoke(main, ["no-such-verb"]).exit_code == 2


def modules_after_launcher(argv: list[str], tmp_path: Path) -> tuple[int, list[str]]:
    """Exit status and modules loaded once the console script ran ``sealbox <argv>``."""
    code = (
        "import sys, json, atexit\n"
        "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
        f"sys.argv = ['sealbox', *{argv!r}]\n"
        "from sealbox_tools.launcher import main\n"
        "main()\n"
    )
    return _run_listing_modules(code, tmp_path)


def test_the_console_script_runs_sealbox_age_without_click(tmp_path: Path) -> None:
    from client_sim import age

    (tmp_path / "in").write_bytes(b"plain")
    recipient = str(age.X25519Identity.generate().recipient())
    status, loaded = modules_after_launcher(["age", "-r", recipient, "-o", "out", "in"], tmp_path)
    assert status == 0
    assert (tmp_path / "out").read_bytes().startswith(b"age-encryption.org/v1\n")
    assert "client_sim.age_cli" in loaded
    assert under(loaded, "click", "sealbox_tools.cli", "client_sim.age_click") == []
    # Nor what only age-keygen or a passphrase prompt needs.
    assert under(loaded, "datetime", "getpass") == []
    status, loaded = modules_after_launcher(["age", "--help"], tmp_path)
    assert status == 0
    assert "click" in loaded  # help (and every usage error) is still click's


# What a plain X25519 `sealbox age -r` must not import: start-up is a large
# share of the whole process that bench.age_throughput compares with Go's
# age.  dataclasses drags in inspect (ast, dis, tokenize); the others are
# the hybrid, passphrase, armor and signing machinery that only other
# command lines need.
NOT_FOR_A_PLAIN_ENCRYPTION = (
    "dataclasses",
    "inspect",
    "ast",
    "dis",
    "tokenize",
    "client_sim.age.pq",
    "client_sim.age.scrypt",
    "client_sim.age.armor",
    "cryptography.hazmat.primitives.hpke",
    "cryptography.hazmat.primitives.asymmetric.mlkem",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "cryptography.hazmat.primitives.kdf.argon2",
    "cryptography.hazmat.primitives.kdf.scrypt",
)


def test_a_plain_encryption_imports_only_what_it_uses(tmp_path: Path) -> None:
    from client_sim import age

    (tmp_path / "in").write_bytes(b"plain" * 100_000)
    identity = age.X25519Identity.generate()
    status, loaded = modules_after_launcher(
        ["age", "-r", str(identity.recipient()), "-o", "out", "in"], tmp_path
    )
    assert status == 0
    assert age.decrypt_bytes((tmp_path / "out").read_bytes(), [identity]) == b"plain" * 100_000
    assert under(loaded, *NOT_FOR_A_PLAIN_ENCRYPTION) == []


def test_the_lazy_modules_still_load_when_needed(tmp_path: Path) -> None:
    # The probe above sees lazily imported modules: a hybrid recipient
    # loads its module and HPKE, and armor loads the armor module.
    from client_sim import age

    (tmp_path / "in").write_bytes(b"plain")
    hybrid = age.HybridIdentity.generate()
    status, loaded = modules_after_launcher(
        ["age", "-a", "-r", str(hybrid.recipient()), "-o", "out", "in"], tmp_path
    )
    assert status == 0
    assert age.decrypt_bytes((tmp_path / "out").read_bytes(), [hybrid]) == b"plain"
    for module in (
        "client_sim.age.pq",
        "client_sim.age.armor",
        "cryptography.hazmat.primitives.hpke",
        "cryptography.hazmat.primitives.asymmetric.mlkem",
    ):
        assert module in loaded, module
