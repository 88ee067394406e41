"""One simulated phone of a fleet: a person's device (and its replacements) following a plan.

A :class:`Phone` owns a :class:`~client_sim.device.Device` with its own home
directory, clock (the simulation's, off by the phone's skew, and able to
stand still like a sleeping phone) and network (flaky, metered, watched for
refused tokens).  It runs its plan's steps phase by phase: sign up, back up,
send messages and files, read and verify its inbox against the ledger, lose
the phone and restore, reinstall, rotate, change the password, share,
go offline, unregister.  Transient failures (no answer, 5xx, 429) are
retried with the same idempotency key; what still fails is counted by kind.
"""

from __future__ import annotations

import functools
import io
import os
import random
import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from chalicelib.wire.b64 import b64url_encode
from client_sim.api import ApiClient, BlobInfo, BlobPage
from client_sim.device import Device
from client_sim.directory import MAX_CARD_CACHE_TTL
from client_sim.errors import (
    ConnectionFailed,
    DecryptionFailed,
    DeviceError,
    IdentityChanged,
    ServerError,
    StorageTransferFailed,
    UsersNotFound,
    WrongPassword,
)
from client_sim.hardening import PasswordHardening
from client_sim.identity import KeyBundle
from client_sim.keystore import Keystore, KeystoreError
from client_sim.passwords import derive_password_keys
from client_sim.transport import HttpReply, Transport
from sealbox_tools.fleet.backends import SimClock
from sealbox_tools.fleet.ledger import make_content
from sealbox_tools.fleet.metrics import Metrics
from sealbox_tools.fleet.needles import bundle_secrets
from sealbox_tools.fleet.plan import DevicePlan, Step
from sealbox_tools.fleet.transports import FlakyTransport, MeteredTransport

if TYPE_CHECKING:
    from sealbox_tools.fleet.runner import Run

__all__ = ["GaveUp", "Phone", "error_kind"]

_T = TypeVar("_T")
# How many newest inbox items a restored phone re-reads to prove that the
# restored keys open old data (a check, not a delivery).
_HISTORY_LIMIT = 20
_PAGE = 100


# --- one simulated phone -------------------------------------------------------------------


class GaveUp(Exception):
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
        #: Called with (method, path) before each request: the groups
        #: scenario holds two admins' epoch appends here to race them.
        self.gate: Callable[[str, str], None] | None = None
        #: Called with (method, path, reply) after each request, its result
        #: going to the device: the ``lying`` scenario's compromised backend
        #: answers this phone here (sealbox_tools/fleet/lying.py).
        self.rewrite: Callable[[str, str, HttpReply], HttpReply] | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        if self.gate is not None:
            self.gate(method, path)
        reply = self._inner.request(method, path, body=body, headers=headers)
        if self.rewrite is not None:
            reply = self.rewrite(method, path, reply)
        if reply.status == 401 and b"invalid_token" in reply.body:
            self._metrics.count("token_refused")
        if reply.status == 409 and b"stale_epoch" in reply.body:
            # Another admin's epoch won: the device re-bases its change.
            self._metrics.count("group_rebased")
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


