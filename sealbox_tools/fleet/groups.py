"""The ``groups`` scenario: group epochs and group content under a fleet.

After the fleet's phones have signed up (the ordinary plan's first phases),
:func:`run_groups` gives each group its own share of the phones -- a phone
is in at most one group, so a group's steps never run on a device another
group is using at the same time -- and lives every group through
``group_rounds`` rounds, groups in parallel:

1. **sends**: two online members seal a group message (``Group.encrypt``;
   the app relays the bytes, here an in-memory mailbox) and, with the mix's
   ``file_share``, a group file (``Group.upload``: a group blob in S3);
2. **reads**: every online member opens what was sent to it since it
   joined; the :class:`~sealbox_tools.fleet.ledger.Ledger` judges every
   delivery (content hash and the signer the SDK verified);
3. **racing admins**: the group's two admins change the roster at once --
   one adds a member, the other removes one -- with both epoch appends held
   at a barrier so they really race: one wins, the other gets
   ``stale_epoch``, re-bases and retries (``group_rebased``).  The head
   must then be exactly two epochs on with both changes in the roster
   (``lost_epochs`` otherwise, a failure);
4. **removed members try**: every member removed so far tries to open every
   message and download every file sent after its removal; each must be
   refused (``removed_member_refused``).  One readable is a failure
   (``removed_member_readable``).  A member added mid-run tries one item
   sent before it joined: history is not shared by default
   (``history_refused``).

After the last change an admin **shares history** with the member that
joined last: the epochs from the second epoch anything was sent in up to
the one before it joined (``Group.share_history``).  The ledger then expects
that member to read exactly what was sent in the shared epochs (counted as
``history_delivered`` too), and it must be refused everything sent before
the first shared epoch (``history_refused``); a share for a removed member
is refused by the server (``history_share_to_removed_refused``).

One member of each group (not an admin) is offline from the first round to
the end and then catches up through every epoch it missed, reading what was
sent to it meanwhile.  A last round of sends follows the last change, so the
last removed members have something to try.  Every epoch's key is a needle
for the privacy audit (the server must never hold one).
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.wire.b64 import b64url_encode
from client_sim.errors import DecryptionFailed, MemberNotFound, NotAMember, ServerError
from client_sim.group import Group
from sealbox_tools.fleet.ledger import make_content
from sealbox_tools.fleet.phone import GaveUp, error_kind

if TYPE_CHECKING:
    from sealbox_tools.fleet.phone import Phone
    from sealbox_tools.fleet.runner import Run

__all__ = ["run_groups"]

#: Members who send in each round of each group.
_SENDERS = 2
#: How long an admin waits at the race barrier for the other (seconds).
_RACE_TIMEOUT = 60.0


@dataclass
class _Item:
    """One message or file sent to a group."""

    message_id: str
    kind: str  # "message" or "file"
    epoch: int  # the group's epoch when it was sealed
    recipients: frozenset[int]  # phone indexes (members at send time, sender excepted)
    ciphertext: bytes | None = field(default=None, repr=False)  # a message's
    blob_id: str | None = None  # a file's


@dataclass
class _Group:
    index: int
    phones: dict[int, Phone]
    members: set[int]
    admins: tuple[int, int]
    joiners: list[int]
    sleeper: int | None
    group_id: str = ""
    epoch: int = 0
    largest: int = 0
    #: removed phone index -> the first epoch it was no longer in
    removed: dict[int, int] = field(default_factory=dict)
    joined: dict[int, int] = field(default_factory=dict)
    items: list[_Item] = field(default_factory=list)
    read: set[tuple[int, str]] = field(default_factory=set)
    tried: set[tuple[int, str]] = field(default_factory=set)
    #: (reader, message id) that a history share made readable
    shared: set[tuple[int, str]] = field(default_factory=set)
    epochs_made: int = 0
    lost_epochs: int = 0
    missed_epochs: int = 0


class _Race:
    """Holds the first epoch append of each of two admins until both are
    ready to send theirs, so both are based on the same head."""

    def __init__(self) -> None:
        self._barrier = threading.Barrier(2, timeout=_RACE_TIMEOUT)
        self._passed: set[int] = set()
        self._lock = threading.Lock()

    def gate(self, who: int) -> Callable[[str, str], None]:
        def hold(method: str, path: str) -> None:
            if method != "POST" or not path.rstrip("/").endswith("/epochs"):
                return
            with self._lock:
                if who in self._passed:
                    return  # a re-based retry goes straight through
                self._passed.add(who)
            # A broken barrier: the other admin failed before its append.
            with contextlib.suppress(threading.BrokenBarrierError):
                self._barrier.wait()

        return hold


def run_groups(run: Run, phones: Sequence[Phone]) -> dict[str, Any]:
    """Run the groups of ``run``'s mix over ``phones`` (signed up already).

    Failures are counted in ``run.metrics`` (``failed_steps``), never
    raised.  Returns the ``groups`` section of the report.
    """
    mix = run.plan.mix
    rng = random.Random(f"{run.plan.seed}/groups")  # noqa: S311 - a reproducible simulation
    started = time.perf_counter()
    groups = _partition(rng, phones, mix.groups, mix.group_max, mix.group_rounds)
    run.metrics.count("groups_planned", mix.groups)
    with ThreadPoolExecutor(max(1, min(run.config.concurrency, len(groups) or 1))) as pool:
        for future in [
            pool.submit(_live, run, g, random.Random(rng.random()))  # noqa: S311
            for g in groups
        ]:
            future.result()
    return {
        "groups": len(groups),
        "created": sum(1 for g in groups if g.group_id),
        "largest_group": max((g.largest for g in groups), default=0),
        "epochs": sum(g.epochs_made for g in groups),
        "lost_epochs": sum(g.lost_epochs for g in groups),
        "rebased": run.metrics.snapshot()["events"].get("group_rebased", 0),
        "missed_epochs_caught_up": sum(g.missed_epochs for g in groups),
        "removed_members": sum(len(g.removed) for g in groups),
        "history_shared_reads": sum(len(g.shared) for g in groups),
        "wall_s": round(time.perf_counter() - started, 3),
    }


def _partition(
    rng: random.Random, phones: Sequence[Phone], count: int, largest: int, rounds: int
) -> list[_Group]:
    """Disjoint shares of the phones: the first group ``largest`` members, the
    others 3..largest, each with one joiner per round on top."""
    pool = list(range(len(phones)))
    rng.shuffle(pool)
    groups: list[_Group] = []
    for index in range(count):
        size = largest if index == 0 else rng.randint(3, largest)
        size = min(size, len(pool) - rounds)
        if size < 3:
            break
        share, pool = pool[: size + rounds], pool[size + rounds :]
        members, joiners = share[:size], share[size:]
        quiet = members[2:]
        groups.append(
            _Group(
                index=index,
                phones={i: phones[i] for i in share},
                members=set(members),
                admins=(members[0], members[1]),
                joiners=joiners,
                sleeper=rng.choice(quiet) if len(quiet) >= 2 else None,
            )
        )
    return groups


def _live(run: Run, g: _Group, rng: random.Random) -> None:
    try:
        _create(run, g)
        if g.sleeper is not None:
            # Its network goes before it ever fetched the group: when it is
            # back it follows every epoch from the creation (docs/spec/groups.md,
            # Joining) and must read everything sealed while it was away.
            sleeper = g.phones[g.sleeper]
            sleeper.network.offline = True
            run.metrics.count("group_member_offline")
        for _ in range(run.plan.mix.group_rounds):
            _sends(run, g, rng)
            _reads(run, g)
            _race(run, g, rng)
            _attempts(run, g)
        _share_history(run, g)
        _sends(run, g, rng)
        if g.sleeper is not None:
            g.phones[g.sleeper].network.offline = False
            g.missed_epochs += g.epoch
        _reads(run, g)
        _attempts(run, g)
    except GaveUp as exc:
        run.fail_named("group", f"gave_up_{exc}")
    except Exception as exc:  # noqa: BLE001 - a crash is counted, the run goes on
        run.fail_named("group", f"crash_{type(exc).__name__}")
        run.crashes.append(f"group {g.index}: {type(exc).__name__}: {error_kind(exc)}")


def _handle(g: _Group, who: int) -> Group:
    return g.phones[who].device.group(g.group_id)


def _create(run: Run, g: _Group) -> None:
    admin = g.phones[g.admins[0]]
    names = [g.phones[i].identity for i in sorted(g.members)]
    group = admin._try(
        "group_create",
        lambda: admin.device.create_group(names, admins=[g.phones[g.admins[1]].identity]),
    )
    g.group_id = group.group_id
    g.largest = len(g.members)
    g.epochs_made += 1
    _note_epoch(run, g)
    run.metrics.count("group_created")


def _note_epoch(run: Run, g: _Group) -> None:
    """The current epoch's key is a needle: no byte of it may reach the server."""
    identity = _handle(g, g.admins[0]).export_epoch_identity()
    run.secrets.add(f"group {g.index} epoch {g.epoch} key", identity.encode("ascii"))


