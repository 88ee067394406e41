"""/v1/backups/{name} through chalice.test.Client on moto: compare-and-swap, owner only."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest

from chalicelib.errors import VersionConflict
from chalicelib.services.backups import MAX_BACKUP_BYTES, BackupService
from chalicelib.storage.directory import DynamoBackupStore
from chalicelib.wire.b64 import b64url_encode
from client_sim.api import ApiClient
from client_sim.backup import TESTING_BOUNDS, KdfParams, seal_backup
from client_sim.errors import ServerError
from tests.functional.conftest import STAGE_ENV
from tests.support.directory import (
    User,
    atomic_moto_dynamodb,
    fresh_bundle,
    make_user,
    step_up,
)

TABLE = STAGE_ENV["SEALBOX_BACKUPS_TABLE"]
PARAMS = KdfParams(memory_kib=256, iterations=1, lanes=1, salt=bytes(32))


def blob(identity: str = "alice", key: bytes = bytes(32)) -> str:
    sealed = seal_backup([fresh_bundle(identity)], key, PARAMS, bounds=TESTING_BOUNDS)
    return b64url_encode(sealed)


def table() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=TABLE)["Items"]


def assert_error(reply, status: int, code: str) -> None:
    assert reply.status == status, reply.body
    assert reply.json()["error"]["code"] == code


@pytest.fixture
def alice(api: ApiClient) -> User:
    return make_user(api, "alice")


@pytest.fixture
def bob(api: ApiClient) -> User:
    return make_user(api, "bob")


def test_create_read_replace_delete(api: ApiClient, raw, alice: User) -> None:
    first, second = blob(), blob()
    created = raw("PUT", "/v1/backups/primary", {"ciphertext": first}, token=alice.access_token)
    assert created.status == 201
    assert created.json()["version"] == 1
    got = api.get_backup(alice.access_token, "primary")
    assert got == {
        "name": "primary",
        "ciphertext": first,
        "version": 1,
        "updated_at": created.json()["updated_at"],
    }
    # Replacing and deleting need a step-up proof (tests/regressions/test_step_up.py).
    replaced = raw(
        "PUT",
        "/v1/backups/primary",
        {"ciphertext": second, "version": 1},
        token=alice.access_token,
        headers=step_up(api, alice),
    )
    assert (replaced.status, replaced.json()["version"]) == (200, 2)
    assert api.get_backup(alice.access_token, "primary")["ciphertext"] == second
    api.delete_backup(
        alice.access_token, "primary", version=2, step_up=step_up(api, alice)["Sealbox-Step-Up"]
    )
    with pytest.raises(ServerError) as gone:
        api.get_backup(alice.access_token, "primary")
    assert gone.value.status == 404


def test_compare_and_swap_refuses_stale_versions_and_changes_nothing(api, raw, alice) -> None:
    api.put_backup(alice.access_token, "primary", blob())
    before = table()
    token = alice.access_token
    for body in ({"ciphertext": blob()}, {"ciphertext": blob(), "version": 2}):
        reply = raw("PUT", "/v1/backups/primary", body, token=token, headers=step_up(api, alice))
        assert_error(reply, 409, "version_conflict")
    assert_error(
        raw(
            "PUT",
            "/v1/backups/other",
            {"ciphertext": blob(), "version": 1},
            token=token,
            headers=step_up(api, alice),
        ),
        409,
        "version_conflict",
    )
    assert_error(
        raw("DELETE", "/v1/backups/primary?version=7", token=token, headers=step_up(api, alice)),
        409,
        "version_conflict",
    )
    assert_error(
        raw("DELETE", "/v1/backups/other", token=token, headers=step_up(api, alice)),
        404,
        "not_found",
    )
    assert table() == before


def test_versions_never_repeat_across_a_reset(api: ApiClient, alice: User) -> None:
    token = alice.access_token
    assert api.put_backup(token, "primary", blob())["version"] == 1
    api.delete_backup(token, "primary", step_up=step_up(api, alice)["Sealbox-Step-Up"])
    # A device that read version 1 before the reset can't overwrite the new backup.
    assert api.put_backup(token, "primary", blob())["version"] == 3
    proof = step_up(api, alice)["Sealbox-Step-Up"]
    with pytest.raises(ServerError) as stale:
        api.put_backup(token, "primary", blob(), version=1, step_up=proof)
    assert stale.value.code == "version_conflict"
    # The tombstone kept no ciphertext.
    assert api.get_backup(token, "primary")["version"] == 3


def test_only_the_owner_reaches_a_backup(api, raw, alice, bob) -> None:
    api.put_backup(alice.access_token, "primary", blob())
    for method, body in (
        ("GET", None),
        ("DELETE", None),
        ("PUT", {"ciphertext": blob("bob"), "version": 1}),
    ):
        reply = raw(
            method, "/v1/backups/primary", body, token=bob.access_token, headers=step_up(api, bob)
        )
        # Bob sees no backup named primary, exactly as if Alice had none.
        assert reply.status in (404, 409), reply.body
    missing = raw("GET", "/v1/backups/primary", token=bob.access_token)
    assert_error(missing, 404, "not_found")
    absent = raw("GET", "/v1/backups/nothing", token=alice.access_token)
    assert missing.body == absent.body
    assert api.get_backup(alice.access_token, "primary")["version"] == 1
    # Bob's own backup of the same name is a separate item.
    assert api.put_backup(bob.access_token, "primary", blob("bob"))["version"] == 1


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/backups/Primary", {"ciphertext": "x"}, 400, "invalid_backup_name"),
        ("/v1/backups/.hidden", {"ciphertext": "x"}, 400, "invalid_backup_name"),
        ("/v1/backups/" + "a" * 65, {"ciphertext": "x"}, 400, "invalid_backup_name"),
        ("/v1/backups/a%2Fb", {"ciphertext": "x"}, 400, "invalid_backup_name"),
        ("/v1/backups/primary", {"ciphertext": "not base64!"}, 400, "invalid_backup"),
        (
            "/v1/backups/primary",
            {"ciphertext": b64url_encode(b"SBBACKUP\x02" + bytes(200))},
            400,
            "invalid_backup",
        ),
        (
            "/v1/backups/primary",
            {"ciphertext": b64url_encode(b"age-encryption.org/v1\n" + bytes(100))},
            400,
            "invalid_backup",
        ),
        (
            "/v1/backups/primary",
            {"ciphertext": b64url_encode(b"SBBACKUP\x01\x01")},
            400,
            "invalid_backup",
        ),
        ("/v1/backups/primary", {"ciphertext": 7}, 400, "invalid_backup"),
        ("/v1/backups/primary", {"ciphertext": "QUFB", "version": 0}, 400, "invalid_request"),
        ("/v1/backups/primary", {"ciphertext": "QUFB", "version": True}, 400, "invalid_request"),
        ("/v1/backups/primary", {"ciphertext": "QUFB", "version": "1"}, 400, "invalid_request"),
        ("/v1/backups/primary", {"ciphertext": "QUFB", "owner": "bob"}, 400, "invalid_request"),
        ("/v1/backups/primary", {}, 400, "invalid_request"),
        (
            "/v1/backups/primary",
            {"ciphertext": "A" * ((MAX_BACKUP_BYTES * 4 + 2) // 3 + 4)},
            413,
            "payload_too_large",
        ),
        (
            "/v1/backups/primary",
            {"ciphertext": "A" * ((MAX_BACKUP_BYTES * 4 + 2) // 3 + 2000)},
            413,
            "payload_too_large",
        ),
    ],
)
def test_bad_puts_are_clear_errors_and_store_nothing(raw, alice, path, body, status, code) -> None:
    assert_error(raw("PUT", path, body, token=alice.access_token), status, code)
    assert table() == []


def test_bad_delete_versions(raw, alice) -> None:
    for query in ("version=abc", "version=-1", "version=0", "version=1&version=2", "v=1"):
        reply = raw("DELETE", f"/v1/backups/primary?{query}", token=alice.access_token)
        assert_error(reply, 400, "invalid_request")


def test_the_largest_backup_fits(api: ApiClient, alice: User) -> None:
    # Work factors in range (256 KiB, 1 pass, 1 lane): the server checks them.
    factors = b"".join(v.to_bytes(4, "big") for v in (256, 1, 1))
    big = b"SBBACKUP\x01\x01" + factors + b"\x10" + bytes(MAX_BACKUP_BYTES - 23)
    out = api.put_backup(alice.access_token, "primary", b64url_encode(big))
    assert out["version"] == 1
    assert len(api.get_backup(alice.access_token, "primary")["ciphertext"]) > MAX_BACKUP_BYTES


ROUTES = [
    ("PUT", "/v1/backups/primary"),
    ("GET", "/v1/backups/primary"),
    ("DELETE", "/v1/backups/primary"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_backup_route_needs_a_live_access_token(clock, raw, api, method, path) -> None:
    alice = make_user(api, "alice")
    body = {"ciphertext": blob()} if method == "PUT" else None
    for token in (None, "garbage", alice.refresh_token):
        assert_error(raw(method, path, body, token=token), 401, "invalid_token")
    clock.advance(900 + 120)
    assert_error(raw(method, path, body, token=alice.access_token), 401, "invalid_token")
    assert table() == []


# --- races --------------------------------------------------------------------------


def _service() -> BackupService:
    return BackupService(DynamoBackupStore(boto3.client("dynamodb"), TABLE), clock=time.time)


def test_racing_replacements_from_one_read_exactly_one_wins(stack) -> None:
    service = _service()
    version, _, _ = service.put("alice", "primary", blob())
    # Both devices read version 1, then both write with it (the worst interleaving).
    results: list[int | str] = []
    for ciphertext in (blob(), blob()):
        try:
            results.append(service.put("alice", "primary", ciphertext, version)[0])
        except VersionConflict:
            results.append("conflict")
    assert results == [2, "conflict"]


def test_thread_hammer_backup_cas_has_one_winner_per_version(stack) -> None:
    with atomic_moto_dynamodb():
        _service().put("alice", "primary", blob())
        payloads = [blob() for _ in range(10)]
        barrier = threading.Barrier(len(payloads))
        won: list[str] = []

        def write(ciphertext: str) -> None:
            service = _service()
            barrier.wait()
            try:
                service.put("alice", "primary", ciphertext, 1)
                won.append(ciphertext)
            except VersionConflict:
                pass

        threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(won) == 1
        stored = _service().get("alice", "primary")
        assert stored.version == 2
        assert b64url_encode(stored.ciphertext) == won[0]
