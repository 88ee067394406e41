"""Where a fleet runs: the backend in this process on moto, or over HTTP.

:class:`InProcessBackend` runs the Chalice app in this process through
``chalice.test.Client`` with AWS on moto's ``mock_aws`` -- no network, no
other process -- so thousands of simulated phones fit on a laptop.  It
plays *one warm Lambda container*: every server-side request (API and
presigned S3 transfers) runs under one lock, because moto's DynamoDB is not
atomic across threads (a conditional write checked by one thread can be
overtaken by another's) and ``chalice.test.Client`` swaps ``os.environ``
for the stage's variables during each request.  The devices' own work --
key derivation, signing, encryption, decryption -- runs concurrently
outside the lock.  Its clock is the simulation's (:class:`SimClock`), so a
run can let simulated time pass between rounds.

:class:`HttpBackend` sends every request over HTTP(S) to ``sealbox local``
or a deployed stage, where Lambda, DynamoDB and S3 scale out for real.  The
server's clock is the real one there.

Both give the audit what the server side holds (:meth:`haystacks`) when
they can reach it.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.wire.oprf_keys import OprfKey
from client_sim.transport import (
    HttpObjectTransport,
    HttpReply,
    HttpTransport,
    InProcessObjectTransport,
    ObjectResponse,
    ObjectTransport,
    Readable,
    Transport,
)
from sealbox_tools.audit import Haystack, LogCapture, aws_haystacks, log_file_haystacks

if TYPE_CHECKING:
    from chalicelib.wiring import Container

__all__ = ["Backend", "HttpBackend", "InProcessBackend", "SimClock", "aws_clients"]


class SimClock:
    """Wall-clock time plus an offset that only grows (simulated time passing)."""

    def __init__(self, base: Callable[[], float] = time.time) -> None:
        self._base = base
        self._offset = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._base() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("simulated time only moves forward")
        with self._lock:
            self._offset += seconds

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset


def process_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of process ``pid`` (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # Fields 14 and 15 of stat(5) (utime, stime), counted after the
    # parenthesised command name, which may itself contain spaces.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Backend(Protocol):
    """What a fleet run needs from where it runs."""

    #: ``in-process`` or ``http``.
    mode: str
    #: The clock the server reads; devices' clocks are derived from it.
    clock: SimClock

    @property
    def can_advance_time(self) -> bool:
        """True when :meth:`advance_time` moves the server's clock too."""
        ...

    def advance_time(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass (server and devices)."""
        ...

    def api(self) -> Transport:
        """A transport to the API (shareable between devices)."""
        ...

    def objects(self) -> ObjectTransport:
        """A transport for presigned object-storage URLs."""
        ...

    def storage_origins(self) -> tuple[str, ...]:
        """Where the backend's presigned URLs point: the devices' storage
        origins (client_sim.origins), besides the API's own over HTTP."""
        ...

    def oprf_roots(self) -> Mapping[int, bytes] | None:
        """The OPRF root keys the devices pin (password hardening on), or None."""
        ...

    def log_key(self) -> str | None:
        """The transparency log verifier key the devices pin, or None."""
        ...

    def operator(self) -> Container | None:
        """What a compromised backend holds -- the stage's tables and secrets,
        through its composition root -- for the ``lying`` scenario; None when
        out of reach."""
        ...

    def oprf_audit_keys(self) -> tuple[OprfKey, ...]:
        """The OPRF keys, when this backend holds them, so the audit can look
        for hardened keys too (empty over HTTP)."""
        ...

    def haystacks(self) -> Iterator[Haystack] | None:
        """Everything the server side holds, or None if it can't be reached."""
        ...

    def audit_notes(self) -> list[str]:
        """What :meth:`haystacks` leaves out, and why (complete once its
        haystacks have been read)."""
        ...

    def tidy(self) -> None:
        """Between phases: drop what the backend keeps but nobody needs."""
        ...

    def server_cpu_seconds(self) -> float | None:
        """CPU seconds the server's own processes have used, if known."""
        ...


def aws_clients(endpoint: str | None, region: str = "us-east-1") -> Callable[[str], Any]:
    """boto3 clients for ``endpoint`` (a moto server, fake credentials), or
    for the default AWS credential chain when ``endpoint`` is None."""
    import boto3

    from sealbox_tools.local_stack import FAKE_CREDENTIALS

    if endpoint is None:
        session: Any = boto3.session.Session(region_name=region)
        return lambda service: session.client(service)
    fake: Any = boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=region,
    )
    return lambda service: fake.client(service, endpoint_url=endpoint)


