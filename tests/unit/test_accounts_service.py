"""AccountService with in-memory stores: registration, login, lockout, sessions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.errors import (
    InvalidCredentials,
    InvalidLoginKey,
    InvalidRequest,
    InvalidUsername,
    LoginKeyConflict,
    RefreshTokenReused,
    StepUpRequired,
    TooManyAttempts,
    Unauthorized,
    UsernameTaken,
    WrongLoginKey,
)
from chalicelib.services.accounts import (
    DEVICE_COOKIE_TTL,
    REFRESH_RETRY_GRACE,
    AccountService,
    AttemptRecord,
    LockoutPolicy,
    LoginKeyHasher,
    refresh_token_digest,
)
from chalicelib.wire.b64 import b64url_encode
from tests.support.fakes import (
    FakeClock,
    MemoryAttempts,
    MemoryDevices,
    MemorySessions,
    MemoryStepUps,
    MemoryUsers,
)

KEY = b64url_encode(bytes(range(32)))
OTHER_KEY = b64url_encode(bytes(range(1, 33)))


class CountingHasher(LoginKeyHasher):
    def __init__(self) -> None:
        super().__init__(memory_kib=64, iterations=1, lanes=1)
        self.verifications = 0

    def verify(self, login_key: bytes, phc: str) -> bool:
        self.verifications += 1
        return super().verify(login_key, phc)

    def verify_dummy(self, login_key: bytes) -> bool:
        self.verifications += 1
        return super().verify_dummy(login_key)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def parts(clock: FakeClock):
    users, sessions, attempts, hasher = (
        MemoryUsers(),
        MemorySessions(),
        MemoryAttempts(),
        CountingHasher(),
    )
    service = AccountService(
        users,
        sessions,
        attempts,
        hasher,
        devices=MemoryDevices(),
        step_ups=MemoryStepUps(),
        refresh_ttl=3600,
        clock=clock,
        policy=LockoutPolicy(),
    )
    return service, users, sessions, attempts, hasher


def test_register_normalises_identity_and_stores_only_a_hash(parts) -> None:
    service, users, *_ = parts
    assert service.register("Alice", KEY) == "alice"
    stored = users.items["alice"]
    assert stored.login_hash.startswith("$argon2id$")
    assert KEY not in stored.login_hash
    assert "login_hash" not in repr(stored)


def test_register_twice_is_username_taken(parts) -> None:
    service, *_ = parts
    service.register("alice", KEY)
    with pytest.raises(UsernameTaken):
        service.register("ALICE", OTHER_KEY)


@pytest.mark.parametrize(
    "username", ["al", "a" * 65, "al/ice", "alıce", "al ice", "", None, 5, "alice\n", "ａ" * 70]
)
def test_register_rejects_bad_usernames(parts, username) -> None:
    service, users, *_ = parts
    with pytest.raises(InvalidUsername):
        service.register(username, KEY)
    assert users.items == {}


@pytest.mark.parametrize(
    "login_key",
    [
        "",
        b64url_encode(bytes(31)),
        b64url_encode(bytes(33)),
        b64url_encode(bytes(32)) + "=",
        "A" * 44,
        "not base64 at all!!",
        None,
        32,
        ["x"],
    ],
)
def test_register_rejects_bad_login_keys(parts, login_key) -> None:
    service, users, *_ = parts
    with pytest.raises(InvalidLoginKey):
        service.register("alice", login_key)
    assert users.items == {}


def test_login_issues_a_refresh_token_stored_only_as_digest(parts, clock) -> None:
    service, _, sessions, *_ = parts
    service.register("alice", KEY)
    issued = service.login("Alice", KEY)
    assert issued.identity == "alice"
    assert issued.refresh_token.startswith("sbr_")
    assert len(issued.refresh_token) == 47
    assert issued.expires_at == int(clock.now) + 3600
    assert list(sessions.items) == [refresh_token_digest(issued.refresh_token)]
    assert issued.refresh_token not in repr(issued)
    assert service.authenticate_refresh(issued.refresh_token).identity == "alice"


def test_unknown_user_and_wrong_key_fail_the_same_way_with_equal_work(parts) -> None:
    service, *_, hasher = parts
    service.register("alice", KEY)
    with pytest.raises(InvalidCredentials) as wrong_key:
        service.login("alice", OTHER_KEY)
    work_wrong = hasher.verifications
    with pytest.raises(InvalidCredentials) as unknown:
        service.login("mallory", KEY)
    assert hasher.verifications - work_wrong == work_wrong == 1
    assert (wrong_key.value.code, wrong_key.value.message, wrong_key.value.status) == (
        unknown.value.code,
        unknown.value.message,
        unknown.value.status,
    )


def test_lockout_backs_off_exponentially_and_refuses_even_the_right_key(parts, clock) -> None:
    service, *_, hasher = parts
    service.register("alice", KEY)
    policy = LockoutPolicy()
    for _ in range(policy.free_attempts - 1):
        with pytest.raises(InvalidCredentials):
            service.login("alice", OTHER_KEY)
    # The 5th failure starts the first backoff period.
    with pytest.raises(InvalidCredentials):
        service.login("alice", OTHER_KEY)
    verifications = hasher.verifications
    with pytest.raises(TooManyAttempts) as locked:
        service.login("alice", KEY)
    assert locked.value.retry_after == policy.base_delay
    assert locked.value.headers["Retry-After"] == str(policy.base_delay)
    # Refused before any Argon2id work: lockout is not a password oracle.
    assert hasher.verifications == verifications

    clock.advance(policy.base_delay)
    with pytest.raises(InvalidCredentials):
        service.login("alice", OTHER_KEY)
    with pytest.raises(TooManyAttempts) as doubled:
        service.login("alice", KEY)
    assert doubled.value.retry_after == 2 * policy.base_delay

    clock.advance(2 * policy.base_delay)
    assert service.login("alice", KEY).identity == "alice"
    # Success clears the count: five more free attempts.
    for _ in range(policy.free_attempts - 1):
        with pytest.raises(InvalidCredentials):
            service.login("alice", OTHER_KEY)


def test_unknown_accounts_lock_out_exactly_like_known_ones(parts) -> None:
    service, *_ = parts
    service.register("alice", KEY)
    outcomes: dict[str, list[str]] = {}
    for name in ("alice", "nobody"):
        seen = []
        for _ in range(7):
            try:
                service.login(name, OTHER_KEY)
            except (InvalidCredentials, TooManyAttempts) as exc:
                seen.append(f"{exc.code}:{exc.headers.get('Retry-After')}")
        outcomes[name] = seen
    assert outcomes["alice"] == outcomes["nobody"]


def test_backoff_is_capped(parts) -> None:
    policy = LockoutPolicy()
    assert policy.delay_after(policy.free_attempts - 1) == 0
    assert policy.delay_after(policy.free_attempts) == policy.base_delay
    assert policy.delay_after(1000) == policy.max_delay


def test_a_parallel_guess_that_loses_the_race_sees_the_lock(parts, clock) -> None:
    """Two attempts read the same attempt record; only one may charge it."""
    service, _, _, attempts, _ = parts
    service.register("alice", KEY)
    stale = AttemptRecord(attempts=4, locked_until=0, expires_at=int(clock.now) + 100)
    attempts.items["alice"] = stale
    # Another request charges the 5th attempt between our read and our write.
    real_get = attempts.get
    raced = False

    def racing_get(identity: str):
        nonlocal raced
        record = real_get(identity)
        if not raced:
            raced = True
            attempts.items[identity] = AttemptRecord(5, int(clock.now) + 30, stale.expires_at)
        return record

    attempts.get = racing_get  # type: ignore[method-assign]
    with pytest.raises(TooManyAttempts):
        service.login("alice", KEY)


def test_expired_attempt_records_are_ignored(parts, clock) -> None:
    """moto never deletes TTL items; the service checks expiry itself."""
    service, _, _, attempts, _ = parts
    service.register("alice", KEY)
    attempts.items["alice"] = AttemptRecord(50, int(clock.now) + 10_000, int(clock.now) - 1)
    assert service.login("alice", KEY).identity == "alice"


def test_logout_revokes_at_once(parts) -> None:
    service, *_ = parts
    service.register("alice", KEY)
    token = service.login("alice", KEY).refresh_token
    service.logout(token)
    with pytest.raises(Unauthorized):
        service.authenticate_refresh(token)
    with pytest.raises(Unauthorized):
        service.logout(token)


def test_expired_sessions_are_refused(parts, clock) -> None:
    service, *_ = parts
    service.register("alice", KEY)
    token = service.login("alice", KEY).refresh_token
    clock.advance(3600)
    with pytest.raises(Unauthorized):
        service.authenticate_refresh(token)


@pytest.mark.parametrize(
    "token",
    ["", "sbr_", "sbr_" + "A" * 42, "sbr_" + "A" * 44, "xyz_" + "A" * 43, "sbr_" + "*" * 43],
)
def test_malformed_refresh_tokens_are_refused_without_lookup(parts, token) -> None:
    service, _, sessions, *_ = parts
    sessions.get = None  # type: ignore[method-assign,assignment]  # must not be reached
    with pytest.raises(Unauthorized):
        service.authenticate_refresh(token)


def test_weak_stored_hashes_are_upgraded_on_login(parts) -> None:
    service, users, _sessions, _attempts, _ = parts
    weak = LoginKeyHasher(memory_kib=32, iterations=1, lanes=1)
    service.register("alice", KEY)
    from chalicelib.services.accounts import UserRecord
    from chalicelib.wire.b64 import b64url_decode

    users.items["alice"] = UserRecord("alice", weak.hash(b64url_decode(KEY)), 0)
    service.login("alice", KEY)
    assert "m=64," in users.items["alice"].login_hash


# --- login-key change ------------------------------------------------------------


def test_login_key_change_revokes_every_session_and_opens_one(parts) -> None:
    service, users, *_ = parts
    service.register("alice", KEY)
    phone, laptop = service.login("alice", KEY), service.login("alice", KEY)
    issued = service.change_login_key("alice", KEY, OTHER_KEY)
    assert users.items["alice"].session_epoch == 1
    for revoked in (phone, laptop):
        with pytest.raises(Unauthorized):
            service.authenticate_refresh(revoked.refresh_token)
    assert service.authenticate_refresh(issued.refresh_token).epoch == 1
    with pytest.raises(InvalidCredentials):
        service.login("alice", KEY)
    assert service.authenticate_refresh(service.login("alice", OTHER_KEY).refresh_token)


def test_login_key_change_with_a_wrong_key_changes_nothing(parts) -> None:
    service, users, sessions, *_ = parts
    service.register("alice", KEY)
    before = users.items["alice"]
    with pytest.raises(WrongLoginKey):
        service.change_login_key("alice", b64url_encode(bytes(32)), OTHER_KEY)
    assert users.items["alice"] == before
    assert sessions.items == {}


def test_login_key_change_for_a_missing_account_is_a_wrong_key(parts) -> None:
    service, _, _, _, hasher = parts
    with pytest.raises(WrongLoginKey):
        service.change_login_key("ghost", KEY, OTHER_KEY)
    assert hasher.verifications == 1  # the same work as a real account


def test_login_key_change_is_throttled_like_login(parts) -> None:
    service, *_ = parts
    service.register("alice", KEY)
    wrong = b64url_encode(bytes(32))
    for _ in range(5):
        with pytest.raises(WrongLoginKey):
            service.change_login_key("alice", wrong, OTHER_KEY)
    with pytest.raises(TooManyAttempts):
        service.change_login_key("alice", KEY, OTHER_KEY)


def test_login_key_change_retry_is_idempotent(parts) -> None:
    service, users, *_ = parts
    service.register("alice", KEY)
    service.change_login_key("alice", KEY, OTHER_KEY)
    after = users.items["alice"]
    again = service.change_login_key("alice", KEY, OTHER_KEY)
    assert users.items["alice"] == after
    assert service.authenticate_refresh(again.refresh_token).identity == "alice"


def test_login_key_change_needs_valid_keys(parts) -> None:
    service, *_ = parts
    service.register("alice", KEY)
    with pytest.raises(InvalidLoginKey):
        service.change_login_key("alice", KEY, "short")


def test_changing_to_the_same_key_signs_out_every_other_session(parts) -> None:
    service, *_ = parts
    service.register("alice", KEY)
    other_device = service.login("alice", KEY).refresh_token
    fresh = service.change_login_key("alice", KEY, KEY)
    with pytest.raises(Unauthorized):
        service.authenticate_refresh(other_device)
    assert service.authenticate_refresh(fresh.refresh_token).identity == "alice"
    assert service.login("alice", KEY).identity == "alice"


def test_concurrent_login_key_changes_one_wins(parts) -> None:
    service, users, *_ = parts
    service.register("alice", KEY)
    real_get = users.get
    third = b64url_encode(bytes(range(7, 39)))

    def get_then_race(identity: str):  # type: ignore[no-untyped-def]
        seen = real_get(identity)
        users.get = real_get  # type: ignore[method-assign]
        service.change_login_key("alice", KEY, third)
        return seen

    users.get = get_then_race  # type: ignore[method-assign]
    with pytest.raises(LoginKeyConflict):
        service.change_login_key("alice", KEY, OTHER_KEY)
    assert service.login("alice", third).identity == "alice"


# --- refresh token rotation -------------------------------------------------------


def test_rotation_spends_the_token_and_keeps_the_login_expiry(parts, clock) -> None:
    service, *_ = parts
    service.register("alice", KEY)
    first = service.login("alice", KEY)
    clock.advance(100)
    second = service.rotate_refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    # Renewing does not extend a login.
    assert second.expires_at == first.expires_at
    assert service.authenticate_refresh(second.refresh_token).identity == "alice"
    clock.advance(REFRESH_RETRY_GRACE)
    with pytest.raises(RefreshTokenReused):
        service.authenticate_refresh(first.refresh_token)


def test_a_lost_reply_may_be_retried_within_the_grace_and_only_one_token_lives(
    parts, clock
) -> None:
    service, *_ = parts
    service.register("alice", KEY)
    spent = service.login("alice", KEY).refresh_token
    lost = service.rotate_refresh(spent).refresh_token  # the reply never arrives
    clock.advance(REFRESH_RETRY_GRACE - 1)
    retried = service.rotate_refresh(spent).refresh_token  # the device retries
    # The successor nobody received is now the one before the family's:
    # accepted only inside the grace, and never alongside a later one.
    clock.advance(REFRESH_RETRY_GRACE)
    with pytest.raises(RefreshTokenReused):
        service.rotate_refresh(lost)
    with pytest.raises(RefreshTokenReused):
        service.rotate_refresh(retried)  # the family went with the reuse


def test_a_token_two_generations_old_is_a_reuse_even_within_the_grace(parts) -> None:
    service, *_ = parts
    service.register("alice", KEY)
    first = service.login("alice", KEY).refresh_token
    second = service.rotate_refresh(first).refresh_token
    service.rotate_refresh(second)
    with pytest.raises(RefreshTokenReused):
        service.rotate_refresh(first)


def test_a_renewal_that_loses_the_race_revokes_the_family(parts) -> None:
    """Both renewals read generation 0, then both write: one wins, the loser ends the family."""
    service, _, sessions, *_ = parts
    service.register("alice", KEY)
    token = service.login("alice", KEY).refresh_token
    won: list[str] = []
    real_family = sessions.family

    def family_then_race(family: str):  # type: ignore[no-untyped-def]
        record = real_family(family)
        if sessions.family is family_then_race:
            # The other renewal runs to completion between our read and write.
            sessions.family = real_family
            won.append(service.rotate_refresh(token).refresh_token)
        return record

    sessions.family = family_then_race
    with pytest.raises(RefreshTokenReused):
        service.rotate_refresh(token)
    # The winner's new token went with the family.
    with pytest.raises(RefreshTokenReused):
        service.authenticate_refresh(won[0])


def test_a_reuse_after_logout_is_still_refused(parts) -> None:
    service, *_ = parts
    service.register("alice", KEY)
    first = service.login("alice", KEY).refresh_token
    second = service.rotate_refresh(first).refresh_token
    service.logout(second)
    for token in (first, second):
        with pytest.raises(Unauthorized):
            service.rotate_refresh(token)


def test_a_session_from_before_rotation_is_refused(parts) -> None:
    service, _, sessions, *_ = parts
    service.register("alice", KEY)
    token = service.login("alice", KEY).refresh_token
    digest = refresh_token_digest(token)
    sessions.items[digest] = replace(sessions.items[digest], family="")
    with pytest.raises(Unauthorized):
        service.authenticate_refresh(token)


# --- device cookies (OWASP): a stranger's lockout doesn't lock the owner's device out --


def _lock_out(service, identity: str = "alice") -> None:  # type: ignore[no-untyped-def]
    for _ in range(6):
        with pytest.raises((InvalidCredentials, TooManyAttempts)):
            service.login(identity, OTHER_KEY)


def test_a_known_device_logs_in_through_a_strangers_lockout(parts) -> None:
    service, *_ = parts
    service.register("alice", KEY)
    cookie = service.login("alice", KEY).device_cookie
    _lock_out(service)
    with pytest.raises(TooManyAttempts):
        service.login("alice", KEY)
    issued = service.login("alice", KEY, cookie)
    assert issued.identity == "alice"
    # One live cookie per device: the presented one is spent, a new one issued.
    assert issued.device_cookie not in (None, cookie)
    with pytest.raises(TooManyAttempts):
        service.login("alice", KEY, cookie)  # now a stranger's request
    # The account's lockout stands for strangers.
    with pytest.raises(TooManyAttempts):
        service.login("alice", KEY)


def test_a_cookie_counts_its_own_failures(parts) -> None:
    service, *_ = parts
    service.register("alice", KEY)
    cookie = service.login("alice", KEY).device_cookie
    for _ in range(5):
        with pytest.raises(InvalidCredentials):
            service.login("alice", OTHER_KEY, cookie)
    with pytest.raises(TooManyAttempts):
        service.login("alice", KEY, cookie)
    # The cookie's failures did not lock strangers' (or other devices') path.
    assert service.login("alice", KEY).identity == "alice"


def test_an_expired_or_foreign_cookie_is_no_cookie(parts, clock) -> None:
    service, *_ = parts
    service.register("alice", KEY)
    service.register("bob", KEY)
    alices = service.login("alice", KEY).device_cookie
    _lock_out(service, "bob")
    with pytest.raises(TooManyAttempts):
        service.login("bob", KEY, alices)
    clock.advance(DEVICE_COOKIE_TTL)
    _lock_out(service, "alice")
    with pytest.raises(TooManyAttempts):
        service.login("alice", KEY, alices)


def test_a_cookie_costs_unknown_users_the_same_work(parts) -> None:
    service, _, _, _, hasher = parts
    service.register("alice", KEY)
    cookie = service.login("alice", KEY).device_cookie
    before = hasher.verifications
    with pytest.raises(InvalidCredentials):
        service.login("alice", OTHER_KEY, cookie)
    with pytest.raises(InvalidCredentials):
        service.login("nobody", OTHER_KEY, cookie)
    assert hasher.verifications - before == 2


@pytest.mark.parametrize("cookie", ["", "sbr_" + "A" * 43, "sbd_" + "A" * 42, 42, ["x"]])
def test_malformed_device_cookies_are_refused(parts, cookie) -> None:
    service, *_ = parts
    service.register("alice", KEY)
    with pytest.raises(InvalidRequest):
        service.login("alice", KEY, cookie)


# --- step-up proofs --------------------------------------------------------------------


def test_a_step_up_proof_is_single_use_short_lived_and_bound(parts, clock) -> None:
    service, *_ = parts
    service.register("alice", KEY)
    service.register("bob", KEY)
    proof, ttl = service.step_up("alice", KEY)
    assert proof.startswith("sbs_")
    with pytest.raises(StepUpRequired):
        service.consume_step_up("bob", proof)  # another identity's
    service.consume_step_up("alice", proof)
    with pytest.raises(StepUpRequired):
        service.consume_step_up("alice", proof)  # spent
    late, _ = service.step_up("alice", KEY)
    clock.advance(ttl)
    with pytest.raises(StepUpRequired):
        service.consume_step_up("alice", late)  # expired


@pytest.mark.parametrize("proof", [None, "", "sbs_" + "A" * 42, "sbr_" + "A" * 43, 7])
def test_malformed_step_up_proofs_are_refused(parts, proof) -> None:
    service, *_ = parts
    with pytest.raises(StepUpRequired):
        service.consume_step_up("alice", proof)


def test_step_up_checks_the_login_key_and_is_throttled_like_login(parts) -> None:
    service, *_ = parts
    service.register("alice", KEY)
    for _ in range(5):
        with pytest.raises(WrongLoginKey):
            service.step_up("alice", OTHER_KEY)
    with pytest.raises(TooManyAttempts):
        service.step_up("alice", KEY)
