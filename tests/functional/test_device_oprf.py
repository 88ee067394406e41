"""Password hardening end to end in process: devices with pinned OPRF roots on moto.

The shared device flows run with hardening on; then what is new: the
migration of accounts and backups made before the OPRF, the request count,
a hostile OPRF answer failing closed, and an OPRF key rotation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from chalicelib.storage.appkeys import STAGE_CURRENT
from chalicelib.storage.dynamo import DynamoUserStore
from chalicelib.storage.oprfkeys import rotate_oprf_key
from chalicelib.wire import oprf
from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.oprf_keys import OprfKey, parse_oprf_secret
from client_sim import backup as backup_format
from client_sim.device import BACKUP_NAME, Device
from client_sim.errors import OprfVerificationFailed, WrongPassword
from client_sim.passwords import PASSWORD_KDF_SIMULATION
from client_sim.transport import ChaliceTransport, HttpReply
from tests.functional.conftest import STAGE_ENV
from tests.support import device_flows
from tests.support.device_flows import PASSWORD, Recording
from tests.support.objects import MOTO_STORAGE_ORIGINS, MotoObjects

SECRET_ID = STAGE_ENV["SEALBOX_OPRF_KEY_SECRET_ID"]
MakeDevice = Callable[..., Device]


def current_oprf_key() -> OprfKey:
    value = boto3.client("secretsmanager").get_secret_value(
        SecretId=SECRET_ID, VersionStage=STAGE_CURRENT
    )
    return parse_oprf_secret(value["SecretString"])


@pytest.fixture
def recording(transport: ChaliceTransport) -> Recording:
    return Recording(transport)


@pytest.fixture
def roots(stack: object) -> dict[int, bytes]:
    key = current_oprf_key()
    return {key.version: key.root_public}


@pytest.fixture
def make(tmp_path: Path, recording: Recording, roots: dict[int, bytes]) -> MakeDevice:
    def make_device(name: str, *, hardened: bool = True, transport: object = None) -> Device:
        return Device(
            tmp_path / name,
            transport or recording,  # type: ignore[arg-type]
            kdf=PASSWORD_KDF_SIMULATION,
            sleep=lambda _: None,
            objects=MotoObjects(),
            storage_origins=MOTO_STORAGE_ORIGINS,
            oprf_roots=roots if hardened else None,
        )

    return make_device


def stored_backup_header(identity: str) -> backup_format.KdfParams:
    item = boto3.client("dynamodb").get_item(
        TableName=STAGE_ENV["SEALBOX_BACKUPS_TABLE"],
        Key={"identity": {"S": identity}, "name": {"S": BACKUP_NAME}},
    )["Item"]
    blob = bytes(item["ciphertext"]["B"])
    return backup_format.parse_backup_header(blob, bounds=backup_format.TESTING_BOUNDS)


def account_version(identity: str) -> int:
    users = DynamoUserStore(boto3.client("dynamodb"), STAGE_ENV["SEALBOX_USERS_TABLE"])
    record = users.get(identity)
    assert record is not None
    return record.oprf_version


# --- the shared flows, hardened -------------------------------------------------------


def test_new_phone_restores_from_backup(make: MakeDevice) -> None:
    device_flows.new_phone_restores_from_backup(make, "h")
    assert account_version("alice-h") == 1
    header = stored_backup_header("alice-h")
    assert (header.algorithm, header.oprf_key_version) == (2, 1)


def test_password_change_then_new_phone(make: MakeDevice) -> None:
    device_flows.password_change_then_new_phone(make, "h")
    assert account_version("alice-h") == 1
    assert stored_backup_header("alice-h").oprf_key_version == 1


def test_rotation_keeps_old_data_readable(make: MakeDevice) -> None:
    device_flows.rotation_keeps_old_data_readable(make, "h")


# --- migration from version 1 ------------------------------------------------------------


def test_a_pre_oprf_account_and_backup_migrate_on_the_next_login(make: MakeDevice) -> None:
    old = make("old-phone", hardened=False)
    old.register("alice", PASSWORD)
    old.backup_private_key()
    secret = old.encrypt(b"sealed before hardening", to=["alice"])
    assert account_version("alice") == 0
    assert stored_backup_header("alice").algorithm == 1

    # A new phone with hardening restores the v1 backup and migrates both.
    phone = make("new-phone")
    phone.login("alice", PASSWORD)
    assert phone.decrypt(secret).plaintext == b"sealed before hardening"
    assert account_version("alice") == 1
    header = stored_backup_header("alice")
    assert (header.algorithm, header.oprf_key_version) == (2, 1)
    # Only the hardened derivation logs in now; another hardened phone restores v2.
    with pytest.raises(WrongPassword):
        make("legacy-again", hardened=False).login("alice", PASSWORD)
    third = make("third-phone")
    third.login("alice", PASSWORD)
    assert third.decrypt(secret).plaintext == b"sealed before hardening"


def test_an_existing_device_re_wraps_its_backup_when_it_first_logs_in_hardened(
    make: MakeDevice,
) -> None:
    old = make("phone", hardened=False)
    old.register("alice", PASSWORD)
    old.backup_private_key()
    old.logout()
    # The same phone (same home), after an app update that pins the OPRF roots.
    updated = make("phone")
    updated.login("alice", PASSWORD)
    assert stored_backup_header("alice").oprf_key_version == 1
    # The next write stays v2 under the stored (hardened) backup key.
    updated.backup_private_key()
    assert stored_backup_header("alice").oprf_key_version == 1


# --- one request more ------------------------------------------------------------------


def test_hardening_adds_exactly_one_request_to_login_and_restore(
    make: MakeDevice, recording: Recording
) -> None:
    def login_requests(hardened: bool, name: str) -> list[tuple[str, str]]:
        first = make(f"{name}-first", hardened=hardened)
        first.register(name, PASSWORD)
        first.backup_private_key()
        recording.requests.clear()
        make(f"{name}-second", hardened=hardened).login(name, PASSWORD)
        return list(recording.requests)

    plain = login_requests(False, "plain")
    hardened = login_requests(True, "hard")
    assert len(hardened) == len(plain) + 1
    assert [r for r in hardened if r != ("POST", "/v1/oprf")] == plain
    assert hardened.count(("POST", "/v1/oprf")) == 1


# --- a hostile answer fails closed ---------------------------------------------------------


class Tamper:
    """Rewrites the /v1/oprf answer; records whether a login was attempted afterwards."""

    def __init__(self, inner: ChaliceTransport, rewrite: Callable[[dict], dict]) -> None:
        self.inner = inner
        self.rewrite = rewrite
        self.paths: list[str] = []

    def request(self, method: str, path: str, **kwargs: object) -> HttpReply:
        self.paths.append(path)
        reply = self.inner.request(method, path, **kwargs)  # type: ignore[arg-type]
        if path == "/v1/oprf" and reply.status == 200:
            body = json.dumps(self.rewrite(reply.json())).encode()
            return HttpReply(reply.status, reply.headers, body)
        return reply


def _flip(field: str) -> Callable[[dict], dict]:
    def rewrite(body: dict) -> dict:
        raw = bytearray(b64url_decode(body["evaluations"][0][field]))
        raw[0] ^= 1
        body["evaluations"][0][field] = b64url_encode(bytes(raw))
        return body

    return rewrite


def _operator_key(body: dict) -> dict:
    # A server evaluating under a key of its own choosing (one it could then
    # attack offline), self-certified: the pinned root is not its root.
    rogue = OprfKey.generate(1, created_at=0)
    element = b64url_decode(body["evaluations"][0]["evaluated_element"])
    # Re-evaluating needs the blinded element; any valid element works to
    # show the certificate check fails first.
    body["evaluations"] = [rogue.evaluate("alice", element).to_json()]
    return body


def _unpinned_version(body: dict) -> dict:
    body["evaluations"][0]["key_version"] = 7
    return body


@pytest.mark.parametrize(
    "rewrite",
    [
        _flip("evaluated_element"),
        _flip("proof"),
        _flip("account_key"),
        _flip("certificate"),
        _operator_key,
        _unpinned_version,
        lambda body: {"evaluations": []},
        lambda body: {"evaluations": body["evaluations"] * 3},
    ],
    ids=[
        "evaluated",
        "proof",
        "account-key",
        "certificate",
        "operator-key",
        "unpinned-version",
        "empty",
        "too-many",
    ],
)
def test_a_hostile_oprf_answer_fails_closed_before_any_key_is_sent(
    make: MakeDevice, transport: ChaliceTransport, rewrite: Callable[[dict], dict]
) -> None:
    make("owner").register("alice", PASSWORD)
    tamper = Tamper(transport, rewrite)
    phone = make("phone", transport=tamper)
    with pytest.raises(OprfVerificationFailed):
        phone.login("alice", PASSWORD)
    assert tamper.paths == ["/v1/oprf"]  # no login key left the device


# --- rotation -------------------------------------------------------------------------------


def test_rotation_dual_evaluation_migrates_account_and_backup_to_the_new_key(
    make: MakeDevice, roots: dict[int, bytes], tmp_path: Path, recording: Recording
) -> None:
    phone = make("phone")
    phone.register("alice", PASSWORD)
    phone.backup_private_key()
    secret = phone.encrypt(b"before the rotation", to=["alice"])
    sm = boto3.client("secretsmanager")
    users = DynamoUserStore(boto3.client("dynamodb"), STAGE_ENV["SEALBOX_USERS_TABLE"])
    new = rotate_oprf_key(
        sm, SECRET_ID, time.time(), accounts_on_version=users.count_on_oprf_version
    )
    # The app ships the new root before the rotation; the API's cache is cold here.
    from chalicelib import wiring

    wiring.reset()
    pinned = {**roots, new.version: new.root_public}
    tablet = Device(
        tmp_path / "tablet",
        recording,
        kdf=PASSWORD_KDF_SIMULATION,
        sleep=lambda _: None,
        objects=MotoObjects(),
        storage_origins=MOTO_STORAGE_ORIGINS,
        oprf_roots=pinned,
    )
    tablet.login("alice", PASSWORD)
    assert tablet.decrypt(secret).plaintext == b"before the rotation"
    assert account_version("alice") == 2
    assert stored_backup_header("alice").oprf_key_version == 2
    # Nobody is left on version 1: the next rotation may drop it.
    assert users.count_on_oprf_version(1) == 0
    # A device that does not pin the new root refuses the server's answers.
    with pytest.raises(OprfVerificationFailed):
        make("old-app").login("alice", PASSWORD)
    assert oprf.SUITE_ID == b"ristretto255-SHA512"


class LoginBodies:
    """Records the JSON body of every login request."""

    def __init__(self, inner: ChaliceTransport) -> None:
        self.inner = inner
        self.logins: list[dict] = []

    def request(self, method: str, path: str, **kwargs: object) -> HttpReply:
        if (method, path) == ("POST", "/v1/sessions"):
            self.logins.append(json.loads(kwargs["body"]))  # type: ignore[arg-type]
        return self.inner.request(method, path, **kwargs)  # type: ignore[arg-type]


def test_a_device_that_saw_the_account_hardened_stops_sending_the_version_1_login_key(
    make: MakeDevice, transport: ChaliceTransport
) -> None:
    # The version-1 login key is Argon2id of the password alone: a copy of a
    # request that carries it can be checked against guesses offline.  It is
    # sent only until this device has logged in hardened once.
    bodies = LoginBodies(transport)
    make("keeper-setup").register("keeper", PASSWORD)
    phone = make("keeper-phone", transport=bodies)
    phone.login("keeper", PASSWORD)
    assert "0" in bodies.logins[-1]["legacy_login_keys"]  # a new device can't know yet
    phone.logout()
    phone.login("keeper", PASSWORD)
    assert "0" not in bodies.logins[-1].get("legacy_login_keys", {})
    assert account_version("keeper") >= 1