def _stage_audit(
    clients: Callable[[str], Any], stage: str, notes: list[str]
) -> Callable[[], Iterator[Haystack]]:
    """The stage's stored haystacks; what can't be read goes to ``notes``."""
    from sealbox_tools.local_stack import stage_environment

    # Deployed stages keep no resource names in config.json: their stack
    # (named sealbox-<stage> by `make deploy`) names the secret.
    secret_id = stage_environment(stage).get(
        "SEALBOX_APP_KEY_SECRET_ID", f"sealbox-{stage}-app-signing-key"
    )
    return lambda: aws_haystacks(
        clients, prefix=f"sealbox-{stage}", skip_secret_ids=[secret_id], notes=notes
    )


# --- over HTTP -----------------------------------------------------------------------------


class HttpBackend:
    """A running stage over HTTP.

    Args:
        url: the API's base URL.
        aws: boto3 clients for the stage's account (``aws_clients``); with
            ``stage``, lets the audit read its tables, bucket and secrets.
        server_logs: log files of the API processes to audit (``sealbox
            local --log-file``).
        storage_origins: where the stage's presigned URLs point (``sealbox
            local``: its ``aws endpoint``; a deployed stage: its bucket's
            origins, ``client_sim.origins.s3_bucket_origins``).
        oprf_roots: the stage's OPRF root public keys by version, for devices
            to pin (password hardening); None runs the devices without it.
        log_key: the stage's transparency log verifier key, for devices to
            pin; None runs the devices without the log checks.
    """

    mode = "http"

    def __init__(
        self,
        url: str,
        *,
        aws: Callable[[str], Any] | None = None,
        stage: str | None = None,
        server_logs: tuple[Path, ...] = (),
        server_pids: tuple[int, ...] = (),
        timeout: float = 30.0,
        storage_origins: tuple[str, ...] = (),
        oprf_roots: Mapping[int, bytes] | None = None,
        log_key: str | None = None,
    ) -> None:
        self.url = url
        self._storage_origins = storage_origins
        self._oprf_roots = oprf_roots
        self._log_key = log_key
        self._pids = server_pids
        self.clock = SimClock()
        self._transport = HttpTransport(url, timeout=timeout)
        self._objects = HttpObjectTransport(timeout=max(timeout, 60.0))
        self._aws = aws
        self._stage = stage
        self._logs = server_logs
        self._notes: list[str] = []

    @property
    def can_advance_time(self) -> bool:
        return False

    def advance_time(self, seconds: float) -> None:
        raise RuntimeError("over HTTP the server's clock is real; simulated time can't pass")

    def api(self) -> Transport:
        return self._transport

    def objects(self) -> ObjectTransport:
        return self._objects

    def storage_origins(self) -> tuple[str, ...]:
        return self._storage_origins

    def oprf_roots(self) -> Mapping[int, bytes] | None:
        return self._oprf_roots

    def log_key(self) -> str | None:
        return self._log_key

    def operator(self) -> Container | None:
        # A stage `sealbox local` runs: its tables and secrets are reachable
        # at --aws-endpoint under the names .chalice/config.json gives them.
        if self._aws is None or self._stage is None:
            return None
        from chalicelib.config import Settings
        from chalicelib.wiring import Container
        from sealbox_tools.local_stack import stage_environment

        try:
            env = stage_environment(self._stage)
        except KeyError:
            return None
        aws = self._aws
        return Container(Settings.from_env(env), client_factory=lambda service: aws(service))

    def oprf_audit_keys(self) -> tuple[OprfKey, ...]:
        return ()

    def haystacks(self) -> Iterator[Haystack] | None:
        if self._aws is None or self._stage is None:
            return None
        stored = _stage_audit(self._aws, self._stage, self._notes)

        def everything() -> Iterator[Haystack]:
            yield from stored()
            yield from log_file_haystacks(self._logs)

        return everything()

    def audit_notes(self) -> list[str]:
        notes = list(self._notes)
        if not self._logs:
            notes.append("no server log given: logs were not scanned")
        return notes

    def tidy(self) -> None:
        """Nothing to drop: the server is elsewhere."""

    def server_cpu_seconds(self) -> float | None:
        """The CPU time of ``server_pids`` (a local stack) from /proc, or None."""
        if not self._pids:
            return None
        return sum(process_cpu_seconds(pid) or 0.0 for pid in self._pids)


