"""The account service's side of password hardening: charges, clears, migration, no downgrade."""

from __future__ import annotations

import pytest

from chalicelib.errors import InvalidOprfKeyVersion, TooManyAttempts
from chalicelib.services.accounts import AccountService, LockoutPolicy, LoginKeyHasher
from chalicelib.wire.b64 import b64url_encode
from tests.support.fakes import (
    FakeClock,
    MemoryAttempts,
    MemoryDevices,
    MemorySessions,
    MemoryStepUps,
    MemoryUsers,
)

V1 = b64url_encode(bytes(range(32)))
V2 = b64url_encode(bytes(range(1, 33)))
V3 = b64url_encode(bytes(range(2, 34)))


@pytest.fixture
def service() -> tuple[AccountService, MemoryUsers, MemoryAttempts, list[int]]:
    users, attempts = MemoryUsers(), MemoryAttempts()
    current = [1]
    svc = AccountService(
        users,
        MemorySessions(),
        attempts,
        LoginKeyHasher(memory_kib=64, iterations=1, lanes=1),
        devices=MemoryDevices(),
        step_ups=MemoryStepUps(),
        refresh_ttl=3600,
        clock=FakeClock(),
        policy=LockoutPolicy(),
        oprf_version=lambda: current[0],
    )
    return svc, users, attempts, current


def test_evaluations_are_charged_on_their_own_counter(service) -> None:
    svc, _, attempts, _ = service
    for _ in range(5):
        svc.charge_oprf_evaluation("alice")
    with pytest.raises(TooManyAttempts):
        svc.charge_oprf_evaluation("alice")
    # The login's counter is untouched, and other accounts are unaffected.
    assert attempts.get("alice") is None
    svc.charge_oprf_evaluation("bob")


def test_a_successful_login_clears_the_evaluation_counter(service) -> None:
    svc, _, attempts, _ = service
    svc.register("alice", V2, 1)
    for _ in range(4):
        svc.charge_oprf_evaluation("alice")
    svc.login("alice", V2, oprf_key_version=1)
    stored = attempts.get("oprf:alice")
    assert stored is not None
    assert stored.attempts == 0


def test_migration_happens_once_and_only_to_the_current_version(service) -> None:
    svc, users, _, current = service
    svc.register("alice", V1)
    # A login claiming a version that is not the current one doesn't migrate.
    svc.login("alice", V3, oprf_key_version=7, legacy_login_keys={"0": V1})
    assert users.items["alice"].oprf_version == 0
    svc.login("alice", V2, oprf_key_version=1, legacy_login_keys={"0": V1})
    assert users.items["alice"].oprf_version == 1
    # Rotation: version 2 is current; the account moves on with its v1 key.
    current[0] = 2
    svc.login("alice", V3, oprf_key_version=2, legacy_login_keys={"1": V2, "0": V1})
    assert users.items["alice"].oprf_version == 2
    svc.login("alice", V3, oprf_key_version=2)


def test_a_password_change_can_not_downgrade_a_hardened_account(service) -> None:
    svc, users, _, _ = service
    svc.register("alice", V2, 1)
    with pytest.raises(InvalidOprfKeyVersion):
        svc.change_login_key("alice", V2, V3, None)
    svc.change_login_key("alice", V2, V3, 1)
    assert users.items["alice"].oprf_version == 1


def test_registration_and_changes_name_the_current_version_or_none(service) -> None:
    svc, users, _, _ = service
    with pytest.raises(InvalidOprfKeyVersion):
        svc.register("alice", V2, 2)
    svc.register("bob", V1, None)
    assert users.items["bob"].oprf_version == 0
