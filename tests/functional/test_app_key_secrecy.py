"""DESIGN invariant 3: the app key and bearer tokens never reach a log or an error.

A full flow -- seeding, loading, issuing, verifying, rejecting, rotating,
a failed rotation test and a Secrets Manager outage -- runs with every log
record captured at DEBUG.  Then every form of every private key seed that
ever existed in the secret (raw, base64, base64url, hex, the whole
SecretString) and every issued token is searched for in all records and in
every exception raised along the way, including chained ones.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.errors import SealboxError, Unauthorized
from chalicelib.rotation import ROTATION_STEPS, RotationError, handle_rotation_event
from chalicelib.services.tokens import TokenService
from chalicelib.storage.appkeys import (
    SecretsManagerKeyRing,
    ensure_app_key,
    quiet_botocore_payload_logs,
)
from chalicelib.wire.appkey import parse_app_key_secret
from chalicelib.wire.b64 import b64url_decode
from tests.support.aws import (
    SECRET_ID,
    begin_rotation,
    inject_outage,
    moto_aws,
    read_stage,
    secretsmanager_client,
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

PAYLOAD_LOGGERS = ("botocore.endpoint", "botocore.parsers")


@pytest.fixture
def botocore_levels() -> Iterator[None]:
    saved = {name: logging.getLogger(name).level for name in PAYLOAD_LOGGERS}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def sm(monkeypatch, botocore_levels):
    with moto_aws(monkeypatch):
        yield secretsmanager_client()


def all_secret_strings(client: Any) -> list[str]:
    versions = client.list_secret_version_ids(SecretId=SECRET_ID, IncludeDeprecated=True)[
        "Versions"
    ]
    values = []
    for version in versions:
        try:
            values.append(
                client.get_secret_value(SecretId=SECRET_ID, VersionId=version["VersionId"])[
                    "SecretString"
                ]
            )
        except ClientError:
            continue  # a value-less rotation stub
    return values


def forms_of(secret_string: str) -> list[str]:
    # json, not the strict parser: the rejected pending value is malformed.
    seed = b64url_decode(json.loads(secret_string)["d"])
    assert len(seed) == 32
    return [
        secret_string,
        base64.urlsafe_b64encode(seed).decode().rstrip("="),
        base64.b64encode(seed).decode(),
        base64.b64encode(seed).decode().rstrip("="),
        seed.hex(),
        seed.hex().upper(),
        repr(seed)[2:-1],
        seed.decode("latin-1"),
    ]


def record_texts(records: list[logging.LogRecord]) -> list[str]:
    formatter = logging.Formatter()
    texts = []
    for record in records:
        texts.append(record.getMessage())
        texts.append(repr(vars(record)))  # args, extra fields, exc_info
        if record.exc_info:
            texts.append(formatter.formatException(record.exc_info))
    return texts


def exception_texts(errors: list[BaseException]) -> list[str]:
    texts = []
    for error in errors:
        current: BaseException | None = error
        while current is not None:
            texts += [str(current), repr(current), repr(vars(current))]
            current = current.__cause__ or current.__context__
    return texts


def test_no_secret_in_logs_or_errors_across_a_full_flow(sm, caplog):
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    tokens_seen: list[str] = []

    def expect(exc_type: type[BaseException], fn: Any, *args: Any, **kwargs: Any) -> None:
        with pytest.raises(exc_type) as info:
            fn(*args, **kwargs)
        errors.append(info.value)

    assert ensure_app_key(sm, SECRET_ID, T0)
    assert not ensure_app_key(sm, SECRET_ID, T0)
    clock, wall = FakeClock(0), FakeClock()
    ring = SecretsManagerKeyRing(sm, SECRET_ID, cache_ttl=300, clock=clock)
    service = TokenService(ring, issuer=ISSUER, audience=AUDIENCE, ttl=900, clock=wall)
    for identity in ("alice", "bob"):
        issued = service.issue(identity)
        tokens_seen.append(issued.access_token)
        logging.getLogger("sealbox.test").info("issued %r for %s via %r", issued, identity, ring)
        service.verify(issued.access_token)
    service.jwks()
    logging.getLogger("sealbox.test").info("key %r", ring.signing_key())
    rejected = [tokens_seen[0][:-4] + "AAAA", forge(header_for(FOREIGN), claims_for(), key=FOREIGN)]
    for token in rejected:
        expect(Unauthorized, service.verify, token)
    wall.advance(3600)  # a real token, presented after it expired
    expect(Unauthorized, service.verify, tokens_seen[1])
    wall.advance(-3600)

    # Rotation, including a retried step and a failing test step.
    token = begin_rotation(sm)
    for step in ROTATION_STEPS:
        handle_rotation_event(
            {"SecretId": SECRET_ID, "ClientRequestToken": token, "Step": step}, sm
        )
        handle_rotation_event(
            {"SecretId": SECRET_ID, "ClientRequestToken": token, "Step": step}, sm
        )
    bad = begin_rotation(sm)
    handle_rotation_event(
        {"SecretId": SECRET_ID, "ClientRequestToken": bad, "Step": "createSecret"}, sm
    )
    pending = sm.get_secret_value(SecretId=SECRET_ID, VersionId=bad, VersionStage="AWSPENDING")[
        "SecretString"
    ]
    sm.put_secret_value(
        SecretId=SECRET_ID,
        ClientRequestToken=bad,
        SecretString=pending.replace('"v":1', '"v":2'),
        VersionStages=["AWSPENDING"],
    )
    expect(
        RotationError,
        handle_rotation_event,
        {"SecretId": SECRET_ID, "ClientRequestToken": bad, "Step": "testSecret"},
        sm,
    )

    # New key in use; then an outage.
    clock.advance(300)
    issued = service.issue("carol")
    tokens_seen.append(issued.access_token)
    service.verify(tokens_seen[0])
    outage = inject_outage(sm)
    outage.error = ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "GetSecretValue"
    )
    clock.advance(300)
    expect(SealboxError, service.issue, "alice")
    cold = TokenService(
        SecretsManagerKeyRing(sm, SECRET_ID, cache_ttl=300, clock=clock),
        issuer=ISSUER,
        audience=AUDIENCE,
        ttl=900,
    )
    expect(SealboxError, cold.verify, tokens_seen[-1])
    outage.error = None

    secrets = [form for value in all_secret_strings(sm) for form in forms_of(value)]
    assert len(secrets) >= 3 * 8  # seeded key, rotated key, the rejected pending one
    needles = secrets + tokens_seen + rejected + [t.split(".")[2] for t in tokens_seen + rejected]
    haystack = record_texts(caplog.records) + exception_texts(errors)

    # Not vacuous: the flow did log and raise, including about the keys.
    assert len(caplog.records) > 20
    joined = "\n".join(haystack)
    assert "app key ring loaded" in joined
    assert parse_app_key_secret(read_stage(sm, "AWSCURRENT")).kid in joined
    assert len(errors) == 6

    for needle in needles:
        assert needle not in joined


def test_botocore_would_log_the_key_at_debug_without_the_guard(sm, caplog):
    # The hazard the guard exists for: botocore logs response bodies at DEBUG.
    for name in PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    caplog.set_level(logging.DEBUG)
    ensure_app_key(sm, SECRET_ID, T0)  # quiets the loggers itself...
    for name in PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)  # ...so undo that here
    secret = read_stage(sm, "AWSCURRENT")
    seed_b64url = forms_of(secret)[1]
    assert seed_b64url in "\n".join(record_texts(caplog.records))

    caplog.clear()
    quiet_botocore_payload_logs()
    read_stage(sm, "AWSCURRENT")
    assert caplog.records  # botocore still logs, just not the payloads
    assert seed_b64url not in "\n".join(record_texts(caplog.records))
