"""DESIGN invariants 1 and 3 over the whole HTTP surface of this release.

A full account flow runs through the app with every log record captured at
DEBUG (ours, Chalice's, botocore's), including failures, lockout, a
Secrets Manager outage and an app-key rotation.  Then every secret that
existed during the flow -- the password, the login and backup keys, refresh
and access tokens, every app key seed -- is searched for, in every encoding
a careless line could use, in all log output, all error bodies, and all
DynamoDB items.
"""

from __future__ import annotations

import base64
import logging

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from chalicelib import wiring
from chalicelib.crypto import ed25519_private_raw
from chalicelib.rotation import ROTATION_STEPS, handle_rotation_event
from chalicelib.wire.appkey import parse_app_key_secret
from client_sim.api import ApiClient, ApiError
from client_sim.passwords import PASSWORD_KDF_SIMULATION, derive_password_keys
from tests.functional.conftest import STAGE_ENV
from tests.support.aws import begin_rotation, inject_outage

PASSWORD = "hunter2-but-much-longer-than-that"
SECRET_ID = STAGE_ENV["SEALBOX_APP_KEY_SECRET_ID"]


def forms(secret: bytes | str) -> set[str]:
    """The encodings a secret could leak in."""
    if isinstance(secret, str):
        out = {secret}
        secret = secret.encode()
    else:
        out = set()
    out |= {
        secret.hex(),
        base64.b64encode(secret).decode().rstrip("="),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
    }
    if all(32 <= b < 127 for b in secret):
        out.add(secret.decode())
    return {form for form in out if len(form) >= 8}


def app_key_seeds(sm) -> set[bytes]:
    seeds = set()
    for version in sm.list_secret_version_ids(SecretId=SECRET_ID)["Versions"]:
        value = sm.get_secret_value(SecretId=SECRET_ID, VersionId=version["VersionId"])
        seeds.add(ed25519_private_raw(parse_app_key_secret(value["SecretString"]).private_key))
    return seeds


def test_no_secret_reaches_logs_error_bodies_or_tables(clock, raw, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    api = ApiClient(raw.transport)
    keys = derive_password_keys("alice", PASSWORD, PASSWORD_KDF_SIMULATION)
    wrong = derive_password_keys("alice", PASSWORD + "?", PASSWORD_KDF_SIMULATION)
    secrets: set[bytes | str] = {PASSWORD, keys.login_key, keys.backup_key, wrong.login_key}
    bodies: list[bytes] = []

    api.register("alice", keys.login_key_b64)
    for _ in range(6):
        reply = raw("POST", "/v1/sessions", {"username": "alice", "login_key": wrong.login_key_b64})
        bodies.append(reply.body)
    clock.advance(3600)
    session = api.login("alice", keys.login_key_b64)
    access = api.access_token(session.refresh_token)
    secrets |= {session.refresh_token, access.access_token}
    api.me(access.access_token)

    sm = wiring.container().secretsmanager
    outage = inject_outage(sm)
    outage.error = EndpointConnectionError(endpoint_url="https://secretsmanager.invalid")
    clock.advance(int(STAGE_ENV["SEALBOX_APP_KEY_CACHE_TTL"]) + 1)
    bodies.append(raw("POST", "/v1/tokens", token=session.refresh_token).body)
    outage.error = None
    clock.advance(60)

    token = begin_rotation(sm, SECRET_ID)
    for step in ROTATION_STEPS:
        handle_rotation_event(
            {"SecretId": SECRET_ID, "ClientRequestToken": token, "Step": step}, sm
        )
    rotated = api.access_token(session.refresh_token)
    secrets.add(rotated.access_token)
    api.me(rotated.access_token)
    api.logout(session.refresh_token)
    with pytest.raises(ApiError):
        api.access_token(session.refresh_token)
    bodies.append(raw("GET", "/v1/me", token=session.refresh_token).body)

    seeds = app_key_seeds(boto3.client("secretsmanager", region_name="us-east-1"))
    assert len(seeds) == 2  # the seeded key and the rotated one
    secrets |= seeds

    logs = "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "signing_unavailable" in logs  # the outage was really exercised
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    tables = "\n".join(
        repr(ddb.scan(TableName=STAGE_ENV[name])["Items"])
        for name in ("SEALBOX_USERS_TABLE", "SEALBOX_SESSIONS_TABLE", "SEALBOX_ATTEMPTS_TABLE")
    )
    haystacks = {"logs": logs, "error bodies": b"\n".join(bodies).decode(), "tables": tables}
    for secret in secrets:
        for form in forms(secret):
            for where, text in haystacks.items():
                assert form not in text, f"a secret leaked into {where}"
