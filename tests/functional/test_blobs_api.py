"""/v1/blobs through chalice.test.Client on moto, presigned URLs included.

Devices use client_sim.blobs.BlobClient; presigned PUTs and GETs reach
moto's S3 through ``requests`` (tests/support/objects.py).  Raw requests
cover what a well-behaved client would never send.
"""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path

import pytest
import requests

from chalicelib import wiring
from chalicelib.config import BlobSettings, Settings
from client_sim import age
from client_sim.blobs import BlobClient
from client_sim.errors import InvalidInput, ServerError
from tests.functional.blob_helpers import (
    BUCKET,
    TABLES,
    User,
    drain_events,
    make_user,
    s3_event,
    table_items,
    usage,
    versions,
)
from tests.functional.conftest import STAGE_ENV, aws_client
from tests.functional.test_accounts_api import assert_error

MIB = 1024 * 1024


@pytest.fixture
def users(api, transport) -> dict[str, User]:
    return {name: make_user(api, transport, name) for name in ("alice", "bob", "carol")}


def reserve(raw, user: User, size: int, recipients=(), **extra) -> dict:
    reply = raw(
        "POST",
        "/v1/blobs",
        {"size": size, "recipients": list(recipients), **extra},
        token=user.token,
    )
    assert reply.status == 201, reply.body
    body: dict = reply.json()
    return body


def put(upload: dict, data: bytes) -> int:
    return requests.put(upload["url"], data=data, headers=upload["headers"], timeout=30).status_code


def ciphertext(size: int, *recipients: User) -> bytes:
    return age.encrypt_bytes(bytes(size), [r.recipient() for r in recipients])


