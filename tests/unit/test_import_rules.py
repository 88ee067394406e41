"""Import rules between the three rooms (DESIGN §5, STYLE 16).

What runs on a phone (``client_sim``), what runs on Lambda (``app.py`` and
``chalicelib``) and what drives or inspects a backend from outside
(``sealbox_tools``) may only depend on each other in the allowed directions,
and only two private modules touch ``cryptography.hazmat``.  Every ``.py``
file is parsed with :mod:`ast` (nothing is imported or run) and each of its
imports is checked against :data:`RULES`: module-level imports, imports
inside functions and under ``if TYPE_CHECKING:`` alike, ``from x import y``
(which names both ``x`` and ``x.y``, since ``y`` may be a submodule), relative
imports (resolved against the file's package), and ``importlib.import_module``
or ``__import__`` with a literal name.  A name built at run time, or a module
started with ``python -m`` in a subprocess, is out of this scanner's reach.

Each rule is also run against planted sources, so a rule that can no longer
fail (a mistyped path, a scanner that stopped seeing a kind of import) fails
here instead of passing silently.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

# The directories and top-level modules whose imports are checked.  tests/
# is not: the vector tests import cryptography.hazmat on purpose, as an
# independent oracle (ruff exempts tests/ from the hazmat ban for the same
# reason), and tests may reach into every room.
SCANNED = ("app.py", "chalicelib", "client_sim", "sealbox_tools", "bench")


def module_name(relative: str) -> str:
    """The dotted module name of a ``.py`` path relative to the repository root.

    ``client_sim/age/__init__.py`` is ``client_sim.age``; ``app.py`` is ``app``.
    """
    parts = list(Path(relative).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(relative: str) -> str:
    """The package a file's relative imports are resolved against."""
    name = module_name(relative)
    if Path(relative).name == "__init__.py":
        return name
    return name.rpartition(".")[0]


