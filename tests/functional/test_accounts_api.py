"""/v1/users and /v1/sessions through chalice.test.Client on moto."""

from __future__ import annotations

import boto3
import pytest

from chalicelib.wire.b64 import b64url_encode
from client_sim.api import ApiClient
from client_sim.errors import ServerError
from client_sim.passwords import PASSWORD_KDF_SIMULATION, derive_password_keys

KEY = b64url_encode(bytes(range(32)))
OTHER = b64url_encode(bytes(range(1, 33)))


def table_items(name: str) -> list[dict]:
    return boto3.client("dynamodb").scan(TableName=f"sealbox-test-{name}")["Items"]


def assert_error(reply, status: int, code: str) -> None:
    assert reply.status == status, reply.body
    body = reply.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert reply.headers["content-type"] == "application/json"


def test_register_login_logout_round_trip(api: ApiClient) -> None:
    keys = derive_password_keys("Alice", "correct horse battery staple", PASSWORD_KDF_SIMULATION)
    assert api.register("Alice", keys.login_key_b64) == "alice"
    session = api.login("ALICE", keys.login_key_b64)
    assert session.identity == "alice"
    api.logout(session.refresh_token)
    with pytest.raises(ServerError) as again:
        api.logout(session.refresh_token)
    assert (again.value.status, again.value.code) == (401, "invalid_token")


def test_login_reply_is_not_cacheable_and_tokens_are_only_stored_hashed(raw) -> None:
    assert raw("POST", "/v1/users", {"username": "alice", "login_key": KEY}).status == 201
    reply = raw("POST", "/v1/sessions", {"username": "alice", "login_key": KEY})
    assert reply.status == 201
    assert reply.headers["cache-control"] == "no-store"
    token = reply.json()["refresh_token"]
    cookie = reply.json()["device_cookie"]
    dumped = (
        repr(table_items("sessions"))
        + repr(table_items("users"))
        + repr(table_items("login-attempts"))
    )
    for credential in (token, cookie):
        assert credential not in dumped
        assert credential[4:] not in dumped
    assert KEY not in dumped


def test_duplicate_registration_is_409_and_changes_nothing(raw) -> None:
    assert raw("POST", "/v1/users", {"username": "alice", "login_key": KEY}).status == 201
    before = table_items("users")
    assert_error(
        raw("POST", "/v1/users", {"username": "Alice", "login_key": OTHER}), 409, "username_taken"
    )
    assert table_items("users") == before


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"username": "al", "login_key": KEY}, 400, "invalid_username"),
        ({"username": "../etc", "login_key": KEY}, 400, "invalid_username"),
        ({"username": "-rf", "login_key": KEY}, 400, "invalid_username"),
        ({"username": ".hidden", "login_key": KEY}, 400, "invalid_username"),
        ({"username": "alıce", "login_key": KEY}, 400, "invalid_username"),
        ({"username": 7, "login_key": KEY}, 400, "invalid_username"),
        ({"username": "alice", "login_key": "short"}, 400, "invalid_login_key"),
        ({"username": "alice", "login_key": KEY + "="}, 400, "invalid_login_key"),
        ({"username": "alice"}, 400, "invalid_request"),
        ({"username": "alice", "login_key": KEY, "password": "x"}, 400, "invalid_request"),
        ([1, 2], 400, "invalid_request"),
        (b"{not json", 400, "invalid_request"),
        (b"\xff\xfe", 400, "invalid_encoding"),
        ("{}".encode("utf-16"), 400, "invalid_encoding"),
        (b"{\x00}\x00", 400, "invalid_request"),
        (b"[" * 5000 + b"]" * 5000, 413, "payload_too_large"),
        (b"[" * 3000 + b"]" * 3000, 400, "invalid_request"),
        (b'{"username": NaN, "login_key": 1}', 400, "invalid_request"),
        (b'{"username": "alice", "username": "bob", "login_key": 1}', 400, "invalid_request"),
        ({"username": "alice", "login_key": "A" * 9000}, 413, "payload_too_large"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/users", "/v1/sessions"])
def test_bad_input_is_a_clear_error_and_stores_nothing(raw, path, body, status, code) -> None:
    assert_error(raw("POST", path, body), status, code)
    assert table_items("users") == []
    assert table_items("sessions") == []
    assert table_items("login-attempts") == []


def test_wrong_content_type_and_method_get_the_sealbox_error_shape(raw) -> None:
    reply = raw(
        "POST",
        "/v1/users",
        b"username=alice",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(reply, 415, "unsupported_media_type")
    assert_error(raw("GET", "/v1/users"), 405, "method_not_allowed")


def test_unknown_user_and_wrong_key_get_identical_replies(raw) -> None:
    raw("POST", "/v1/users", {"username": "alice", "login_key": KEY})
    wrong = raw("POST", "/v1/sessions", {"username": "alice", "login_key": OTHER})
    unknown = raw("POST", "/v1/sessions", {"username": "mallory", "login_key": OTHER})
    assert_error(wrong, 401, "invalid_credentials")
    assert (wrong.status, wrong.body) == (unknown.status, unknown.body)


def test_lockout_answers_429_with_retry_after_even_for_the_right_key(raw) -> None:
    raw("POST", "/v1/users", {"username": "alice", "login_key": KEY})
    for _ in range(5):
        assert_error(
            raw("POST", "/v1/sessions", {"username": "alice", "login_key": OTHER}),
            401,
            "invalid_credentials",
        )
    reply = raw("POST", "/v1/sessions", {"username": "alice", "login_key": KEY})
    assert_error(reply, 429, "too_many_attempts")
    assert 1 <= int(reply.headers["retry-after"]) <= 30


def test_refresh_token_routes_refuse_missing_and_malformed_credentials(raw) -> None:
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer sbr_x y"},
    ):
        reply = raw("DELETE", "/v1/sessions/current", headers=headers)
        assert_error(reply, 401, "invalid_token")
        assert reply.headers["www-authenticate"].startswith("Bearer")


def test_null_is_not_a_way_to_leave_a_field_out(raw) -> None:
    assert_error(
        raw("POST", "/v1/users", {"username": None, "login_key": KEY}), 400, "invalid_request"
    )
    assert_error(
        raw("POST", "/v1/sessions", {"username": "alice", "login_key": None}),
        400,
        "invalid_request",
    )
