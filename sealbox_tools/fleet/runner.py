"""Running a fleet: simulated phones follow a plan against a backend.

:func:`run_fleet` makes the plan (:mod:`sealbox_tools.fleet.plan`), gives every
planned device a :class:`~client_sim.device.Device` of its own -- its own
home directory, keystore, clock and network -- and runs the plan phase by
phase on a thread pool.  Between rounds simulated time passes (in process).
Every message or file received is decrypted and verified by the SDK and
then judged by the :class:`~sealbox_tools.fleet.ledger.Ledger` (content hash
and signer).  At the end the privacy audit scans everything the server side
holds for every secret the run produced.

What each device's network is made of, outermost first::

    Device -> token watch -> FlakyTransport -> MeteredTransport -> backend

so a request the flaky network drops *before* the server is never timed,
one dropped *after* is timed and then lost, and every 401 the server sends
for an expired token is counted.

Failures are counted, never hidden: every exception a device sees is an
error by kind; a transient one (no answer, 5xx, 429) is retried with the
same idempotency key; a step that still fails counts in ``failed_steps``.
A run *passes* when nothing failed, no delivery mismatched, every completed
send arrived, and the audit found nothing.
"""

from __future__ import annotations

import functools
import io
import os
import random
import secrets
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from chalicelib.wire.b64 import b64url_encode
from chalicelib.wire.binary import Reader
from client_sim.api import BlobInfo, BlobPage
from client_sim.device import Device
from client_sim.errors import (
    ConnectionFailed,
    DecryptionFailed,
    DeviceError,
    ServerError,
    StorageTransferFailed,
    UsersNotFound,
    WrongPassword,
)
from client_sim.keystore import Keystore, KeystoreError
from client_sim.passwords import PASSWORD_KDF_SIMULATION, KdfParams, derive_password_keys
from client_sim.transport import HttpReply, ObjectTransport, Transport
from sealbox_tools.audit import AuditReport, audit, needle
from sealbox_tools.fleet.backends import Backend, SimClock
from sealbox_tools.fleet.cpu import (
    CpuAccounting,
    ServerTimedObjects,
    ServerTimedTransport,
    instrument_hazmat,
)
from sealbox_tools.fleet.ledger import Ledger, make_content
from sealbox_tools.fleet.metrics import Metrics
from sealbox_tools.fleet.plan import DevicePlan, FleetPlan, Step, make_plan, scenario
from sealbox_tools.fleet.progress import Progress
from sealbox_tools.fleet.transports import FlakyTransport, MeteredObjects, MeteredTransport

__all__ = ["FleetConfig", "FleetResult", "run_fleet"]

_T = TypeVar("_T")
# How many newest inbox items a restored phone re-reads to prove that the
# restored keys open old data (a check, not a delivery).
_HISTORY_LIMIT = 20
_PAGE = 100


@dataclass(frozen=True)
class FleetConfig:
    """What to run.

    Args:
        devices: how many simulated phones.
        scenario: ``standard`` or ``full`` (:data:`~sealbox_tools.fleet.plan.SCENARIOS`).
        overrides: scenario mix settings to change (``--mix name=value``).
        seed: the plan's seed: same seed, same plan.
        concurrency: devices working at once (threads).
        audit: run the privacy audit at the end.
        attempts: tries per operation on a transient failure.
        retry_backoff: first wait between tries, in seconds (doubling,
            capped at 2 s); 0 in process, where nothing is gained by waiting.
        kdf: the devices' password KDF (the simulation profile: thousands of
            phones would otherwise spend the run in Argon2id).
        tag: prefix of the fleet's usernames (random by default, so fleets
            against the same stage never collide).
    """

    devices: int
    scenario: str = "standard"
    overrides: Mapping[str, str] = field(default_factory=dict)
    seed: int = 1
    concurrency: int = 8
    audit: bool = True
    attempts: int = 8
    retry_backoff: float = 0.05
    kdf: KdfParams = PASSWORD_KDF_SIMULATION
    tag: str | None = None

    def plan(self) -> FleetPlan:
        """The plan this configuration runs (pure: no backend needed)."""
        mix = scenario(self.scenario, self.overrides)
        return make_plan(self.devices, mix, self.seed, name=self.scenario)


