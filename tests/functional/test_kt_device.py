"""Devices with the transparency log pinned: proofs on every card, consistency, self-monitoring.

Attack tests: an operator substitutes a contact's card in the directory
(caught by the contact's lookup), publishes a card for a victim through the
API with a stolen token (caught by the victim's self-monitoring), and shows
a device a rolled-back log (caught as a split view).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
import pytest

from chalicelib import wiring
from chalicelib.services.cards import CardRecord, CardStatus
from chalicelib.services.transparency import LogHead
from chalicelib.wire.checkpoint import sign_checkpoint
from chalicelib.wire.ktleaf import LogLeaf
from chalicelib.wire.note import parse_signer_key
from client_sim.device import Device
from client_sim.errors import LogVerificationFailed, SplitView, UnexpectedKeyEvent
from client_sim.passwords import PASSWORD_KDF_SIMULATION
from client_sim.transparency import (
    KT_STATE_FILE,
    KT_STATE_LABEL,
    KT_STATE_MAGIC,
    MAX_CHECKPOINT_AHEAD,
)
from client_sim.transport import ChaliceTransport
from tests.functional.conftest import STAGE_ENV, log_vkey
from tests.support.device_flows import PASSWORD
from tests.support.directory import fresh_bundle
from tests.support.objects import moto_objects

CARDS_TABLE = STAGE_ENV["SEALBOX_CARDS_TABLE"]


@pytest.fixture
def phone(tmp_path: Path, transport: ChaliceTransport):  # type: ignore[no-untyped-def]
    def make(name: str, *, register: bool = True) -> Device:
        device = Device(
            tmp_path / name,
            transport,
            kdf=PASSWORD_KDF_SIMULATION,
            log_key=log_vkey(),
            **moto_objects(),
        )
        if register:
            device.register(name, PASSWORD)
        return device

    return make


def test_cards_are_proven_and_the_checkpoint_is_kept_sealed(phone, tmp_path: Path) -> None:
    alice, bob = phone("alice"), phone("bob")
    sealed = alice.encrypt(b"hi bob", to=["bob"])
    assert bob.decrypt(sealed).plaintext == b"hi bob"
    state_file = tmp_path / "alice" / "keystore" / KT_STATE_FILE
    assert state_file.is_file()
    assert b"sealbox.invalid" not in state_file.read_bytes()  # sealed, not plain JSON
    # Sealing checked alice's identity first (never checked before): both
    # publishes read, none unexpected; nothing new since.
    assert alice.check_transparency_log() == 0
    assert alice._log is not None
    assert alice._log._load().monitored == 2


def test_a_substituted_contact_card_is_refused(phone) -> None:
    alice, _bob = phone("alice"), phone("bob")
    fake = fresh_bundle("bob")
    client = boto3.client("dynamodb")
    head = client.get_item(TableName=CARDS_TABLE, Key={"pk": {"S": "identity#bob"}})["Item"]
    head["card"] = {"B": fake.card.encode()}
    head["card_id"] = {"S": fake.card_id}
    client.put_item(TableName=CARDS_TABLE, Item=head)
    with pytest.raises(LogVerificationFailed):
        alice.find_users(["bob"], refresh=True)


def test_a_card_published_behind_the_victims_back_is_reported(phone) -> None:
    victim = phone("victim")
    assert victim.check_transparency_log() == 1
    # The operator (or a thief with the victim's password) revokes the
    # victim's card and publishes one of their own: a legal identity reset
    # for the directory, that only the victim can tell is not theirs.
    store = wiring.container().cards._store  # the backend itself, as an operator runs it
    own = store.active("victim")
    assert own is not None
    assert store.revoke("victim", own.card_id, at=own.published_at + 1)
    forged = fresh_bundle("victim")
    record = CardRecord(forged.card, CardStatus.ACTIVE, published_at=own.published_at + 2)
    assert store.publish(record, replaces=None)
    with pytest.raises(UnexpectedKeyEvent) as info:
        victim.check_transparency_log()
    assert info.value.card_id == forged.card_id
    assert info.value.kind == "publish"
    # Reported again at the next login until dealt with.
    victim.logout()
    with pytest.raises(UnexpectedKeyEvent):
        victim.login("victim", PASSWORD)


def test_a_rolled_back_log_is_a_split_view(phone) -> None:
    alice = phone("alice")
    phone("bob")
    alice.find_users(["bob"])
    # The operator rebuilds a shorter log (as if bob never registered) and
    # signs it with the real key: a fork the device already saw past.
    log = wiring.container().kt_log
    assert log is not None
    store = wiring.container().cards._store
    leaf0 = log.leaves([0])[0]
    client = boto3.client("dynamodb")
    for item in client.scan(TableName=CARDS_TABLE)["Items"]:
        if item["pk"]["S"].startswith("kt#"):
            client.delete_item(TableName=CARDS_TABLE, Key={"pk": item["pk"]})
    other = fresh_bundle("mallory")
    for leaf in (leaf0, LogLeaf.publish(other.card, time=1, rotation_signature=None).encode()):
        planned = log.plan(leaf)
        store._tx.transact(log.append_items(planned))  # type: ignore[attr-defined]
    assert isinstance(log.head(), LogHead)
    with pytest.raises(SplitView) as info:
        alice.find_users(["bob", "alice"], refresh=True)
    assert info.value.ours != info.value.theirs


def test_a_peers_forked_checkpoint_is_a_split_view(phone) -> None:
    """What a device does with a checkpoint another person's device saw."""
    alice = phone("alice")
    phone("bob")
    alice.find_users(["bob"])
    monitor = alice._log
    assert monitor is not None
    ours = monitor.latest()
    assert ours is not None
    # Signed by the real log key: a fork shown to someone else, at our size
    # and at a size our log never reached.
    skey = boto3.client("secretsmanager").get_secret_value(
        SecretId=STAGE_ENV["SEALBOX_KT_LOG_KEY_SECRET_ID"]
    )["SecretString"]
    signer = parse_signer_key(skey)
    for size in (ours.size, ours.size + 5):
        forked = sign_checkpoint(signer.name, size, b"\x07" * 32, int(time.time()), signer)
        with pytest.raises(SplitView) as info:
            monitor.compare(forked)
        assert (info.value.ours, info.value.theirs) == (ours.note, forked)
    # The honest latest checkpoint compares fine.
    monitor.compare(alice._api.kt_checkpoint())


