"""Sealbox's pytest plugin: simulated phones and fleets in an app team's own suite.

Installed with the ``sealbox`` package and loaded by pytest through the
``pytest11`` entry point (no ``conftest.py`` needed).  docs/testing.md is the
user's guide.  Fixtures, all function-scoped (isolated per test):

``sealbox_backend``  a :class:`~.backend.TestBackend`: in process on moto by
                     default (a fresh account per test), or over HTTP with
                     ``--sealbox-url`` (or ``--sealbox-local``, which starts
                     ``sealbox local`` once per worker); usernames carry a
                     per-test tag, so tests sharing a stage never collide.
``sealbox_phone``    a :class:`~.backend.PhoneFactory`: ``sealbox_phone("alice")``
                     is a registered, logged-in ``Device`` with its keys backed
                     up; ``sealbox_phone.identity("alice")`` is her identity.
``sealbox_fleet``    ``sealbox_fleet(devices=20, scenario="standard", ...)`` runs a
                     fleet on the test's backend and returns a
                     :class:`~.fleet.FleetOutcome` (report, ledger, audit
                     verdict; ``assert_passed()`` explains a failure).

Parallel-safe under pytest-xdist: in process every worker has its own moto
state (a process of its own), over HTTP every test its own usernames.
Nothing heavy is imported until a fixture is used, so loading the plugin
costs a suite that doesn't use it nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sealbox_tools.local_stack import LocalStack
    from sealbox_tools.pytest_plugin.backend import BackendOptions, PhoneFactory, TestBackend
    from sealbox_tools.pytest_plugin.fleet import FleetRunner

__all__ = [
    "pytest_addoption",
    "pytest_configure",
    "sealbox_backend",
    "sealbox_fleet",
    "sealbox_options",
    "sealbox_phone",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sealbox", "Sealbox simulated phones and fleets")
    group.addoption(
        "--sealbox-url",
        metavar="URL",
        help="Run phones and fleets over HTTP against this API (sealbox local or a "
        "deployed stage) instead of in process on moto.",
    )
    group.addoption(
        "--sealbox-local",
        action="store_true",
        help="Start `sealbox local` once per test process and run over HTTP against it.",
    )
    group.addoption(
        "--sealbox-stage",
        metavar="NAME",
        help="Over HTTP: the stage's name, so fleets can audit its storage.",
    )
    group.addoption(
        "--sealbox-aws-endpoint",
        metavar="URL",
        help="Over HTTP: the stage's AWS endpoint (sealbox local prints it).",
    )
    group.addoption(
        "--sealbox-storage-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="Over HTTP: where the stage's presigned URLs may point (repeatable).",
    )
    group.addoption(
        "--sealbox-extension",
        action="append",
        default=[],
        metavar="MODULE",
        help="In process: install this backend extension module (repeatable; adds to "
        "the sealbox_extensions ini setting).",
    )
    parser.addini(
        "sealbox_extensions",
        type="linelist",
        default=[],
        help="Backend extension modules to install in process (chalicelib.extensions).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sealbox_fleet: the test runs a simulated Sealbox fleet (slow-ish)"
    )


@pytest.fixture(scope="session")
def sealbox_options(request: pytest.FixtureRequest) -> Iterator[BackendOptions]:
    """What ``--sealbox-*`` chose; with ``--sealbox-local``, the stack it started
    (once per test process, stopped at the end)."""
    from sealbox_tools.pytest_plugin.backend import BackendOptions

    config = request.config
    extensions = (
        *config.getini("sealbox_extensions"),
        *config.getoption("sealbox_extension"),
    )
    url = config.getoption("sealbox_url")
    if config.getoption("sealbox_local"):
        if url:
            raise pytest.UsageError("--sealbox-url and --sealbox-local exclude each other")
        stack = _start_local_stack(extensions)
        try:
            yield BackendOptions(
                url=stack.url,
                stage=stack.stage,
                aws_endpoint=stack.aws_endpoint,
                storage_origins=(),
                extensions=extensions,
            )
        finally:
            stack.stop()
        return
    yield BackendOptions(
        url=url,
        stage=config.getoption("sealbox_stage"),
        aws_endpoint=config.getoption("sealbox_aws_endpoint"),
        storage_origins=tuple(config.getoption("sealbox_storage_origin")),
        extensions=extensions,
    )


def _start_local_stack(extensions: tuple[str, ...]) -> LocalStack:
    from sealbox_tools.local_stack import LocalStack

    return LocalStack(extensions=extensions, startup_timeout=90.0).start()


@pytest.fixture
def sealbox_backend(
    sealbox_options: BackendOptions, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[TestBackend]:
    """This test's backend (fresh moto state in process, unique usernames over HTTP)."""
    from sealbox_tools.pytest_plugin.backend import TestBackend, open_backend, username_tag

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    with open_backend(sealbox_options) as backend:
        yield TestBackend(
            backend,
            username_tag(request.node.nodeid, worker),
            tmp_path / "phones",
            auditable=sealbox_options.url is None or sealbox_options.stage is not None,
        )


@pytest.fixture
def sealbox_phone(sealbox_backend: TestBackend) -> PhoneFactory:
    """``sealbox_phone("alice")``: a registered, logged-in phone (keys backed up);
    the same person again is a new phone restored from the backup."""
    from sealbox_tools.pytest_plugin.backend import PhoneFactory

    return PhoneFactory(sealbox_backend)


@pytest.fixture
def sealbox_fleet(sealbox_backend: TestBackend, tmp_path: Path) -> FleetRunner:
    """``sealbox_fleet(devices=20, scenario="standard", ...)``: run a fleet on this
    test's backend; returns its :class:`~sealbox_tools.pytest_plugin.fleet.FleetOutcome`."""
    from sealbox_tools.pytest_plugin.fleet import FleetRunner

    return FleetRunner(sealbox_backend, tmp_path / "fleet")


def __getattr__(name: str) -> Any:
    # The public types, importable from the plugin without paying for them
    # when the plugin merely loads.
    if name in {"TestBackend", "PhoneFactory", "BackendOptions"}:
        from sealbox_tools.pytest_plugin import backend

        return getattr(backend, name)
    if name in {"FleetRunner", "FleetOutcome"}:
        from sealbox_tools.pytest_plugin import fleet

        return getattr(fleet, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
