"""The ``lying`` scenario: a directory that lies, and the devices that catch it.

After the fleet's phones have signed up, :func:`run_lying` puts a
:class:`LyingDirectory` where the backend is for chosen phones.  It holds what
a compromised backend holds -- the stage's tables and the transparency log's
signing key (:meth:`~sealbox_tools.fleet.backends.Backend.operator`) -- and
answers those phones' requests itself wherever it wants to lie, through the
phones' transport hook (``_TokenWatch.rewrite``).  In process and over HTTP
alike the devices see exactly what a lying server would send.

Four attacks, each against its own phones (``lies`` of each kind):

1. **substitute**: a contact looks up a person it never talked to and is
   shown a made-up card, not in the log.  The contact's lookup must refuse it
   (``LogVerificationFailed``) and never encrypt to it.
2. **substitute_logged**: the operator revokes a person's card and publishes
   one of its own, both properly logged (the log can't refuse what its
   operator writes).  The person's own monitoring must report it
   (``UnexpectedKeyEvent`` naming the operator's card).
3. **hide_rotation**: a person rotates; one contact who had pinned the old
   card is shown the old card as still active, with a valid proof (it *is*
   in the log).  After the contact's next self-monitoring, its lookup must
   refuse it.
4. **fork**: the log shows two groups of phones two different trees, both
   signed with the log key; in the second group's tree a person of the
   first group has a card the operator made.  Every sealed message that
   crosses between the groups must raise ``SplitView`` on its reader (the
   sender's checkpoint travels inside the message), and no message within a
   group may.

``lie_<kind>_caught`` counts detections; a lie that got through is a failed
step (``lie_<kind>_missed``), and so is an alarm where there was no lie
(``lie_false_alarm``).  The report's ``lying`` section has the rates.
"""

from __future__ import annotations

import functools
import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from chalicelib.services.cards import CardRecord, CardStatus
from chalicelib.wire import merkle
from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.checkpoint import sign_checkpoint
from chalicelib.wire.ktleaf import LogLeaf
from chalicelib.wire.note import NoteSigner, parse_signer_key
from client_sim.api import ApiClient
from client_sim.errors import (
    DeviceError,
    IdentityChanged,
    LogVerificationFailed,
    SplitView,
    UnexpectedKeyEvent,
)
from client_sim.identity import KeyBundle
from client_sim.transport import HttpReply
from sealbox_tools.fleet.phone import error_kind

if TYPE_CHECKING:
    from chalicelib.wiring import Container
    from sealbox_tools.fleet.phone import Phone
    from sealbox_tools.fleet.runner import Run

__all__ = ["ATTACKS", "LyingDirectory", "phones_needed", "run_lying"]

#: The attacks, in the order they run.
ATTACKS = ("substitute", "substitute_logged", "hide_rotation", "fork")

Rewrite = Callable[[str, str, HttpReply], HttpReply]


def phones_needed(lies: int) -> int:
    """How many signed-up phones ``lies`` of each attack take."""
    side = max(2, lies)
    return 2 * lies + lies + 2 * lies + (1 + side) + side


def _is_lookup(method: str, path: str, reply: HttpReply) -> bool:
    """A successful ``GET /v1/cards?identity=…`` answer."""
    return method == "GET" and path.startswith("/v1/cards?") and reply.status == 200


def _proof(index: int, hashes: list[bytes]) -> list[str]:
    return [b64url_encode(h) for h in merkle.inclusion_proof(index, hashes)]


def _json_reply(reply: HttpReply, doc: Any) -> HttpReply:
    headers = {**reply.headers, "content-type": "application/json"}
    return HttpReply(200, headers, json.dumps(doc).encode("utf-8"))