def test_a_revocation_of_the_card_in_use_is_reported(phone) -> None:
    """An operator revokes the victim's card (contacts stop encrypting to it)."""
    victim = phone("victim")
    assert victim.check_transparency_log() == 1
    store = wiring.container().cards._store
    own = store.active("victim")
    assert own is not None
    assert store.revoke("victim", own.card_id, at=own.published_at + 1)
    with pytest.raises(UnexpectedKeyEvent) as info:
        victim.check_transparency_log()
    assert (info.value.card_id, info.value.kind) == (own.card_id, "revoke")


class _Clock:
    """A phone's wall clock the test sets: slow, stopped, or moving again."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.frozen: float | None = None

    def __call__(self) -> float:
        return self.frozen if self.frozen is not None else time.time() + self.offset


def _log_signer():  # type: ignore[no-untyped-def]
    skey = boto3.client("secretsmanager").get_secret_value(
        SecretId=STAGE_ENV["SEALBOX_KT_LOG_KEY_SECRET_ID"]
    )["SecretString"]
    return parse_signer_key(skey)


@pytest.fixture
def clocked_phone(tmp_path: Path, transport: ChaliceTransport):  # type: ignore[no-untyped-def]
    def make(name: str, clock: _Clock) -> Device:
        device = Device(
            tmp_path / name,
            transport,
            kdf=PASSWORD_KDF_SIMULATION,
            log_key=log_vkey(),
            clock=clock,
            **moto_objects(),
        )
        device.register(name, PASSWORD)
        return device

    return make


def test_a_phone_whose_clock_is_slow_still_uses_the_log(clocked_phone, phone) -> None:
    """A phone 20 minutes slow sees every honest checkpoint "from the future"."""
    clock = _Clock()
    alice = clocked_phone("alice", clock)
    phone("bob")
    clock.offset = -1200.0
    sealed = alice.encrypt(b"hi", to=["bob"])  # looks bob up: a fresh checkpoint
    assert sealed
    assert alice.check_transparency_log() == 0  # sealing checked both publishes
    assert alice._log is not None
    assert alice._log._load().monitored == 2


def test_a_phone_that_slept_is_carried_forward_and_then_held_to_fresh_views(
    clocked_phone, phone
) -> None:
    clock = _Clock()
    alice = clocked_phone("alice", clock)
    phone("bob")
    monitor = alice._log
    assert monitor is not None
    ours = monitor.fresh()
    signer = _log_signer()
    # The phone slept: its clock stood still while the log's moved on 20 minutes.
    clock.frozen = time.time()
    later = int(clock.frozen) + 1200
    woke = sign_checkpoint(signer.name, ours.size, ours.root, later, signer)
    assert monitor.accept(woke).timestamp == later
    assert monitor.log_now() == pytest.approx(later)
    # Its clock moves again, 11 minutes: a view the server holds goes stale,
    # even though by the phone's own clock the checkpoint is still "ahead".
    clock.frozen += 660
    assert monitor.log_now() == pytest.approx(later + 660)
    alice._api.kt_checkpoint = lambda: woke  # type: ignore[method-assign]
    with pytest.raises(LogVerificationFailed, match="stale"):
        monitor.fresh()


def test_a_view_the_server_holds_still_goes_stale_on_a_right_clock(clocked_phone) -> None:
    """A server that keeps a device on one checkpoint (a freeze attack)."""
    clock = _Clock()
    alice = clocked_phone("alice", clock)
    monitor = alice._log
    assert monitor is not None
    held = monitor.fresh()
    alice._api.kt_checkpoint = lambda: held.note  # type: ignore[method-assign]
    clock.offset = 540.0
    assert monitor.fresh() == held  # still within the 600 s bound
    clock.offset = 660.0
    with pytest.raises(LogVerificationFailed, match="stale"):
        monitor.fresh()


def test_a_checkpoint_dated_more_than_a_day_ahead_is_refused(phone) -> None:
    alice = phone("alice")
    monitor = alice._log
    assert monitor is not None
    ours = monitor.fresh()
    signer = _log_signer()
    ahead = int(time.time()) + MAX_CHECKPOINT_AHEAD + 60
    with pytest.raises(LogVerificationFailed, match="future"):
        monitor.accept(sign_checkpoint(signer.name, ours.size, ours.root, ahead, signer))
    assert monitor.log_now() == pytest.approx(time.time(), abs=5)


def test_a_version_1_state_file_is_still_read(phone) -> None:
    """State written before the log-time fields keeps its rollback memory."""
    alice = phone("alice")
    monitor = alice._log
    assert monitor is not None
    ours = monitor.fresh()
    body = json.dumps(
        {"version": 1, "checkpoint": ours.note, "monitored": 0, "frontier": []}, sort_keys=True
    ).encode()
    alice._store.keystore.write_sealed(KT_STATE_FILE, KT_STATE_MAGIC, KT_STATE_LABEL, body)
    monitor._state = None
    assert monitor.latest() == ours


def test_a_rotation_hidden_from_a_contact_is_caught_after_its_monitoring(phone) -> None:
    """The operator puts bob's old card back in the directory after bob rotated.

    Alice pinned the old card, so her pin alone can't tell; the log can: her
    self-monitoring read bob's rotation entry.
    """
    alice, bob = phone("alice"), phone("bob")
    alice.find_users(["bob"])
    client = boto3.client("dynamodb")
    key = {"pk": {"S": "identity#bob"}}
    before = client.get_item(TableName=CARDS_TABLE, Key=key)["Item"]
    bob.rotate_private_key()
    assert alice.check_transparency_log() == 1  # bob's rotation (the lookup read the rest)
    client.put_item(TableName=CARDS_TABLE, Item=before)  # the rotation, hidden
    with pytest.raises(LogVerificationFailed, match="later rotate"):
        alice.find_users(["bob"], refresh=True)


def test_a_contact_that_did_not_monitor_is_not_alarmed_by_an_honest_rotation(phone) -> None:
    alice, bob = phone("alice"), phone("bob")
    alice.find_users(["bob"])
    alice.check_transparency_log()
    bob.rotate_private_key()
    alice.check_transparency_log()  # reads the rotation: bob is watched
    assert alice.find_users(["bob"], refresh=True)["bob"].card_id == bob.whoami().card_id


def test_a_device_that_stays_logged_in_checks_itself_again_when_due(
    tmp_path: Path, transport: ChaliceTransport, phone
) -> None:
    """Self-monitoring "at login and periodically": no new login needed."""
    clock = _Clock()
    victim = Device(
        tmp_path / "victim",
        transport,
        kdf=PASSWORD_KDF_SIMULATION,
        log_key=log_vkey(),
        log_monitor_interval=100,
        clock=clock,
        **moto_objects(),
    )
    victim.register("victim", PASSWORD)
    phone("bob")
    victim.find_users(["bob"])  # due (never checked): checks, all its own
    store = wiring.container().cards._store
    own = store.active("victim")
    assert own is not None
    assert store.revoke("victim", own.card_id, at=own.published_at + 1)
    forged = fresh_bundle("victim")
    assert store.publish(
        CardRecord(forged.card, CardStatus.ACTIVE, published_at=own.published_at + 2),
        replaces=None,
    )
    victim.find_users(["bob"], refresh=True)  # not due yet: no check
    clock.offset = 120.0
    with pytest.raises(UnexpectedKeyEvent) as info:
        victim.find_users(["bob"], refresh=True)
    assert info.value.card_id == forged.card_id
    with pytest.raises(UnexpectedKeyEvent):
        victim.encrypt(b"hi", to=["bob"])  # reported until dealt with