# --- in process ------------------------------------------------------------------------------


class _Serialized:
    """The API transport, one request at a time (one warm container)."""

    def __init__(self, inner: Transport, lock: threading.Lock) -> None:
        self._inner = inner
        self._lock = lock

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        with self._lock:
            return self._inner.request(method, path, body=body, headers=headers)


class _SerializedObjects:
    """Presigned transfers to moto under the same lock as the API.

    In process, moto's S3 runs in the caller's thread; its state is shared
    with the API's own S3 calls, so it takes the same lock.  GET bodies are
    buffered by :class:`InProcessObjectTransport`, so nothing is read from
    moto after the lock is released.
    """

    def __init__(self, inner: ObjectTransport, lock: threading.Lock) -> None:
        self._inner = inner
        self._lock = lock

    def put(
        self, url: str, body: Readable, *, length: int, headers: Mapping[str, str]
    ) -> HttpReply:
        with self._lock:
            return self._inner.put(url, body, length=length, headers=headers)

    def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> ObjectResponse:
        with self._lock:
            return self._inner.get(url, headers=headers)


# Variables that would send boto3 somewhere other than moto's mock (DESIGN §8:
# mock_aws stops intercepting when an endpoint is set) or use real credentials.
_UNSET = ("AWS_PROFILE", "AWS_SECURITY_TOKEN")