# --- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "puts"),
    [(0, 0), (10_000, 0), (300_000, 1), (12 * MIB, 3)],
    ids=["empty-inline", "inline", "single-put", "multipart"],
)
def test_upload_and_download_round_trip(users, tmp_path: Path, size: int, puts: int) -> None:
    alice, bob = users["alice"], users["bob"]
    plaintext = (b"sealbox " * (size // 8 + 1))[:size]
    source = tmp_path / "in.bin"
    source.write_bytes(plaintext)
    info = alice.blobs.upload(source, to=["bob"], recipients=[alice.recipient(), bob.recipient()])
    assert (info.state, info.owner, info.recipients) == ("ready", "alice", ("bob",))
    assert alice.objects.puts == puts
    assert info.size == age_size(plaintext, 2)
    for reader, name in ((bob, "bob.out"), (alice, "alice.out")):
        out = tmp_path / name
        reader.blobs.download(info.blob_id, out, identities=[reader.key])
        assert out.read_bytes() == plaintext
        assert out.stat().st_mode & 0o777 == 0o600


def age_size(plaintext: bytes, recipients: int) -> int:
    probe = age.encrypt_bytes(plaintext, [age.X25519Identity.generate().recipient()] * recipients)
    return len(probe)


def test_a_stream_of_unknown_length_is_spooled_as_ciphertext(users, monkeypatch) -> None:
    alice = users["alice"]

    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # type: ignore[override]
            chunk = self._data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

        def seekable(self) -> bool:
            return False

    plaintext = bytes(range(256)) * 4000
    info = alice.blobs.upload(Pipe(plaintext), recipients=[alice.recipient()])  # type: ignore[arg-type]
    out = io.BytesIO()
    alice.blobs.download(info.blob_id, out, identities=[alice.key])
    assert out.getvalue() == plaintext


def test_a_failed_download_leaves_no_file_behind(users, tmp_path: Path) -> None:
    alice, bob = users["alice"], users["bob"]
    info = alice.blobs.upload(
        io.BytesIO(b"for alice only" * 10_000), to=["bob"], recipients=[alice.recipient()]
    )
    out = tmp_path / "out.bin"
    with pytest.raises(age.NoIdentityMatch):
        bob.blobs.download(info.blob_id, out, identities=[bob.key])
    assert list(tmp_path.iterdir()) == []


# --- the checks -----------------------------------------------------------------------------


def test_a_plaintext_upload_is_rejected_deleted_and_never_served(raw, users) -> None:
    alice, bob = users["alice"], users["bob"]
    canary = b"CANARY plaintext that must never be served " * 100
    body = reserve(raw, alice, len(canary), ["bob"])
    assert put(body["upload"], canary) == 200
    reply = raw("POST", f"/v1/blobs/{body['blob_id']}/commit", token=alice.token)
    assert_error(reply, 422, "blob_rejected")
    owner_view = raw("GET", f"/v1/blobs/{body['blob_id']}", token=alice.token).json()
    assert owner_view["state"] == "rejected"
    assert owner_view["rejected_reason"] == "not_age"
    assert "download" not in owner_view
    recipient_view = raw("GET", f"/v1/blobs/{body['blob_id']}", token=bob.token).json()
    assert "rejected_reason" not in recipient_view
    assert "download" not in recipient_view
    assert owner_view["rejected_size"] == len(canary)
    assert "rejected_sha256" not in recipient_view
    assert versions() == []
    assert usage("alice") == (0, 0)
    assert bob.blobs.list_blobs("inbox").items == ()
    assert_error(
        raw("POST", f"/v1/blobs/{body['blob_id']}/commit", token=alice.token), 422, "blob_rejected"
    )


def test_an_upload_of_the_wrong_size_is_rejected(raw, users) -> None:
    alice = users["alice"]
    data = ciphertext(5000, alice)
    body = reserve(raw, alice, len(data))
    # moto doesn't enforce the signed Content-Length; S3 would refuse the PUT.
    assert (
        put(
            {**body["upload"], "headers": {"Content-Type": "application/octet-stream"}},
            data + b"extra",
        )
        == 200
    )
    assert_error(
        raw("POST", f"/v1/blobs/{body['blob_id']}/commit", token=alice.token), 422, "blob_rejected"
    )
    assert (
        raw("GET", f"/v1/blobs/{body['blob_id']}", token=alice.token).json()["rejected_reason"]
        == "size_mismatch"
    )


def test_presigned_puts_are_write_once(raw, users) -> None:
    alice = users["alice"]
    data = ciphertext(100, alice)
    body = reserve(raw, alice, len(data))
    assert put(body["upload"], data) == 200
    assert put(body["upload"], data) == 412
    assert len(versions("blobs/")) == 1


def test_commit_before_upload_changes_nothing(raw, users) -> None:
    alice = users["alice"]
    body = reserve(raw, alice, 1000)
    before = table_items(TABLES[0])
    assert_error(
        raw("POST", f"/v1/blobs/{body['blob_id']}/commit", token=alice.token), 409, "upload_missing"
    )
    assert table_items(TABLES[0]) == before


def test_a_multipart_upload_with_missing_parts_is_incomplete(raw, users) -> None:
    alice = users["alice"]
    data = ciphertext(11 * MIB, alice)
    body = reserve(raw, alice, len(data))
    upload = body["upload"]
    assert upload["kind"] == "multipart"
    first = upload["parts"][0]
    assert put(first, data[: int(first["headers"]["Content-Length"])]) == 200
    assert_error(
        raw("POST", f"/v1/blobs/{body['blob_id']}/commit", token=alice.token),
        409,
        "upload_incomplete",
    )


def test_uploads_nobody_commits_are_checked_from_the_s3_event(raw, users, chalice_client) -> None:
    alice = users["alice"]
    good, bad = ciphertext(3000, alice), b"not encrypted at all".ljust(3000, b".")
    good_blob = reserve(raw, alice, len(good))
    bad_blob = reserve(raw, alice, len(bad))
    assert put(good_blob["upload"], good) == 200
    assert put(bad_blob["upload"], bad) == 200
    # The S3 notifications moto queued, as Lambda would deliver them.
    assert drain_events(chalice_client) >= 2
    states = {
        blob["blob_id"]: raw("GET", f"/v1/blobs/{blob['blob_id']}", token=alice.token).json()
        for blob in (good_blob, bad_blob)
    }
    assert states[good_blob["blob_id"]]["state"] == "ready"
    assert states[bad_blob["blob_id"]]["state"] == "rejected"
    assert {v["Key"] for v in versions()} == {f"blobs/{good_blob['blob_id']}"}
    # The owner's later commit agrees with the event's verdict.
    assert raw("POST", f"/v1/blobs/{good_blob['blob_id']}/commit", token=alice.token).status == 200


def test_an_upload_after_delete_is_removed_by_the_event_handler(raw, users, chalice_client) -> None:
    alice = users["alice"]
    data = ciphertext(100, alice)
    body = reserve(raw, alice, len(data))
    assert raw("DELETE", f"/v1/blobs/{body['blob_id']}", token=alice.token).status == 204
    assert put(body["upload"], data) == 200  # the URL outlived its blob
    drain_events(chalice_client)
    assert versions() == []


# --- inline uploads -------------------------------------------------------------------------


def test_inline_content_is_checked_before_it_is_stored(raw, users) -> None:
    alice = users["alice"]
    data = ciphertext(1000, alice)
    blob_id = reserve(raw, alice, len(data))["blob_id"]
    path = f"/v1/blobs/{blob_id}/content"
    octets = {"Content-Type": "application/octet-stream"}
    assert_error(
        raw("PUT", path, data[:-1], token=alice.token, headers=octets), 400, "size_mismatch"
    )
    assert_error(
        raw("PUT", path, bytes(len(data)), token=alice.token, headers=octets),
        422,
        "not_age_ciphertext",
    )
    assert_error(raw("PUT", path, data, token=alice.token), 415, "unsupported_media_type")
    assert_error(
        raw("PUT", path, bytes(256 * 1024 + 1), token=alice.token, headers=octets),
        413,
        "payload_too_large",
    )
    assert versions() == []
    reply = raw("PUT", path, data, token=alice.token, headers=octets)
    assert reply.status == 200
    assert reply.json()["state"] == "ready"
    assert requests.get(reply.json()["download"]["url"], timeout=30).content == data
    assert_error(
        raw("PUT", path, data, token=alice.token, headers=octets), 409, "blob_not_reserved"
    )


# --- access -------------------------------------------------------------------------------------


def test_strangers_get_the_same_404_as_for_a_missing_blob(raw, users) -> None:
    alice, bob, carol = users["alice"], users["bob"], users["carol"]
    info = alice.blobs.upload(io.BytesIO(b"x" * 100), to=["bob"], recipients=[alice.recipient()])
    missing = raw("GET", "/v1/blobs/" + "Z" * 22, token=carol.token)
    malformed = raw("GET", "/v1/blobs/..%2F..%2Fetc", token=carol.token)
    hidden = raw("GET", f"/v1/blobs/{info.blob_id}", token=carol.token)
    assert_error(hidden, 404, "not_found")
    assert (hidden.status, hidden.body) == (missing.status, missing.body)
    assert malformed.status == 404
    assert raw("GET", f"/v1/blobs/{info.blob_id}", token=bob.token).status == 200
    reserved = alice.blobs.reserve(10, ["bob"]).blob_id
    for method, suffix, blob_id in (
        ("POST", "/commit", info.blob_id),
        ("DELETE", "", info.blob_id),
        ("PUT", "/recipients", info.blob_id),
        ("PUT", "/content", reserved),
    ):
        body: object = None
        headers = None
        if suffix == "/recipients":
            body = {"recipients": [], "version": 1}
        elif suffix == "/content":
            body, headers = b"x" * 10, {"Content-Type": "application/octet-stream"}
        path = f"/v1/blobs/{blob_id}{suffix}"
        assert_error(raw(method, path, body, token=carol.token, headers=headers), 404, "not_found")
        assert_error(raw(method, path, body, token=bob.token, headers=headers), 403, "not_owner")
    assert alice.blobs.get(reserved).state == "reserved"
    assert alice.blobs.get(info.blob_id).recipients == ("bob",)


ROUTES = [
    ("POST", "/v1/blobs", {"size": 10, "recipients": []}),
    ("GET", "/v1/blobs", None),
    ("GET", "/v1/blobs/{id}", None),
    ("DELETE", "/v1/blobs/{id}", None),
    ("POST", "/v1/blobs/{id}/commit", None),
    ("PUT", "/v1/blobs/{id}/recipients", {"recipients": [], "version": 2}),
    ("PUT", "/v1/blobs/{id}/content", b"x"),
]


def test_every_blob_route_wants_a_valid_access_token(raw, users) -> None:
    alice = users["alice"]
    blob_id = alice.blobs.upload(io.BytesIO(b"x"), recipients=[alice.recipient()]).blob_id
    before = table_items(TABLES[0])
    refresh = raw("POST", "/v1/sessions", {"username": "alice", "login_key": "A" * 43})
    bad_tokens = (None, "", "not-a-jwt", alice.token[:-4] + "AAAA", refresh.body.decode()[:30])
    for method, path, body in ROUTES:
        headers = {"Content-Type": "application/octet-stream"} if isinstance(body, bytes) else None
        for token in bad_tokens:
            reply = raw(method, path.replace("{id}", blob_id), body, token=token, headers=headers)
            assert reply.status == 401, (method, path)
            assert_error(reply, 401, "invalid_token")
    assert table_items(TABLES[0]) == before


def test_an_expired_access_token_is_refused_on_every_route(clock, api, transport, raw) -> None:
    alice = make_user(api, transport, "alice")
    blob_id = alice.blobs.upload(io.BytesIO(b"x"), recipients=[alice.recipient()]).blob_id
    clock.advance(int(STAGE_ENV["SEALBOX_ACCESS_TOKEN_TTL"]) + 120)
    before = table_items(TABLES[0])
    for method, path, body in ROUTES:
        headers = {"Content-Type": "application/octet-stream"} if isinstance(body, bytes) else None
        reply = raw(method, path.replace("{id}", blob_id), body, token=alice.token, headers=headers)
        assert_error(reply, 401, "invalid_token")
    assert table_items(TABLES[0]) == before


# --- sharing --------------------------------------------------------------------------------------


def test_recipients_change_by_header_replacement(raw, users, tmp_path: Path) -> None:
    alice, bob, carol = users["alice"], users["bob"], users["carol"]
    plaintext = b"shared later " * 50_000
    info = alice.blobs.upload(
        io.BytesIO(plaintext), to=["bob"], recipients=[alice.recipient(), bob.recipient()]
    )
    shared = alice.blobs.share(
        info.blob_id,
        ["carol"],
        identities=[alice.key],
        recipients=[alice.recipient(), carol.recipient()],
    )
    assert shared.recipients == ("carol",)
    assert shared.version == info.version + 1
    out = io.BytesIO()
    carol.blobs.download(info.blob_id, out, identities=[carol.key])
    assert out.getvalue() == plaintext
    assert_error(raw("GET", f"/v1/blobs/{info.blob_id}", token=bob.token), 404, "not_found")
    assert bob.blobs.list_blobs("inbox").items == ()
    assert [b.blob_id for b in carol.blobs.list_blobs("inbox").items] == [info.blob_id]
    # Only the new object version is left: bob's old header is gone too.
    assert shared.download is not None
    (version,) = versions("blobs/")
    assert f"versionId={version['VersionId']}" in shared.download.url
    stored = requests.get(shared.download.url, timeout=30).content
    s3_header = stored[: shared.header_length]
    with pytest.raises(age.NoIdentityMatch):
        age.rewrap_header(s3_header, [bob.key], [bob.recipient()])
    assert usage("alice")[0] == shared.size


def test_recipient_changes_are_compare_and_swap(raw, users) -> None:
    alice = users["alice"]
    info = alice.blobs.upload(
        io.BytesIO(b"x" * 1000), to=["bob", "carol"], recipients=[alice.recipient()]
    )
    path = f"/v1/blobs/{info.blob_id}/recipients"
    assert (
        raw("PUT", path, {"recipients": ["bob"], "version": info.version}, token=alice.token).status
        == 200
    )
    assert_error(
        raw("PUT", path, {"recipients": [], "version": info.version}, token=alice.token),
        409,
        "version_conflict",
    )
    assert_error(
        raw(
            "PUT",
            path,
            {"recipients": ["bob", "carol"], "version": info.version + 1},
            token=alice.token,
        ),
        400,
        "header_required",
    )


# --- idempotency, quotas, delete ------------------------------------------------------------


def test_a_retried_reservation_is_the_same_blob(raw, users) -> None:
    alice = users["alice"]
    request = {"size": 11 * MIB, "recipients": ["bob"], "idempotency_key": "retry-" + "k" * 20}
    first = raw("POST", "/v1/blobs", request, token=alice.token).json()
    again = raw("POST", "/v1/blobs", request, token=alice.token).json()
    assert again["blob_id"] == first["blob_id"]
    assert len(table_items(TABLES[0])) == 1
    assert usage("alice") == (11 * MIB, 1)
    uploads = aws_client("s3").list_multipart_uploads(Bucket=BUCKET)
    assert len(uploads.get("Uploads", [])) == 1
    assert_error(
        raw("POST", "/v1/blobs", {**request, "size": 12 * MIB}, token=alice.token),
        409,
        "idempotency_key_reused",
    )


@pytest.fixture
def small_quota(stack) -> None:
    settings = Settings.from_env({**STAGE_ENV, "AWS_REGION": "us-east-1"})
    blob_settings = dataclasses.replace(
        BlobSettings.from_env(STAGE_ENV), quota_bytes=10_000, quota_count=3
    )
    wiring.install(wiring.Container(settings, blob_settings=blob_settings))


def test_quotas_are_enforced_and_released(small_quota, raw, users) -> None:
    alice = users["alice"]
    assert_error(
        raw("POST", "/v1/blobs", {"size": 10_001, "recipients": []}, token=alice.token),
        413,
        "quota_bytes_exceeded",
    )
    blobs = [
        alice.blobs.upload(io.BytesIO(b"x" * 100), recipients=[alice.recipient()]) for _ in range(3)
    ]
    assert_error(
        raw("POST", "/v1/blobs", {"size": 10, "recipients": []}, token=alice.token),
        429,
        "quota_count_exceeded",
    )
    alice.blobs.delete(blobs[0].blob_id)
    rejected = reserve(raw, alice, 50)
    put(rejected["upload"], b"p" * 50)
    raw("POST", f"/v1/blobs/{rejected['blob_id']}/commit", token=alice.token)
    assert usage("alice")[1] == 2  # the rejected one released its charge
    reserve(raw, alice, 10)
    assert usage("alice")[1] == 3


def test_delete_removes_every_version_and_all_metadata(raw, users) -> None:
    alice = users["alice"]
    info = alice.blobs.upload(
        io.BytesIO(b"y" * 500_000), to=["bob"], recipients=[alice.recipient()]
    )
    alice.blobs.share(
        info.blob_id,
        ["bob", "carol"],
        identities=[alice.key],
        recipients=[alice.recipient(), users["carol"].recipient()],
    )
    # A stray version under the key (never served, but it must go too).
    aws_client("s3").put_object(Bucket=BUCKET, Key=f"blobs/{info.blob_id}", Body=b"stray")
    assert len(versions("blobs/")) == 2
    alice.blobs.delete(info.blob_id)
    assert versions() == []
    for table in TABLES[:2]:
        assert table_items(table) == []
    assert usage("alice") == (0, 0)
    with pytest.raises(ServerError) as gone:
        alice.blobs.get(info.blob_id)
    assert gone.value.status == 404


# --- listing and input validation ---------------------------------------------------------------


def test_listing_pages_through_outbox_and_inbox(users) -> None:
    alice, bob = users["alice"], users["bob"]
    ids = []
    for i in range(5):
        ids.append(
            alice.blobs.upload(
                io.BytesIO(bytes([i]) * 10), to=["bob"], recipients=[alice.recipient()]
            ).blob_id
        )
        time.sleep(0.001)
    page = alice.blobs.list_blobs("outbox", limit=2)
    assert len(page.items) == 2
    assert page.next_cursor is not None
    assert {b.blob_id for b in alice.blobs.iter_blobs("outbox", page_size=2)} == set(ids)
    assert {b.blob_id for b in bob.blobs.iter_blobs("inbox", page_size=3)} == set(ids)
    assert list(users["carol"].blobs.iter_blobs("inbox")) == []


BAD_QUERIES = [
    "?role=all",
    "?limit=0",
    "?limit=101",
    "?limit=x",
    "?cursor=nope",
    "?role=inbox&role=outbox",
    "?owner=alice",
    "?cursor=" + "A" * 300,
]


def test_bad_listing_queries_are_400(raw, users) -> None:
    for query in BAD_QUERIES:
        reply = raw("GET", "/v1/blobs" + query, token=users["alice"].token)
        assert reply.status == 400, query
        assert reply.json()["error"]["code"] in ("invalid_request", "invalid_cursor"), query


BAD_RESERVATIONS = [
    ({"size": 10}, 400, "invalid_request"),
    ({"size": 10, "recipients": [], "extra": 1}, 400, "invalid_request"),
    ({"size": "10", "recipients": []}, 400, "invalid_size"),
    ({"size": 0, "recipients": []}, 400, "invalid_size"),
    ({"size": 10, "recipients": ["ok-name", "../../x"]}, 400, "invalid_recipient"),
    ({"size": 10, "recipients": [f"u{i:03d}" for i in range(33)]}, 400, "too_many_recipients"),
    (
        {"size": 10, "recipients": [], "idempotency_key": "short"},
        400,
        "invalid_idempotency_key",
    ),
    ({"size": 6 * 1024**3, "recipients": []}, 413, "blob_too_large"),
    (b"{not json", 400, "invalid_request"),
    (b'{"size": 1, "size": 2, "recipients": []}', 400, "invalid_request"),
]


def test_bad_reservations_are_clear_errors_and_store_nothing(raw, users) -> None:
    for body, status, code in BAD_RESERVATIONS:
        reply = raw("POST", "/v1/blobs", body, token=users["alice"].token)
        assert reply.status == status, body
        assert_error(reply, status, code)
    for table in TABLES:
        assert table_items(table) == []
    assert versions() == []
    assert aws_client("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_the_sqs_handler_ignores_what_is_not_an_s3_report_for_its_bucket(
    raw, users, chalice_client
) -> None:
    alice = users["alice"]
    data = ciphertext(100, alice)
    body = reserve(raw, alice, len(data))
    put(body["upload"], data)
    bodies = [
        '{"Service": "Amazon S3", "Event": "s3:TestEvent"}',
        "not json",
        '{"Records": [{"eventName": "ObjectRemoved:Delete"}]}',
        '{"Records": [7]}',
        s3_event(body["blob_id"], bucket="someone-elses-bucket"),
        s3_event(body["blob_id"], key_prefix="quarantine/"),
    ]
    event = chalice_client.events.generate_sqs_event(message_bodies=bodies, queue_name="q")
    chalice_client.lambda_.invoke("blob_events", event)
    view = raw("GET", f"/v1/blobs/{body['blob_id']}", token=alice.token).json()
    assert view["state"] == "reserved"
    event = chalice_client.events.generate_sqs_event(
        message_bodies=[s3_event(body["blob_id"])], queue_name="q"
    )
    chalice_client.lambda_.invoke("blob_events", event)
    view = raw("GET", f"/v1/blobs/{body['blob_id']}", token=alice.token).json()
    assert view["state"] == "ready"


def test_blob_client_validates_its_own_arguments(transport) -> None:
    with pytest.raises(ValueError, match="inline_max"):
        BlobClient(transport, lambda: "t", inline_max=300_000)
    with pytest.raises(ValueError, match="resolver"):
        BlobClient(transport, lambda: "t").upload(io.BytesIO(b"x"), to=["bob"])


def test_sharing_a_large_blob_copies_its_payload_inside_s3(users) -> None:
    alice, bob = users["alice"], users["bob"]
    plaintext = bytes(range(256)) * (40 * 1024 + 7)  # ~10 MiB: past the in-memory rewrite
    info = alice.blobs.upload(io.BytesIO(plaintext), recipients=[alice.recipient()])
    shared = alice.blobs.share(
        info.blob_id,
        ["bob"],
        identities=[alice.key],
        recipients=[alice.recipient(), bob.recipient()],
    )
    assert shared.size == info.size + (shared.header_length or 0) - (info.header_length or 0)
    out = io.BytesIO()
    bob.blobs.download(info.blob_id, out, identities=[bob.key])
    assert out.getvalue() == plaintext
    assert len(versions("blobs/")) == 1
    assert aws_client("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_armored_blobs_can_lose_recipients_but_not_gain_them(raw, users) -> None:
    alice, bob = users["alice"], users["bob"]
    data = age.encrypt_bytes(b"armored" * 1000, [alice.recipient()], armor=True)
    body = reserve(raw, alice, len(data), ["bob", "carol"])
    assert put(body["upload"], data) == 200
    info = alice.blobs.commit(body["blob_id"])
    assert info.armored
    narrowed = alice.blobs.share(info.blob_id, ["bob"], identities=[alice.key])
    assert narrowed.recipients == ("bob",)
    with pytest.raises(InvalidInput, match="armored"):
        alice.blobs.share(info.blob_id, ["bob", "carol"], identities=[alice.key])
    out = io.BytesIO()
    alice.blobs.download(info.blob_id, out, identities=[alice.key])
    assert out.getvalue() == b"armored" * 1000
    assert_error(
        raw(
            "PUT",
            f"/v1/blobs/{info.blob_id}/recipients",
            {"recipients": ["bob"], "version": narrowed.version, "header": "AAAA"},
            token=alice.token,
        ),
        400,
        "invalid_header",
    )
    assert bob.blobs.get(info.blob_id).state == "ready"


def test_the_credential_is_checked_before_the_content_type(raw, users) -> None:
    alice = users["alice"]
    blob_id = alice.blobs.reserve(100, []).blob_id
    path = f"/v1/blobs/{blob_id}/content"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert_error(raw("PUT", path, b"x", headers=form), 401, "invalid_token")
    assert_error(raw("POST", "/v1/blobs", b"x", headers=form), 401, "invalid_token")
    reply = raw("PUT", path, b"x", token=alice.token, headers=form)
    assert_error(reply, 415, "unsupported_media_type")
    assert "application/octet-stream" in reply.json()["error"]["message"]


def test_a_throttled_s3_is_a_retryable_503_that_changes_nothing(raw, users) -> None:
    from botocore.exceptions import ClientError

    alice = users["alice"]
    data = ciphertext(500, alice)
    body = reserve(raw, alice, len(data))
    assert put(body["upload"], data) == 200
    throttled = {"on": True}

    def slow_down(**_: object) -> None:
        if throttled["on"]:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "x"}}, "HeadObject")

    wiring.container().s3.meta.events.register("before-call.s3.HeadObject", slow_down)
    reply = raw("POST", f"/v1/blobs/{body['blob_id']}/commit", token=alice.token)
    assert_error(reply, 503, "service_unavailable")
    assert int(reply.headers["retry-after"]) >= 1
    assert alice.blobs.get(body["blob_id"]).state == "reserved"
    throttled["on"] = False
    assert alice.blobs.commit(body["blob_id"]).state == "ready"
