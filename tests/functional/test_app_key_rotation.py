"""Rotation of the app key on moto, by calling the handler's four steps.

(moto's RotateSecret can't run the Lambda: see tests.support.aws.begin_rotation.)
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.errors import Unauthorized
from chalicelib.rotation import ROTATION_STEPS, RotationError, handle_rotation_event
from chalicelib.services.tokens import TokenService
from chalicelib.storage.appkeys import SecretsManagerKeyRing, ensure_app_key
from chalicelib.wire.appkey import (
    encode_app_key_secret,
    new_app_key_secret,
    parse_app_key_secret,
    parse_app_key_secret_with_rotation,
)
from tests.support.aws import (
    SECRET_ID,
    begin_rotation,
    inject_outage,
    moto_aws,
    read_stage,
    retirements,
    secretsmanager_client,
    stages,
)
from tests.support.tokens import AUDIENCE, ISSUER, T0, FakeClock

CACHE_TTL = 300


@pytest.fixture
def sm(monkeypatch):
    with moto_aws(monkeypatch):
        client = secretsmanager_client()
        ensure_app_key(client, SECRET_ID, T0)
        yield client


def event(token: str, step: str, secret_id: str = SECRET_ID) -> dict[str, Any]:
    return {"SecretId": secret_id, "ClientRequestToken": token, "Step": step}


def rotate(client: Any) -> str:
    token = begin_rotation(client)
    for step in ROTATION_STEPS:
        handle_rotation_event(event(token, step), client)
    return token


def current_version(client: Any) -> str:
    return next(v for v, labels in stages(client).items() if "AWSCURRENT" in labels)


class Container:
    """One warm Lambda container: its own ring, clocks and token service."""

    def __init__(self, client: Any) -> None:
        self.clock = FakeClock(0)
        self.wall = FakeClock()
        self.ring = SecretsManagerKeyRing(client, SECRET_ID, cache_ttl=CACHE_TTL, clock=self.clock)
        self.tokens = TokenService(
            self.ring, issuer=ISSUER, audience=AUDIENCE, ttl=900, clock=self.wall
        )

    def kid_of(self, token: str) -> str:
        return self.tokens.verify(token).kid


def test_full_rotation(sm):
    old_version = current_version(sm)
    old_kid = parse_app_key_secret(read_stage(sm, "AWSCURRENT")).kid
    warm = Container(sm)
    before = warm.tokens.issue("alice").access_token

    token = rotate(sm)

    # Stages: new version current, old version previous, nothing pending.
    assert stages(sm) == {old_version: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    new_kid = parse_app_key_secret(read_stage(sm, "AWSCURRENT")).kid
    assert new_kid != old_kid
    assert parse_app_key_secret(read_stage(sm, "AWSPREVIOUS")).kid == old_kid

    # A container started after the rotation signs with the new key and
    # accepts tokens from before it.
    cold = Container(sm)
    after = cold.tokens.issue("bob").access_token
    assert cold.kid_of(after) == new_kid
    assert cold.kid_of(before) == old_kid
    assert [k["kid"] for k in cold.tokens.jwks()["keys"]] == [new_kid, old_kid]

    # The warm container still signs with its cached key until its TTL, and
    # learns the new key as soon as a token names it (unknown-kid refresh).
    assert warm.kid_of(warm.tokens.issue("alice").access_token) == old_kid
    assert warm.kid_of(after) == new_kid
    assert warm.ring.stats.forced_refreshes == 1
    assert [k["kid"] for k in warm.tokens.jwks()["keys"]] == [new_kid, old_kid]
    assert warm.kid_of(warm.tokens.issue("alice").access_token) == new_kid


def test_second_rotation_retires_the_first_key(sm):
    first = Container(sm)
    oldest = first.tokens.issue("alice").access_token
    rotate(sm)
    middle = Container(sm).tokens.issue("alice").access_token
    rotate(sm)
    latest = Container(sm)
    assert len(latest.tokens.jwks()["keys"]) == 2
    assert latest.tokens.verify(middle).sub == "alice"
    with pytest.raises(Unauthorized):
        latest.tokens.verify(oldest)
    assert len(stages(sm)) == 2  # older versions carry no labels


def test_finish_records_the_retirement_on_the_retired_version_only(sm):
    first = current_version(sm)
    token = begin_rotation(sm)
    for step in ROTATION_STEPS:
        handle_rotation_event(event(token, step), sm, clock=lambda: T0 + 100)
    assert retirements(sm) == {first: [f"sealbox-retired-at-{T0 + 100}"]}
    # The ring reads it with the previous key.
    ring = SecretsManagerKeyRing(sm, SECRET_ID, cache_ttl=CACHE_TTL, clock=FakeClock(0))
    assert [public.retired_at for public in ring.verification_keys()] == [None, T0 + 100]
    # The next rotation moves the record to the key it retires.
    token2 = begin_rotation(sm)
    for step in ROTATION_STEPS:
        handle_rotation_event(event(token2, step), sm, clock=lambda: T0 + 200)
    assert retirements(sm) == {token: [f"sealbox-retired-at-{T0 + 200}"]}


def test_a_retried_finish_records_the_later_retirement(sm):
    old_version = current_version(sm)
    token = begin_rotation(sm)
    for step in ROTATION_STEPS[:3]:
        handle_rotation_event(event(token, step), sm)
    # A finish that recorded T0 and died before the AWSCURRENT move: the old
    # key went on signing, so the retry's later time is the true retirement.
    sm.update_secret_version_stage(
        SecretId=SECRET_ID, VersionStage=f"sealbox-retired-at-{T0}", MoveToVersionId=old_version
    )
    handle_rotation_event(event(token, "finishSecret"), sm, clock=lambda: T0 + 500)
    assert retirements(sm) == {old_version: [f"sealbox-retired-at-{T0 + 500}"]}
    assert stages(sm) == {old_version: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}


@pytest.mark.parametrize("step", ROTATION_STEPS)
def test_each_step_is_idempotent(sm, step):
    token = begin_rotation(sm)
    for earlier in ROTATION_STEPS[: ROTATION_STEPS.index(step)]:
        handle_rotation_event(event(token, earlier), sm)
    handle_rotation_event(event(token, step), sm)
    labels = stages(sm)
    pending = sm.get_secret_value(SecretId=SECRET_ID, VersionId=token)["SecretString"]
    handle_rotation_event(event(token, step), sm)
    assert stages(sm) == labels
    assert sm.get_secret_value(SecretId=SECRET_ID, VersionId=token)["SecretString"] == pending


def test_steps_after_finish_are_no_ops(sm):
    token = rotate(sm)
    labels = stages(sm)
    current = read_stage(sm, "AWSCURRENT")
    for step in ROTATION_STEPS:
        handle_rotation_event(event(token, step), sm)
    assert stages(sm) == labels
    assert read_stage(sm, "AWSCURRENT") == current


def test_finish_converges_after_an_interruption(sm):
    old_version = current_version(sm)
    token = begin_rotation(sm)
    for step in ROTATION_STEPS[:3]:
        handle_rotation_event(event(token, step), sm)
    # Crash after finish's first call (AWSPREVIOUS moved onto the current
    # version) and before the second.
    sm.update_secret_version_stage(
        SecretId=SECRET_ID, VersionStage="AWSPREVIOUS", MoveToVersionId=old_version
    )
    handle_rotation_event(event(token, "finishSecret"), sm)
    assert stages(sm) == {old_version: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    # Crash after the AWSCURRENT move and before AWSPENDING was dropped.
    token2 = begin_rotation(sm)
    for step in ROTATION_STEPS[:3]:
        handle_rotation_event(event(token2, step), sm)
    sm.update_secret_version_stage(
        SecretId=SECRET_ID,
        VersionStage="AWSCURRENT",
        MoveToVersionId=token2,
        RemoveFromVersionId=token,
    )
    assert "AWSPENDING" in stages(sm)[token2]
    handle_rotation_event(event(token2, "finishSecret"), sm)
    assert stages(sm) == {token: ["AWSPREVIOUS"], token2: ["AWSCURRENT"]}


def test_moto_moves_awsprevious_with_awscurrent(sm):
    # What the emulator does on its own (documented in chalicelib.rotation):
    # moving AWSCURRENT puts AWSPREVIOUS on the version it left.
    old_version = current_version(sm)
    sm.put_secret_value(
        SecretId=SECRET_ID, SecretString="x", ClientRequestToken="a" * 32, VersionStages=["X"]
    )
    sm.update_secret_version_stage(
        SecretId=SECRET_ID,
        VersionStage="AWSCURRENT",
        MoveToVersionId="a" * 32,
        RemoveFromVersionId=old_version,
    )
    assert stages(sm) == {old_version: ["AWSPREVIOUS"], "a" * 32: ["AWSCURRENT", "X"]}


def test_create_never_overwrites_an_existing_pending_value(sm):
    token = begin_rotation(sm)
    handle_rotation_event(event(token, "createSecret"), sm)
    pending = sm.get_secret_value(SecretId=SECRET_ID, VersionId=token, VersionStage="AWSPENDING")
    handle_rotation_event(event(token, "createSecret"), sm, clock=lambda: T0 + 999)
    again = sm.get_secret_value(SecretId=SECRET_ID, VersionId=token, VersionStage="AWSPENDING")
    assert again["SecretString"] == pending["SecretString"]


# --- event validation -------------------------------------------------------------


def test_rotation_must_be_enabled(sm):
    token = "b" * 32
    sm.put_secret_value(
        SecretId=SECRET_ID, SecretString="x", ClientRequestToken=token, VersionStages=["AWSPENDING"]
    )
    with pytest.raises(RotationError, match="not enabled for rotation"):
        handle_rotation_event(event(token, "createSecret"), sm)


def test_unknown_token_is_refused(sm):
    begin_rotation(sm)
    with pytest.raises(RotationError, match="not staged for rotation"):
        handle_rotation_event(event("c" * 32, "createSecret"), sm)


def test_token_not_pending_is_refused(sm):
    first = rotate(sm)
    rotate(sm)  # `first` is now AWSPREVIOUS, not pending
    assert stages(sm)[first] == ["AWSPREVIOUS"]
    with pytest.raises(RotationError, match="not AWSPENDING"):
        handle_rotation_event(event(first, "createSecret"), sm)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        {},
        {"SecretId": SECRET_ID, "ClientRequestToken": "t"},
        {"SecretId": SECRET_ID, "ClientRequestToken": "t", "Step": "dropSecret"},
        {"SecretId": "", "ClientRequestToken": "t", "Step": "createSecret"},
        {"SecretId": SECRET_ID, "ClientRequestToken": 5, "Step": "createSecret"},
    ],
)
def test_malformed_events_are_refused(sm, bad):
    with pytest.raises(RotationError):
        handle_rotation_event(bad, sm)


def test_a_bad_pending_value_fails_the_test_step(sm):
    token = begin_rotation(sm)
    handle_rotation_event(event(token, "createSecret"), sm)
    good = json.loads(sm.get_secret_value(SecretId=SECRET_ID, VersionId=token)["SecretString"])
    bad = dict(good, x=parse_app_key_secret(read_stage(sm, "AWSCURRENT")).kid[:43])
    sm.put_secret_value(
        SecretId=SECRET_ID,
        SecretString=json.dumps(bad),
        ClientRequestToken=token,
        VersionStages=["AWSPENDING"],
    )
    with pytest.raises(RotationError, match="malformed") as info:
        handle_rotation_event(event(token, "testSecret"), sm)
    assert good["d"] not in str(info.value)
    assert stages(sm)[token] == ["AWSPENDING"]


def test_secrets_manager_errors_become_rotation_errors(sm):
    token = begin_rotation(sm)
    outage = inject_outage(sm, "PutSecretValue")
    outage.error = ClientError(
        {"Error": {"Code": "InternalServiceError", "Message": "x"}}, "PutSecretValue"
    )
    with pytest.raises(RotationError, match="InternalServiceError"):
        handle_rotation_event(event(token, "createSecret"), sm)


def test_first_rotation_replaces_the_deployment_placeholder(monkeypatch):
    """On AWS the template creates the secret with a generated placeholder and
    RotateImmediatelyOnUpdate runs the first rotation (docs/deploying.md)."""
    from chalicelib.errors import SigningUnavailable

    with moto_aws(monkeypatch):
        client = secretsmanager_client()
        client.create_secret(Name=SECRET_ID, SecretString="Xq3vPlaceholderFromCloudFormation")
        container = Container(client)
        with pytest.raises(SigningUnavailable):
            container.tokens.issue("alice")
        rotate(client)
        container.clock.advance(CACHE_TTL + 60)
        token = container.tokens.issue("alice").access_token
        assert container.tokens.verify(token).identity == "alice"
        # The placeholder is now AWSPREVIOUS: ignored, not fatal.
        assert [k.kid for k in container.ring.verification_keys()] == [
            parse_app_key_secret(read_stage(client, "AWSCURRENT")).kid
        ]


# --- a rotation checks every step (attacks on the pending version) -------------------------


def put_pending(client: Any, token: str, value: str) -> None:
    """Write a value onto the pending version, as someone with PutSecretValue could."""
    client.put_secret_value(
        SecretId=SECRET_ID,
        SecretString=value,
        ClientRequestToken=token,
        VersionStages=["AWSPENDING"],
    )


def assert_current_unchanged(client: Any, before: str, version: str) -> None:
    assert read_stage(client, "AWSCURRENT") == before
    assert current_version(client) == version
    parse_app_key_secret(before)  # still a working key


def test_finish_before_create_promotes_nothing(sm):
    """finishSecret used to promote a pending version it never checked: called
    before createSecret it made a value-less version AWSCURRENT, and no token
    could be issued or verified any more."""
    before, version = read_stage(sm, "AWSCURRENT"), current_version(sm)
    token = begin_rotation(sm)
    with pytest.raises(RotationError, match="no value"):
        handle_rotation_event(event(token, "finishSecret"), sm)
    assert_current_unchanged(sm, before, version)


def test_finish_after_a_failed_test_promotes_nothing(sm):
    before, version = read_stage(sm, "AWSCURRENT"), current_version(sm)
    token = begin_rotation(sm)
    handle_rotation_event(event(token, "createSecret"), sm)
    good = json.loads(sm.get_secret_value(SecretId=SECRET_ID, VersionId=token)["SecretString"])
    put_pending(sm, token, json.dumps(dict(good, kid="A" * 43)))  # broken after create
    with pytest.raises(RotationError, match="malformed"):
        handle_rotation_event(event(token, "testSecret"), sm)
    with pytest.raises(RotationError, match="malformed"):
        handle_rotation_event(event(token, "finishSecret"), sm)
    assert_current_unchanged(sm, before, version)


@pytest.mark.parametrize("planted", ["current", "previous", "unbound", "other-rotation"])
def test_a_value_planted_on_the_pending_version_is_never_promoted(sm, planted):
    """createSecret kept any value already on the pending version and
    testSecret accepted a key equal to the current one, so a 'rotation' could
    keep a leaked key current, or promote a key an attacker chose."""
    first = rotate(sm)  # so there is a previous key too
    before, version = read_stage(sm, "AWSCURRENT"), current_version(sm)
    token = begin_rotation(sm)
    if planted == "current":
        value = before
    elif planted == "previous":
        value = read_stage(sm, "AWSPREVIOUS")
    elif planted == "unbound":
        value = new_app_key_secret(T0)  # a fresh key, but not made by this rotation
    else:
        value = new_app_key_secret(T0, rotation=first)  # made by another rotation
    put_pending(sm, token, value)
    for step in ROTATION_STEPS:
        if step == "setSecret":
            continue  # nothing to check: it reads nothing
        with pytest.raises(RotationError):
            handle_rotation_event(event(token, step), sm)
    assert_current_unchanged(sm, before, version)


def test_a_bound_copy_of_the_current_key_is_refused(sm):
    """Even with this rotation's token in it, the current key can't come back
    as the 'new' one: a rotation must change the key."""
    before, version = read_stage(sm, "AWSCURRENT"), current_version(sm)
    token = begin_rotation(sm)
    key = parse_app_key_secret(before)
    put_pending(sm, token, encode_app_key_secret(key, rotation=token))
    with pytest.raises(RotationError, match="ring already has"):
        handle_rotation_event(event(token, "testSecret"), sm)
    with pytest.raises(RotationError, match="ring already has"):
        handle_rotation_event(event(token, "finishSecret"), sm)
    assert_current_unchanged(sm, before, version)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(st.sampled_from(ROTATION_STEPS), max_size=8))
def test_the_four_steps_in_any_order_and_repetition(sm, steps):
    """Whatever order Secrets Manager (or anyone) calls the steps in, and how
    often: the current version always holds a working key, it changes only
    to a key this rotation generated and tested, and calling the four steps
    in order afterwards always completes the rotation."""
    before, version = read_stage(sm, "AWSCURRENT"), current_version(sm)
    old_kid = parse_app_key_secret(before).kid
    token = begin_rotation(sm)
    for step in steps:
        with contextlib.suppress(RotationError):
            handle_rotation_event(event(token, step), sm)
        current = read_stage(sm, "AWSCURRENT")
        key, rotation = parse_app_key_secret_with_rotation(current)
        if current_version(sm) == version:
            assert current == before
        else:
            assert current_version(sm) == token
            assert rotation == token
            assert key.kid != old_kid
    for step in ROTATION_STEPS:
        handle_rotation_event(event(token, step), sm)
    assert current_version(sm) == token
    assert stages(sm)[version] == ["AWSPREVIOUS"]


def test_concurrent_step_runners_finish_one_rotation(sm):
    """Four workers run the whole sequence at once (a retried Lambda beside
    the original): one rotation results, with the new key current."""
    before_version = current_version(sm)
    token = begin_rotation(sm)
    errors: list[BaseException] = []

    def worker() -> None:
        for step in ROTATION_STEPS:
            try:
                handle_rotation_event(event(token, step), sm)
            except RotationError as exc:  # a lost race on a stage move is fine
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # Whatever interleaving happened, one more in-order run converges.
    for step in ROTATION_STEPS:
        handle_rotation_event(event(token, step), sm)
    # Labels as sets: moto (unlike AWS) can list a label twice when two
    # stage moves race inside it.
    labels = {version: set(names) for version, names in stages(sm).items()}
    assert labels == {before_version: {"AWSPREVIOUS"}, token: {"AWSCURRENT"}}
    _, rotation = parse_app_key_secret_with_rotation(read_stage(sm, "AWSCURRENT"))
    assert rotation == token
