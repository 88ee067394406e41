"""BackupService, the backup lifecycle and the shared envelope check (no I/O)."""

from __future__ import annotations

import contextlib
import itertools

import pytest

from chalicelib.errors import (
    InvalidBackup,
    InvalidBackupName,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    StepUpRequired,
    VersionConflict,
)
from chalicelib.services.backups import (
    MAX_BACKUP_BYTES,
    BackupEvent,
    BackupService,
    BackupState,
    InvalidBackupTransition,
    backup_transition,
    check_backup_name,
    parse_version_param,
)
from chalicelib.wire import backup as envelope
from chalicelib.wire.b64 import b64url_encode
from client_sim import backup as device_backup
from client_sim.backup import TESTING_BOUNDS, KdfParams, seal_backup
from tests.identities import bundle
from tests.support.fakes import FakeClock, MemoryBackups

PARAMS = KdfParams(memory_kib=256, iterations=1, lanes=1, salt=bytes(16))
BLOB = seal_backup([bundle("alice")], bytes(32), PARAMS, bounds=TESTING_BOUNDS)
TEXT = b64url_encode(BLOB)


@pytest.fixture
def store() -> MemoryBackups:
    return MemoryBackups()


@pytest.fixture
def service(store: MemoryBackups) -> BackupService:
    return BackupService(store, clock=FakeClock())


def test_transition_table_is_exactly_the_documented_one() -> None:
    allowed = {}
    for state, event in itertools.product([None, *BackupState], BackupEvent):
        with contextlib.suppress(InvalidBackupTransition):
            allowed[(state, event)] = backup_transition(state, event)
    assert allowed == {
        (None, BackupEvent.CREATE): BackupState.PRESENT,
        (BackupState.DELETED, BackupEvent.CREATE): BackupState.PRESENT,
        (BackupState.PRESENT, BackupEvent.REPLACE): BackupState.PRESENT,
        (BackupState.PRESENT, BackupEvent.DELETE): BackupState.DELETED,
    }


def test_compare_and_swap(service: BackupService) -> None:
    assert service.put("alice", "primary", TEXT)[::2] == (1, True)
    with pytest.raises(VersionConflict):
        service.put("alice", "primary", TEXT)
    with pytest.raises(VersionConflict):
        service.put("alice", "primary", TEXT, 2)
    assert service.put("alice", "primary", TEXT, 1)[::2] == (2, False)
    assert service.get("alice", "primary").ciphertext == BLOB
    with pytest.raises(NotFound):
        service.get("bob", "primary")


def test_delete_leaves_a_tombstone_that_keeps_counting(service, store) -> None:
    service.put("alice", "primary", TEXT)
    with pytest.raises(VersionConflict):
        service.delete("alice", "primary", 5)
    service.delete("alice", "primary", 1)
    with pytest.raises(NotFound):
        service.get("alice", "primary")
    with pytest.raises(NotFound):
        service.delete("alice", "primary")
    with pytest.raises(VersionConflict):
        service.put("alice", "primary", TEXT, 1)
    assert service.put("alice", "primary", TEXT)[0] == 3


@pytest.mark.parametrize(
    "name", ["", "Primary", ".x", "-x", "a" * 65, "a/b", "a b", "ä", None, 3, "a\n"]
)
def test_names_are_a_small_charset(name) -> None:
    with pytest.raises(InvalidBackupName):
        check_backup_name(name)


@pytest.mark.parametrize("name", ["a", "primary", "primary.pending", "x_1-2", "9" * 64])
def test_valid_names(name) -> None:
    assert check_backup_name(name) == name


@pytest.mark.parametrize("version", [0, -1, True, 1.0, "1", 2**53])
def test_versions_are_positive_integers(service, version) -> None:
    with pytest.raises(InvalidRequest):
        service.put("alice", "primary", TEXT, version)


@pytest.mark.parametrize("raw", ["", "x", "-1", "0", "1.0", "١", "1" * 17])
def test_version_params(raw) -> None:
    with pytest.raises(InvalidRequest):
        parse_version_param(raw)


def test_version_param_values() -> None:
    assert parse_version_param(None) is None
    assert parse_version_param("42") == 42


@pytest.mark.parametrize(
    "ciphertext",
    [
        None,
        7,
        TEXT + "=",
        "+" + TEXT[1:],
        b64url_encode(b"SBBACKUP"),
        b64url_encode(b"SBBACKUX" + BLOB[8:]),
        b64url_encode(BLOB[:8] + b"\x02" + BLOB[9:]),
        b64url_encode(BLOB[:9] + b"\x02" + BLOB[10:]),
        b64url_encode(BLOB[:22] + b"\x0f" + BLOB[23:]),
        b64url_encode(BLOB[:22] + b"\x41" + BLOB[23:]),
        b64url_encode(BLOB[: envelope.MIN_BACKUP_SIZE - 1]),
    ],
)
def test_only_backup_envelopes_are_stored(service, store, ciphertext) -> None:
    with pytest.raises(InvalidBackup):
        service.put("alice", "primary", ciphertext)
    assert store.items == {}


def test_oversized_backups_are_413(service, store) -> None:
    with pytest.raises(PayloadTooLarge):
        service.put("alice", "primary", "A" * ((MAX_BACKUP_BYTES * 4 + 2) // 3 + 4))
    assert store.items == {}


def test_the_envelope_constants_are_the_devices() -> None:
    assert device_backup.BACKUP_MAGIC is envelope.BACKUP_MAGIC
    assert device_backup.BACKUP_VERSION == envelope.BACKUP_VERSION
    # Every real backup passes the server's check, whatever its salt length.
    for salt in (bytes(16), bytes(64)):
        params = KdfParams(memory_kib=256, iterations=1, lanes=1, salt=salt)
        envelope.check_backup_envelope(
            seal_backup([bundle("alice")], bytes(32), params, bounds=TESTING_BOUNDS)
        )


def test_the_step_up_hook_runs_for_replacements_and_deletes_after_validation(service) -> None:
    calls: list[str] = []

    def authorize() -> None:
        calls.append("step-up")

    service.put("alice", "primary", TEXT, authorize_replace=authorize)  # a creation: none
    assert calls == []
    with pytest.raises(InvalidRequest):
        service.put("alice", "primary", TEXT, 0, authorize_replace=authorize)
    with pytest.raises(InvalidBackupName):
        service.delete("alice", "../x", authorize=authorize)
    assert calls == []  # a malformed request never spends a proof
    service.put("alice", "primary", TEXT, 1, authorize_replace=authorize)
    service.delete("alice", "primary", authorize=authorize)
    assert calls == ["step-up", "step-up"]


def test_a_refused_step_up_changes_nothing(service, store) -> None:
    service.put("alice", "primary", TEXT)
    before = repr(store.__dict__)

    def refuse() -> None:
        raise StepUpRequired()

    with pytest.raises(StepUpRequired):
        service.put("alice", "primary", TEXT, 1, authorize_replace=refuse)
    with pytest.raises(StepUpRequired):
        service.delete("alice", "primary", authorize=refuse)
    assert service.get("alice", "primary").version == 1
    assert repr(store.__dict__) == before