class LyingDirectory:
    """The backend, compromised: answers chosen phones' requests with lies.

    Args:
        api: a transport to the real API (the public log routes).
        operator: the stage's composition root with the operator's access
            (tables, secrets).
        clock: the server's clock (checkpoint times).
    """

    def __init__(self, api: ApiClient, operator: Container, clock: Callable[[], float]) -> None:
        settings = operator.settings
        if settings.kt_log_key_secret_id is None:
            raise ValueError("the stage runs no transparency log")
        secret = operator.secretsmanager.get_secret_value(
            SecretId=settings.kt_log_key_secret_id, VersionStage="AWSCURRENT"
        )["SecretString"]
        self._signer: NoteSigner = parse_signer_key(secret)
        self._api = api
        self._store = operator.cards._store
        self._clock = clock
        self._lock = threading.Lock()
        self._leaves: list[bytes] = []

    # --- the operator's writes ---------------------------------------------------------

    def publish_behind_back(self, identity: str) -> str:
        """Revoke ``identity``'s card and publish one of the operator's (both logged).

        Returns the operator's card id.
        """
        own = self._store.active(identity)
        now = int(self._clock())
        if own is not None:
            self._store.revoke(identity, own.card_id, at=now)
        forged = KeyBundle.generate(identity)
        record = CardRecord(forged.card, CardStatus.ACTIVE, published_at=now)
        if not self._store.publish(record, replaces=None):
            raise RuntimeError("the operator's card was not stored")
        return forged.card_id

    # --- the real log ----------------------------------------------------------------

    def real_leaves(self) -> list[bytes]:
        """Every leaf of the real log (read through its public routes)."""
        with self._lock:
            while True:
                page, following = self._api.kt_entries(len(self._leaves), 100)
                self._leaves.extend(b64url_decode(raw) for _, raw in page)
                if not page or following is None:
                    return list(self._leaves)

    # --- lies ------------------------------------------------------------------------

    def substitute(self, victim: str) -> Rewrite:
        """Answers to lookups of ``victim`` name a made-up card, not in the log."""
        fake = KeyBundle.generate(victim)

        def rewrite(method: str, path: str, reply: HttpReply) -> HttpReply:
            if not _is_lookup(method, path, reply):
                return reply
            doc = reply.json()
            for entry in doc.get("cards", []):
                if entry.get("card", {}).get("identity") == victim:
                    entry["card"] = fake.card.to_json()
                    entry["rotation_signature"] = None
            return _json_reply(reply, doc)

        return rewrite

    def recorder(self, identity: str, into: dict[str, Any]) -> Rewrite:
        """Passes answers through, keeping ``identity``'s entry from lookups."""

        def rewrite(method: str, path: str, reply: HttpReply) -> HttpReply:
            if _is_lookup(method, path, reply):
                for entry in reply.json().get("cards", []):
                    if entry.get("card", {}).get("identity") == identity:
                        into.clear()
                        into.update(entry)
            return reply

        return rewrite

    def hide_rotation(self, victim: str, old_entry: dict[str, Any]) -> Rewrite:
        """Answers to lookups of ``victim`` give its superseded card as active,
        with a valid inclusion proof to a freshly signed checkpoint of the
        real log (the old card *is* in it)."""

        def rewrite(method: str, path: str, reply: HttpReply) -> HttpReply:
            if not _is_lookup(method, path, reply):
                return reply
            hashes = [merkle.leaf_hash(leaf) for leaf in self.real_leaves()]
            hidden = dict(old_entry)
            hidden["log_proof"] = _proof(hidden["log_index"], hashes)
            doc = reply.json()
            others = [e for e in doc.get("cards", []) if e["card"]["identity"] != victim]
            doc["cards"] = [*others, hidden]
            doc["checkpoint"] = self._sign(hashes)
            return _json_reply(reply, doc)

        return rewrite

    def _sign(self, hashes: list[bytes]) -> str:
        return sign_checkpoint(
            self._signer.name, len(hashes), merkle.root_of(hashes), int(self._clock()), self._signer
        )

    def fork(self, victim: str) -> tuple[Rewrite, str]:
        """A second view of the log, from its current size on: in it,
        ``victim`` has a card the operator made.  Every log-bearing answer to
        the phones given this rewrite comes from that view, consistently
        (checkpoints, consistency proofs, entries, card proofs)."""
        at = len(self.real_leaves())
        fake = KeyBundle.generate(victim)
        published_at = int(self._clock())
        fake_leaf = LogLeaf.publish(fake.card, time=published_at, rotation_signature=None)
        fake_raw = fake_leaf.encode()
        fake_card = fake.card.to_json()

        def view() -> tuple[list[bytes], list[bytes]]:
            real = self.real_leaves()
            leaves = [*real[:at], fake_raw, *real[at:]]
            return leaves, [merkle.leaf_hash(leaf) for leaf in leaves]

        def moved(index: int) -> int:
            return index if index < at else index + 1

        def proven(entry: dict[str, Any], hashes: list[bytes]) -> None:
            if entry.get("card", {}).get("identity") == victim and entry.get("status") == "active":
                entry.update(
                    card=fake_card,
                    published_at=published_at,
                    rotation_signature=None,
                    log_index=at,
                )
            elif isinstance(entry.get("log_index"), int):
                entry["log_index"] = moved(entry["log_index"])
            index = entry.get("log_index")
            if isinstance(index, int) and index < len(hashes):
                entry["log_proof"] = _proof(index, hashes)

        def rewrite(method: str, path: str, reply: HttpReply) -> HttpReply:
            # The log routes are answered from the fork whatever the real log
            # said (it refuses sizes only the fork has reached).
            if method != "GET":
                return reply
            url = urlsplit(path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/v1/kt/checkpoint":
                return _json_reply(reply, {"checkpoint": self._sign(view()[1])})
            if url.path == "/v1/kt/consistency":
                _, hashes = view()
                old, new = int(query["from"]), int(query["to"])
                if not 0 < old <= new <= len(hashes):
                    return reply  # the real log's refusal, as good as the fork's
                proof = merkle.consistency_proof(old, hashes[:new])
                return _json_reply(reply, {"proof": [b64url_encode(h) for h in proof]})
            if url.path == "/v1/kt/entries":
                leaves, _ = view()
                start, limit = int(query["start"]), int(query.get("limit", "100"))
                page = leaves[start : start + limit]
                doc: dict[str, Any] = {
                    "entries": [
                        {"index": start + i, "leaf": b64url_encode(leaf)}
                        for i, leaf in enumerate(page)
                    ]
                }
                if start + len(page) < len(leaves):
                    doc["next"] = start + len(page)
                return _json_reply(reply, doc)
            if url.path.startswith("/v1/cards") and reply.status == 200:
                _, hashes = view()
                doc = reply.json()
                for entry in doc.get("cards", [doc]):
                    proven(entry, hashes)
                if "checkpoint" in doc:
                    doc["checkpoint"] = self._sign(hashes)
                return _json_reply(reply, doc)
            return reply

        return rewrite, fake.card_id


# --- the scenario ---------------------------------------------------------------------


@dataclass
class _Tally:
    planned: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ATTACKS, 0))
    caught: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ATTACKS, 0))
    false_alarms: int = 0
    controls: int = 0


