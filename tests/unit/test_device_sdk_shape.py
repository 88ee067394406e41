"""The device SDK's shape: a thin facade, one error tree, objects that don't reach back.

These are rules a refactor could quietly break, so they are tests (STYLE 13-15).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import client_sim
from client_sim import errors
from client_sim.device import Device
from client_sim.errors import (
    DeviceError,
    NotLoggedIn,
    ServerError,
    TooManyAttempts,
    UsernameTaken,
    WrongPassword,
    from_server,
    reported,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "client_sim"
# Libraries usable without the SDK keep errors of their own (age mirrors
# age's API; the formats raise format errors the SDK turns into its own),
# and the command lines have their private usage error.
OWN_ERRORS = {
    "client_sim._hazmat",
    "client_sim.backup",
    "client_sim.identity",
    "client_sim.passwords",
    "client_sim.sealed",
    "client_sim.sealed_errors",
    "client_sim.sealed_framing",
    "client_sim.age_cli",
    "client_sim.device_cli",
    "client_sim.device_group_cli",
}
# The objects the facade delegates to: each has one job, none knows the facade.
OBJECTS = [
    "accounts",
    "api",
    "backup_sync",
    "blobs",
    "card_cache",
    "directory",
    "files",
    "group_state",
    "groups",
    "messages",
    "session",
    "store",
    "transfers",
    "transport",
    "trust",
]


def _sdk_modules() -> list[str]:
    names = ["client_sim"]
    for info in pkgutil.walk_packages(client_sim.__path__, "client_sim."):
        if info.name.startswith("client_sim.age") and info.name != "client_sim.age_cli":
            continue  # the age library: its own errors, like age's
        names.append(info.name)
    return names


def test_every_public_device_method_reports_through_the_one_wrapper() -> None:
    public = [
        name
        for name, member in inspect.getmembers(Device, inspect.isfunction)
        if not name.startswith("_")
    ]
    assert len(public) > 20
    unwrapped = [name for name in public if not hasattr(getattr(Device, name), "__wrapped__")]
    assert unwrapped == []


def test_every_exception_the_sdk_defines_is_in_the_one_tree() -> None:
    outside: list[str] = []
    for name in _sdk_modules():
        if name in OWN_ERRORS:
            continue
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == name
                and not issubclass(value, DeviceError)
            ):
                outside.append(f"{name}.{attr}")
    assert outside == []


def test_the_objects_define_no_errors_of_their_own() -> None:
    # One module names every failure; the objects raise those names.
    for name in OBJECTS:
        module = importlib.import_module(f"client_sim.{name}")
        own = [
            attr
            for attr, value in vars(module).items()
            if inspect.isclass(value)
            and issubclass(value, BaseException)
            and value.__module__ == module.__name__
        ]
        assert own == [], name


def test_no_private_exceptions_steer_control_flow() -> None:
    private = []
    for path in SDK.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.startswith("_"):
                bases = {ast.unparse(base) for base in node.bases}
                if bases & {"Exception", "BaseException", "RuntimeError", "ValueError"}:
                    private.append(f"{path.relative_to(ROOT)}:{node.name}")
    # The age CLI's usage error never leaves its module (it becomes an exit code).
    assert private == ["client_sim/age_cli.py:_CLIError"]


def test_the_objects_never_reach_back_into_the_facade() -> None:
    for name in OBJECTS:
        tree = ast.parse((SDK / f"{name}.py").read_text(encoding="utf-8"))
        imported: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module is not None:
                imported.add(node.module)
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        assert "client_sim.device" not in imported, name
        assert "client_sim.Device" not in imported, name


@pytest.mark.parametrize(
    ("code", "meant"),
    [
        ("invalid_credentials", WrongPassword),
        ("too_many_attempts", TooManyAttempts),
        ("username_taken", UsernameTaken),
        ("invalid_token", NotLoggedIn),
    ],
)
def test_server_codes_the_caller_acts_on_get_their_own_name(
    code: str, meant: type[DeviceError]
) -> None:
    assert isinstance(from_server(ServerError(401, code, "", retry_after=7)), meant)


def test_other_refusals_stay_the_server_error_they_are() -> None:
    refusal = ServerError(409, "card_conflict", "no")
    assert from_server(refusal) is refusal


def test_throttling_keeps_its_retry_after() -> None:
    meant = from_server(ServerError(429, "too_many_attempts", "", retry_after=30))
    assert isinstance(meant, TooManyAttempts)
    assert meant.retry_after == 30


def test_the_wrapper_renames_with_the_original_as_cause() -> None:
    @reported
    def refused() -> None:
        raise ServerError(401, "invalid_credentials", "nope")

    with pytest.raises(WrongPassword) as caught:
        refused()
    assert isinstance(caught.value.__cause__, ServerError)


def test_a_servers_words_stay_out_of_the_message() -> None:
    # A hostile server chooses its message: it never reaches str(exc), so it
    # can't smuggle terminal escapes or fake advice into what a CLI prints.
    hostile = "\x1b[2J call +1-555 and read us your password"
    exc = ServerError(400, "invalid_request", hostile)
    assert hostile not in str(exc)
    assert "\x1b" not in str(exc)
    assert exc.message == hostile
    assert str(exc) == "the server refused the request: 400 invalid_request"


def test_the_package_exports_the_one_tree() -> None:
    exported = {name for name in client_sim.__all__ if name != "Device"}
    tree = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, DeviceError)
    }
    assert exported == tree
    for name in exported:
        assert getattr(client_sim, name) is getattr(errors, name)