def _sends(run: Run, g: _Group, rng: random.Random) -> None:
    online = sorted(i for i in g.members if i != g.sleeper)
    mix = run.plan.mix
    for who in rng.sample(online, min(_SENDERS, len(online))):
        kinds = ["message"] + (["file"] if rng.random() < mix.file_share else [])
        for kind in kinds:
            _send(run, g, who, kind, rng)


def _send(run: Run, g: _Group, who: int, kind: str, rng: random.Random) -> None:
    phone = g.phones[who]
    phone.sent += 1
    message_id = f"{run.tag}.g{g.index}.{who}.{phone.sent}"
    canary = f"CANARY-{run.tag}-g{g.index}-{who}-{phone.sent}-{rng.getrandbits(80):020x}"
    lo, hi = run.plan.mix.file_bytes if kind == "file" else run.plan.mix.message_bytes
    content = make_content(kind, message_id, rng.randint(lo, hi), canary, phone.rng)
    recipients = frozenset(g.members - {who})
    run.ledger.expect(
        message_id,
        sender=phone.identity,
        recipients=[g.phones[i].identity for i in recipients],
        content=content,
        kind=kind,
        canary=canary,
    )
    run.secrets.add(f"canary of {message_id} (group {kind})", canary.encode("ascii"))
    group = _handle(g, who)
    item = _Item(message_id, kind, g.epoch, recipients)
    if kind == "message":
        item.ciphertext = phone._try("group_encrypt", lambda: group.encrypt(content))
        run.ledger.sent(message_id, f"group-message:{message_id}")
    else:
        key = b64url_encode(os.urandom(18))  # one key for the upload and its retries
        info = phone._try("group_upload", lambda: group.upload(content, idempotency_key=key))
        item.blob_id = info.blob_id
        run.ledger.sent(message_id, info.blob_id)
    g.items.append(item)
    run.metrics.count(f"group_sent_{kind}")


