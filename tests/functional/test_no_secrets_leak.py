"""DESIGN invariants 1 and 3 over the whole HTTP surface of this release.

A full account flow runs through the app with every log record captured at
DEBUG (ours, Chalice's, botocore's), including failures, lockout, a
Secrets Manager outage and an app-key rotation.  Then every secret that
existed during the flow -- the password, the login and backup keys, refresh
and access tokens, every app key seed -- is searched for, in every encoding
a careless line could use, in all log output, all error bodies, and all
DynamoDB items.

A second flow runs three devices through the SDK (register, backup,
sender-authenticated messages, rotation, a password change and a restore on
a new phone, unregister) and searches every request and reply body, every
byte of every DynamoDB item (binary attributes raw) and the logs for every
private key seed, device key, password, backup key and canary plaintext.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from chalicelib import wiring
from chalicelib.crypto import ed25519_private_raw
from chalicelib.rotation import ROTATION_STEPS, handle_rotation_event
from chalicelib.wire.appkey import parse_app_key_secret
from client_sim.api import ApiClient
from client_sim.device import Device
from client_sim.errors import DeviceError, ServerError
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
    refresh = access.refresh_token  # rotated: the login's token is spent
    secrets |= {session.refresh_token, refresh, access.access_token, session.device_cookie or ""}
    api.me(access.access_token)

    sm = wiring.container().secretsmanager
    outage = inject_outage(sm)
    outage.error = EndpointConnectionError(endpoint_url="https://secretsmanager.invalid")
    clock.advance(int(STAGE_ENV["SEALBOX_APP_KEY_CACHE_TTL"]) + 1)
    # Signing unavailable: a 503, and the refresh token is not spent.
    bodies.append(raw("POST", "/v1/tokens", token=refresh).body)
    outage.error = None
    clock.advance(60)

    token = begin_rotation(sm, SECRET_ID)
    for step in ROTATION_STEPS:
        handle_rotation_event(
            {"SecretId": SECRET_ID, "ClientRequestToken": token, "Step": step}, sm
        )
    rotated = api.access_token(refresh)
    secrets |= {rotated.access_token, rotated.refresh_token}
    api.me(rotated.access_token)
    api.logout(rotated.refresh_token)
    with pytest.raises(ServerError):
        api.access_token(rotated.refresh_token)
    # A spent token: the reuse answer names no secret either.
    bodies.append(raw("POST", "/v1/tokens", token=session.refresh_token).body)
    bodies.append(raw("GET", "/v1/me", token=rotated.refresh_token).body)

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


# --- the key directory and the device SDK ----------------------------------------------


def byte_forms(secret: bytes) -> set[bytes]:
    """``secret`` raw and in every text encoding a careless line could use."""
    out = {
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret).rstrip(b"="),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
    }
    return {form for form in out if len(form) >= 8}


def attribute_bytes(value: Any) -> bytes:
    """Every byte of a DynamoDB attribute value, binary values raw."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return bytes(inner)
    if kind in ("S", "N"):
        return str(inner).encode()
    if kind == "M":
        return b"\n".join(attribute_bytes(v) for v in inner.values())
    if kind == "L":
        return b"\n".join(attribute_bytes(v) for v in inner)
    if kind in ("SS", "NS"):
        return "\n".join(inner).encode()
    if kind == "BS":
        return b"\n".join(bytes(v) for v in inner)
    return repr(inner).encode()


def all_dynamodb_bytes() -> bytes:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    chunks = []
    for table in ddb.list_tables()["TableNames"]:
        for item in ddb.scan(TableName=table)["Items"]:
            chunks += [name.encode() + b"=" + attribute_bytes(v) for name, v in item.items()]
    return b"\n".join(chunks)


