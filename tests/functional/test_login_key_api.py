"""PUT /v1/users/me/login-key: the server half of a password change."""

from __future__ import annotations

import boto3
import pytest

from chalicelib import wiring
from chalicelib.errors import LoginKeyConflict
from chalicelib.wire.b64 import b64url_encode
from client_sim.api import ApiClient
from client_sim.errors import ServerError
from tests.functional.conftest import STAGE_ENV
from tests.support.directory import make_user

NEW = b64url_encode(bytes(range(100, 132)))
NEWER = b64url_encode(bytes(range(150, 182)))
PATH = "/v1/users/me/login-key"


def stored_hash() -> str:
    item = boto3.client("dynamodb").get_item(
        TableName=STAGE_ENV["SEALBOX_USERS_TABLE"], Key={"identity": {"S": "alice"}}
    )["Item"]
    return str(item["login_hash"]["S"])


def assert_error(reply, status: int, code: str) -> None:
    assert reply.status == status, reply.body
    assert reply.json()["error"]["code"] == code


def test_change_signs_out_every_other_session(api: ApiClient) -> None:
    alice = make_user(api, "alice")
    other_device = api.login("alice", alice.keys.login_key_b64)
    session = api.change_login_key(alice.access_token, alice.keys.login_key_b64, NEW)
    assert session.identity == "alice"
    for revoked in (alice.refresh_token, other_device.refresh_token):
        with pytest.raises(ServerError) as refused:
            api.access_token(revoked)
        assert (refused.value.status, refused.value.code) == (401, "invalid_token")
    # The new session works; the old key no longer logs in, the new one does.
    api.me(api.access_token(session.refresh_token).access_token)
    with pytest.raises(ServerError) as old:
        api.login("alice", alice.keys.login_key_b64)
    assert old.value.code == "invalid_credentials"
    api.login("alice", NEW)
    # Access tokens are stateless: one issued before the change lives out its
    # (at most 20-minute) lifetime.  docs/security.md says so.
    assert api.me(alice.access_token)["identity"] == "alice"


def test_wrong_current_key_is_403_changes_nothing_and_is_throttled(api, raw) -> None:
    alice = make_user(api, "alice")
    before = stored_hash()
    wrong = b64url_encode(bytes(32))
    body = {"current_login_key": wrong, "new_login_key": NEW}
    for _ in range(5):
        assert_error(raw("PUT", PATH, body, token=alice.access_token), 403, "wrong_login_key")
    assert stored_hash() == before
    # Guessing here costs the same lockout as guessing at login.
    right = {"current_login_key": alice.keys.login_key_b64, "new_login_key": NEW}
    assert_error(raw("PUT", PATH, right, token=alice.access_token), 429, "too_many_attempts")
    assert stored_hash() == before


def test_a_retried_change_succeeds_without_changing_again(api: ApiClient) -> None:
    alice = make_user(api, "alice")
    first = api.change_login_key(alice.access_token, alice.keys.login_key_b64, NEW)
    after_first = stored_hash()
    second = api.change_login_key(alice.access_token, alice.keys.login_key_b64, NEW)
    assert stored_hash() == after_first
    # The retry did not bump the epoch: the first reply's session still works.
    api.access_token(first.refresh_token)
    api.access_token(second.refresh_token)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"current_login_key": "short", "new_login_key": NEW}, "invalid_login_key"),
        ({"current_login_key": NEW, "new_login_key": NEW + "="}, "invalid_login_key"),
        ({"new_login_key": NEW}, "invalid_request"),
        ({"current_login_key": NEW, "new_login_key": NEWER, "username": "bob"}, "invalid_request"),
    ],
)
def test_malformed_changes_are_400_and_change_nothing(api, raw, body, code) -> None:
    alice = make_user(api, "alice")
    before = stored_hash()
    assert_error(raw("PUT", PATH, body, token=alice.access_token), 400, code)
    assert stored_hash() == before


def test_needs_a_live_access_token(clock, api, raw) -> None:
    alice = make_user(api, "alice")
    body = {"current_login_key": alice.keys.login_key_b64, "new_login_key": NEW}
    for token in (None, "garbage", alice.refresh_token):
        assert_error(raw("PUT", PATH, body, token=token), 401, "invalid_token")
    clock.advance(900 + 120)
    assert_error(raw("PUT", PATH, body, token=alice.access_token), 401, "invalid_token")


def test_two_changes_from_one_verified_key_one_wins(api: ApiClient) -> None:
    """Both requests verify the same current key; the hash CAS lets only one through."""
    alice = make_user(api, "alice")
    accounts = wiring.container().accounts
    users = accounts._users
    original_get = users.get
    raced: list[bool] = []

    def get_then_race(identity: str):  # type: ignore[no-untyped-def]
        seen = original_get(identity)
        if not raced:
            raced.append(True)
            accounts.change_login_key("alice", alice.keys.login_key_b64, NEWER)
        return seen

    users.get = get_then_race  # type: ignore[method-assign]
    try:
        with pytest.raises(LoginKeyConflict):
            accounts.change_login_key("alice", alice.keys.login_key_b64, NEW)
    finally:
        users.get = original_get  # type: ignore[method-assign]
    api.login("alice", NEWER)
    with pytest.raises(ServerError):
        api.login("alice", NEW)