def _open(g: _Group, who: int, item: _Item) -> tuple[bytes, str]:
    group = _handle(g, who)
    if item.ciphertext is not None:
        opened = group.decrypt(item.ciphertext)
    else:
        assert item.blob_id is not None
        opened = group.download(item.blob_id)
    return opened.plaintext, opened.sender.identity


def _reads(run: Run, g: _Group) -> None:
    for who in sorted(g.members):
        if who == g.sleeper and g.phones[who].network.offline:
            continue
        phone = g.phones[who]
        for item in g.items:
            if who not in item.recipients or (who, item.message_id) in g.read:
                continue
            plaintext, signer = phone._try("group_read", functools.partial(_open, g, who, item))
            g.read.add((who, item.message_id))
            where = f"group-message:{item.message_id}" if item.ciphertext else item.blob_id
            outcome = run.ledger.judge(phone.identity, plaintext, signer, blob_id=str(where))
            run.metrics.count(outcome)
            run.metrics.count("group_delivered" if outcome == "delivered" else f"group_{outcome}")
            if outcome == "delivered" and (who, item.message_id) in g.shared:
                run.metrics.count("history_delivered")


def _race(run: Run, g: _Group, rng: random.Random) -> None:
    """The two admins change the roster at once: one adds, the other removes."""
    first, second = g.admins
    joiner = g.joiners.pop(0) if g.joiners else None
    removable = sorted(g.members - {first, second, g.sleeper} - set(g.joined))
    leaver = rng.choice(removable) if len(removable) > 1 else None
    before = g.epoch
    race = _Race()
    changes: list[tuple[int, Callable[[], object]]] = []
    if joiner is not None:
        name = g.phones[joiner].identity
        changes.append((first, lambda: _handle(g, first).add_members([name])))
    if leaver is not None:
        name_out = g.phones[leaver].identity
        changes.append((second, lambda: _handle(g, second).remove_members([name_out])))
    if not changes:
        return
    for who, _ in changes:
        g.phones[who].transport.gate = race.gate(who) if len(changes) == 2 else None
    try:
        with ThreadPoolExecutor(len(changes)) as pool:
            futures = [
                pool.submit(g.phones[who]._try, "group_change", change) for who, change in changes
            ]
            for future in futures:
                future.result()
    finally:
        for who, _ in changes:
            g.phones[who].transport.gate = None
    if joiner is not None:
        g.members.add(joiner)
    if leaver is not None:
        g.members.discard(leaver)
    g.largest = max(g.largest, len(g.members))
    info = _handle(g, first).info()
    expected = before + len(changes)
    wanted = sorted(g.phones[i].identity for i in g.members)
    if info.epoch != expected or sorted(info.members) != wanted:
        # A change won, the other was lost (or doubled): a forked or dropped epoch.
        g.lost_epochs += abs(expected - info.epoch) or 1
        run.fail_named("group_change", "lost_epoch")
    g.epoch = info.epoch
    g.epochs_made += len(changes)
    if joiner is not None:
        g.joined[joiner] = g.epoch
    if leaver is not None:
        g.removed[leaver] = g.epoch
    run.metrics.count("group_changes_raced" if len(changes) == 2 else "group_changes")
    _note_epoch(run, g)


