"""The plugin's backend: where a test's phones and fleets run, one per test.

:class:`TestBackend` wraps a fleet backend (:mod:`sealbox_tools.fleet.backends`):

* in process (the default): a fresh moto account per test -- its own
  tables, bucket and secrets -- with the Chalice app driven through
  ``chalice.test.Client``, and the app team's extensions installed;
* over HTTP: ``sealbox local`` or a deployed stage shared by every test,
  isolated by a unique username prefix per test (:attr:`TestBackend.tag`).

Either way every phone is a real :class:`~client_sim.device.Device`, on the
fast simulation KDF profile (test-only: real phones use the v1 profile).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client_sim.device import Device
from client_sim.passwords import PASSWORD_KDF_SIMULATION
from sealbox_tools.fleet.backends import Backend, HttpBackend, InProcessBackend, aws_clients

__all__ = [
    "BackendOptions",
    "PhoneFactory",
    "TestBackend",
    "open_backend",
    "username_tag",
    "without_pytest_log_capture",
]

#: The password every phone the factory makes uses unless told otherwise.
#: Test data only (it is public).
DEFAULT_PASSWORD = "correct horse battery staple"  # noqa: S105 - test data, public


@dataclass(frozen=True)
class BackendOptions:
    """What the command line chose (``--sealbox-*``); see :mod:`.plugin`."""

    url: str | None = None
    stage: str | None = None
    aws_endpoint: str | None = None
    storage_origins: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()

    @property
    def mode(self) -> str:
        return "http" if self.url else "in-process"


def username_tag(nodeid: str, worker: str = "") -> str:
    """A username prefix unique to one test run: a hash of the test's id and
    the xdist worker, plus randomness (two runs against one stage, or a
    rerun, never share usernames).  Short: identities are at most 64
    characters."""
    digest = hashlib.sha256(f"{worker}/{nodeid}".encode()).hexdigest()[:6]
    return f"t{digest}{secrets.token_hex(2)}"


@contextlib.contextmanager
def without_pytest_log_capture() -> Iterator[None]:
    """Detach pytest's own log capture from the root logger for the block.

    A fleet captures every record at DEBUG itself (hundreds of thousands
    for a large run); pytest's capture, attached to the root logger for
    each test phase, would keep them all a second time and print them all
    when the test fails.
    """
    root = logging.getLogger()
    theirs = [h for h in root.handlers if type(h).__module__.startswith("_pytest")]
    for handler in theirs:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in theirs:
            root.addHandler(handler)


@contextlib.contextmanager
def open_backend(options: BackendOptions) -> Iterator[Backend]:
    """The backend ``options`` name, entered (in process: a fresh moto account).

    Raises:
        ImportError, chalicelib.extensions.ExtensionError: an extension
            that can't be installed (in process).
    """
    if options.url is None:
        # Logs are captured for a fleet's audit only while it runs
        # (FleetRunner): a phone test keeps the root logger's level.
        with InProcessBackend(capture_logs=False) as backend:
            if options.extensions:
                from app import app
                from chalicelib import extensions

                extensions.install(app, options.extensions)
            yield backend
        return
    aws = aws_clients(options.aws_endpoint) if options.stage else None
    origins = (*options.storage_origins, *([options.aws_endpoint] if options.aws_endpoint else []))
    yield HttpBackend(options.url, aws=aws, stage=options.stage, storage_origins=origins)


@dataclass
class TestBackend:
    """One test's backend, and everything it made there.

    Attributes:
        backend: the fleet backend (``mode`` is ``in-process`` or ``http``).
        tag: this test's username prefix: ``name(...)`` adds it.
        home: where this test's phones keep their keystores.
        auditable: whether a fleet's privacy audit can read the backend's
            storage (in process always; over HTTP with a stage).
    """

    __test__ = False  # not a test class, whatever its name says

    backend: Backend
    tag: str
    home: Path
    #: Whether the privacy audit can read the backend's storage.
    auditable: bool = True
    devices: list[Device] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return self.backend.mode

    def name(self, person: str) -> str:
        """The identity ``person`` has in this test (``alice`` -> ``alice-t1a2b3c``)."""
        return f"{person}-{self.tag}"

    def device(self, label: str) -> Device:
        """A new, empty phone (nothing registered) with its own home directory."""
        home = self.home / f"{label}-{len(self.devices)}"
        device = Device(
            home,
            self.backend.api(),
            kdf=PASSWORD_KDF_SIMULATION,
            clock=self.backend.clock,
            objects=self.backend.objects(),
            storage_origins=self.backend.storage_origins(),
        )
        self.devices.append(device)
        return device

    def advance_time(self, seconds: float) -> None:
        """Let simulated time pass for the server and every phone (in process only).

        Raises:
            RuntimeError: over HTTP, where the server's clock is real.
        """
        self.backend.advance_time(seconds)

    def aws_client(self, service: str) -> Any:
        """A boto3 client for this test's moto account (in process only).

        Raises:
            RuntimeError: over HTTP (use your stage's own credentials).
        """
        if not isinstance(self.backend, InProcessBackend):
            raise RuntimeError("aws_client is for the in-process backend")
        return self.backend.client(service)


class PhoneFactory:
    """``sealbox_phone(person)``: a ready phone for ``person``.

    The first phone of a person registers the account (log in, keys made on
    the phone, card published) and backs the keys up; asking again for the
    same person gives that person a *new* phone, logged in with the keys
    restored from the backup.  ``ready=False`` gives an empty phone.
    """

    def __init__(self, backend: TestBackend) -> None:
        self._backend = backend
        self._people: dict[str, str] = {}

    def __call__(
        self, person: str = "alice", *, password: str | None = None, ready: bool = True
    ) -> Device:
        """A phone for ``person`` (see the class); its identity is
        :meth:`identity` ``(person)``.

        Raises:
            client_sim.DeviceError: the backend refused (a test's bug or the
                backend's: the message names the step).
        """
        device = self._backend.device(person)
        if not ready:
            return device
        username = self._backend.name(person)
        known = self._people.get(person)
        if known is None:
            secret = password or DEFAULT_PASSWORD
            device.register(username, secret)
            device.backup_private_key()
            self._people[person] = secret
        else:
            device.login(username, password or known)
        return device

    def identity(self, person: str) -> str:
        """``person``'s identity in this test (usable in ``to=[...]``)."""
        return self._backend.name(person)

    @property
    def people(self) -> Sequence[str]:
        """The people registered so far, in order."""
        return list(self._people)
