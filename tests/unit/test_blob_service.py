"""The blob service alone: state machine, quotas, idempotency, sharing, races.

In-memory stores (tests/support/blob_fakes.py) stand in for DynamoDB and S3;
the functional tests run the same flows on moto.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from typing import Any

import pytest

from chalicelib.config import BlobSettings
from chalicelib.errors import (
    BlobArmored,
    BlobHeaderRequired,
    BlobIdempotencyConflict,
    BlobNotOwner,
    BlobNotReady,
    BlobNotReserved,
    BlobQuotaBytesExceeded,
    BlobQuotaCountExceeded,
    BlobRejected,
    BlobReservationExpired,
    BlobSizeMismatch,
    BlobTooLarge,
    BlobUploadExists,
    BlobUploadIncomplete,
    BlobUploadMissing,
    BlobVersionConflict,
    InvalidBlobHeader,
    InvalidBlobSize,
    InvalidCursor,
    InvalidIdempotencyKey,
    InvalidRecipient,
    InvalidRequest,
    NotAgeCiphertext,
    NotFound,
    ServiceUnavailable,
    TooManyRecipients,
)
from chalicelib.services.blobs import (
    MAX_RECIPIENTS,
    BlobService,
    BlobState,
    InvalidTransition,
    Verdict,
    part_sizes,
    transition,
)
from chalicelib.wire.agefile import sniff
from chalicelib.wire.b64 import b64url_encode
from client_sim import age
from tests.support.blob_fakes import MemoryBlobs, MemoryObjects
from tests.support.fakes import FakeClock

MIB = 1024 * 1024
ALICE_KEY = age.X25519Identity.generate()
BOB_KEY = age.X25519Identity.generate()
SETTINGS = BlobSettings(
    bucket="b",
    table="t",
    grants_table="g",
    usage_table="u",
    events_queue="q",
    part_size=5 * MIB,
    quota_bytes=20 * MIB,
    quota_count=5,
)


@dataclasses.dataclass
class World:
    service: BlobService
    blobs: MemoryBlobs
    objects: MemoryObjects
    clock: FakeClock


def make_world(**changes: Any) -> World:
    blobs, objects, clock = MemoryBlobs(), MemoryObjects(), FakeClock()
    counter = itertools.count()
    service = BlobService(
        blobs,
        objects,
        dataclasses.replace(SETTINGS, **changes),
        clock=clock,
        random_bytes=lambda n: next(counter).to_bytes(n, "big"),
    )
    return World(service, blobs, objects, clock)


@pytest.fixture
def world() -> World:
    return make_world()


def ciphertext(size: int = 1000, *, armor: bool = False) -> bytes:
    return age.encrypt_bytes(bytes(size), [ALICE_KEY.recipient()], armor=armor)


def _with_plain_payload(data: bytes, filler: bytes, *, armor: bool = False) -> bytes:
    """``data``'s valid age header and nonce in front of plaintext of the
    same length: the shape passes, the payload is clearly not ciphertext."""
    start = sniff(data).header_length + 16
    plain = (filler * (len(data) // len(filler) + 1))[: len(data) - start]
    return data[:start] + plain


def ready_blob(world: World, data: bytes | None = None, recipients=("bob",)) -> str:
    data = data if data is not None else ciphertext()
    reservation = world.service.reserve("alice", size=len(data), recipients=list(recipients))
    blob_id = reservation.record.blob_id
    world.objects.device_put(blob_id, data)
    assert world.service.commit("alice", blob_id).record.state is BlobState.READY
    return blob_id


# --- the state machine ------------------------------------------------------------


def test_transitions_are_exactly_reserved_to_ready_or_rejected() -> None:
    assert transition(BlobState.RESERVED, Verdict.ACCEPT) is BlobState.READY
    assert transition(BlobState.RESERVED, Verdict.REJECT) is BlobState.REJECTED
    for state in (BlobState.READY, BlobState.REJECTED):
        for verdict in Verdict:
            with pytest.raises(InvalidTransition):
                transition(state, verdict)


def test_part_sizes_cover_the_blob() -> None:
    assert part_sizes(10, 4) == [4, 4, 2]
    assert part_sizes(8, 4) == [4, 4]
    assert part_sizes(3, 4) == [3]


# --- reserve ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"size": 0}, InvalidBlobSize),
        ({"size": -1}, InvalidBlobSize),
        ({"size": True}, InvalidBlobSize),
        ({"size": 1.5}, InvalidBlobSize),
        ({"size": "10"}, InvalidBlobSize),
        ({"size": 6 * 1024**3}, BlobTooLarge),
        ({"recipients": "bob"}, InvalidRecipient),
        ({"recipients": ["bob", 7]}, InvalidRecipient),
        ({"recipients": ["../etc"]}, InvalidRecipient),
        ({"recipients": [f"user{i:03d}" for i in range(MAX_RECIPIENTS + 1)]}, TooManyRecipients),
        ({"recipients": ["bob"] * 1000}, TooManyRecipients),
        ({"idempotency_key": "short"}, InvalidIdempotencyKey),
        ({"idempotency_key": "x" * 16 + "/"}, InvalidIdempotencyKey),
        ({"idempotency_key": 12345678901234567}, InvalidIdempotencyKey),
    ],
)
def test_bad_reservations_store_nothing(world: World, fields: dict, error: type) -> None:
    request = {"size": 100, "recipients": ["bob"], **fields}
    with pytest.raises(error):
        world.service.reserve("alice", **request)
    assert world.blobs.records == {}
    assert world.blobs.usage("alice").blobs == 0


def test_recipients_are_normalised_deduplicated_and_sorted(world: World) -> None:
    reservation = world.service.reserve(
        "alice", size=100, recipients=["Carol", "bob", "BOB", "ｃａｒｏｌ"]
    )
    assert reservation.record.recipients == ("bob", "carol")


def test_small_blobs_get_one_put_and_large_ones_parts(world: World) -> None:
    small = world.service.reserve("alice", size=5 * MIB, recipients=[])
    assert small.plan is not None
    assert small.plan.kind == "single"
    large = world.service.reserve("alice", size=12 * MIB, recipients=[])
    assert large.plan is not None
    assert large.plan.kind == "multipart"
    assert [t.headers["Content-Length"] for t in large.plan.targets] == [
        str(5 * MIB),
        str(5 * MIB),
        str(2 * MIB),
    ]


def test_part_count_is_bounded_by_growing_the_part_size() -> None:
    world = make_world(max_size=5 * 1024**3, quota_bytes=10 * 1024**3)
    reservation = world.service.reserve("alice", size=5 * 1024**3, recipients=[])
    assert reservation.plan is not None
    assert len(reservation.plan.targets) <= 100
    assert reservation.plan.part_size is not None
    assert reservation.plan.part_size % MIB == 0


def test_upload_urls_never_outlive_the_reservation() -> None:
    world = make_world(reservation_ttl=600, upload_url_ttl=900)
    reservation = world.service.reserve("alice", size=10, recipients=[])
    assert reservation.plan is not None
    assert reservation.plan.expires_in == 600


def test_quota_bytes_and_count_are_enforced_and_change_nothing(world: World) -> None:
    world.service.reserve("alice", size=15 * MIB, recipients=[])
    with pytest.raises(BlobQuotaBytesExceeded):
        world.service.reserve("alice", size=6 * MIB, recipients=[])
    for _ in range(4):
        world.service.reserve("alice", size=10, recipients=[])
    with pytest.raises(BlobQuotaCountExceeded):
        world.service.reserve("alice", size=10, recipients=[])
    assert world.blobs.usage("alice") == type(world.blobs.usage("alice"))(15 * MIB + 40, 5)
    # Another user's quota is separate.
    world.service.reserve("bob", size=15 * MIB, recipients=[])


def test_expired_reservations_are_reclaimed_when_the_quota_is_reached(world: World) -> None:
    for _ in range(5):
        world.service.reserve("alice", size=10, recipients=[])
    with pytest.raises(BlobQuotaCountExceeded):
        world.service.reserve("alice", size=10, recipients=[])
    world.clock.advance(SETTINGS.reservation_ttl + 1)
    world.service.reserve("alice", size=10, recipients=[])
    assert world.blobs.usage("alice").blobs == 1
    assert len(world.blobs.records) == 1


def test_an_idempotent_retry_returns_the_same_blob_and_charges_once(world: World) -> None:
    key = "k" * 20
    first = world.service.reserve("alice", size=100, recipients=["bob"], idempotency_key=key)
    again = world.service.reserve("alice", size=100, recipients=["bob"], idempotency_key=key)
    assert again.record.blob_id == first.record.blob_id
    assert again.plan is not None  # fresh URLs for the same upload
    assert world.blobs.usage("alice").blobs == 1
    with pytest.raises(BlobIdempotencyConflict):
        world.service.reserve("alice", size=101, recipients=["bob"], idempotency_key=key)
    # The same key from another owner is another blob.
    other = world.service.reserve("bob", size=100, recipients=["bob"], idempotency_key=key)
    assert other.record.blob_id != first.record.blob_id


def test_a_retry_after_the_upload_finished_returns_the_blob_without_upload(world: World) -> None:
    key = "k" * 20
    data = ciphertext()
    first = world.service.reserve("alice", size=len(data), recipients=[], idempotency_key=key)
    world.objects.device_put(first.record.blob_id, data)
    world.service.commit("alice", first.record.blob_id)
    again = world.service.reserve("alice", size=len(data), recipients=[], idempotency_key=key)
    assert again.plan is None
    assert again.record.state is BlobState.READY


def test_a_retry_of_an_expired_reservation_with_an_unchecked_upload_checks_it(
    world: World,
) -> None:
    key = "k" * 20
    data = ciphertext()
    first = world.service.reserve("alice", size=len(data), recipients=[], idempotency_key=key)
    world.objects.device_put(first.record.blob_id, data)  # its S3 event never arrived
    world.clock.advance(SETTINGS.reservation_ttl)
    again = world.service.reserve("alice", size=len(data), recipients=[], idempotency_key=key)
    assert again.plan is None
    assert again.record.state is BlobState.READY


def test_a_retry_of_an_expired_unused_reservation_starts_over(world: World) -> None:
    key = "k" * 20
    first = world.service.reserve("alice", size=100, recipients=[], idempotency_key=key)
    world.clock.advance(SETTINGS.reservation_ttl)
    again = world.service.reserve("alice", size=100, recipients=[], idempotency_key=key)
    assert again.record.blob_id == first.record.blob_id
    assert again.record.created_at > first.record.created_at
    assert world.blobs.usage("alice").blobs == 1


# --- upload and check ------------------------------------------------------------------


def test_commit_of_a_valid_upload_makes_it_ready(world: World) -> None:
    data = ciphertext(70_000)
    reservation = world.service.reserve("alice", size=len(data), recipients=["bob"])
    blob_id = reservation.record.blob_id
    with pytest.raises(BlobUploadMissing):
        world.service.commit("alice", blob_id)
    version = world.objects.device_put(blob_id, data)
    view = world.service.commit("alice", blob_id)
    assert view.record.state is BlobState.READY
    assert view.record.object_version == version
    assert view.record.header_length == sniff(data).header_length
    assert view.download_url is not None
    assert f"versionId={version}" in view.download_url
    assert world.blobs.grants == {("bob", view.record.created_key): blob_id}
    # Idempotent.
    assert world.service.commit("alice", blob_id).record == view.record


@pytest.mark.parametrize(
    ("upload", "why"),
    [
        (lambda data: data + b"x", "size_mismatch"),
        (lambda data: b"plain text, not encrypted".ljust(len(data), b"!"), "not_age"),
        (lambda data: data[:-1] + b"\x00\x00", "size_mismatch"),
        (lambda data: _with_plain_payload(data, b"\x00"), "payload_not_random"),
        (
            lambda data: _with_plain_payload(data, b"Dear Bob, the code is 4242. "),
            "payload_not_random",
        ),
    ],
)
def test_bad_uploads_are_rejected_deleted_and_released(world: World, upload, why) -> None:
    data = ciphertext()
    reservation = world.service.reserve("alice", size=len(data), recipients=["bob"])
    blob_id = reservation.record.blob_id
    bad = upload(data)
    world.objects.device_put(blob_id, bad)
    with pytest.raises(BlobRejected):
        world.service.commit("alice", blob_id)
    record = world.blobs.records[blob_id]
    assert record.state is BlobState.REJECTED
    assert record.reject_reason == why
    assert (record.rejected_size, record.rejected_sha256) == (
        len(bad),
        hashlib.sha256(bad).hexdigest(),
    )
    assert not record.charge_held
    assert blob_id not in world.objects.content
    assert blob_id not in world.objects.quarantined
    assert world.blobs.usage("alice").blobs == 0
    assert world.blobs.grants == {}
    assert world.service.view("alice", blob_id).download_url is None
    with pytest.raises(BlobRejected):
        world.service.commit("alice", blob_id)
    # Deleting a rejected blob doesn't release its quota a second time.
    world.service.delete("alice", blob_id)
    assert world.blobs.usage("alice") == type(world.blobs.usage("alice"))(0, 0)


def test_the_event_check_settles_uploads_nobody_commits(world: World) -> None:
    data = ciphertext()
    good = world.service.reserve("alice", size=len(data), recipients=[]).record.blob_id
    bad = world.service.reserve("alice", size=len(data), recipients=[]).record.blob_id
    world.objects.device_put(good, data)
    world.objects.device_put(bad, bytes(len(data)))
    world.service.inspect_upload(good, None)
    world.service.inspect_upload(bad, None)
    world.service.inspect_upload(bad, None)  # S3 may report twice
    assert world.blobs.records[good].state is BlobState.READY
    assert world.blobs.records[bad].state is BlobState.REJECTED
    assert world.service.commit("alice", good).record.state is BlobState.READY


def test_the_event_check_removes_content_whose_blob_is_gone(world: World) -> None:
    blob_id = b64url_encode(bytes(range(16)))
    world.objects.device_put(blob_id, b"uploaded with a URL that outlived its blob")
    world.service.inspect_upload(blob_id, None)
    assert world.objects.latest(blob_id) is None
    world.service.inspect_upload("../../etc/passwd", None)  # ignored


def test_a_lost_settle_race_returns_the_winners_verdict(world: World) -> None:
    data = ciphertext()
    blob_id = world.service.reserve("alice", size=len(data), recipients=[]).record.blob_id
    world.objects.device_put(blob_id, data)
    stale = world.blobs.records[blob_id]  # a commit read the record ...
    world.service.inspect_upload(blob_id, None)  # ... then the event check settled it
    winner = world.blobs.records[blob_id]
    stored = world.objects.head(blob_id)
    assert stored is not None
    for verdict in Verdict:
        settled = world.service._settle(stale, verdict, stored=stored, info=sniff(data))
        assert settled == winner
    assert world.objects.latest(blob_id) == data  # the loser's REJECT quarantined nothing


def test_multipart_uploads_are_checked_part_by_part(world: World) -> None:
    data = ciphertext(11 * MIB)
    reservation = world.service.reserve("alice", size=len(data), recipients=[])
    record = reservation.record
    assert record.upload_id is not None
    sizes = part_sizes(len(data), 5 * MIB)
    world.objects.device_put_part(record.upload_id, 1, data[: sizes[0]])
    with pytest.raises(BlobUploadIncomplete):
        world.service.commit("alice", record.blob_id)
    offset = sizes[0]
    for number, size in enumerate(sizes[1:], start=2):
        world.objects.device_put_part(record.upload_id, number, data[offset : offset + size])
        offset += size
    view = world.service.commit("alice", record.blob_id)
    assert view.record.state is BlobState.READY
    assert view.record.upload_id is None
    assert world.objects.latest(record.blob_id) == data


def test_a_part_of_the_wrong_size_rejects_the_upload(world: World) -> None:
    data = ciphertext(11 * MIB)
    record = world.service.reserve("alice", size=len(data), recipients=[]).record
    assert record.upload_id is not None
    world.objects.device_put_part(record.upload_id, 1, data[: 5 * MIB + 1])
    with pytest.raises(BlobRejected):
        world.service.commit("alice", record.blob_id)
    assert world.blobs.records[record.blob_id].reject_reason == "size_mismatch"
    assert record.upload_id not in world.objects.uploads


def test_inline_uploads_check_everything_before_storing(world: World) -> None:
    data = ciphertext()
    blob_id = world.service.reserve("alice", size=len(data), recipients=[]).record.blob_id
    with pytest.raises(BlobSizeMismatch):
        world.service.upload_inline("alice", blob_id, data + b"x")
    with pytest.raises(NotAgeCiphertext):
        world.service.upload_inline("alice", blob_id, bytes(len(data)))
    assert world.objects.latest(blob_id) is None
    assert world.blobs.records[blob_id].state is BlobState.RESERVED
    view = world.service.upload_inline("alice", blob_id, data)
    assert view.record.state is BlobState.READY
    with pytest.raises(BlobNotReserved):
        world.service.upload_inline("alice", blob_id, data)


def test_inline_upload_after_a_presigned_one_is_refused(world: World) -> None:
    data = ciphertext()
    blob_id = world.service.reserve("alice", size=len(data), recipients=[]).record.blob_id
    world.objects.device_put(blob_id, data)
    with pytest.raises(BlobUploadExists):
        world.service.upload_inline("alice", blob_id, data)


def test_inline_is_for_small_blobs_only(world: World) -> None:
    blob_id = world.service.reserve("alice", size=300_000, recipients=[]).record.blob_id
    with pytest.raises(BlobTooLarge):
        world.service.upload_inline("alice", blob_id, bytes(300_000))


def test_late_uploads_find_the_reservation_reclaimed(world: World) -> None:
    data = ciphertext()
    first = world.service.reserve("alice", size=len(data), recipients=[]).record.blob_id
    second = world.service.reserve("alice", size=len(data), recipients=[]).record.blob_id
    world.clock.advance(SETTINGS.reservation_ttl)
    with pytest.raises(BlobReservationExpired):
        world.service.upload_inline("alice", first, data)
    with pytest.raises(BlobReservationExpired):
        world.service.commit("alice", second)
    assert world.blobs.records == {}
    assert world.blobs.usage("alice").blobs == 0


# --- who sees what --------------------------------------------------------------------------


def test_strangers_get_the_answer_a_missing_blob_gets(world: World) -> None:
    blob_id = ready_blob(world)
    for caller, blob in (("mallory", blob_id), ("alice", "Z" * 22), ("alice", "../x")):
        with pytest.raises(NotFound) as refused:
            world.service.view(caller, blob)
        assert (refused.value.status, refused.value.code, refused.value.message) == (
            404,
            "not_found",
            "Not found.",
        )
    assert world.service.view("bob", blob_id).download_url is not None
    with pytest.raises(BlobNotOwner):
        world.service.delete("bob", blob_id)
    with pytest.raises(NotFound):
        world.service.delete("mallory", blob_id)


def test_listings_page_newest_first_with_cursors_bound_to_the_role(world: World) -> None:
    ids = []
    for _ in range(5):
        ids.append(ready_blob(world))
        world.clock.advance(1)
    page = world.service.list_blobs("alice", role="outbox", limit="2", cursor=None)
    assert [r.blob_id for r in page.items] == ids[::-1][:2]
    seen = [r.blob_id for r in page.items]
    while page.next_cursor:
        page = world.service.list_blobs("alice", role="outbox", limit="2", cursor=page.next_cursor)
        seen += [r.blob_id for r in page.items]
    assert seen == ids[::-1]
    inbox = world.service.list_blobs("bob", role="inbox", limit=None, cursor=None)
    assert {r.blob_id for r in inbox.items} == set(ids)
    first = world.service.list_blobs("alice", role="outbox", limit="1", cursor=None)
    assert first.next_cursor is not None
    with pytest.raises(InvalidCursor):
        world.service.list_blobs("bob", role="inbox", limit=None, cursor=first.next_cursor)
    for limit in ("0", "101", "-1", "1.5", "ten", ""):
        with pytest.raises(InvalidRequest):
            world.service.list_blobs("alice", role="outbox", limit=limit, cursor=None)
    for cursor in ("", "!!", "b3V0Ym94OnRvbw", "A" * 300):
        with pytest.raises(InvalidCursor):
            world.service.list_blobs("alice", role="outbox", limit=None, cursor=cursor)
    with pytest.raises(InvalidRequest):
        world.service.list_blobs("alice", role="everything", limit=None, cursor=None)


# --- sharing ------------------------------------------------------------------------------


def rewrapped(data: bytes, *recipients: age.X25519Identity) -> bytes:
    header = data[: sniff(data).header_length]
    return age.rewrap_header(header, [ALICE_KEY], [r.recipient() for r in recipients])


def test_removing_recipients_needs_no_header_but_adding_does(world: World) -> None:
    blob_id = ready_blob(world, recipients=("bob", "carol"))
    record = world.blobs.records[blob_id]
    view = world.service.set_recipients(
        "alice", blob_id, recipients=["bob"], version=record.version
    )
    assert view.record.recipients == ("bob",)
    assert ("carol", record.created_key) not in world.blobs.grants
    with pytest.raises(BlobHeaderRequired):
        world.service.set_recipients(
            "alice", blob_id, recipients=["bob", "carol"], version=view.record.version
        )
    with pytest.raises(BlobVersionConflict):
        world.service.set_recipients("alice", blob_id, recipients=[], version=record.version)


def test_a_new_header_replaces_the_stored_one_and_the_old_version_goes(world: World) -> None:
    data = ciphertext(5000)
    blob_id = ready_blob(world, data, recipients=())
    record = world.blobs.records[blob_id]
    header = rewrapped(data, ALICE_KEY, BOB_KEY)
    view = world.service.set_recipients(
        "alice",
        blob_id,
        recipients=["bob"],
        version=record.version,
        header=b64url_encode(header),
    )
    stored = world.objects.latest(blob_id)
    assert stored is not None
    assert [v.version_id for v in world.objects.content[blob_id]] == [view.record.object_version]
    assert age.decrypt_bytes(stored, [BOB_KEY]) == bytes(5000)
    assert view.record.size == len(stored)
    assert view.record.header_length == len(header)
    assert world.blobs.usage("alice").bytes == len(stored)


def test_a_failed_recipient_change_leaves_no_new_version(world: World) -> None:
    data = ciphertext(5000)
    blob_id = ready_blob(world, data, recipients=())
    record = world.blobs.records[blob_id]
    header = b64url_encode(rewrapped(data, ALICE_KEY, BOB_KEY))
    real_update = world.blobs.update_recipients

    def concurrent_change_first(before, after, *, quota):
        # Another request changes the blob between our S3 write and our record write.
        stored = world.blobs.records[blob_id]
        world.blobs.records[blob_id] = dataclasses.replace(stored, version=stored.version + 1)
        return real_update(before, after, quota=quota)

    world.blobs.update_recipients = concurrent_change_first  # type: ignore[method-assign]
    with pytest.raises(BlobVersionConflict):
        world.service.set_recipients(
            "alice", blob_id, recipients=["bob"], version=record.version, header=header
        )
    assert [v.version_id for v in world.objects.content[blob_id]] == [record.object_version]
    assert world.objects.latest(blob_id) == data


def test_a_header_that_grows_past_the_quota_is_refused() -> None:
    world = make_world(quota_bytes=6000)
    data = ciphertext(5000)
    blob_id = ready_blob(world, data, recipients=())
    record = world.blobs.records[blob_id]
    many = [age.X25519Identity.generate() for _ in range(20)]
    header = b64url_encode(rewrapped(data, *many))
    with pytest.raises(BlobQuotaBytesExceeded):
        world.service.set_recipients(
            "alice", blob_id, recipients=[], version=record.version, header=header
        )
    assert world.objects.latest(blob_id) == data


@pytest.mark.parametrize(
    "header",
    [7, "not base64!", b64url_encode(b"hello"), b64url_encode(ciphertext()), "A" * 100_000],
)
def test_malformed_headers_are_refused(world: World, header: object) -> None:
    blob_id = ready_blob(world)
    version = world.blobs.records[blob_id].version
    with pytest.raises(InvalidBlobHeader):
        world.service.set_recipients(
            "alice", blob_id, recipients=["bob"], version=version, header=header
        )


def test_only_ready_binary_blobs_take_a_new_header(world: World) -> None:
    data = ciphertext()
    header = b64url_encode(rewrapped(data, BOB_KEY))
    reserved = world.service.reserve("alice", size=10, recipients=[]).record.blob_id
    with pytest.raises(BlobNotReady):
        world.service.set_recipients("alice", reserved, recipients=[], version=1, header=header)
    armored = ready_blob(world, ciphertext(armor=True), recipients=())
    version = world.blobs.records[armored].version
    with pytest.raises(BlobArmored):
        world.service.set_recipients(
            "alice", armored, recipients=["bob"], version=version, header=header
        )
    for bad in (0, True, "2", None):
        with pytest.raises(InvalidRequest):
            world.service.set_recipients("alice", armored, recipients=[], version=bad)


# --- delete -------------------------------------------------------------------------------


def test_delete_removes_content_record_grants_and_charge(world: World) -> None:
    blob_id = ready_blob(world)
    world.service.delete("alice", blob_id)
    assert world.blobs.records == {}
    assert world.blobs.grants == {}
    assert world.objects.content.get(blob_id) is None
    assert world.blobs.usage("alice") == type(world.blobs.usage("alice"))(0, 0)
    with pytest.raises(NotFound):
        world.service.delete("alice", blob_id)


def test_delete_aborts_an_unfinished_multipart_upload(world: World) -> None:
    record = world.service.reserve("alice", size=11 * MIB, recipients=[]).record
    assert record.upload_id in world.objects.uploads
    world.service.delete("alice", record.blob_id)
    assert record.upload_id not in world.objects.uploads
    assert world.blobs.usage("alice").blobs == 0


def test_a_failed_deletion_keeps_the_quota_charged_until_a_retry_deletes(world: World) -> None:
    plain = b"plain text, not encrypted".ljust(len(ciphertext()), b"!")
    blob_id = world.service.reserve("alice", size=len(plain), recipients=[]).record.blob_id
    world.objects.device_put(blob_id, plain)
    world.objects.fail_purges = 1
    with pytest.raises(BlobRejected):
        world.service.commit("alice", blob_id)
    held = world.blobs.records[blob_id]
    assert held.state is BlobState.REJECTED
    assert held.charge_held
    assert held.rejected_sha256 == hashlib.sha256(plain).hexdigest()
    assert world.objects.latest(blob_id) == plain
    assert world.blobs.usage("alice") == type(world.blobs.usage("alice"))(len(plain), 1)
    # The S3 event's retry fails again: it raises, so SQS redelivers.
    world.objects.fail_purges = 1
    with pytest.raises(ServiceUnavailable):
        world.service.inspect_upload(blob_id, None)
    assert world.blobs.usage("alice").blobs == 1
    # The redelivery deletes and releases; a further one releases nothing.
    world.service.inspect_upload(blob_id, None)
    world.service.inspect_upload(blob_id, None)
    assert world.objects.latest(blob_id) is None
    assert not world.blobs.records[blob_id].charge_held
    assert world.blobs.usage("alice") == type(world.blobs.usage("alice"))(0, 0)
