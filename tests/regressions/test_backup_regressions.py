"""Regression tests for the key backup routes, one per bug, named after it."""

from __future__ import annotations

import boto3
import pytest

from chalicelib.wire import backup as wire
from chalicelib.wire.b64 import b64url_decode, b64url_encode
from client_sim import backup as device
from tests.functional.conftest import STAGE_ENV
from tests.functional.test_backups_api import blob
from tests.support.directory import make_user, step_up


def _with_factors(ciphertext: str, memory: int, iterations: int, lanes: int) -> str:
    data = b64url_decode(ciphertext)
    factors = b"".join(v.to_bytes(4, "big") for v in (memory, iterations, lanes))
    return b64url_encode(data[:10] + factors + data[22:])


@pytest.mark.parametrize(
    ("memory", "iterations", "lanes"),
    [
        (2**32 - 1, 1, 1),  # 4 TiB: no device could restore it
        (256 * 1024 + 1, 1, 1),
        (0, 1, 1),
        (7, 1, 1),
        (256, 0, 1),
        (256, 11, 1),
        (256, 2**32 - 1, 1),
        (256, 1, 0),
        (256, 1, 9),
        (8, 1, 2),  # Argon2 needs 8 KiB per lane
    ],
)
def test_a_backup_with_work_factors_no_device_accepts_was_stored(
    api, raw, memory: int, iterations: int, lanes: int
) -> None:
    """The server checked the backup's framing but not its KDF parameters:
    a backup asking for 4 TiB of Argon2 memory was stored, and every device
    that tried to restore it refused it only afterwards.  The server now
    applies the device's own bounds, from the same constants."""
    alice = make_user(api, "alice")
    body = {"ciphertext": _with_factors(blob(), memory, iterations, lanes)}
    reply = raw("PUT", "/v1/backups/primary", body, token=alice.access_token)
    assert reply.status == 400, reply.body
    assert reply.json()["error"]["code"] == "invalid_backup_kdf"
    table = STAGE_ENV["SEALBOX_BACKUPS_TABLE"]
    assert boto3.client("dynamodb").scan(TableName=table)["Items"] == []


def test_the_bounds_at_their_edges_are_stored(api, raw) -> None:
    alice = make_user(api, "alice")
    for version, (memory, iterations, lanes) in enumerate(
        [(256 * 1024, 10, 8), (8, 1, 1)], start=1
    ):
        body: dict[str, object] = {"ciphertext": _with_factors(blob(), memory, iterations, lanes)}
        headers = None
        if version > 1:
            body["version"] = version - 1
            headers = step_up(api, alice)  # replacing a backup needs a step-up proof
        reply = raw("PUT", "/v1/backups/primary", body, token=alice.access_token, headers=headers)
        assert reply.status in (200, 201), reply.body


def test_device_and_server_bounds_are_the_same_constants() -> None:
    assert device.DEFAULT_BOUNDS.max_memory_kib == wire.MAX_KDF_MEMORY_KIB
    assert device.DEFAULT_BOUNDS.max_iterations == wire.MAX_KDF_ITERATIONS
    assert device.DEFAULT_BOUNDS.max_lanes == wire.MAX_KDF_LANES
    assert device.TESTING_BOUNDS.min_memory_kib == wire.MIN_KDF_MEMORY_KIB
    assert device.TESTING_BOUNDS.min_iterations == wire.MIN_KDF_ITERATIONS
    assert device.TESTING_BOUNDS.min_lanes == wire.MIN_KDF_LANES