def _resolve(node: ast.ImportFrom, package: str) -> str:
    """The absolute module ``node`` imports from (PEP 328 resolution)."""
    if node.level == 0:
        return node.module or ""
    base = package.split(".") if package else []
    if node.level > len(base):  # as importlib refuses it: above the top-level package
        raise ValueError(f"relative import beyond the top-level package: level {node.level}")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(source: str, package: str = "") -> set[str]:
    """Every module name ``source`` imports, wherever the import statement is.

    ``import a.b`` names ``a.b``; ``from a import b`` names ``a`` and ``a.b``
    (``b`` may be a module or an attribute: both are kept, the rules match by
    prefix); ``from . import b`` is resolved against ``package`` (the dotted
    package the source lives in); ``importlib.import_module("a")`` and
    ``__import__("a")`` with a literal string name ``a``.

    Raises:
        SyntaxError: ``source`` is not Python.
        ValueError: a relative import climbs above ``package``.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(node, package)
            if module:
                found.add(module)
            found.update(
                f"{module}.{alias.name}" if module else alias.name
                for alias in node.names
                if alias.name != "*"
            )
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            name = _literal_first_argument(node)
            if name is not None:
                found.add(name)
    return found


def _literal_first_argument(call: ast.Call) -> str | None:
    """The first argument of ``call`` when it is a string literal, else None."""
    first = call.args[0] if call.args else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def _is_dynamic_import(func: ast.expr) -> bool:
    """``importlib.import_module``, a bare ``import_module`` or ``__import__``."""
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id in {"import_module", "__import__"}


def _within(name: str, prefixes: Iterable[str]) -> bool:
    """``name`` is one of ``prefixes`` or a submodule (or attribute) of one."""
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _ancestor_of(name: str, prefixes: Iterable[str]) -> bool:
    """``name`` is a package that contains one of ``prefixes``.

    ``from chalicelib.wire import cards`` and ``from chalicelib import wire``
    both name the bare package ``chalicelib`` on the way to an allowed module;
    that is not a dependency on the rest of it.
    """
    return any(prefix.startswith(name + ".") for prefix in prefixes)


@dataclass(frozen=True)
class Rule:
    """Files under ``under`` (paths or directories relative to the root, walked
    recursively) must not import a module within ``forbidden`` unless it is
    within ``allowed``; files listed in ``exempt`` are not checked."""

    name: str
    under: tuple[str, ...]
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()

    def covers(self, relative: str) -> bool:
        """Whether the rule checks the file at ``relative`` (a POSIX path)."""
        if relative in self.exempt:
            return False
        return any(relative == top or relative.startswith(top + "/") for top in self.under)

    def violations(self, imports: Mapping[str, set[str]]) -> list[str]:
        """``"path imports module"`` for each import that breaks the rule, sorted.

        ``imports`` maps a file's relative POSIX path to :func:`imports_of` it.
        """
        return sorted(
            f"{relative} imports {name}"
            for relative, names in imports.items()
            if self.covers(relative)
            for name in names
            if _within(name, self.forbidden)
            and not _within(name, self.allowed)
            and not _ancestor_of(name, self.allowed)
        )


# The device side shares the wire formats with the server and nothing else
# of it.  chalicelib.wire itself uses chalicelib.crypto (card signatures, JWK
# thumbprints), so a device runs that module through wire; client_sim does
# not import it directly and need not.
DEVICE = Rule(
    name="client_sim imports only chalicelib.wire of the server, never app or the tooling",
    under=("client_sim",),
    forbidden=("app", "chalicelib", "sealbox_tools"),
    allowed=("chalicelib.wire",),
)
# What ships to Lambda is app.py and chalicelib/ (`chalice package`): the
# device side and the tooling are not there to import.
LAMBDA = Rule(
    name="the Lambda side imports neither client_sim nor sealbox_tools",
    under=("app.py", "chalicelib"),
    forbidden=("client_sim", "sealbox_tools"),
)
NO_ROOT = Rule(
    name="chalicelib never imports the composition root",
    under=("chalicelib",),
    forbidden=("app",),
)
SERVICES = Rule(
    name="services are pure: no chalice, no boto3",
    under=("chalicelib/services",),
    forbidden=("chalice", "boto3", "botocore"),
)
# Wire formats are pure and shared with the device.  appkey, cards and jwk
# sign, verify and hash through chalicelib.crypto (the server's one hazmat
# module), so that one is allowed too.
WIRE = Rule(
    name="wire is pure: no chalice, no boto3, nothing of chalicelib but wire and crypto",
    under=("chalicelib/wire",),
    forbidden=("chalice", "boto3", "botocore", "chalicelib"),
    allowed=("chalicelib.wire", "chalicelib.crypto"),
)
HAZMAT = Rule(
    name="only chalicelib/crypto.py and client_sim/_hazmat.py import cryptography.hazmat",
    under=SCANNED,
    forbidden=("cryptography.hazmat",),
    exempt=("chalicelib/crypto.py", "client_sim/_hazmat.py"),
)
# The ristretto255 group for the OPRF (docs/spec/oprf.md) is libsodium's,
# through rbcl: one room for it too, the server's crypto module, which the
# device reaches only through chalicelib.wire.oprf.
GROUP = Rule(
    name="only chalicelib/crypto.py imports rbcl",
    under=SCANNED,
    forbidden=("rbcl",),
    exempt=("chalicelib/crypto.py",),
)
RULES = (DEVICE, LAMBDA, NO_ROOT, SERVICES, WIRE, HAZMAT, GROUP)


def scan(root: Path = ROOT) -> dict[str, set[str]]:
    """:func:`imports_of` every ``.py`` file in :data:`SCANNED`, by relative path."""
    paths: list[Path] = []
    for top in SCANNED:
        path = root / top
        paths.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    result: dict[str, set[str]] = {}
    for path in paths:
        relative = path.relative_to(root).as_posix()
        result[relative] = imports_of(path.read_text(encoding="utf-8"), _package_of(relative))
    return result


@pytest.fixture(scope="module")
def project_imports() -> dict[str, set[str]]:
    return scan()


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_rule_holds(rule: Rule, project_imports: dict[str, set[str]]) -> None:
    covered = [relative for relative in project_imports if rule.covers(relative)]
    # A rule over no files (a renamed directory) would pass vacuously.
    assert covered, f"{rule.name}: no file under {rule.under}"
    assert rule.violations(project_imports) == []


def test_scanner_sees_the_real_project(project_imports: dict[str, set[str]]) -> None:
    # Known imports of each kind in the real tree, so a scanner that stopped
    # reading files (or a kind of import) shows here and not as a green rule.
    assert "chalicelib.wire.cards" in project_imports["client_sim/identity.py"]
    # Function-level, and from the tooling into both sides.
    assert "app" in project_imports["sealbox_tools/fleet/backends.py"]
    assert "client_sim._hazmat" in project_imports["sealbox_tools/fleet/cpu.py"]
    hazmat_imports = project_imports["client_sim/_hazmat.py"]
    assert any(_within(name, ["cryptography.hazmat"]) for name in hazmat_imports)
    assert "chalicelib.crypto" in project_imports["chalicelib/wire/cards.py"]
    assert "rbcl" in project_imports["chalicelib/crypto.py"]  # imported inside a function
    # Both layouts of the blob service (a module or a package) are walked.
    assert any(
        relative == "chalicelib/services/blobs.py"
        or relative.startswith("chalicelib/services/blobs/")
        for relative in project_imports
    )


# --- the scanner and the rules can fail -------------------------------------

PLANTED = """
import app
from chalicelib.services import accounts
from . import sibling
import importlib