def _attempts(run: Run, g: _Group) -> None:
    """Removed members try everything sent after their removal; joiners try one
    item from before they joined.  Every try must be refused."""
    for who, since in sorted(g.removed.items()):
        for item in g.items:
            if item.epoch >= since and (who, item.message_id) not in g.tried:
                g.tried.add((who, item.message_id))
                _must_refuse(run, g, who, item, "removed_member")
    for who, since in sorted(g.joined.items()):
        older = [i for i in g.items if i.epoch < since and who not in i.recipients]
        if older and (who, older[0].message_id) not in g.tried:
            g.tried.add((who, older[0].message_id))
            _must_refuse(run, g, who, older[0], "history")


def _share_history(run: Run, g: _Group) -> None:
    """An admin shares past epochs with the member that joined last; the
    ledger expects it to read exactly what was sent in them, and it tries
    (and must be refused) everything sent before the first shared epoch."""
    admin = g.admins[0]
    present = [(since, who) for who, since in g.joined.items() if who in g.members]
    if not present:
        return
    since, who = max(present)
    sent_in = sorted({item.epoch for item in g.items if item.epoch < since})
    if len(sent_in) < 2:
        run.metrics.count("history_share_skipped")
        return
    first, last = sent_in[1], since - 1
    name = g.phones[who].identity
    g.phones[admin]._try(
        "group_share_history",
        lambda: _handle(g, admin).share_history(name, from_epoch=first, to_epoch=last),
    )
    run.metrics.count("history_shared")
    run.metrics.count("history_shared_epochs", last - first + 1)
    for item in g.items:
        if first <= item.epoch <= last and who not in item.recipients:
            run.ledger.shared(item.message_id, [name], None)
            item.recipients = item.recipients | {who}
            g.shared.add((who, item.message_id))
    for item in g.items:
        if item.epoch < first and (who, item.message_id) not in g.tried:
            g.tried.add((who, item.message_id))
            _must_refuse(run, g, who, item, "history")
    for gone in sorted(g.removed):
        share = functools.partial(
            _handle(g, admin).share_history, g.phones[gone].identity, from_epoch=0, to_epoch=0
        )
        try:
            g.phones[admin]._try("group_share_history", share)
        except MemberNotFound:
            run.metrics.count("history_share_to_removed_refused")
            continue
        run.fail_named("group_share_history", "shared_with_removed")


def _must_refuse(run: Run, g: _Group, who: int, item: _Item, what: str) -> None:
    try:
        g.phones[who]._try(f"{what}_attempt", lambda: _open(g, who, item))
    except (NotAMember, DecryptionFailed):
        run.metrics.count(f"{what}_refused")
        return
    except ServerError as exc:
        if exc.status != 404:
            raise
        run.metrics.count(f"{what}_refused")
        return
    run.metrics.count(f"{what}_readable")
    run.fail_named(f"{what}_attempt", "readable")
