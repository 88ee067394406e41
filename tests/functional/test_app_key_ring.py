"""The Secrets Manager key ring on moto: seeding, caching, unknown kids, outages."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from chalicelib.errors import ServiceUnavailable, SigningUnavailable, Unauthorized
from chalicelib.services.tokens import TokenService
from chalicelib.storage.appkeys import SecretsManagerKeyRing, ensure_app_key
from chalicelib.wire.appkey import MalformedAppKeySecret, parse_app_key_secret
from tests.support.aws import (
    SECRET_ID,
    inject_outage,
    moto_aws,
    read_stage,
    record_calls,
    secretsmanager_client,
    stages,
)
from tests.support.tokens import (
    AUDIENCE,
    FOREIGN,
    ISSUER,
    T0,
    FakeClock,
    claims_for,
    forge,
    header_for,
)

CACHE_TTL = 300


@pytest.fixture
def sm(monkeypatch):
    with moto_aws(monkeypatch):
        yield secretsmanager_client()


@pytest.fixture
def seeded(sm):
    assert ensure_app_key(sm, SECRET_ID, T0) is True
    return sm


def make_ring(client: Any, clock: FakeClock, **kwargs: Any) -> SecretsManagerKeyRing:
    kwargs.setdefault("cache_ttl", CACHE_TTL)
    return SecretsManagerKeyRing(client, SECRET_ID, clock=clock, **kwargs)


def make_tokens(ring: SecretsManagerKeyRing, wall: FakeClock) -> TokenService:
    return TokenService(ring, issuer=ISSUER, audience=AUDIENCE, ttl=900, clock=wall)


# --- seeding ------------------------------------------------------------------


def test_ensure_app_key_creates_once_and_never_overwrites(sm):
    assert ensure_app_key(sm, SECRET_ID, T0) is True
    first = read_stage(sm, "AWSCURRENT")
    key = parse_app_key_secret(first)
    assert key.created_at == T0
    assert ensure_app_key(sm, SECRET_ID, T0 + 5) is False
    assert read_stage(sm, "AWSCURRENT") == first
    assert len(stages(sm)) == 1


def test_ensure_app_key_fills_a_provisioned_secret_that_has_no_value(sm):
    """The template creates the secret empty (AWS's first rotation fills it)."""
    sm.create_secret(Name=SECRET_ID, Description="provisioned from infra/resources.json")
    assert ensure_app_key(sm, SECRET_ID, T0) is True
    assert parse_app_key_secret(read_stage(sm, "AWSCURRENT")).created_at == T0
    assert ensure_app_key(sm, SECRET_ID, T0 + 5) is False
    assert len(stages(sm)) == 1


def test_ensure_app_key_refuses_to_touch_a_malformed_secret(sm):
    sm.create_secret(Name=SECRET_ID, SecretString="not a key")
    with pytest.raises(MalformedAppKeySecret):
        ensure_app_key(sm, SECRET_ID, T0)
    assert read_stage(sm, "AWSCURRENT") == "not a key"


def test_ensure_app_key_maps_other_errors_to_503(sm):
    outage = inject_outage(sm, "CreateSecret")
    outage.error = EndpointConnectionError(endpoint_url="https://secretsmanager.invalid")
    with pytest.raises(ServiceUnavailable):
        ensure_app_key(sm, SECRET_ID, T0)


# --- reading and caching -------------------------------------------------------------


def test_ring_reads_the_seeded_secret_lazily(seeded):
    calls = record_calls(seeded)
    clock = FakeClock(0)
    ring = make_ring(seeded, clock)
    assert calls.count("GetSecretValue") == 0  # nothing at construction
    key = ring.signing_key()
    assert key.kid == parse_app_key_secret(read_stage(seeded, "AWSCURRENT")).kid
    assert [k.kid for k in ring.verification_keys()] == [key.kid]  # no AWSPREVIOUS yet: fine
    stages_read = [
        body.get("VersionStage") for name, body in calls.calls if name == "GetSecretValue"
    ]
    assert stages_read[:2] == ["AWSCURRENT", "AWSPREVIOUS"]  # explicit stage on every read
    assert all(stage is not None for stage in stages_read)


def test_cache_one_read_per_stage_per_ttl(seeded):
    calls = record_calls(seeded)
    clock, wall = FakeClock(0), FakeClock()
    ring = make_ring(seeded, clock)
    tokens = make_tokens(ring, wall)
    for _ in range(1000):
        tokens.verify(tokens.issue("alice").access_token)
    tokens.jwks()
    assert calls.count("GetSecretValue") == 2
    assert ring.stats.get_secret_value_calls == 2
    clock.advance(CACHE_TTL - 1)
    tokens.issue("alice")
    assert calls.count("GetSecretValue") == 2
    clock.advance(1)  # TTL reached: re-read both stages once
    for _ in range(100):
        tokens.issue("alice")
    assert calls.count("GetSecretValue") == 4
    assert ring.stats.loads == 2


def test_zero_ttl_reads_every_time(seeded):
    clock = FakeClock(0)
    ring = make_ring(seeded, clock, cache_ttl=0)
    ring.signing_key()
    ring.signing_key()
    assert ring.stats.get_secret_value_calls == 4


def test_unknown_kid_forces_one_rate_limited_refresh(seeded):
    calls = record_calls(seeded)
    clock, wall = FakeClock(0), FakeClock()
    ring = make_ring(seeded, clock, unknown_kid_refresh_interval=10)
    tokens = make_tokens(ring, wall)
    tokens.verify(tokens.issue("alice").access_token)
    assert calls.count("GetSecretValue") == 2
    stranger = forge(header_for(FOREIGN), claims_for(), key=FOREIGN)
    with pytest.raises(Unauthorized):
        tokens.verify(stranger)
    assert calls.count("GetSecretValue") == 4  # one forced re-read
    # A flood of unknown kids within the interval costs nothing more.
    for _ in range(50):
        with pytest.raises(Unauthorized):
            tokens.verify(stranger)
    assert calls.count("GetSecretValue") == 4
    assert ring.stats.forced_refreshes == 1
    clock.advance(10)
    with pytest.raises(Unauthorized):
        tokens.verify(stranger)
    assert calls.count("GetSecretValue") == 6
    assert ring.stats.forced_refreshes == 2


def test_malformed_current_is_a_failed_load(sm):
    sm.create_secret(Name=SECRET_ID, SecretString=json.dumps({"v": 1}))
    ring = make_ring(sm, FakeClock(0))
    with pytest.raises(SigningUnavailable):
        ring.signing_key()
    assert ring.stats.failed_loads == 1


def test_missing_secret_is_a_failed_load(sm):
    ring = make_ring(sm, FakeClock(0))
    with pytest.raises(SigningUnavailable):
        ring.signing_key()
    with pytest.raises(ServiceUnavailable):
        ring.verification_keys()


def test_malformed_previous_is_ignored(seeded):
    good = read_stage(seeded, "AWSCURRENT")
    # Make a garbage version current, then the good one current again, so
    # the garbage ends up as AWSPREVIOUS.
    seeded.put_secret_value(SecretId=SECRET_ID, SecretString="garbage")
    seeded.put_secret_value(SecretId=SECRET_ID, SecretString=good)
    assert read_stage(seeded, "AWSPREVIOUS") == "garbage"
    ring = make_ring(seeded, FakeClock(0))
    assert [k.kid for k in ring.verification_keys()] == [parse_app_key_secret(good).kid]


# --- outages ----------------------------------------------------------------------


THROTTLED = ClientError(
    {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetSecretValue"
)
UNREACHABLE = EndpointConnectionError(endpoint_url="https://secretsmanager.us-east-1.amazonaws.com")
TIMEOUT = ReadTimeoutError(endpoint_url="https://secretsmanager.us-east-1.amazonaws.com")


@pytest.mark.parametrize(
    "error", [THROTTLED, UNREACHABLE, TIMEOUT], ids=["throttled", "unreachable", "timeout"]
)
def test_outage_on_a_cold_ring_is_503_then_recovers(seeded, error):
    secret = read_stage(seeded, "AWSCURRENT")
    outage = inject_outage(seeded)
    clock, wall = FakeClock(0), FakeClock()
    ring = make_ring(seeded, clock, error_backoff=5)
    tokens = make_tokens(ring, wall)
    outage.error = error
    with pytest.raises(SigningUnavailable) as info:
        tokens.issue("alice")
    assert info.value.status == 503
    assert info.value.code == "signing_unavailable"
    assert info.value.headers == {"Retry-After": "5"}
    assert secret not in str(info.value)
    assert parse_app_key_secret(secret).kid not in str(info.value)
    # Verification with nothing cached is a 503 as well, not a 401.
    with pytest.raises(ServiceUnavailable):
        tokens.verify(forge(header_for(), claims_for()))
    # Backing off: no calls reach Secrets Manager for error_backoff seconds.
    failures = outage.failures
    clock.advance(2)
    with pytest.raises(SigningUnavailable) as info:
        tokens.issue("alice")
    assert info.value.headers == {"Retry-After": "3"}
    assert outage.failures == failures
    # Secrets Manager is back; the next call after the back-off recovers.
    outage.error = None
    clock.advance(3)
    token = tokens.issue("alice").access_token
    assert tokens.verify(token).sub == "alice"


def test_outage_on_a_warm_ring_signing_503_verification_stale_if_error(seeded):
    outage = inject_outage(seeded)
    clock, wall = FakeClock(0), FakeClock()
    ring = make_ring(seeded, clock, error_backoff=5, max_stale=600)
    tokens = make_tokens(ring, wall)
    token = tokens.issue("alice").access_token
    outage.error = THROTTLED
    clock.advance(CACHE_TTL)  # cache stale; the re-read fails
    with pytest.raises(SigningUnavailable):
        tokens.issue("alice")
    assert tokens.verify(token).sub == "alice"  # last known keys still verify
    assert tokens.jwks()["keys"]
    # Unknown kids are still refused (the forced re-read fails quietly).
    with pytest.raises(Unauthorized):
        tokens.verify(forge(header_for(FOREIGN), claims_for(), key=FOREIGN))
    # Past max_stale, verification refuses to go on with old keys.
    clock.advance(600)
    with pytest.raises(ServiceUnavailable):
        tokens.verify(token)
    outage.error = None
    clock.advance(5)
    assert tokens.verify(token).sub == "alice"
    assert tokens.issue("alice")


def test_access_denied_is_a_503_too(seeded):
    outage = inject_outage(seeded)
    outage.error = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetSecretValue"
    )
    with pytest.raises(SigningUnavailable):
        make_ring(seeded, FakeClock(0)).signing_key()


def test_ring_arguments_are_checked(sm):
    with pytest.raises(ValueError, match="secret_id"):
        SecretsManagerKeyRing(sm, "", cache_ttl=1)
    with pytest.raises(ValueError, match="durations"):
        SecretsManagerKeyRing(sm, SECRET_ID, cache_ttl=-1)
    with pytest.raises(ValueError, match="durations"):
        SecretsManagerKeyRing(sm, SECRET_ID, cache_ttl=1, error_backoff=0)


def test_concurrent_callers_share_one_load(seeded):
    calls = record_calls(seeded)
    ring = make_ring(seeded, FakeClock(0))
    barrier = threading.Barrier(8)
    kids: list[str] = []

    def worker() -> None:
        barrier.wait()
        kids.append(ring.signing_key().kid)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(kids)) == 1
    assert len(kids) == 8
    assert calls.count("GetSecretValue") == 2