def run_lying(run: Run, phones: Sequence[Phone]) -> dict[str, Any]:
    """Run ``run``'s lies over ``phones`` (signed up already); the report's
    ``lying`` section.  Failures are counted in ``run.metrics``, never raised."""
    lies = run.plan.mix.lies
    tally = _Tally()
    report: dict[str, Any] = {"lies_per_attack": lies}
    operator = run.backend.operator()
    ready = [p for p in phones if p.device.whoami().card_id is not None]
    if run.log_key is None or operator is None or len(ready) < phones_needed(lies):
        reason = (
            "the devices pin no log key"
            if run.log_key is None
            else "the operator's access to the stage is out of reach"
            if operator is None
            else f"{phones_needed(lies)} signed-up phones needed, {len(ready)} available"
        )
        run.fail_named("lying", "not_run")
        report["not_run"] = reason
        return report
    started = time.perf_counter()
    liar = LyingDirectory(ApiClient(run.api), operator, run.backend.clock)
    rng = random.Random(f"{run.plan.seed}/lying")  # noqa: S311 - a reproducible simulation
    pool = list(ready)
    rng.shuffle(pool)

    def take(n: int) -> list[Phone]:
        taken, pool[:] = pool[:n], pool[n:]
        return taken

    for _ in range(lies):
        _substitute(run, liar, tally, *take(2))
    for _ in range(lies):
        _substitute_logged(run, liar, tally, take(1)[0])
    for _ in range(lies):
        _hide_rotation(run, liar, tally, *take(2))
    side = max(2, lies)
    _fork(run, liar, tally, take(1)[0], take(side), take(side))
    planned = sum(tally.planned.values())
    caught = sum(tally.caught.values())
    report.update(
        planned=tally.planned,
        caught=tally.caught,
        detection_rate=round(caught / planned, 4) if planned else None,
        controls=tally.controls,
        false_alarms=tally.false_alarms,
        wall_s=round(time.perf_counter() - started, 3),
    )
    return report


def _lied_to(phone: Phone, rewrite: Rewrite | None) -> None:
    phone.transport.rewrite = rewrite


def _caught(run: Run, tally: _Tally, kind: str) -> None:
    tally.caught[kind] += 1
    run.metrics.count(f"lie_{kind}_caught")


def _missed(run: Run, kind: str, why: str) -> None:
    run.fail_named(f"lie_{kind}", why)


def _control(run: Run, tally: _Tally, action: Callable[[], object]) -> None:
    """An honest operation: any alarm is a false one."""
    tally.controls += 1
    try:
        action()
    except (LogVerificationFailed, SplitView, UnexpectedKeyEvent) as exc:
        tally.false_alarms += 1
        run.fail_named("lie_false_alarm", error_kind(exc))


