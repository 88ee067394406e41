"""DESIGN invariants 1 and 3 for blob storage.

Devices upload, share, download and delete files through every path (inline,
single PUT, multipart, the S3 event handler), with every log record captured
at DEBUG.  Then the server side is searched: no plaintext canary and no
private key in any S3 object version or DynamoDB item, and no presigned URL,
URL signature or access token in any log line or error body.  The one
deliberate plaintext upload may exist only under ``quarantine/``.
"""

from __future__ import annotations

import base64
import io
import logging
from urllib.parse import parse_qs, urlsplit

import requests

from client_sim import age
from tests.functional.blob_helpers import (
    BUCKET,
    TABLES,
    drain_events,
    make_user,
    table_items,
)
from tests.functional.conftest import aws_client

MIB = 1024 * 1024


def encodings(secret: bytes) -> set[bytes]:
    return {
        secret,
        secret.hex().encode(),
        base64.b64encode(secret).rstrip(b"="),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
    }


def every_object_version() -> dict[str, bytes]:
    s3 = aws_client("s3")
    out = {}
    for version in s3.list_object_versions(Bucket=BUCKET).get("Versions", []):
        body = s3.get_object(Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"])
        out[f"{version['Key']}@{version['VersionId']}"] = body["Body"].read()
    return out


def test_no_plaintext_key_url_or_token_reaches_storage_or_logs(
    api, transport, raw, chalice_client, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    alice, bob, carol = (make_user(api, transport, n) for n in ("alice", "bob", "carol"))
    canaries = [f"CANARY-{n}-{'x' * 40}".encode() for n in range(4)]
    sizes = [100, 200_000, 7 * MIB]  # inline, single PUT, multipart (5 MiB parts)
    bodies: list[bytes] = []
    blob_ids = []
    for canary, size in zip(canaries, sizes, strict=False):
        plaintext = (canary * (size // len(canary) + 1))[:size]
        info = alice.blobs.upload(
            io.BytesIO(plaintext), to=["bob"], recipients=[alice.recipient(), bob.recipient()]
        )
        blob_ids.append(info.blob_id)
        out = io.BytesIO()
        bob.blobs.download(info.blob_id, out, identities=[bob.key])
        assert out.getvalue() == plaintext
    alice.blobs.share(
        blob_ids[1],
        ["carol"],
        identities=[alice.key],
        recipients=[alice.recipient(), carol.recipient()],
    )
    carol.blobs.download(blob_ids[1], io.BytesIO(), identities=[carol.key])
    # An upload nobody commits, settled by the event handler.
    sealed = age.encrypt_bytes(canaries[3] * 60, [alice.recipient()])
    pending = raw(
        "POST", "/v1/blobs", {"size": len(sealed), "recipients": []}, token=alice.token
    ).json()
    requests.put(
        pending["upload"]["url"], data=sealed, headers=pending["upload"]["headers"], timeout=30
    )
    drain_events(chalice_client)
    # The one deliberate plaintext: rejected, never served, deleted.
    poison = b"POISON-plaintext-" * 64
    bad = raw(
        "POST", "/v1/blobs", {"size": len(poison), "recipients": ["bob"]}, token=alice.token
    ).json()
    requests.put(bad["upload"]["url"], data=poison, headers=bad["upload"]["headers"], timeout=30)
    bodies.append(raw("POST", f"/v1/blobs/{bad['blob_id']}/commit", token=alice.token).body)
    bodies.append(raw("GET", f"/v1/blobs/{bad['blob_id']}", token=carol.token).body)
    bodies.append(raw("POST", "/v1/blobs", {"size": 0, "recipients": []}, token=alice.token).body)
    alice.blobs.delete(blob_ids[0])

    urls = [pending["upload"]["url"], bad["upload"]["url"]]
    urls += alice.objects.urls + bob.objects.urls + carol.objects.urls
    assert len(urls) >= 8
    signatures = {parse_qs(urlsplit(u).query)["X-Amz-Signature"][0] for u in urls}
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "blob_rejected" in logs  # the logs really were captured
    for secret in [*urls, *signatures, alice.token, bob.token, carol.token]:
        assert secret not in logs, "a credential reached the logs"
        assert secret.encode() not in b"\n".join(bodies)

    stored = every_object_version()
    assert not any(key.startswith("quarantine/") for key in stored)
    items = "\n".join(repr(table_items(t)) for t in TABLES).encode()
    keys = [u.key.secret_string().encode() for u in (alice, bob, carol)]
    for canary in canaries:
        for key, data in stored.items():
            assert canary not in data, f"plaintext reached S3 at {key.split('@')[0]}"
        assert canary not in items
    # Rejected bytes are deleted at once: only their fingerprint is kept.
    assert not [key for key, data in stored.items() if b"POISON-plaintext-" in data]
    assert b"POISON-plaintext-" not in items
    for secret in keys:
        for form in encodings(secret):
            assert form not in items
            assert all(form not in data for data in stored.values())