@dataclass
class FleetResult:
    """A finished run: the report, raw latencies, the audit, the secrets."""

    report: dict[str, Any]
    samples: dict[str, list[float]]
    audit: AuditReport | None
    #: (label, secret) of every needle, for a needles file.  Secret.
    secrets: list[tuple[str, bytes]] = field(repr=False)

    @property
    def passed(self) -> bool:
        return bool(self.report["verdict"]["passed"])


# --- secrets the audit looks for -----------------------------------------------------------


class Secrets:
    """Every secret of the run, by label (thread-safe; first label wins)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_value: dict[bytes, str] = {}
        self._passwords: list[tuple[str, str]] = []

    def add(self, label: str, secret: bytes) -> None:
        with self._lock:
            self._by_value.setdefault(bytes(secret), label)

    def password(self, identity: str, password: str) -> None:
        with self._lock:
            self._passwords.append((identity, password))
        self.add(f"{identity} password", password.encode("utf-8"))

    def derived_keys(self, kdf: KdfParams) -> None:
        """Add the login and backup keys of every password seen."""
        with self._lock:
            pairs = list(self._passwords)
        for n, (identity, password) in enumerate(pairs):
            keys = derive_password_keys(identity, password, kdf)
            self.add(f"{identity} login key #{n}", keys.login_key)
            self.add(f"{identity} backup key #{n}", keys.backup_key)

    def items(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return sorted(((label, value) for value, label in self._by_value.items()))

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_value)


def bundle_secrets(bundle_bytes: bytes) -> list[tuple[str, bytes]]:
    """The private seeds inside a serialized key bundle (``KeyBundle.to_bytes``).

    The layout is the keystore's (docs/spec/keystore.md): label, version,
    card, then the Ed25519 seed, the X25519 secret and the ML-KEM seed, each
    length-prefixed.
    """
    reader = Reader(bundle_bytes)
    reader.lp16()  # label
    reader.lp16()  # version
    reader.lp16()  # the card (public)
    return [
        ("ed25519 seed", reader.lp16()),
        ("x25519 secret", reader.lp16()),
        ("mlkem768x25519 seed", reader.lp16()),
    ]


# --- one simulated phone -------------------------------------------------------------------


class _GaveUp(Exception):
    """Internal: an operation kept failing transiently; the step fails."""


class _DeviceClock:
    """The simulation's time, off by this phone's skew; it can stand still.

    A frozen clock is a phone that slept: on waking it still believes its
    access token fresh, while the server's clock has moved on.
    """

    def __init__(self, sim: SimClock, skew: float) -> None:
        self._sim = sim
        self._skew = skew
        self._frozen: float | None = None

    def __call__(self) -> float:
        return self._frozen if self._frozen is not None else self._sim() + self._skew

    def freeze(self) -> None:
        self._frozen = self()

    def thaw(self) -> None:
        self._frozen = None


class _TokenWatch:
    """Counts the server's 401 ``invalid_token`` answers (the SDK renews)."""

    def __init__(self, inner: Transport, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        reply = self._inner.request(method, path, body=body, headers=headers)
        if reply.status == 401 and b"invalid_token" in reply.body:
            self._metrics.count("token_refused")
        return reply


@dataclass
class _Queued:
    message_id: str
    kind: str
    content: bytes = field(repr=False)
    to: list[str]
    key: str


@dataclass
class _File:
    message_id: str
    blob_id: str
    to: list[str]


class _Phone:
    """One person's phone (and its replacements) following a device plan."""

    def __init__(self, run: _Run, plan: DevicePlan) -> None:
        self.run = run
        self.plan = plan
        self.identity = run.identity(plan.index)
        self.password = f"fleet {run.tag} person {plan.index} {secrets.token_urlsafe(18)}"
        run.secrets.password(self.identity, self.password)
        self.clock = _DeviceClock(run.backend.clock, plan.skew_s)
        self.rng = random.Random(f"{run.plan.seed}/content/{plan.index}")  # noqa: S311 - filler
        self.network = FlakyTransport(
            MeteredTransport(run.api, run.metrics),
            drop_rate=plan.drop_rate,
            seed=run.plan.seed * 1_000_003 + plan.index,
        )
        self.transport = _TokenWatch(self.network, run.metrics)
        self.phones = 0
        self.home = run.work_dir / f"{plan.index:05d}-phone-0"
        self.device = self._new_device()
        self.queue: list[_Queued] = []
        self.seen: set[str] = set()
        self.files: list[_File] = []
        self.sent = 0

    def _new_device(self) -> Device:
        return Device(
            self.home,
            self.transport,
            kdf=self.run.config.kdf,
            clock=self.clock,
            sleep=self.run.sleep,
            objects=self.run.objects,
        )

    # --- running steps ------------------------------------------------------------

    def run_phase(self, phase: int) -> None:
        for step in self.plan.steps.get(phase, ()):
            try:
                getattr(self, f"_{step.action}")(step)
            except _GaveUp as exc:
                self.run.fail(step, f"gave_up_{exc}")
            except DeviceError as exc:
                self.run.fail(step, _kind(exc))
            except Exception as exc:  # noqa: BLE001 - a simulator bug: counted and shown
                self.run.crash(step, exc)
            finally:
                self.run.progress.advance()

    def _try(self, op: str, action: Callable[[], _T]) -> _T:
        """``action()``, retried on transient failures.

        An offline phone tries once: the caller decides what waits for the
        network.
        """
        attempts = 1 if self.network.offline else self.run.config.attempts
        for attempt in range(attempts):
            try:
                return action()
            except (ConnectionFailed, StorageTransferFailed) as exc:
                kind = _kind(exc)
            except ServerError as exc:
                if exc.status < 500 and exc.status != 429:
                    raise
                kind = _kind(exc)
            self.run.metrics.error(kind)
            if attempt + 1 < attempts:
                self.run.metrics.count("retry")
                self.run.backoff(attempt)
        raise _GaveUp(op)

    # --- secrets --------------------------------------------------------------------

    def harvest(self) -> None:
        """Add this phone's private keys and device key to the audit's needles."""
        keystore = Keystore(self.home)
        if not keystore.exists():
            return
        try:
            state = keystore.load()
        except KeystoreError:
            return
        for bundle in state.bundles:
            for name, secret in bundle_secrets(bundle.to_bytes()):
                self.run.secrets.add(f"{self.identity} {name} (card {bundle.card_id[:12]})", secret)
        with open(keystore.device_key_path, "rb") as handle:
            # The last 32 bytes of the file are the key (docs/spec/keystore.md).
            self.run.secrets.add(
                f"{self.identity} device key (phone {self.phones})", handle.read()[-32:]
            )

    # --- steps --------------------------------------------------------------------------

    def _sign_up(self, step: Step) -> None:
        self._try("register", lambda: self.device.register(self.identity, self.password))
        self.harvest()
        self.run.metrics.count("signed_up")

    def _backup(self, step: Step) -> None:
        self._try("backup", self.device.backup_private_key)
        self.run.metrics.count("backed_up")

    def _read(self, step: Step, *, history: bool = False) -> None:
        if self.network.offline:
            try:
                self.device.list_blobs("inbox", limit=1)
            except ConnectionFailed:
                self.run.metrics.count("offline_read_failed")
                return
        items: list[BlobInfo] = []
        cursor: str | None = None
        while True:
            page = self._try("list", functools.partial(self._inbox_page, cursor))
            items.extend(page.items)
            if page.next_cursor is None or (history and len(items) >= _HISTORY_LIMIT):
                break
            cursor = page.next_cursor
        if history:
            items = items[:_HISTORY_LIMIT]
        for item in items:
            if item.blob_id in self.seen and not history:
                continue
            self._receive(item.blob_id, item.owner, history=history)

    def _inbox_page(self, cursor: str | None) -> BlobPage:
        return self.device.list_blobs("inbox", limit=_PAGE, cursor=cursor)

    def _receive(self, blob_id: str, owner: str, *, history: bool) -> None:
        out = io.BytesIO()

        def download() -> str:
            # Plaintext from a failed attempt is discarded, never judged.
            out.seek(0)
            out.truncate()
            return self.device.download(blob_id, out, sender=owner).identity

        try:
            signer = self._try("download", download)
        except DecryptionFailed as exc:
            self.seen.add(blob_id)
            self.run.metrics.count("mismatch_decrypt")
            self.run.metrics.error(_kind(exc))
            return
        except ServerError as exc:
            if not (history and exc.status == 404):
                raise
            # Listed a moment ago, deleted by its owner since: a history
            # read runs in the same phase as shares, which re-seal a file
            # and delete the old blob.  Its new copy is judged when read.
            self.run.metrics.count("history_gone")
            return
        self.seen.add(blob_id)
        outcome = self.run.ledger.judge(self.identity, out.getvalue(), signer, blob_id=blob_id)
        if history:
            outcome_name = "history_verified" if outcome in ("delivered", "duplicate") else outcome
            self.run.metrics.count(outcome_name)
            if outcome == "delivered":
                self.run.metrics.count("delivered")
        else:
            self.run.metrics.count(outcome)

    def _send(self, step: Step, kind: str) -> None:
        self.sent += 1
        message_id = f"{self.run.tag}.{self.plan.index}.{self.sent}"
        canary = f"CANARY-{self.run.tag}-{self.plan.index}-{self.sent}-{secrets.token_hex(10)}"
        content = make_content(kind, message_id, step.size, canary, self.rng)
        to = [self.run.identity(i) for i in step.to]
        self.run.ledger.expect(
            message_id,
            sender=self.identity,
            recipients=to,
            content=content,
            kind=kind,
            canary=canary,
        )
        self.run.secrets.add(f"canary of {message_id} ({kind})", canary.encode("ascii"))
        # One idempotency key per send, kept across retries and the offline queue.
        item = _Queued(message_id, kind, content, to, b64url_encode(os.urandom(18)))
        if self.network.offline:
            try:
                self._upload(item)
            except (_GaveUp, ConnectionFailed):
                self.queue.append(item)
                self.run.metrics.count("queued_offline")
            return
        self._upload(item)

    def _upload(self, item: _Queued) -> None:
        info = self._try(
            "upload",
            lambda: self.device.upload(
                io.BytesIO(item.content), to=item.to, idempotency_key=item.key
            ),
        )
        self.run.ledger.sent(item.message_id, info.blob_id)
        self.run.metrics.count(f"sent_{item.kind}")
        if item.kind == "file":
            self.files.append(_File(item.message_id, info.blob_id, list(item.to)))

    def _send_message(self, step: Step) -> None:
        self._send(step, "message")

    def _send_file(self, step: Step) -> None:
        self._send(step, "file")

    def _lose_phone(self, step: Step) -> None:
        self.harvest()
        old_home = self.home
        self.phones += 1
        self.home = self.run.work_dir / f"{self.plan.index:05d}-phone-{self.phones}"
        self.device = self._new_device()
        self._restore("new_phone")
        # The lost phone's files are gone with it (its session is not:
        # change_password is what signs it out).
        shutil.rmtree(old_home, ignore_errors=True)

    def _reinstall(self, step: Step) -> None:
        self.harvest()
        self.device.cleanup()
        self._restore("reinstalled")

    def _restore(self, event: str) -> None:
        self._try("login", lambda: self.device.login(self.identity, self.password))
        if not self.device.has_local_private_key():
            self.run.fail_named(event, "restore_without_keys")
            return
        self.harvest()
        self.run.metrics.count(event)
        self._read(Step("read"), history=True)

    def _rotate(self, step: Step) -> None:
        before = self.device.whoami().card_id
        for attempt in range(self.run.config.attempts):
            try:
                if self.device.whoami().card_id != before:
                    # An earlier try got at least as far as saving the new
                    # keys; any call that needs them settles the publication
                    # with the directory, and a backup write is that call.
                    self.device.backup_private_key()
                    if self.device.whoami().card_id != before:
                        break
                self.device.rotate_private_key()
                break
            except (ConnectionFailed, StorageTransferFailed) as exc:
                self.run.metrics.error(_kind(exc))
                self.run.metrics.count("retry")
                self.run.backoff(attempt)
        else:
            raise _GaveUp("rotate")
        self.harvest()
        self.run.metrics.count("rotated")

    def _change_password(self, step: Step) -> None:
        new = f"fleet {self.run.tag} person {self.plan.index} new {secrets.token_urlsafe(18)}"
        self.run.secrets.password(self.identity, new)
        try:
            self._try("change_password", lambda: self.device.change_password(self.password, new))
        except WrongPassword:
            # A retry after the switch succeeded but its answer was lost
            # finds the old password refused: log in with the new one and
            # let a restore finish the change (Device.change_password).
            self._try("login", lambda: self.device.login(self.identity, new))
            self._try("restore", lambda: self.device.restore_private_key(new))
            self.run.metrics.count("password_change_recovered")
        self.password = new
        self.run.metrics.count("password_changed")

    def _share(self, step: Step) -> None:
        assert step.target is not None
        target = self.run.identity(step.target)
        candidates = [f for f in self.files if target not in f.to]
        if not candidates:
            self.run.metrics.count("share_skipped")
            return
        chosen = candidates[0]
        to = sorted({*chosen.to, target})
        key = b64url_encode(os.urandom(18))
        self.run.ledger.resealing(chosen.message_id, to)
        try:
            info = self._try(
                "share", lambda: self.device.share(chosen.blob_id, to, idempotency_key=key)
            )
        except ServerError as exc:
            if exc.status != 404:
                raise
            # A repeat after the old blob's deletion went through: the new
            # copy exists, and its readers judge it by its message id.
            self.run.ledger.shared(chosen.message_id, to, None)
            self.files.remove(chosen)
            self.run.metrics.count("shared")
            return
        self.run.ledger.shared(chosen.message_id, to, info.blob_id)
        chosen.blob_id, chosen.to = info.blob_id, to
        self.run.metrics.count("shared")

    def _go_offline(self, step: Step) -> None:
        self.network.offline = True
        self.run.metrics.count("went_offline")

    def _come_online(self, step: Step) -> None:
        self.network.offline = False
        queued, self.queue = self.queue, []
        for item in queued:
            self._upload(item)
            self.run.metrics.count("flushed")

    def _freeze_clock(self, step: Step) -> None:
        if not self.run.backend.can_advance_time:
            # Over HTTP the server's clock is real: no token can expire
            # within a run of minutes.
            self.run.metrics.count("clock_freeze_skipped")
            return
        self.clock.freeze()
        self.run.metrics.count("clock_frozen")

    def _thaw_clock(self, step: Step) -> None:
        self.clock.thaw()

    def _unregister(self, step: Step) -> None:
        self.harvest()
        self._try("unregister", self.device.unregister)
        self.run.metrics.count("unregistered")

    def _check_revoked(self, step: Step) -> None:
        assert step.target is not None
        leaver = self.run.identity(step.target)
        try:
            self._try("find", lambda: self.device.find_users([leaver], refresh=True))
        except UsersNotFound:
            self.run.metrics.count("revocation_seen")
            return
        self.run.fail(step, "revocation_missing")


def _kind(exc: BaseException) -> str:
    """An error's kind for the report: stable, and never its message."""
    if isinstance(exc, ServerError):
        return f"http_{exc.status}_{exc.code}"
    if isinstance(exc, ConnectionFailed):
        return "no_answer"
    name = type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


# --- the run ----------------------------------------------------------------------------------


class _Run:
    """What every phone of one run shares."""

    def __init__(
        self,
        config: FleetConfig,
        plan: FleetPlan,
        backend: Backend,
        work_dir: Path,
        progress: Progress,
        sleep: Callable[[float], None],
    ) -> None:
        self.config = config
        self.plan = plan
        self.backend = backend
        self.work_dir = work_dir
        self.progress = progress
        self.sleep = sleep
        self.tag = config.tag or f"f{secrets.token_hex(3)}"
        self.metrics = Metrics()
        self.cpu = CpuAccounting()
        self.ledger = Ledger()
        self.secrets = Secrets()
        self.crashes: list[str] = []
        self._lock = threading.Lock()
        api: Transport = backend.api()
        objects: ObjectTransport = backend.objects()
        if backend.mode == "in-process":
            # The server runs in the devices' threads: its CPU is its own.
            api = ServerTimedTransport(api, self.cpu)
            objects = ServerTimedObjects(objects, self.cpu)
        self.api = api
        self.objects: ObjectTransport = MeteredObjects(objects, self.metrics)

    def identity(self, index: int) -> str:
        return f"{self.tag}-{index:05d}"

    def backoff(self, attempt: int) -> None:
        if self.config.retry_backoff > 0:
            self.sleep(min(self.config.retry_backoff * 2**attempt, 2.0))

    def fail(self, step: Step, kind: str) -> None:
        self.fail_named(step.action, kind)

    def fail_named(self, action: str, kind: str) -> None:
        self.metrics.count("failed_steps")
        self.metrics.error(f"{action}:{kind}")

    def crash(self, step: Step, exc: Exception) -> None:
        # Type and code location only: an exception's message may quote data.
        frames = traceback.extract_tb(exc.__traceback__)[-3:]
        where = " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in reversed(frames))
        self.metrics.count("failed_steps")
        self.metrics.error(f"{step.action}:crash_{type(exc).__name__}")
        with self._lock:
            if len(self.crashes) < 20:
                self.crashes.append(f"{step.action}: {type(exc).__name__} at {where}")


def run_fleet(
    config: FleetConfig,
    backend: Backend,
    *,
    work_dir: Path,
    progress: IO[str] | None = None,
    tty: bool | None = None,
    before_audit: Callable[[Backend, Sequence[tuple[str, bytes]]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    extra_secrets: Sequence[tuple[str, bytes]] = (),
) -> FleetResult:
    """Run ``config`` against ``backend`` (entered already) and judge it.

    Args:
        work_dir: where the phones' home directories go (emptied as they go).
        progress: where the progress bar or lines go (None: nowhere).
        tty: force the progress form (see :class:`Progress`).
        before_audit: called with the backend and the run's secrets just
            before the audit; tests use it to plant a leak.
        sleep: waits between retries (injected by tests).
        extra_secrets: more (label, secret) pairs for the audit to look for.
    """
    plan = config.plan()
    if config.concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    progress_view = Progress(plan.step_count(), progress, tty=tty)
    run = _Run(config, plan, backend, work_dir, progress_view, sleep)

    progress_view.stats = run.metrics.live
    work_dir.mkdir(parents=True, exist_ok=True)
    wall = time.perf_counter()
    cpu_started = time.process_time()
    server_started = backend.server_cpu_seconds()
    with instrument_hazmat(run.cpu), ThreadPoolExecutor(config.concurrency) as pool:
        phones = [_Phone(run, device) for device in plan.devices]
        last_round = 0
        for index, phase in enumerate(plan.phases):
            if phase.round != last_round and phase.round > 1 and backend.can_advance_time:
                # Time passes between rounds (one access-token lifetime and more).
                backend.advance_time(plan.mix.round_gap_s)
            last_round = phase.round
            progress_view.start_phase(phase.label)
            if phase.name == "flush":
                # The final checks run on a healed network: an unlucky
                # streak of drops must not pass for a lost delivery.
                for phone in phones:
                    phone.network.drop_rate = 0.0
            busy = [p for p in phones if index in p.plan.steps]
            for future in [pool.submit(p.run_phase, index) for p in busy]:
                future.result()
            backend.tidy()
        for phone in phones:
            phone.harvest()
    cpu_total = time.process_time() - cpu_started
    elapsed = time.perf_counter() - wall
    server_now = backend.server_cpu_seconds()
    progress_view.close()
    run.secrets.derived_keys(config.kdf)
    for label, secret in extra_secrets:
        run.secrets.add(label, secret)
    metrics = run.metrics.snapshot()
    outcome = _outcome(run, metrics["events"])
    report: dict[str, Any] = {
        "run": {
            "devices": config.devices,
            "scenario": config.scenario,
            "mix": dict(config.overrides),
            "seed": config.seed,
            "mode": backend.mode,
            "concurrency": config.concurrency,
            "plan_fingerprint": plan.fingerprint(),
            "planned_steps": plan.action_counts(),
            "tag": run.tag,
            "wall_s": round(elapsed, 3),
            "simulated_time_s": round(backend.clock.offset, 1),
        },
        "metrics": metrics,
        "outcome": outcome,
        "cpu": {
            **run.cpu.breakdown(cpu_total),
            **(
                {"server_processes_s": round(server_now - server_started, 3)}
                if server_now is not None and server_started is not None
                else {}
            ),
        },
        "crashes": list(run.crashes),
    }
    audit_report: AuditReport | None = None
    secrets_list = run.secrets.items()
    if config.audit:
        haystacks = backend.haystacks()
        if haystacks is None:
            report["audit"] = {
                "passed": False,
                "summary": "privacy audit: not run (the backend's storage is out of reach)",
            }
        else:
            if before_audit is not None:
                before_audit(backend, secrets_list)
            started = time.perf_counter()
            try:
                audit_report = audit(haystacks, (needle(label, s) for label, s in secrets_list))
            except LookupError as exc:
                # The stage's storage isn't where the backend looked (over
                # HTTP, a --stage or --aws-endpoint that names another one):
                # nothing was audited, which is a failed run, not a pass.
                report["audit"] = {"passed": False, "summary": f"privacy audit: not run ({exc})"}
            else:
                audit_report.notes.extend(backend.audit_notes())
                report["audit"] = {**audit_report.to_json(), "seconds": _secs(started)}
    else:
        # Allowed (a stage its operator won't scan), but the summary must not
        # read like an audited pass.
        report["audit"] = {
            "passed": None,
            "skipped": True,
            "summary": "privacy audit: skipped (--no-audit): this run says nothing "
            "about what the server side holds",
        }
    report["verdict"] = _verdict(outcome, report.get("audit"), config.audit)
    return FleetResult(report, run.metrics.latency_samples(), audit_report, secrets_list)


def _secs(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def _outcome(run: _Run, events: Mapping[str, int]) -> dict[str, Any]:
    mismatches = sum(v for k, v in events.items() if k.startswith("mismatch"))
    undelivered = run.ledger.undelivered()
    return {
        "sends_planned": len(run.ledger),
        "sends_completed": run.ledger.completed(),
        "deliveries_expected": run.ledger.expected_deliveries(),
        "deliveries_verified": run.ledger.delivered(),
        "undelivered": len(undelivered),
        "undelivered_sample": [f"{m} -> {r}" for m, r in undelivered[:10]],
        "mismatches": mismatches,
        "failed_steps": events.get("failed_steps", 0),
        "retries": events.get("retry", 0),
    }


def _verdict(outcome: Mapping[str, Any], audit_json: Any, audited: bool) -> dict[str, Any]:
    reasons = []
    if outcome["mismatches"]:
        reasons.append(f"{outcome['mismatches']} mismatched deliveries")
    if outcome["undelivered"]:
        reasons.append(f"{outcome['undelivered']} deliveries never arrived")
    if outcome["failed_steps"]:
        reasons.append(f"{outcome['failed_steps']} steps failed")
    if audited and not (audit_json or {}).get("passed"):
        reasons.append("the privacy audit did not pass")
    return {"passed": not reasons, "reasons": reasons}
