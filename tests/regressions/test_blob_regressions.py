"""Regression tests for blob storage bugs, one per bug, named after it."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import requests
from botocore.exceptions import ClientError

from chalicelib import wiring
from chalicelib.wire.b64 import b64url_encode
from client_sim import age
from tests.functional.blob_helpers import make_user, versions
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