class Wiretap:
    """Records every request body a device sends and every reply body it gets."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.sent: list[bytes] = []
        self.received: list[bytes] = []

    def request(self, method, path, *, body=None, headers=None):
        self.sent.append(path.encode() + b"\n" + (body or b""))
        reply = self.inner.request(method, path, body=body, headers=headers)
        self.received.append(reply.body)
        return reply


def bundle_secrets(device: Device) -> set[bytes]:
    state = device._store.keystore.load()
    out = set()
    for bundle in state.bundles:
        out |= {bundle._ed25519_seed, bundle._x25519_secret, bundle._pq_seed}
    return out


def test_device_flows_leave_no_private_key_password_or_plaintext_server_side(
    transport, tmp_path, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    wire = Wiretap(transport)

    def device(name: str) -> Device:
        return Device(tmp_path / name, wire, kdf=PASSWORD_KDF_SIMULATION, sleep=lambda _: None)

    canaries = [f"canary plaintext {i}: the eagle lands at midnight".encode() for i in range(4)]
    passwords = {name: f"{name}'s password, long enough" for name in ("alice", "bob", "carol")}
    bob_new_password = "bob's second password, also long"
    alice, bob, carol = device("alice"), device("bob"), device("carol")
    for name, phone in (("alice", alice), ("bob", bob), ("carol", carol)):
        phone.register(name, passwords[name])
        phone.backup_private_key()
    key_secrets: set[bytes] = set()
    for phone in (alice, bob, carol):
        key_secrets |= bundle_secrets(phone)

    bob.decrypt(alice.encrypt(canaries[0], to=["bob", "carol"]))
    alice.decrypt(bob.encrypt(canaries[1], to=["alice"]))
    alice.rotate_private_key()
    key_secrets |= bundle_secrets(alice)
    carol.decrypt(alice.encrypt(canaries[2], to=["carol"]))
    with pytest.raises(DeviceError):
        device("mallory").login("alice", "a guess at alice's password")
    bob.change_password(passwords["bob"], bob_new_password)
    bob_phone = device("bob-new-phone")
    bob_phone.login("bob", bob_new_password)
    bob_phone.decrypt(alice.encrypt(canaries[3], to=["bob"]))
    carol.unregister()

    # Secrets that never leave the device: not in a request, a reply, a table or a log.
    device_only: set[bytes] = set(key_secrets) | set(canaries)
    for name, password in (*passwords.items(), ("bob", bob_new_password)):
        device_only.add(password.encode())
        keys = derive_password_keys(name, password, PASSWORD_KDF_SIMULATION)
        device_only.add(keys.backup_key)
    for home in tmp_path.iterdir():
        key_file = home / "keystore" / "device.key"
        if key_file.exists():
            device_only.add(key_file.read_bytes()[9:])

    logs = "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in caplog.records).encode()
    tables = all_dynamodb_bytes()
    assert b"primary" in tables
    assert b"card#" in tables
    haystacks = {
        "request bodies": b"\n".join(wire.sent),
        "reply bodies": b"\n".join(wire.received),
        "tables": tables,
        "logs": logs,
    }
    assert len(key_secrets) == 3 * 4  # three devices' keys plus alice's rotation
    # The scan would see a key in the forms it looks for: public keys are there.
    public = alice._store.keystore.load().current.card.x25519_public_key  # type: ignore[union-attr]
    assert byte_forms(public) & {form for form in byte_forms(public) if form in tables}
    assert base64.urlsafe_b64encode(public).rstrip(b"=") in haystacks["request bodies"]
    for secret in device_only:
        for form in byte_forms(secret):
            for where, haystack in haystacks.items():
                assert form not in haystack, f"a device secret leaked into {where}"
    # Login keys are sent (that is their purpose) but never stored or logged.
    login_keys = {
        derive_password_keys(name, pw, PASSWORD_KDF_SIMULATION).login_key
        for name, pw in (*passwords.items(), ("bob", bob_new_password))
    }
    for secret in login_keys:
        for form in byte_forms(secret):
            assert form not in tables, "a login key was stored"
            assert form not in logs, "a login key was logged"