class InProcessBackend:
    """The Chalice app and moto in this process; use as a context manager.

    Args:
        stage: the stage whose configuration and resource names to use.
            ``test`` is the stage meant for in-process runs.
        server_argon2: the server's Argon2id profile for login keys
            (``test`` by default: the server-side hash of every login would
            otherwise dominate a simulation's CPU; ``owasp`` is production's).
        capture_logs: capture every log record at DEBUG for the audit.
        oprf: have the devices pin the seeded OPRF key's root (password
            hardening; on by default, as an app ships it).
        kt: have the devices pin the transparency log's key (on by
            default, as an app ships it).
        provisioner: creates the stage's resources in the backend's moto,
            given a client factory (default: :func:`provisioning.provision`
            from infra/resources.json; the deploy rehearsal passes one that
            creates the packaged stack with moto's CloudFormation).
    """

    mode = "in-process"

    def __init__(
        self,
        *,
        stage: str = "test",
        server_argon2: str = "test",
        capture_logs: bool = True,
        region: str = "us-east-1",
        oprf: bool = True,
        kt: bool = True,
        provisioner: Callable[[Callable[[str], Any]], object] | None = None,
    ) -> None:
        self._oprf = oprf
        self._kt = kt
        self._log_key: str | None = None
        self._roots: dict[int, bytes] | None = None
        self._oprf_key: OprfKey | None = None
        self.stage = stage
        self._provisioner = provisioner
        self.region = region
        self.clock = SimClock()
        self._argon2 = server_argon2
        self._capture = LogCapture() if capture_logs else None
        self._capturing_all = capture_logs
        self._lock = threading.Lock()
        self._stack = contextlib.ExitStack()
        self._api: Transport | None = None
        self._objects: ObjectTransport | None = None
        self._notes: list[str] = []
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    # --- lifetime -------------------------------------------------------------------

    def __enter__(self) -> InProcessBackend:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def _start(self) -> None:
        from chalice.test import Client
        from moto import mock_aws

        from chalicelib import wiring
        from chalicelib.config import BlobSettings, Settings
        from chalicelib.storage.appkeys import ensure_app_key
        from chalicelib.storage.ktlog import ensure_log_key
        from sealbox_tools.fleet._moto import scaled_moto
        from sealbox_tools.local_stack import PROJECT_DIR, stage_environment
        from sealbox_tools.provisioning import provision

        self._stack.enter_context(_scoped_environment(self.region))
        self._stack.enter_context(mock_aws())
        # Without it, moto copies whole tables and buckets per call and a run's
        # time grows with the square of its traffic (sealbox_tools.fleet._moto).
        self._stack.enter_context(scaled_moto())
        env = {
            **stage_environment(self.stage),
            "SEALBOX_ARGON2_PROFILE": self._argon2,
            "AWS_REGION": self.region,
        }
        if self._provisioner is None:
            provision(self.client, stage=self.stage, region=self.region)
        else:
            self._provisioner(self.client)
        secret_id = env["SEALBOX_APP_KEY_SECRET_ID"]
        ensure_app_key(self.client("secretsmanager"), secret_id, self.clock())
        # Both keys are seeded as `make deploy` seeds them; the devices pin
        # their public halves unless the run opts out.
        from chalicelib.storage.oprfkeys import ensure_oprf_key

        key = ensure_oprf_key(
            self.client("secretsmanager"), env["SEALBOX_OPRF_KEY_SECRET_ID"], self.clock()
        )
        self._oprf_key = key
        if self._oprf:
            self._roots = {key.version: key.root_public}
        if env.get("SEALBOX_KT_LOG_KEY_SECRET_ID"):
            # The transparency log signs with its own key (as `sealbox local` seeds it).
            log_key = ensure_log_key(
                self.client("secretsmanager"),
                env["SEALBOX_KT_LOG_KEY_SECRET_ID"],
                env["SEALBOX_KT_ORIGIN"],
            )
            self._log_key = log_key if self._kt else None
        wiring.install(
            wiring.Container(
                Settings.from_env(env),
                clock=self.clock,
                blob_settings=BlobSettings.from_env(env),
            )
        )
        self._stack.callback(wiring.reset)
        from app import app  # after the mock: the app builds its clients lazily

        if self._capture is not None:
            self._stack.enter_context(_capturing(self._capture))
        client = self._stack.enter_context(
            Client(app, stage_name=self.stage, project_dir=str(PROJECT_DIR))
        )
        from client_sim.transport import ChaliceTransport

        self._api = _Serialized(ChaliceTransport(client), self._lock)
        self._objects = _SerializedObjects(InProcessObjectTransport(), self._lock)

    # --- Backend ----------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """A boto3 client inside this backend's moto account (one per service).

        Built once per backend from one process-wide boto3 session: a new
        session reloads botocore's JSON models, which made provisioning a
        backend (thirteen clients) take seconds -- a pytest plugin starts
        one per test.
        """
        with self._clients_lock:
            found = self._clients.get(service)
            if found is None:
                found = self._clients[service] = _shared_session().client(
                    service, region_name=self.region
                )
            return found

    @property
    def can_advance_time(self) -> bool:
        return True

    def advance_time(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def api(self) -> Transport:
        if self._api is None:
            raise RuntimeError("use the backend as a context manager")
        return self._api

    def objects(self) -> ObjectTransport:
        if self._objects is None:
            raise RuntimeError("use the backend as a context manager")
        return self._objects

    def storage_origins(self) -> tuple[str, ...]:
        """Where moto's in-process S3 presigns: the stage bucket's origins."""
        from client_sim.origins import s3_bucket_origins
        from sealbox_tools.local_stack import stage_environment

        bucket = stage_environment(self.stage)["SEALBOX_BLOBS_BUCKET"]
        return s3_bucket_origins(bucket, self.region)

    def oprf_roots(self) -> Mapping[int, bytes] | None:
        return self._roots

    def log_key(self) -> str | None:
        return self._log_key

    def operator(self) -> Container | None:
        from chalicelib import wiring

        return wiring.container()

    def oprf_audit_keys(self) -> tuple[OprfKey, ...]:
        return () if self._oprf_key is None else (self._oprf_key,)

    def haystacks(self) -> Iterator[Haystack]:
        stored = _stage_audit(self.client, self.stage, self._notes)

        def everything() -> Iterator[Haystack]:
            yield from stored()
            if self._capture is not None:
                yield from self._capture.haystacks()

        return everything()

    def audit_notes(self) -> list[str]:
        notes = list(self._notes)
        if self._capture is None:
            notes.append("log capture was off: logs were not scanned")
        return notes

    @contextlib.contextmanager
    def logs_captured(self) -> Iterator[None]:
        """Capture every log record at DEBUG while the block runs, for the audit.

        For a backend made with ``capture_logs=False`` that runs a fleet
        later (the pytest plugin: a test's phones don't need the root logger
        at DEBUG, its fleet's audit does).  With ``capture_logs=True`` the
        whole lifetime is captured already and this adds nothing.
        """
        if self._capture is not None and self._capturing_all:
            yield
            return
        if self._capture is None:
            self._capture = LogCapture()
        with _capturing(self._capture):
            yield

    def tidy(self) -> None:
        """Drop what moto remembers for nobody, then collect garbage.

        moto keeps every model object it ever made (for its dashboard),
        including the copies it makes of every item a query returns; its
        ``responses`` mock keeps every presigned transfer, bodies included,
        once in its own call list and once in the list of the registered
        response that matched it.  Inside the backend's ``scaled_moto``
        neither is recorded any more (sealbox_tools.fleet._moto): this
        empties what was recorded before it, or by a mock started since.
        The backend's state is untouched: its tables and buckets hold their
        own references.  Without either, a 100-device run kept 400 MB of
        such copies.
        """
        from moto.core.model_instances import reset_model_data
        from moto.core.models import responses_mock

        with self._lock:
            reset_model_data()
            responses_mock.calls.reset()
            # Each response moto registered keeps its own list of the calls
            # it matched (every presigned download's body, read in full).
            for registered in responses_mock.registered():
                registered.calls.reset()
        gc.collect()

    def server_cpu_seconds(self) -> float | None:
        """None: in process, the server's time is measured per request instead."""
        return None


_SESSION: Any = None
_SESSION_LOCK = threading.Lock()


def _shared_session() -> Any:
    """One boto3 session for every in-process backend of this process.

    Created on first use, after moto is imported (moto hooks every botocore
    session made after its import); credentials and endpoints are read
    from the environment when each client is built, inside the mock.
    """
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            import boto3

            _SESSION = boto3.session.Session()
        return _SESSION


@contextlib.contextmanager
def _scoped_environment(region: str) -> Iterator[None]:
    """Fake credentials and no endpoint override while the mock runs."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in _UNSET:
            del os.environ[name]
    from sealbox_tools.local_stack import FAKE_CREDENTIALS

    os.environ.update({**FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": region, "AWS_REGION": region})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _capturing(capture: LogCapture) -> Iterator[None]:
    """Every record at DEBUG reaches ``capture`` while the run lasts.

    The root logger goes to DEBUG, so every logger without a level of its
    own (botocore, moto, chalice's internals) emits everything; loggers the
    app sets deliberately keep their levels, as they would on Lambda.
    Loggers that don't propagate (Chalice's app logger, whose handler
    writes to stdout, i.e. CloudWatch on Lambda) get the capture in place
    of their handlers: in process, the capture *is* CloudWatch.
    """
    root = logging.getLogger()
    level = root.level
    detached: list[tuple[logging.Logger, list[logging.Handler]]] = []
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and not logger.propagate:
            detached.append((logger, list(logger.handlers)))
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.addHandler(capture)
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(capture)
        root.setLevel(level)
        for logger, handlers in detached:
            logger.removeHandler(capture)
            for handler in handlers:
                logger.addHandler(handler)
