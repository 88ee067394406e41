"""Issue #14: a copy of the server's storage let anyone test password guesses offline.

The attack, as a test: dump every DynamoDB item, every S3 object version and
every secret *except the OPRF key*, then run the attacker's best procedure
for one guess, fully offline, against each account:

* the stored login verifier: derive the login key from the guess and check
  it against the Argon2id PHC string in the users table;
* the key backup: derive the backup key from the guess (the header holds
  every KDF parameter) and try to open the backup.

Against pre-hardening (version 1) data the procedure confirms the right
password -- the bug.  Against version 2 data it can't confirm even the right
password: both checks need the OPRF output, which needs the OPRF key; the
attacker tries every 32 bytes of the dump as the OPRF seed, and a zero
output, to no avail.  Given the one excluded secret, the same procedure
succeeds (the control), so it is exactly the OPRF key -- held by the server,
which throttles evaluations -- that every guess needs.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib import crypto
from chalicelib.storage.appkeys import STAGE_CURRENT
from chalicelib.wire import oprf
from chalicelib.wire.oprf_keys import OprfKey, parse_oprf_secret
from client_sim import backup as backup_format
from client_sim.device import Device
from client_sim.passwords import PASSWORD_KDF_SIMULATION, stretch_password
from client_sim.transport import ChaliceTransport
from tests.functional.conftest import STAGE_ENV
from tests.support.objects import MOTO_STORAGE_ORIGINS, MotoObjects

PASSWORD = "correct horse battery staple"
WRONG = "correct horse battery stable"
OPRF_SECRET = STAGE_ENV["SEALBOX_OPRF_KEY_SECRET_ID"]


@dataclass
class Dump:
    """What the attacker copied: items by table, object bodies, secret values."""

    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    objects: list[bytes] = field(default_factory=list)
    secrets: dict[str, list[str]] = field(default_factory=dict)

    def user(self, identity: str) -> dict[str, Any]:
        return next(
            i
            for i in self.items[STAGE_ENV["SEALBOX_USERS_TABLE"]]
            if i["identity"]["S"] == identity
        )

    def backup(self, identity: str) -> bytes:
        return next(
            bytes(i["ciphertext"]["B"])
            for i in self.items[STAGE_ENV["SEALBOX_BACKUPS_TABLE"]]
            if i["identity"]["S"] == identity and i["name"]["S"] == "primary"
        )

    def candidate_seeds(self) -> Iterator[bytes]:
        """Every 32-byte value the dump holds (base64url or raw), as OPRF seed guesses."""
        blobs: list[bytes] = list(self.objects)

        # Binary attributes as they are; everything else searched as text.
        def keep_binary(value: bytes) -> str:
            blobs.append(bytes(value))
            return ""

        text = json.dumps(self.items, default=keep_binary)
        text += json.dumps(self.secrets)
        for token in set(_tokens(text)):
            for decode in (base64.urlsafe_b64decode, base64.b64decode):
                try:
                    blobs.append(decode(token + "=" * (-len(token) % 4)))
                except ValueError:
                    continue
        for raw in blobs:
            for start in range(0, max(len(raw) - 31, 0), 32):
                yield raw[start : start + 32]


def _tokens(text: str) -> Iterator[str]:
    token = []
    for ch in text:
        if ch.isalnum() or ch in "-_+/":
            token.append(ch)
            continue
        if len(token) >= 43:
            yield "".join(token)
        token = []


def dump_everything_but_the_oprf_key() -> Dump:
    dump = Dump()
    ddb = boto3.client("dynamodb")
    for table in ddb.list_tables()["TableNames"]:
        pages = ddb.get_paginator("scan").paginate(TableName=table)
        dump.items[table] = [item for page in pages for item in page["Items"]]
    s3 = boto3.client("s3")
    for bucket in s3.list_buckets()["Buckets"]:
        versions = s3.list_object_versions(Bucket=bucket["Name"]).get("Versions", [])
        for version in versions:
            body = s3.get_object(
                Bucket=bucket["Name"], Key=version["Key"], VersionId=version["VersionId"]
            )["Body"].read()
            dump.objects.append(body)
    sm = boto3.client("secretsmanager")
    for secret in sm.list_secrets()["SecretList"]:
        if secret["Name"] == OPRF_SECRET:
            continue
        described = sm.describe_secret(SecretId=secret["Name"])
        dump.secrets[secret["Name"]] = [
            sm.get_secret_value(SecretId=secret["Name"], VersionId=version)["SecretString"]
            for version in described.get("VersionIdsToStages", {})
        ]
    assert dump.secrets, "the dump must include the other secrets (the app key)"
    return dump


def offline_check(dump: Dump, identity: str, guess: str, oprf_keys: list[OprfKey]) -> bool:
    """The attacker's best procedure for one guess, with no server: True if confirmed.

    ``oprf_keys``: OPRF key guesses (from the dump; in the control, the real one).
    """
    user = dump.user(identity)
    blob = dump.backup(identity)
    header = backup_format.parse_backup_header(blob, bounds=backup_format.TESTING_BOUNDS)
    # Every Argon2id parameter is in the backup header; the salt is public.
    stretched = stretch_password(identity, guess, PASSWORD_KDF_SIMULATION)
    candidates = [stretched.version1()]
    if header.oprf_key_version:
        # What the device would derive, for each OPRF key the attacker can try,
        # and for no OPRF contribution at all.
        candidates = [stretched.hardened(bytes(64), header.oprf_key_version)]
        for key in oprf_keys:
            secret, _ = key.account_key(identity)
            output = oprf.finalize(
                stretched.oprf_input,
                (1).to_bytes(32, "little"),
                oprf.blind_evaluate(secret, oprf.hash_to_group(stretched.oprf_input, 1)),
                oprf.MODE_OPRF,
            )
            candidates.append(stretched.hardened(output, header.oprf_key_version))
    for keys in candidates:
        if crypto.argon2id_verify(keys.login_key, user["login_hash"]["S"]):
            return True
        try:
            backup_format.open_backup(blob, keys.backup_key, bounds=backup_format.TESTING_BOUNDS)
        except backup_format.BackupAuthenticationError:
            continue
        return True
    return False


def keys_from_dump(dump: Dump, limit: int = 4000) -> list[OprfKey]:
    """Every 32-byte value in the dump tried as an OPRF seed (bounded: the check is costly)."""
    seeds = list(dict.fromkeys(itertools.islice(dump.candidate_seeds(), limit)))
    return [OprfKey(version=1, oprf_seed=s, root_seed=bytes(32)) for s in seeds]


@pytest.fixture
def devices(tmp_path: Path, transport: ChaliceTransport) -> dict[str, Device]:
    value = boto3.client("secretsmanager").get_secret_value(
        SecretId=OPRF_SECRET, VersionStage=STAGE_CURRENT
    )["SecretString"]
    key = parse_oprf_secret(value)

    def make(name: str, hardened: bool) -> Device:
        return Device(
            tmp_path / name,
            transport,
            kdf=PASSWORD_KDF_SIMULATION,
            sleep=lambda _: None,
            objects=MotoObjects(),
            storage_origins=MOTO_STORAGE_ORIGINS,
            oprf_roots={key.version: key.root_public} if hardened else None,
        )

    out = {"legacy": make("legacy", False), "hardened": make("hardened", True)}
    for name, device in out.items():
        device.register(name, PASSWORD)
        device.backup_private_key()
        device.encrypt(b"a message to keep", to=[name])
    return out


def test_a_storage_dump_confirms_guesses_for_v1_data_and_not_for_v2(devices) -> None:
    dump = dump_everything_but_the_oprf_key()
    guesses = keys_from_dump(dump)
    assert len(guesses) > 10  # the app key, card keys, blob ids... all tried

    # Pre-hardening data: the right guess is confirmed offline, a wrong one is not.
    assert offline_check(dump, "legacy", PASSWORD, []) is True
    assert offline_check(dump, "legacy", WRONG, []) is False

    # Hardened data: not even the right password can be confirmed.
    assert offline_check(dump, "hardened", PASSWORD, guesses) is False


def test_control_the_oprf_key_is_exactly_what_is_missing(devices) -> None:
    dump = dump_everything_but_the_oprf_key()
    value = boto3.client("secretsmanager").get_secret_value(
        SecretId=OPRF_SECRET, VersionStage=STAGE_CURRENT
    )["SecretString"]
    real = parse_oprf_secret(value)
    assert offline_check(dump, "hardened", PASSWORD, [real]) is True
    assert offline_check(dump, "hardened", WRONG, [real]) is False
