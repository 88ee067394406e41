"""Rejected uploads: the bytes go, a fingerprint stays (issue 11).

A rejected upload used to be copied to ``quarantine/<id>`` and kept for 30
days: someone's possibly plaintext bytes, held by the server that promises
to hold only ciphertext.  Now the record keeps the object's size, the reason
and its SHA-256, every version of ``blobs/<id>`` and ``quarantine/<id>`` is
deleted at once, and the quota is released only when the bytes are gone --
so a flood of rejected uploads can't store data beyond quota meanwhile.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from botocore.exceptions import ClientError

from chalicelib import wiring
from chalicelib.services.blobs import BlobState
from chalicelib.storage.blob_records import DynamoBlobStore
from tests.functional.blob_helpers import (
    BUCKET,
    TABLES,
    drain_events,
    make_user,
    s3_event,
    usage,
    versions,
)
from tests.functional.conftest import aws_client
from tests.functional.test_accounts_api import assert_error
from tests.functional.test_blobs_api import put, reserve


class _FailingDeletes:
    """Make the bucket refuse every deletion while ``on`` (a throttled S3)."""

    def __init__(self) -> None:
        self.on = True
        wiring.container().s3.meta.events.register("before-call.s3.DeleteObjects", self._fail)

    def _fail(self, **_: object) -> None:
        if self.on:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "x"}}, "DeleteObjects")


def _remaining(blob_id: str) -> list[str]:
    return sorted(
        v["Key"] for prefix in ("blobs/", "quarantine/") for v in versions(f"{prefix}{blob_id}")
    )


@pytest.mark.parametrize("size", [4000, 300_000])  # within and beyond the 96 KiB sniffed
def test_a_rejected_uploads_bytes_are_deleted_and_only_its_fingerprint_kept(
    api, transport, raw, size
) -> None:
    alice = make_user(api, transport, "alice")
    canary = (b"CANARY plaintext that must not be kept " * (size // 39 + 1))[:size]
    body = reserve(raw, alice, size)
    assert put(body["upload"], canary) == 200
    reply = raw("POST", f"/v1/blobs/{body['blob_id']}/commit", token=alice.token)
    assert_error(reply, 422, "blob_rejected")
    assert _remaining(body["blob_id"]) == []
    view = raw("GET", f"/v1/blobs/{body['blob_id']}", token=alice.token).json()
    assert view["state"] == "rejected"
    assert view["rejected_reason"] == "not_age"
    assert view["rejected_size"] == size
    assert view["rejected_sha256"] == hashlib.sha256(canary).hexdigest()
    assert usage("alice") == (0, 0)


def test_the_quota_stays_charged_until_the_bytes_are_gone(api, transport, raw) -> None:
    alice = make_user(api, transport, "alice")
    canary = b"CANARY plaintext " * 300
    body = reserve(raw, alice, len(canary))
    blob_id = body["blob_id"]
    assert put(body["upload"], canary) == 200
    failing = _FailingDeletes()
    assert_error(
        raw("POST", f"/v1/blobs/{blob_id}/commit", token=alice.token), 422, "blob_rejected"
    )
    # The verdict stands, the bytes could not be deleted: still charged.
    assert _remaining(blob_id) == [f"blobs/{blob_id}"]
    assert usage("alice") == (len(canary), 1)
    view = raw("GET", f"/v1/blobs/{blob_id}", token=alice.token).json()
    assert view["state"] == "rejected"
    assert view["rejected_sha256"] == hashlib.sha256(canary).hexdigest()
    # A copy the old code left under quarantine/ goes with the retry too.
    aws_client("s3").put_object(Bucket=BUCKET, Key=f"quarantine/{blob_id}", Body=canary)
    failing.on = False
    assert_error(
        raw("POST", f"/v1/blobs/{blob_id}/commit", token=alice.token), 422, "blob_rejected"
    )
    assert _remaining(blob_id) == []
    assert usage("alice") == (0, 0)
    # Retrying again releases nothing twice.
    assert_error(
        raw("POST", f"/v1/blobs/{blob_id}/commit", token=alice.token), 422, "blob_rejected"
    )
    assert usage("alice") == (0, 0)


def test_the_s3_event_retries_a_failed_deletion(api, transport, raw, chalice_client) -> None:
    alice = make_user(api, transport, "alice")
    canary = b"CANARY nobody commits this " * 200
    body = reserve(raw, alice, len(canary))
    blob_id = body["blob_id"]
    failing = _FailingDeletes()
    assert put(body["upload"], canary) == 200
    # The event judges it; the deletion fails, so the batch fails for SQS to redeliver.
    with pytest.raises(Exception, match="blob check"):
        drain_events(chalice_client)
    assert raw("GET", f"/v1/blobs/{blob_id}", token=alice.token).json()["state"] == "rejected"
    assert usage("alice") == (len(canary), 1)
    failing.on = False
    event = chalice_client.events.generate_sqs_event(
        message_bodies=[s3_event(blob_id)], queue_name="q"
    )
    chalice_client.lambda_.invoke("blob_events", event)
    assert _remaining(blob_id) == []
    assert usage("alice") == (0, 0)


def test_deleting_a_rejected_blob_still_charged_releases_it_once(api, transport, raw) -> None:
    alice = make_user(api, transport, "alice")
    canary = b"CANARY " * 500
    body = reserve(raw, alice, len(canary))
    blob_id = body["blob_id"]
    assert put(body["upload"], canary) == 200
    failing = _FailingDeletes()
    assert_error(
        raw("POST", f"/v1/blobs/{blob_id}/commit", token=alice.token), 422, "blob_rejected"
    )
    assert usage("alice") == (len(canary), 1)
    failing.on = False
    assert raw("DELETE", f"/v1/blobs/{blob_id}", token=alice.token).status == 204
    assert _remaining(blob_id) == []
    assert usage("alice") == (0, 0)


def test_two_releases_of_the_same_rejection_release_once(api, transport, raw) -> None:
    alice = make_user(api, transport, "alice")
    canary = b"CANARY " * 500
    body = reserve(raw, alice, len(canary))
    blob_id = body["blob_id"]
    assert put(body["upload"], canary) == 200
    failing = _FailingDeletes()
    assert_error(
        raw("POST", f"/v1/blobs/{blob_id}/commit", token=alice.token), 422, "blob_rejected"
    )
    failing.on = False
    store = DynamoBlobStore(
        aws_client("dynamodb"), table=TABLES[0], grants_table=TABLES[1], usage_table=TABLES[2]
    )
    held = store.get(blob_id)
    assert held is not None
    assert held.state is BlobState.REJECTED
    assert held.charge_held
    # Two workers that both read the held record: one release wins.
    released = replace(held, version=held.version + 1, charge_held=False)
    assert store.release_rejected(held, released) is True
    assert store.release_rejected(held, released) is False
    assert usage("alice") == (0, 0)
