"""/v1/oprf and the login-key migration through chalice.test.Client on moto."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest

from chalicelib.storage.appkeys import STAGE_CURRENT
from chalicelib.storage.dynamo import DynamoUserStore
from chalicelib.storage.oprfkeys import (
    OprfRotationRefused,
    SecretsManagerOprfKeyRing,
    rotate_oprf_key,
)
from chalicelib.wire import oprf
from chalicelib.wire.b64 import b64url_encode
from chalicelib.wire.oprf_keys import (
    OprfAnswerError,
    OprfEvaluation,
    OprfRoots,
    open_evaluation,
    parse_oprf_secret,
)
from tests.functional.conftest import STAGE_ENV
from tests.functional.test_accounts_api import assert_error

SECRET_ID = STAGE_ENV["SEALBOX_OPRF_KEY_SECRET_ID"]
KEY = b64url_encode(bytes(range(32)))
OTHER = b64url_encode(bytes(range(1, 33)))


def roots() -> OprfRoots:
    sm = boto3.client("secretsmanager")
    key = parse_oprf_secret(
        sm.get_secret_value(SecretId=SECRET_ID, VersionStage=STAGE_CURRENT)["SecretString"]
    )
    return OprfRoots({key.version: key.root_public})


def evaluate(raw: Any, username: str, private_input: bytes = b"input") -> tuple[int, bytes]:
    blind, blinded = oprf.blind(private_input, oprf.MODE_VOPRF)
    reply = raw(
        "POST", "/v1/oprf", {"username": username, "blinded_element": b64url_encode(blinded)}
    )
    assert reply.status == 200, reply.body
    [answer] = reply.json()["evaluations"]
    evaluation = OprfEvaluation.from_json(answer)
    return evaluation.key_version, open_evaluation(
        roots(), username, private_input, blind, blinded, evaluation
    )


def test_evaluation_verifies_against_the_pinned_root_and_is_deterministic(raw) -> None:
    version, first = evaluate(raw, "alice")
    assert version == 1
    assert evaluate(raw, "alice")[1] == first  # a PRF: same input, same output
    assert evaluate(raw, "bob")[1] != first  # per-account keys


def test_unknown_usernames_get_the_same_kind_of_answer(raw) -> None:
    assert raw("POST", "/v1/users", {"username": "alice", "login_key": KEY}).status == 201
    # Nothing distinguishes a registered name from an unknown one.
    assert evaluate(raw, "alice")[0] == evaluate(raw, "nobody-here")[0] == 1


def test_an_answer_for_another_account_does_not_verify(raw) -> None:
    blind, blinded = oprf.blind(b"input", oprf.MODE_VOPRF)
    reply = raw(
        "POST", "/v1/oprf", {"username": "mallory", "blinded_element": b64url_encode(blinded)}
    )
    evaluation = OprfEvaluation.from_json(reply.json()["evaluations"][0])
    # Certified for mallory: a device logging in as alice must refuse it.
    with pytest.raises(OprfAnswerError):
        open_evaluation(roots(), "alice", b"input", blind, blinded, evaluation)


@pytest.mark.parametrize(
    "element",
    [b64url_encode(bytes(32)), b64url_encode(b"\xff" * 32), "not base64!", 7, ""],
    ids=["identity", "non-canonical", "bad-b64", "number", "empty"],
)
def test_invalid_blinded_elements_are_refused_and_not_charged(raw, element) -> None:
    reply = raw("POST", "/v1/oprf", {"username": "alice", "blinded_element": element})
    assert_error(reply, 400, "invalid_blinded_element")
    items = boto3.client("dynamodb").scan(TableName="sealbox-test-login-attempts")["Items"]
    assert items == []


def test_evaluations_are_charged_and_throttled_per_account(raw) -> None:
    _, blinded = oprf.blind(b"input", oprf.MODE_VOPRF)
    body = {"username": "alice", "blinded_element": b64url_encode(blinded)}
    statuses = [raw("POST", "/v1/oprf", body).status for _ in range(7)]
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[5:]
    limited = raw("POST", "/v1/oprf", body)
    assert_error(limited, 429, "too_many_attempts")
    assert int(limited.headers["retry-after"]) > 0
    # Another account is not affected; alice's login counter is not either.
    assert raw("POST", "/v1/oprf", {**body, "username": "bob"}).status == 200


def test_a_successful_login_clears_the_evaluation_counter(raw) -> None:
    assert raw("POST", "/v1/users", {"username": "alice", "login_key": KEY}).status == 201
    _, blinded = oprf.blind(b"input", oprf.MODE_VOPRF)
    body = {"username": "alice", "blinded_element": b64url_encode(blinded)}
    for _ in range(4):
        assert raw("POST", "/v1/oprf", body).status == 200
    assert raw("POST", "/v1/sessions", {"username": "alice", "login_key": KEY}).status == 201
    for _ in range(4):
        assert raw("POST", "/v1/oprf", body).status == 200


def test_login_migrates_a_pre_oprf_account_and_the_old_key_stops_working(raw) -> None:
    assert raw("POST", "/v1/users", {"username": "alice", "login_key": KEY}).status == 201
    users = DynamoUserStore(boto3.client("dynamodb"), "sealbox-test-users")
    assert _version(users) == 0
    migrate = {
        "username": "alice",
        "login_key": OTHER,
        "oprf_key_version": 1,
        "legacy_login_keys": {"0": KEY},
    }
    assert raw("POST", "/v1/sessions", migrate).status == 201
    assert _version(users) == 1
    # Only the new derivation logs in now.
    assert_error(
        raw("POST", "/v1/sessions", {"username": "alice", "login_key": KEY}),
        401,
        "invalid_credentials",
    )
    assert raw("POST", "/v1/sessions", {**migrate, "legacy_login_keys": {}}).status == 201


def test_a_wrong_legacy_key_neither_logs_in_nor_migrates(raw) -> None:
    assert raw("POST", "/v1/users", {"username": "alice", "login_key": KEY}).status == 201
    wrong = b64url_encode(bytes(32))
    reply = raw(
        "POST",
        "/v1/sessions",
        {
            "username": "alice",
            "login_key": OTHER,
            "oprf_key_version": 1,
            "legacy_login_keys": {"0": wrong},
        },
    )
    assert_error(reply, 401, "invalid_credentials")
    users = DynamoUserStore(boto3.client("dynamodb"), "sealbox-test-users")
    assert _version(users) == 0


@pytest.mark.parametrize(
    "extra",
    [
        {"oprf_key_version": 2},
        {"oprf_key_version": "1"},
        {"oprf_key_version": 0},
    ],
)
def test_registration_must_name_the_current_oprf_version(raw, extra) -> None:
    reply = raw("POST", "/v1/users", {"username": "alice", "login_key": KEY, **extra})
    assert_error(reply, 400, "invalid_oprf_key_version")


@pytest.mark.parametrize(
    "legacy",
    [{"00": KEY}, {"x": KEY}, {"0": KEY, "1": KEY, "2": KEY}, [KEY], {"0": "short"}],
)
def test_malformed_legacy_keys_are_refused(raw, legacy) -> None:
    body = {
        "username": "alice",
        "login_key": KEY,
        "oprf_key_version": 1,
        "legacy_login_keys": legacy,
    }
    reply = raw("POST", "/v1/sessions", body)
    assert reply.status == 400
    assert reply.json()["error"]["code"] in {"invalid_oprf_key_version", "invalid_login_key"}


def test_rotation_evaluates_under_both_keys_then_refuses_to_drop_one_still_in_use(raw) -> None:
    sm = boto3.client("secretsmanager")
    assert (
        raw(
            "POST", "/v1/users", {"username": "alice", "login_key": KEY, "oprf_key_version": 1}
        ).status
        == 201
    )
    users = DynamoUserStore(boto3.client("dynamodb"), "sealbox-test-users")
    new = rotate_oprf_key(
        sm, SECRET_ID, time.time(), accounts_on_version=users.count_on_oprf_version
    )
    assert new.version == 2
    keys = SecretsManagerOprfKeyRing(sm, SECRET_ID, cache_ttl=0).keys()
    assert (keys.current.version, keys.previous and keys.previous.version) == (2, 1)
    # Alice is still on version 1: a second rotation would drop it.
    with pytest.raises(OprfRotationRefused):
        rotate_oprf_key(sm, SECRET_ID, time.time(), accounts_on_version=users.count_on_oprf_version)


def _version(users: DynamoUserStore) -> int:
    record = users.get("alice")
    assert record is not None
    return record.oprf_version
