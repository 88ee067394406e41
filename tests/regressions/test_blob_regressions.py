"""Regression tests for blob storage bugs, one per bug, named after it."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from chalicelib import wiring
from chalicelib.blob_events import MAX_RECORDS_PER_MESSAGE, handle_blob_events
from chalicelib.config import BlobSettings, Settings
from chalicelib.errors import InternalError
from chalicelib.logs import LOGGER_NAME
from chalicelib.storage.blob_objects import S3ObjectStore
from chalicelib.wire import agefile
from chalicelib.wire.b64 import b64url_encode
from client_sim import age
from tests.functional.blob_helpers import BUCKET, make_user, versions
from tests.functional.conftest import STAGE_ENV, aws_client
from tests.functional.test_accounts_api import assert_error


def test_failed_recipient_record_write_leaves_no_stray_object_version(api, transport, raw) -> None:
    """A header replacement writes a new S3 version, then the record.  When the
    record write failed with an error (a DynamoDB throttle) rather than a lost
    condition, the new version stayed behind as the object's latest version,
    one the record doesn't name: every later header replacement then failed
    its ETag precondition against it (409 forever), and the blob could never
    gain a recipient again."""
    alice, bob = make_user(api, transport, "alice"), make_user(api, transport, "bob")
    info = alice.blobs.upload(io.BytesIO(b"x" * 1000), recipients=[alice.recipient()])
    assert info.download is not None
    assert info.header_length is not None
    (checked,) = parse_qs(urlsplit(info.download.url).query)["versionId"]
    stored = requests.get(info.download.url, timeout=30).content
    header = age.rewrap_header(
        stored[: info.header_length], [alice.key], [alice.recipient(), bob.recipient()]
    )
    throttled = {"on": True}

    def throttle(**_: object) -> None:
        if throttled["on"]:
            code = "ProvisionedThroughputExceededException"
            raise ClientError({"Error": {"Code": code, "Message": "x"}}, "TransactWriteItems")

    wiring.container().dynamodb.meta.events.register(
        "before-call.dynamodb.TransactWriteItems", throttle
    )
    path = f"/v1/blobs/{info.blob_id}/recipients"
    share = {"recipients": ["bob"], "version": info.version, "header": b64url_encode(header)}
    assert_error(raw("PUT", path, share, token=alice.token), 503, "service_unavailable")
    # Nothing changed: the bucket holds only the version the record names.
    assert [v["VersionId"] for v in versions(f"blobs/{info.blob_id}")] == [checked]
    throttled["on"] = False
    retried = raw("PUT", path, share, token=alice.token)
    assert retried.status == 200, retried.body
    assert retried.json()["recipients"] == ["bob"]


def test_sharing_an_armored_blob_compares_normalised_identities(api, transport, raw) -> None:
    """BlobClient.share decided whether a share only removes recipients (all
    an armored blob allows) by comparing the caller's identities as given
    with the normalised ones the server stores: ``["Bob"]`` for a blob shared
    with ``bob`` counted as adding someone, and was refused."""
    alice = make_user(api, transport, "alice")
    data = age.encrypt_bytes(b"armored" * 1000, [alice.recipient()], armor=True)
    reply = raw(
        "POST", "/v1/blobs", {"size": len(data), "recipients": ["bob", "carol"]}, token=alice.token
    )
    assert reply.status == 201, reply.body
    upload = reply.json()["upload"]
    assert requests.put(upload["url"], data=data, headers=upload["headers"], timeout=30).ok
    info = alice.blobs.commit(reply.json()["blob_id"])
    assert info.armored
    narrowed = alice.blobs.share(info.blob_id, ["Bob"], identities=[alice.key])
    assert narrowed.recipients == ("bob",)


def _report(blob_id: str, version_id: str | None = None) -> dict[str, object]:
    obj: dict[str, object] = {"key": f"blobs/{blob_id}", "size": 1}
    if version_id is not None:
        obj["versionId"] = version_id
    return {
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": BUCKET}, "object": obj},
    }


def _container() -> wiring.Container:
    env = {**STAGE_ENV, "AWS_REGION": "us-east-1"}
    return wiring.Container(Settings.from_env(env), blob_settings=BlobSettings.from_env(env))


def test_one_event_message_naming_1500_blobs_is_bounded(stack, caplog) -> None:
    """The S3-event handler checked every record of a message: one 225 KB
    message naming 1,500 blobs kept it busy for ~150 s while real uploads
    waited.  S3 sends one record per message; the handler now checks at most
    MAX_RECORDS_PER_MESSAGE and drops the rest with a logged reason."""
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    # As many records as fit in one SQS message (256 KiB) with this stage's
    # bucket name, which is longer since names carry the account and region.
    count = 1500
    while True:
        forged = [_report(b64url_encode(bytes([i % 256, i // 256]) * 11)) for i in range(count)]
        body = json.dumps({"Records": forged})
        if len(body) <= 256 * 1024:
            break
        count -= 100
    assert len(body) > 150_000
    container = _container()
    checked = handle_blob_events([body], container.blobs, bucket=BUCKET)
    assert checked == MAX_RECORDS_PER_MESSAGE
    dropped = [r.getMessage() for r in caplog.records if "too_many_records" in r.getMessage()]
    assert len(dropped) == 1
    assert f'"count":{count - MAX_RECORDS_PER_MESSAGE}' in dropped[0]


def test_an_event_with_a_bogus_version_id_is_a_logged_no_op(api, transport, raw, caplog) -> None:
    """An event naming a reserved blob with a version id that doesn't exist
    must not fail the batch (a retried batch meets the same answer and ends
    in the dead-letter queue); it is logged and nothing changes."""
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    alice = make_user(api, transport, "alice")
    data = age.encrypt_bytes(b"x" * 100, [alice.recipient()])
    reply = raw("POST", "/v1/blobs", {"size": len(data), "recipients": []}, token=alice.token)
    blob_id = reply.json()["blob_id"]
    upload = reply.json()["upload"]
    assert requests.put(upload["url"], data=data, headers=upload["headers"], timeout=30).ok
    body = json.dumps({"Records": [_report(blob_id, "not-a-version-S3-made")]})
    assert handle_blob_events([body], _container().blobs, bucket=BUCKET) == 1
    assert any("no_such_object" in r.getMessage() for r in caplog.records)
    assert raw("GET", f"/v1/blobs/{blob_id}", token=alice.token).json()["state"] == "reserved"


def test_a_malformed_version_id_is_no_such_version_not_a_server_error() -> None:
    """S3 answers HEAD with a malformed VersionId by a bare 400 (HEAD has no
    body, so no error code); the adapter took it for a broken deployment
    (InternalError) and failed the event batch."""
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    stubber = Stubber(client)
    stubber.add_client_error("head_object", service_error_code="400", http_status_code=400)
    stubber.add_client_error("head_object", service_error_code="400", http_status_code=400)
    with stubber:
        store = S3ObjectStore(client, "bucket-name")
        assert store.head("A" * 22, "not-a-version") is None
        # Without a version id a 400 is not "missing": it stays an error.
        with pytest.raises(InternalError):
            store.head("A" * 22)


MULTIPART = 12 * 1024 * 1024  # over the test stage's 5 MiB part size


def _uploads() -> list[dict[str, object]]:
    """The multipart uploads in progress in the blob bucket."""
    return list(aws_client("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))


def _fail(client: object, operation: str, code: str, *, after: bool = False) -> dict[str, bool]:
    """Make ``operation`` of a botocore client raise ``code`` while the switch is on
    (``after``: once the request went through, as when the reply is lost)."""
    switch = {"on": True}

    def fail(**_: object) -> None:
        if switch["on"]:
            raise ClientError({"Error": {"Code": code, "Message": "x"}}, operation)

    service = "dynamodb" if operation == "TransactWriteItems" else "s3"
    stage = "after-call" if after else "before-call"
    client.meta.events.register(f"{stage}.{service}.{operation}", fail)  # type: ignore[attr-defined]
    return switch


def test_a_failed_reservation_write_aborts_its_multipart_upload(api, transport, raw) -> None:
    """A multipart reservation starts the S3 upload, then writes the record.
    When that write failed (a DynamoDB throttle) the upload stayed open, its
    parts billable, until the bucket's 8-day lifecycle rule; it is now
    aborted at once, and the client still sees the same 503."""
    alice = make_user(api, transport, "alice")
    throttled = _fail(
        wiring.container().dynamodb, "TransactWriteItems", "ProvisionedThroughputExceededException"
    )
    reply = raw("POST", "/v1/blobs", {"size": MULTIPART, "recipients": []}, token=alice.token)
    assert_error(reply, 503, "service_unavailable")
    assert _uploads() == []
    assert versions() == []
    throttled["on"] = False
    reply = raw("POST", "/v1/blobs", {"size": MULTIPART, "recipients": []}, token=alice.token)
    assert reply.status == 201, reply.body
    assert len(_uploads()) == 1


def test_a_reservation_written_despite_a_lost_reply_keeps_its_upload(api, transport, raw) -> None:
    """The other side of the abort: a write that went through although its
    reply was lost owns the upload (the record names it; a retry with the
    same idempotency key continues it), so the upload is not aborted."""
    alice = make_user(api, transport, "alice")
    lost = _fail(
        wiring.container().dynamodb, "TransactWriteItems", "InternalServerError", after=True
    )
    body = {"size": MULTIPART, "recipients": [], "idempotency_key": "lost-reply-key-0001"}
    assert_error(raw("POST", "/v1/blobs", body, token=alice.token), 503, "service_unavailable")
    (upload,) = _uploads()
    lost["on"] = False
    retried = raw("POST", "/v1/blobs", body, token=alice.token)
    assert retried.status == 201, retried.body
    assert [u["UploadId"] for u in _uploads()] == [upload["UploadId"]]
    part_url = retried.json()["upload"]["parts"][0]["url"]
    assert parse_qs(urlsplit(part_url).query)["uploadId"] == [upload["UploadId"]]


def test_an_abort_that_fails_never_masks_the_reservation_error(api, transport, raw, caplog) -> None:
    """Over quota, the reservation aborted the upload it had started; when
    that abort failed too (an S3 throttle), the client got 503 instead of
    its quota error.  The abort is best effort now: logged, and the answer
    is the quota error it always was."""
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    settings = Settings.from_env({**STAGE_ENV, "AWS_REGION": "us-east-1"})
    blob_settings = dataclasses.replace(BlobSettings.from_env(STAGE_ENV), quota_count=1)
    wiring.install(wiring.Container(settings, blob_settings=blob_settings))
    alice = make_user(api, transport, "alice")
    first = raw("POST", "/v1/blobs", {"size": MULTIPART, "recipients": []}, token=alice.token)
    assert first.status == 201, first.body
    _fail(wiring.container().s3, "AbortMultipartUpload", "SlowDown")
    reply = raw("POST", "/v1/blobs", {"size": MULTIPART, "recipients": []}, token=alice.token)
    assert_error(reply, 429, "quota_count_exceeded")
    logged = [
        r.getMessage() for r in caplog.records if "blob_upload_abort_failed" in r.getMessage()
    ]
    assert len(logged) == 1
    assert "ServiceUnavailable" in logged[0]


@pytest.mark.parametrize("armor", [False, True])
def test_a_plaintext_behind_a_valid_age_header_was_served(api, transport, raw, armor) -> None:
    """The commit check proved only the shape: a well-formed age header (even
    one copied from a real file) in front of a plaintext of a length STREAM
    can have passed, and the plaintext was stored and served.  The first
    payload chunk must now look like ciphertext (a chi-squared test on its
    byte counts); this one is a letter."""
    alice = make_user(api, transport, "alice")
    real = age.encrypt_bytes(bytes(3000), [alice.recipient()])
    start = agefile.sniff(real).header_length + 16
    letter = b"Dear Bob, the door code is 4242. Burn this. "
    forged = real[:start] + (letter * 100)[: len(real) - start]
    if armor:
        forged = _armor(forged)
    reply = raw(
        "POST", "/v1/blobs", {"size": len(forged), "recipients": ["bob"]}, token=alice.token
    )
    assert reply.status == 201, reply.body
    blob_id = reply.json()["blob_id"]
    octets = {"Content-Type": "application/octet-stream"}
    path = f"/v1/blobs/{blob_id}/content"
    assert_error(
        raw("PUT", path, forged, token=alice.token, headers=octets), 422, "not_age_ciphertext"
    )
    assert versions(f"blobs/{blob_id}") == []
    # The same bytes through a presigned upload: rejected at commit.
    reply = raw(
        "POST", "/v1/blobs", {"size": len(forged), "recipients": ["bob"]}, token=alice.token
    )
    upload = reply.json()["upload"]
    assert requests.put(upload["url"], data=forged, headers=upload["headers"], timeout=30).ok
    commit = raw("POST", f"/v1/blobs/{reply.json()['blob_id']}/commit", token=alice.token)
    assert_error(commit, 422, "blob_rejected")


def _armor(data: bytes) -> bytes:
    import base64

    body = base64.b64encode(data)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        b"-----BEGIN AGE ENCRYPTED FILE-----\n"
        + b"\n".join(lines)
        + b"\n-----END AGE ENCRYPTED FILE-----\n"
    )