def later():
    import boto3
    from cryptography.hazmat.primitives import hashes
    importlib.import_module("sealbox_tools.cli")
"""


def test_imports_of_finds_every_kind_of_import() -> None:
    found = imports_of(PLANTED, package="client_sim.age")
    assert {
        "app",
        "chalicelib.services",
        "chalicelib.services.accounts",
        "client_sim.age",
        "client_sim.age.sibling",
        "boto3",  # inside a function
        "cryptography.hazmat.primitives",
        "cryptography.hazmat.primitives.hashes",
        "sealbox_tools.cli",  # importlib with a literal name
    } <= found


def test_relative_imports_resolve_against_the_package() -> None:
    assert imports_of("from ..wire import cards", package="chalicelib.services") >= {
        "chalicelib.wire",
        "chalicelib.wire.cards",
    }
    assert _package_of("client_sim/age/__init__.py") == "client_sim.age"
    assert _package_of("client_sim/age/_core.py") == "client_sim.age"
    assert module_name("app.py") == "app"
    with pytest.raises(ValueError, match="beyond"):
        imports_of("from ... import x", package="client_sim")


# (rule, a planted file, its source, the import that must be reported)
_PLANTED_VIOLATIONS = [
    (DEVICE, "client_sim/device.py", "import app", "app"),
    (DEVICE, "client_sim/age/_core.py", "def f():\n    import sealbox_tools", "sealbox_tools"),
    (DEVICE, "client_sim/blobs.py", "from chalicelib import crypto", "chalicelib.crypto"),
    (DEVICE, "client_sim/api.py", "from chalicelib.services import x", "chalicelib.services"),
    (LAMBDA, "chalicelib/routes/cards.py", "from client_sim import device", "client_sim"),
    (LAMBDA, "app.py", "import sealbox_tools.cli", "sealbox_tools.cli"),
    (NO_ROOT, "chalicelib/wiring.py", "def f():\n    from app import app", "app"),
    (SERVICES, "chalicelib/services/cards.py", "import boto3", "boto3"),
    (SERVICES, "chalicelib/services/blobs/model.py", "from chalice import Response", "chalice"),
    (SERVICES, "chalicelib/services/tokens.py", "import botocore.config", "botocore.config"),
    (WIRE, "chalicelib/wire/cards.py", "from chalicelib import wiring", "chalicelib.wiring"),
    (WIRE, "chalicelib/wire/b64.py", "import chalice", "chalice"),
    (WIRE, "chalicelib/wire/jwk.py", "from .. import config", "chalicelib.config"),
    (
        HAZMAT,
        "sealbox_tools/fleet/cpu.py",
        "from cryptography.hazmat.primitives import hashes",
        "cryptography.hazmat.primitives",
    ),
    (HAZMAT, "client_sim/device.py", "from cryptography import hazmat", "cryptography.hazmat"),
    (GROUP, "client_sim/hardening.py", "import rbcl", "rbcl"),
    (GROUP, "chalicelib/wire/oprf.py", "def f():\n    from rbcl import rbcl", "rbcl.rbcl"),
    (
        HAZMAT,
        "bench/login.py",
        "import cryptography.hazmat.backends",
        "cryptography.hazmat.backends",
    ),
]


@pytest.mark.parametrize(("rule", "relative", "source", "reported"), _PLANTED_VIOLATIONS)
def test_each_rule_reports_a_planted_import(
    rule: Rule, relative: str, source: str, reported: str
) -> None:
    imports = {relative: imports_of(source, _package_of(relative))}
    assert f"{relative} imports {reported}" in rule.violations(imports)


def test_every_rule_has_a_planted_violation() -> None:
    assert {rule.name for rule, *_ in _PLANTED_VIOLATIONS} == {rule.name for rule in RULES}


@pytest.mark.parametrize(
    ("rule", "relative", "source"),
    [
        (DEVICE, "client_sim/keystore.py", "from chalicelib.wire.binary import Reader"),
        (DEVICE, "client_sim/blobs.py", "from chalicelib import wire"),
        (WIRE, "chalicelib/wire/jwk.py", "from chalicelib.crypto import sha256"),
        (WIRE, "chalicelib/wire/cards.py", "from chalicelib import crypto"),
        (WIRE, "chalicelib/wire/cards.py", "from .b64 import b64url_encode"),
        (HAZMAT, "client_sim/_hazmat.py", "from cryptography.hazmat import primitives"),
        # A file outside the rule's directories is not its business.
        (SERVICES, "chalicelib/storage/dynamo.py", "import boto3"),
        (DEVICE, "sealbox_tools/demo.py", "import app"),
    ],
)
def test_rules_allow_what_is_legitimate(rule: Rule, relative: str, source: str) -> None:
    assert rule.violations({relative: imports_of(source, _package_of(relative))}) == []
