"""Access to the external oracles: CCTV vectors, typage, voprf-ts, the age CLI, pyrage.

Every accessor returns ``None`` (or False) when its oracle is not installed,
so tests can hand that to :func:`tests.conftest.require_oracle`, which skips
locally and fails in CI.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

ORACLES = Path(__file__).resolve().parent
NODE_MODULES = ORACLES / "node_modules"
TYPAGE_SCRIPT = ORACLES / "typage.mjs"
VOPRF_SCRIPT = ORACLES / "voprf.mjs"
# A checkout whose shared node_modules predates an oracle can point here at
# another install of the same package.json (npm ci in a scratch copy).
VOPRF_DIR_ENV = "SEALBOX_VOPRF_ORACLE_DIR"
AGE_CLI = "/usr/bin/age"
AGE_KEYGEN_CLI = "/usr/bin/age-keygen"


def node() -> str | None:
    return shutil.which("node")


def typage_available() -> bool:
    return node() is not None and (NODE_MODULES / "age-encryption" / "package.json").is_file()


def age_cli_available() -> bool:
    return Path(AGE_CLI).is_file() and Path(AGE_KEYGEN_CLI).is_file()


def pyrage_available() -> bool:
    try:
        import pyrage  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def cctv_vectors() -> dict[str, bytes] | None:
    """Every vector exported by the pinned ``cctv-age`` package, by name."""
    exe = node()
    if exe is None or not (NODE_MODULES / "cctv-age" / "package.json").is_file():
        return None
    out = subprocess.run(
        [exe, str(ORACLES / "cctv_dump.mjs")],
        cwd=ORACLES,
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    return {name: base64.b64decode(data) for name, data in json.loads(out).items()}


def typage(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> bytes:
    """Run tests/oracles/typage.mjs; raises CalledProcessError on refusal."""
    exe = node()
    assert exe is not None
    return subprocess.run(
        [exe, str(TYPAGE_SCRIPT), *args],
        cwd=ORACLES,
        input=stdin,
        check=True,
        capture_output=True,
        timeout=120,
        env=env,
    ).stdout


def _voprf_dir() -> Path:
    return Path(os.environ.get(VOPRF_DIR_ENV) or ORACLES)


def voprf_available() -> bool:
    package = _voprf_dir() / "node_modules" / "@cloudflare" / "voprf-ts" / "package.json"
    return node() is not None and package.is_file()


def voprf(*args: str) -> list[bytes]:
    """Run tests/oracles/voprf.mjs (hex in, hex lines out); CalledProcessError on refusal.

    The script is fed to node as module source with the oracle directory as
    the working directory, so its imports resolve against that directory's
    node_modules (see :data:`VOPRF_DIR_ENV`).
    """
    exe = node()
    assert exe is not None
    out = subprocess.run(
        [exe, "--input-type=module", "-", *args],
        cwd=_voprf_dir(),
        input=VOPRF_SCRIPT.read_bytes(),
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    return [bytes.fromhex(line) for line in out.decode().split()]