class Phone:
    """One person's phone (and its replacements) following a device plan."""

    def __init__(self, run: Run, plan: DevicePlan) -> None:
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
            storage_origins=self.run.storage_origins,
            oprf_roots=self.run.oprf_roots,
            log_key=self.run.log_key,
        )

    # --- running steps ------------------------------------------------------------

    def run_phase(self, phase: int) -> None:
        for step in self.plan.steps.get(phase, ()):
            try:
                getattr(self, f"_{step.action}")(step)
            except GaveUp as exc:
                self.run.fail(step, f"gave_up_{exc}")
            except DeviceError as exc:
                self.run.fail(step, error_kind(exc))
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
                kind = error_kind(exc)
            except ServerError as exc:
                if exc.status < 500 and exc.status != 429:
                    raise
                kind = error_kind(exc)
            self.run.metrics.error(kind)
            if attempt + 1 < attempts:
                self.run.metrics.count("retry")
                self.run.backoff(attempt)
        raise GaveUp(op)

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
            self.run.metrics.error(error_kind(exc))
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
            except (GaveUp, ConnectionFailed):
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
        # The person confirms the password (as the CLI asks): the backup
        # update replaces the stored backup, which needs a step-up.
        self._try("confirm_password", lambda: self.device.confirm_password(self.password))
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
                self.run.metrics.error(error_kind(exc))
                self.run.metrics.count("retry")
                self.run.backoff(attempt)
        else:
            raise GaveUp("rotate")
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
        # Revoking the card needs the password again (a step-up).
        self._try("confirm_password", lambda: self.device.confirm_password(self.password))
        self._try("unregister", self.device.unregister)
        self.run.revoked_at[self.identity] = self.run.backend.clock()
        self.run.metrics.count("unregistered")

    def _check_revoked(self, step: Step) -> None:
        """A contact of a leaver: how long after the revocation its phone still
        had the card to encrypt to (from its cache: at most the cache lifetime,
        ``MAX_CARD_CACHE_TTL``), then that the directory answers it gone."""
        assert step.target is not None
        leaver = self.run.identity(step.target)
        revoked_at = self.run.revoked_at.get(leaver)
        try:
            self._try("find", lambda: self.device.find_users([leaver]))
        except UsersNotFound:
            self.run.metrics.count("revocation_seen_at_once")
        else:
            if revoked_at is not None:
                served = self.run.backend.clock() - revoked_at
                self.run.metrics.observe("revoked_card_still_served_s", served)
                if served > MAX_CARD_CACHE_TTL:
                    self.run.fail(step, "revoked_card_served_beyond_bound")
                    return
        try:
            self._try("find", lambda: self.device.find_users([leaver], refresh=True))
        except UsersNotFound:
            self.run.metrics.count("revocation_seen")
            return
        self.run.fail(step, "revocation_missing")

    # --- the hostile scenario: stolen access tokens ----------------------------------------

    def _know_card(self, step: Step) -> None:
        assert step.target is not None
        target = self.run.identity(step.target)
        self._try("find", lambda: self.device.find_users([target]))
        self.run.metrics.count("card_known")

    def _takeover(self, step: Step) -> None:
        """A thief with this person's access token (not their keys) tries to take over.

        With the token alone, a forged rotation must be refused by the
        directory (no rotation signature), and so must revoking the card and
        publishing a reset (no step-up proof).  Then the thief escalates: he
        has phished the password too, so the step-up passes and the reset
        goes through -- and every contact that knew the old card must
        surface it.
        """
        api = ApiClient(MeteredTransport(self.run.api, self.run.metrics))
        # A thief with the password asks the OPRF like any device would: on a
        # hardened stage the unhardened login key is refused.
        keys = (
            PasswordHardening(api, self.run.oprf_roots, self.run.config.kdf).derive(
                self.identity, self.password
            )
            if self.run.oprf_roots
            else derive_password_keys(self.identity, self.password, self.run.config.kdf)
        )

        def steal() -> str:
            session = api.login(
                self.identity, keys.login_key_b64, oprf_key_version=keys.oprf_version or None
            )
            return api.access_token(session.refresh_token).access_token

        token = self._try("steal", steal)
        old = self.device.whoami().card_id
        assert old is not None
        forged = KeyBundle.generate(self.identity, previous_card_id=old)
        thief = KeyBundle.generate(self.identity)
        attempts: list[tuple[str, Callable[[], object]]] = [
            ("rotation", lambda: api.publish_card(token, forged.card.to_json())),
            ("revoke", lambda: api.revoke_card(token, old)),
        ]
        expected = {"rotation": "rotation_signature_required", "revoke": "step_up_required"}
        for name, attempt in attempts:
            try:
                attempt()
            except ServerError as exc:
                if exc.code != expected[name]:
                    raise
                self.run.metrics.count(f"takeover_{name}_refused")
            else:
                self.run.fail(step, f"takeover_{name}_accepted")
                return
        # With the password as well (phished): step-up passes, the reset lands.
        api.revoke_card(token, old, api.step_up(token, keys.login_key_b64))
        proof = api.step_up(token, keys.login_key_b64)
        api.publish_card(token, thief.card.to_json(), step_up=proof)
        self.run.attacker_cards[self.identity] = thief.card_id
        self.run.metrics.count("takeover_reset")

    def _check_reset(self, step: Step) -> None:
        """Looking up and encrypting to a victim must raise IdentityChanged, never
        hand back (or encrypt to) the thief's card."""
        assert step.target is not None
        target = self.run.identity(step.target)
        attacker = self.run.attacker_cards.get(target)
        probes: list[Callable[[], object]] = [
            lambda: self._try("find", lambda: self.device.find_users([target], refresh=True)),
            lambda: self.device.encrypt(b"probe", to=[target]),
        ]
        for probe in probes:
            try:
                probe()
            except IdentityChanged as exc:
                if exc.new_card_id != attacker:
                    self.run.fail(step, "reset_to_an_unexpected_card")
                    return
                continue
            if attacker is not None:
                self.run.fail(step, "reset_not_surfaced")
                return
        self.run.metrics.count("reset_surfaced" if attacker else "no_reset")


def error_kind(exc: BaseException) -> str:
    """An error's kind for the report: stable, and never its message."""
    if isinstance(exc, ServerError):
        return f"http_{exc.status}_{exc.code}"
    if isinstance(exc, ConnectionFailed):
        return "no_answer"
    name = type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
