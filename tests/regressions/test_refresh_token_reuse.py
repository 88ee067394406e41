"""Refresh tokens rotate on every use; presenting a spent one revokes the whole family.

Issue 11 ("Credential lifetimes"): a refresh token used to stay valid for its
whole lifetime however often it was used, so a copy taken off a device (a
backup, a log, malware) gave the thief a session for weeks with nothing to
notice.  Now every renewal hands out a new refresh token and spends the old
one; whoever presents a spent token -- the thief after the victim renewed,
or the victim after the thief did -- ends the session family for both
(OAuth 2.1 §4.3.1, "refresh token rotation" with reuse detection).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from chalicelib import wiring
from chalicelib.errors import RefreshTokenReused
from chalicelib.services.accounts import (
    REFRESH_RETRY_DEPTH,
    REFRESH_RETRY_GRACE,
    Revoked,
    refresh_token_digest,
)
from chalicelib.storage.dynamo import DynamoSessionStore
from chalicelib.wire.b64 import b64url_encode
from client_sim.api import ApiClient
from client_sim.device import Device
from client_sim.errors import NotLoggedIn, ServerError
from client_sim.passwords import PASSWORD_KDF_SIMULATION
from client_sim.store import REFRESH_TOKEN, DeviceStore
from tests.support.device_flows import PASSWORD
from tests.support.directory import atomic_moto_dynamodb
from tests.support.fakes import FakeClock

KEY = b64url_encode(bytes(range(32)))


def _login(api: ApiClient, name: str = "alice") -> str:
    api.register(name, KEY)
    return api.login(name, KEY).refresh_token


def _refused(api: ApiClient, token: str) -> tuple[int, str]:
    with pytest.raises(ServerError) as refused:
        api.access_token(token)
    return refused.value.status, refused.value.code


def test_renewal_hands_out_a_new_refresh_token_and_spends_the_old_one(raw, api) -> None:
    first = _login(api)
    reply = raw("POST", "/v1/tokens", token=first)
    assert reply.status == 200
    body = reply.json()
    second = body["refresh_token"]
    assert second != first
    assert second.startswith("sbr_")
    assert body["refresh_token_expires_at"] > 0
    # The new token works (once), the old one is spent.
    assert raw("POST", "/v1/tokens", token=second).status == 200


def test_stolen_and_used_refresh_token_revokes_the_family_for_thief_and_victim(clock, api) -> None:
    victim = _login(api)
    # The thief copies the victim's token and renews first.
    stolen = api.access_token(victim)
    assert stolen.refresh_token != victim
    # The victim's next renewal (minutes later: access tokens last 15) presents
    # the spent token: reuse detected.
    clock.advance(REFRESH_RETRY_GRACE)
    assert _refused(api, victim) == (401, "refresh_token_reused")
    # ...and the thief's rotated token is dead with the rest of the family.
    assert _refused(api, stolen.refresh_token) == (401, "refresh_token_reused")
    # Logging out with any of them does not bring anything back.
    with pytest.raises(ServerError):
        api.logout(stolen.refresh_token)


def test_thief_replaying_a_token_the_victim_already_renewed_ends_both(clock, api) -> None:
    old = _login(api)
    renewed = api.access_token(old).refresh_token
    clock.advance(REFRESH_RETRY_GRACE)
    # The thief replays the old (copied) token: it is spent.
    assert _refused(api, old) == (401, "refresh_token_reused")
    # The victim's current token went with the family; the victim logs in again.
    assert _refused(api, renewed) == (401, "refresh_token_reused")
    fresh = api.login("alice", KEY).refresh_token
    assert api.access_token(fresh).access_token


def test_reuse_revokes_only_that_family_not_the_other_devices(clock, api) -> None:
    phone = _login(api)
    laptop = api.login("alice", KEY).refresh_token
    api.access_token(phone)
    clock.advance(REFRESH_RETRY_GRACE)
    assert _refused(api, phone) == (401, "refresh_token_reused")
    # The laptop's session is another family: untouched.
    assert api.access_token(laptop).refresh_token


def test_concurrent_renewals_with_one_token_never_yield_two_live_sessions(api) -> None:
    token = _login(api)
    accounts = wiring.container().accounts
    attempts = 6
    barrier = threading.Barrier(attempts)
    winners: list[str] = []
    losers: list[str] = []

    def renew() -> None:
        barrier.wait()
        try:
            winners.append(accounts.rotate_refresh(token).refresh_token)
        except RefreshTokenReused as exc:
            losers.append(exc.code)

    with atomic_moto_dynamodb():
        threads = [threading.Thread(target=renew) for _ in range(attempts)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    # Renewals that read the family before another one committed lose the
    # conditional write and end the family; one that comes after a commit,
    # inside the grace, is taken for a retry and supersedes that commit's
    # token.  Either way the family never has two live tokens.
    assert len(winners) + len(losers) == attempts
    assert len(_live(token, *winners)) <= 1
    if losers:
        assert _live(token, *winners) == []


def _live(*tokens: str) -> list[str]:
    """The tokens the store holds as live (read-only: nothing is presented)."""
    store = DynamoSessionStore(
        wiring.container().dynamodb, wiring.container().settings.sessions_table
    )
    live = []
    for token in tokens:
        session = store.get(refresh_token_digest(token))
        assert session is not None
        family = store.family(session.family)
        assert family is not None
        if family.revoked is Revoked.NO and family.generation == session.generation:
            live.append(token)
    return live


def test_a_lost_reply_is_retried_within_the_grace_and_leaves_one_live_token(clock, api) -> None:
    spent = _login(api)
    lost = api.access_token(spent).refresh_token  # the reply never reaches the device
    clock.advance(REFRESH_RETRY_GRACE - 1)
    retried = api.access_token(spent).refresh_token  # the device retries with what it has
    assert _live(spent, lost, retried) == [retried]
    assert api.access_token(retried).refresh_token


def test_lost_replies_are_retried_only_to_a_bounded_depth(clock, api) -> None:
    """The 200-phone fleet's bad network lost two renewal replies in a row;
    the second retry presented a token two generations back and the phone
    was logged out."""
    spent = _login(api)
    # The renewal and REFRESH_RETRY_DEPTH retries, every reply lost, each
    # within the grace of the one before: all renew.
    for _ in range(REFRESH_RETRY_DEPTH + 1):
        assert api.access_token(spent).refresh_token
        clock.advance(REFRESH_RETRY_GRACE - 1)
    # One more is beyond the depth: a reuse, and the family is gone.
    assert _refused(api, spent) == (401, "refresh_token_reused")


def test_two_lost_replies_then_the_retry_gets_through(clock, api) -> None:
    spent = _login(api)
    first_lost = api.access_token(spent).refresh_token
    clock.advance(10)
    second_lost = api.access_token(spent).refresh_token
    clock.advance(10)
    retried = api.access_token(spent).refresh_token
    assert _live(spent, first_lost, second_lost, retried) == [retried]
    assert api.access_token(retried).refresh_token


def test_logout_ends_the_family_so_a_rotated_token_is_dead_too(api) -> None:
    first = _login(api)
    second = api.access_token(first).refresh_token
    api.logout(second)
    assert _refused(api, second)[0] == 401
    assert _refused(api, first)[0] == 401


# --- the device SDK -------------------------------------------------------------------


def _phone(transport, home: Path, clock: FakeClock) -> Device:  # type: ignore[no-untyped-def]
    return Device(home, transport, kdf=PASSWORD_KDF_SIMULATION, clock=clock)


def _stored_refresh(home: Path) -> str:
    return DeviceStore(home).require_session().settings[REFRESH_TOKEN]


def test_the_device_keeps_the_rotated_token_across_renewals_and_restarts(
    clock, transport, tmp_path
) -> None:
    device_clock = FakeClock(clock.now)
    phone = _phone(transport, tmp_path / "phone", device_clock)
    phone.register("alice", PASSWORD)
    seen = {_stored_refresh(tmp_path / "phone")}
    for _ in range(3):
        # Each access token lives 900 s: every round renews and rotates.
        device_clock.advance(900)
        clock.advance(900)
        phone.find_users(["alice"], refresh=True)
        seen.add(_stored_refresh(tmp_path / "phone"))
    assert len(seen) == 4
    # A restarted app (a new Device on the same home) carries on.
    again = _phone(transport, tmp_path / "phone", device_clock)
    device_clock.advance(900)
    clock.advance(900)
    assert again.find_users(["alice"], refresh=True)


def test_a_state_loaded_before_a_renewal_does_not_bring_back_the_spent_token(
    clock, transport, tmp_path
) -> None:
    device_clock = FakeClock(clock.now)
    home = tmp_path / "phone"
    phone = _phone(transport, home, device_clock)
    phone.register("alice", PASSWORD)
    store = DeviceStore(home)
    before = store.require_session()
    device_clock.advance(900)
    clock.advance(900)
    phone.find_users(["alice"], refresh=True)  # renews: the token in ``before`` is spent
    store.save(before.with_settings(note="x"))  # another part of the SDK saves its old copy
    assert _stored_refresh(home) != before.settings[REFRESH_TOKEN]
    device_clock.advance(900)
    clock.advance(900)
    assert phone.find_users(["alice"], refresh=True)


def test_a_device_that_dies_before_storing_the_rotated_token_must_log_in_again(
    clock, transport, tmp_path, api
) -> None:
    device_clock = FakeClock(clock.now)
    home = tmp_path / "phone"
    phone = _phone(transport, home, device_clock)
    phone.register("alice", PASSWORD)
    spent = _stored_refresh(home)
    # The renewal's answer is lost (the app died before its keystore write):
    # the server rotated, the device still holds ``spent``.
    lost = api.access_token(spent).refresh_token
    device_clock.advance(900)
    clock.advance(900)
    with pytest.raises(NotLoggedIn, match="refresh_token_reused"):
        phone.find_users(["alice"], refresh=True)
    assert not phone.whoami().logged_in
    # Whoever caught the lost answer can't use it either.
    assert _refused(api, lost) == (401, "refresh_token_reused")
    phone.login("alice", PASSWORD)
    assert phone.find_users(["alice"], refresh=True)


def test_the_victims_device_fails_safely_after_a_thief_renews(
    clock, transport, tmp_path, api
) -> None:
    device_clock = FakeClock(clock.now)
    home = tmp_path / "phone"
    phone = _phone(transport, home, device_clock)
    phone.register("alice", PASSWORD)
    thief = api.access_token(_stored_refresh(home))  # copied off the device, used first
    device_clock.advance(900)
    clock.advance(900)
    with pytest.raises(NotLoggedIn):
        phone.find_users(["alice"], refresh=True)
    assert _refused(api, thief.refresh_token) == (401, "refresh_token_reused")
