"""Import budget: what ``import app`` and ``import client_sim`` cost on a cold start.

A cold Lambda pays for every module ``app`` imports before the first
request, and a phone app for every module the SDK drags in.  Each case runs
in a fresh interpreter that first imports the dependencies the code really
needs, then the code under test, and looks at what the second import added
to ``sys.modules`` in that same run: only our own modules and a little of
the standard library may appear, within a budget counted in modules (a
number that doesn't drift with the machine's speed, unlike a timing;
``python -m bench.import_time`` reports the milliseconds).  Pulling boto3,
moto or the tooling into a cold start takes hundreds of modules and fails
here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Never on a cold start: the AWS SDK proper (app builds clients lazily), the
# local-only and test-only stacks, and the other rooms.
FORBIDDEN_FOR_APP = ("boto3", "botocore.session", "botocore.client", "moto", "client_sim")
FORBIDDEN_FOR_SDK = ("app", "chalice", "boto3", "botocore", "moto", "requests", "sealbox_tools")
ROOMS = ("sealbox_tools",)


def added_modules(dependencies: str, statement: str) -> list[str]:
    """Modules that ``statement`` adds after ``dependencies`` ran, in one fresh interpreter."""
    code = (
        "import sys, json\n"
        f"{dependencies}\n"
        "before = set(sys.modules)\n"
        f"{statement}\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    added: list[str] = json.loads(out.stdout)
    return added


def own(modules: list[str], *packages: str) -> list[str]:
    return [m for m in modules if m.split(".")[0] in packages]


def offending(modules: list[str], forbidden: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden)]


def test_import_app_adds_only_our_backend() -> None:
    added = added_modules("import chalice, jwt, cryptography, botocore.exceptions", "import app")
    assert offending(added, (*FORBIDDEN_FOR_APP, *ROOMS)) == []
    ours = own(added, "app", "chalicelib")
    assert "app" in ours
    # Our own modules, and a few standard-library ones they need (secrets,
    # unicodedata, a hazmat KDF module): 68 at the second release, after
    # groups (4 modules), password hardening (6: the OPRF route, service,
    # key store and wire formats, and the account service split by size) and
    # key transparency (9: the log's route, service, store and five wire
    # formats).  The budget catches a feature that drags in a module tree,
    # not a feature's few files; bench.import_time measures the cost.
    assert len(ours) <= 75, ours
    assert len(added) - len(ours) <= 20, sorted(set(added) - set(ours))


def test_import_client_sim_is_nearly_free() -> None:
    # The package imports its names on first use: an app that only needs
    # the age library, or a test that only needs a transport, pays nothing.
    added = added_modules("import typing", "import client_sim")
    assert own(added, "client_sim") == ["client_sim"]
    assert offending(added, (*FORBIDDEN_FOR_SDK, "cryptography", "chalicelib")) == []


def test_the_sdk_adds_only_itself_to_its_dependencies() -> None:
    added = added_modules(
        "import cryptography.hazmat.primitives.ciphers.aead, chalicelib.wire.cards",
        "from client_sim import Device",
    )
    assert offending(added, FORBIDDEN_FOR_SDK) == []
    ours = own(added, "client_sim", "chalicelib")
    assert "client_sim.device" in ours
    assert all(m.startswith("client_sim") or m.startswith("chalicelib.wire") for m in ours), ours
    # 59 at the second release (groups, password hardening, transparency);
    # 67 with the group catch-up frame (its wire format and device module).
    assert len(ours) <= 67, ours


def test_the_age_library_does_not_pay_for_the_sdk() -> None:
    added = added_modules("import cryptography", "import client_sim.age")
    assert offending(added, FORBIDDEN_FOR_SDK) == []
    for sdk_module in ("client_sim.device", "client_sim.session", "client_sim.api"):
        assert sdk_module not in added
    # Nor for the key types and formats a plain X25519 file does not use
    # (they load on first use), nor dataclasses and the inspect tree: 12 of
    # our modules -- the package, _hazmat, and age's __init__, _core,
    # _format, _io, _stream, errors, _keys, _keyutil, bech32 and x25519.
    lazy = ("client_sim.age.pq", "client_sim.age.scrypt", "client_sim.age.armor")
    assert offending(added, (*lazy, "dataclasses", "inspect")) == []
    assert offending(added, ("cryptography.hazmat.primitives.hpke",)) == []
    assert len(own(added, "client_sim")) <= 12, own(added, "client_sim")


def test_the_probe_sees_what_an_import_adds() -> None:
    # The budget tests above pass only because the probe sees imports: it
    # must report a module the statement really adds, and not one that was
    # there before it (os is imported by every interpreter's start-up).
    assert "fractions" in added_modules("pass", "import fractions")
    assert offending(added_modules("pass", "import os"), ("os",)) == []