def _substitute(
    run: Run, liar: LyingDirectory, tally: _Tally, victim: Phone, contact: Phone
) -> None:
    kind = "substitute"
    tally.planned[kind] += 1
    _lied_to(contact, liar.substitute(victim.identity))
    try:
        contact.device.encrypt(b"for your eyes only", to=[victim.identity])
    except LogVerificationFailed:
        _caught(run, tally, kind)
    except DeviceError as exc:
        _missed(run, kind, error_kind(exc))
    else:
        _missed(run, kind, "encrypted_to_the_operator")
    finally:
        _lied_to(contact, None)
    # With the lie gone, the contact finds the real card.
    _control(run, tally, lambda: contact.device.find_users([victim.identity], refresh=True))


def _substitute_logged(run: Run, liar: LyingDirectory, tally: _Tally, victim: Phone) -> None:
    kind = "substitute_logged"
    tally.planned[kind] += 1
    _control(run, tally, victim.device.check_transparency_log)
    forged = liar.publish_behind_back(victim.identity)
    try:
        victim.device.check_transparency_log()
    except UnexpectedKeyEvent as exc:
        if exc.card_id == forged:
            _caught(run, tally, kind)
        else:
            _missed(run, kind, "reported_another_card")
    except DeviceError as exc:
        _missed(run, kind, error_kind(exc))
    else:
        _missed(run, kind, "not_reported")


def _hide_rotation(
    run: Run, liar: LyingDirectory, tally: _Tally, victim: Phone, contact: Phone
) -> None:
    kind = "hide_rotation"
    tally.planned[kind] += 1
    old_entry: dict[str, Any] = {}
    _lied_to(contact, liar.recorder(victim.identity, old_entry))
    try:
        old = contact.device.find_users([victim.identity], refresh=True)[victim.identity].card_id
    finally:
        _lied_to(contact, None)
    _rotate(victim)
    _control(run, tally, contact.device.check_transparency_log)
    _lied_to(contact, liar.hide_rotation(victim.identity, old_entry))
    try:
        cards = contact.device.find_users([victim.identity], refresh=True)
    except LogVerificationFailed:
        _caught(run, tally, kind)
    except (IdentityChanged, DeviceError) as exc:
        _missed(run, kind, error_kind(exc))
    else:
        why = "old_card_used" if cards[victim.identity].card_id == old else "lie_not_served"
        _missed(run, kind, why)
    finally:
        _lied_to(contact, None)
    _control(run, tally, lambda: contact.device.find_users([victim.identity], refresh=True))


def _rotate(phone: Phone) -> None:
    # The person confirms the password first (as the CLI asks): the rotation
    # replaces the stored backup, which needs a step-up.
    phone.device.confirm_password(phone.password)
    phone.device.rotate_private_key()


def _fork(
    run: Run,
    liar: LyingDirectory,
    tally: _Tally,
    victim: Phone,
    real: list[Phone],
    forked: list[Phone],
) -> None:
    kind = "fork"
    rewrite, fake_id = liar.fork(victim.identity)
    for phone in forked:
        _lied_to(phone, rewrite)
    try:
        # The forked side is shown the operator's card for the victim, with
        # a valid proof in its tree: the lie works until a message crosses.
        for phone in forked:
            _control(run, tally, phone.device.check_transparency_log)
            seen = phone.device.find_users([victim.identity], refresh=True)[victim.identity]
            if seen.card_id != fake_id:
                _missed(run, kind, "fork_not_served")
        # The real log moves on, and the real side sees it.
        _rotate(real[0])
        for phone in real:
            _control(run, tally, phone.device.check_transparency_log)
        # Within each side: no alarm.
        for side in (real, forked):
            for a, b in zip(side, side[1:] + side[:1], strict=True):
                sealed = a.device.encrypt(b"same side", to=[b.identity])
                _control(run, tally, functools.partial(b.device.decrypt, sealed))
        # Across: every message's reader must see the fork.
        for a, b in [*zip(real, forked, strict=True), *zip(forked, real, strict=True)]:
            tally.planned[kind] += 1
            sealed = a.device.encrypt(b"across the fork", to=[b.identity])
            try:
                b.device.decrypt(sealed)
            except SplitView:
                _caught(run, tally, kind)
            except DeviceError as exc:
                _missed(run, kind, error_kind(exc))
            else:
                _missed(run, kind, "message_crossed_unseen")
    finally:
        for phone in forked:
            _lied_to(phone, None)
