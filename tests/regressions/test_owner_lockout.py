"""A stranger hammering a username can't lock its owner's known device out.

Issue 11 ("Credential lifetimes"): the per-account lockout -- five free
failures, then a doubling backoff up to an hour -- applied to everyone, so
anybody who knew a username could keep its owner from logging in for as
long as they kept guessing.  Now a device that has logged in before holds a
*device cookie* (OWASP "Blocking Brute Force Attacks", device cookies): a
random token bound to the username, stored on the device, of which the
server keeps only a hash.  A login presenting a valid cookie for that
username is throttled per cookie, not per account, so the stranger's
lockout doesn't touch it; guessing without a cookie stays throttled per
account, guessing with a stolen cookie is throttled per cookie, and unknown
usernames still look exactly like known ones.
"""

from __future__ import annotations

from pathlib import Path

from chalicelib.wire.b64 import b64url_encode
from client_sim.api import ApiClient
from client_sim.device import Device
from client_sim.passwords import PASSWORD_KDF_SIMULATION
from tests.support.device_flows import PASSWORD

KEY = b64url_encode(bytes(range(32)))
WRONG = b64url_encode(bytes(range(1, 33)))


def _hammer(raw, username: str, times: int = 8) -> None:  # type: ignore[no-untyped-def]
    for _ in range(times):
        reply = raw("POST", "/v1/sessions", {"username": username, "login_key": WRONG})
        assert reply.status in (401, 429)


def test_a_strangers_lockout_does_not_stop_the_owners_known_device(raw, api: ApiClient) -> None:
    api.register("alice", KEY)
    cookie = api.login("alice", KEY).device_cookie
    assert cookie is not None
    assert cookie.startswith("sbd_")
    _hammer(raw, "alice")
    # The stranger is locked out...
    stranger = raw("POST", "/v1/sessions", {"username": "alice", "login_key": KEY})
    assert stranger.status == 429
    assert stranger.json()["error"]["code"] == "too_many_attempts"
    # ...the owner's known device logs in with the right password...
    owner = raw(
        "POST", "/v1/sessions", {"username": "alice", "login_key": KEY, "device_cookie": cookie}
    )
    assert owner.status == 201, owner.body
    # ...and the stranger still gets 429 afterwards.
    again = raw("POST", "/v1/sessions", {"username": "alice", "login_key": KEY})
    assert again.status == 429


def test_guessing_with_a_stolen_cookie_is_throttled_per_cookie(raw, api: ApiClient) -> None:
    api.register("alice", KEY)
    cookie = api.login("alice", KEY).device_cookie
    body = {"username": "alice", "login_key": WRONG, "device_cookie": cookie}
    statuses = [raw("POST", "/v1/sessions", body).status for _ in range(8)]
    assert statuses[:5] == [401] * 5
    assert set(statuses[5:]) == {429}
    # The right key is refused too while that cookie is locked.
    right = {**body, "login_key": KEY}
    assert raw("POST", "/v1/sessions", right).status == 429


def test_a_cookie_is_bound_to_its_username(raw, api: ApiClient) -> None:
    api.register("alice", KEY)
    api.register("bob", KEY)
    alices = api.login("alice", KEY).device_cookie
    _hammer(raw, "bob")
    # Alice's cookie is no key to bob's account: bob's lockout applies.
    body = {"username": "bob", "login_key": KEY, "device_cookie": alices}
    assert raw("POST", "/v1/sessions", body).status == 429


def test_cookies_leave_no_enumeration_oracle(raw, api: ApiClient) -> None:
    api.register("alice", KEY)
    cookie = api.login("alice", KEY).device_cookie
    wrong = raw(
        "POST", "/v1/sessions", {"username": "alice", "login_key": WRONG, "device_cookie": cookie}
    )
    unknown = raw(
        "POST", "/v1/sessions", {"username": "nobody", "login_key": WRONG, "device_cookie": cookie}
    )
    assert (wrong.status, wrong.body) == (unknown.status, unknown.body)
    # A made-up cookie is just no cookie: the same 401 body.
    made_up = "sbd_" + "A" * 43
    forged = raw(
        "POST", "/v1/sessions", {"username": "alice", "login_key": WRONG, "device_cookie": made_up}
    )
    assert (forged.status, forged.body) == (wrong.status, wrong.body)


def test_the_device_sdk_keeps_its_cookie_and_logs_in_through_a_lockout(
    raw, transport, tmp_path: Path
) -> None:
    phone = Device(tmp_path / "phone", transport, kdf=PASSWORD_KDF_SIMULATION)
    phone.register("alice", PASSWORD)
    phone.logout()
    _hammer(raw, "alice")
    assert phone.login("alice", PASSWORD) == "alice"
    assert phone.find_users(["alice"])


def test_a_strangers_lockout_does_not_block_the_owners_step_up(raw, api: ApiClient) -> None:
    """The device cookie covered the login only: step-up and password changes
    were charged to the account's counter, so a stranger guessing at the
    login kept the owner from revoking a card or replacing a backup for up
    to an hour.  Calls made with an access token now have their own counter."""
    api.register("alice", KEY)
    session = api.login("alice", KEY)
    token = api.access_token(session.refresh_token).access_token
    _hammer(raw, "alice")
    stranger = raw("POST", "/v1/sessions", {"username": "alice", "login_key": KEY})
    assert stranger.status == 429
    proof = raw("POST", "/v1/step-up", {"login_key": KEY}, token=token)
    assert proof.status == 201, proof.body
    # A thief guessing with a stolen token is throttled on that counter.
    statuses = [
        raw("POST", "/v1/step-up", {"login_key": WRONG}, token=token).status for _ in range(8)
    ]
    assert statuses[:5] == [403] * 5
    assert statuses[-1] == 429
