"""A server that swaps or replays stored content: each attack, as a test.

Before sealed format 2 the signed payload bound the sender's and the
recipients' cards but not which blob it was or when it was sealed, and the
device never compared what it verified with the blob record.  A backend
operator who copies blob B's object under blob A, or edits a blob record,
made Bob's device show B's plaintext as a verified file in A's context (a
file to Bob and Carol shown as a private one to Bob).  Each test below plays
one such operator on moto and checks that the device refuses before any
plaintext is released.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from chalicelib.wire.blobids import derive_blob_id
from client_sim.device import Device
from client_sim.errors import ContextMismatch, InvalidInput, ServerError
from client_sim.passwords import PASSWORD_KDF_SIMULATION
from tests.functional.conftest import STAGE_ENV, aws_client
from tests.support.objects import MotoObjects, moto_objects

PASSWORD = "correct horse battery staple"
BUCKET = STAGE_ENV["SEALBOX_BLOBS_BUCKET"]
BLOBS_TABLE = STAGE_ENV["SEALBOX_BLOBS_TABLE"]


@pytest.fixture
def people(transport, tmp_path: Path) -> dict[str, Device]:
    devices = {}
    for name in ("alice", "bob", "carol"):
        device = Device(tmp_path / name, transport, kdf=PASSWORD_KDF_SIMULATION, **moto_objects())
        device.register(name, PASSWORD)
        devices[name] = device
    return devices


def _copy_object(source_blob: str, target_blob: str) -> None:
    """What an operator with bucket and table access does: B's bytes become
    A's content (a new version of A's object, which A's record then names)."""
    copied = aws_client("s3").copy_object(
        Bucket=BUCKET,
        Key=f"blobs/{target_blob}",
        CopySource={"Bucket": BUCKET, "Key": f"blobs/{source_blob}"},
    )
    _edit_record(
        target_blob,
        "SET object_version = :v, etag = :e",
        {":v": {"S": copied["VersionId"]}, ":e": {"S": copied["CopyObjectResult"]["ETag"]}},
    )


def _edit_record(blob_id: str, expression: str, values: dict[str, Any], **names: str) -> None:
    options: dict[str, Any] = {"ExpressionAttributeNames": names} if names else {}
    aws_client("dynamodb").update_item(
        TableName=BLOBS_TABLE,
        Key={"blob_id": {"S": blob_id}},
        UpdateExpression=expression,
        ExpressionAttributeValues=values,
        **options,
    )


def test_another_blobs_object_served_under_this_blob_is_refused(people, tmp_path) -> None:
    alice, bob = people["alice"], people["bob"]
    a = alice.upload(io.BytesIO(b"A: the meeting is at noon"), ["bob"])
    b = alice.upload(io.BytesIO(b"B: the meeting is cancelled!"), ["bob"])
    _copy_object(b.blob_id, a.blob_id)

    out = tmp_path / "a.txt"
    with pytest.raises(ContextMismatch) as info:
        bob.download(a.blob_id, out)
    assert info.value.reason == "context"
    assert not out.exists()
    stream = io.BytesIO()
    with pytest.raises(ContextMismatch):
        bob.download(a.blob_id, stream)
    assert stream.getvalue() == b""  # refused before any plaintext


def test_a_file_to_bob_and_carol_shown_as_private_to_bob_is_refused(people) -> None:
    alice, bob = people["alice"], people["bob"]
    group = alice.upload(io.BytesIO(b"to bob and carol"), ["bob", "carol"])
    # The operator drops Carol from the record: Bob would believe only he got it.
    _edit_record(group.blob_id, "SET recipients = :r", {":r": {"L": [{"S": "bob"}]}})
    assert bob.blob(group.blob_id).recipients == ("bob",)
    with pytest.raises(ContextMismatch) as info:
        bob.download(group.blob_id, io.BytesIO())
    assert info.value.reason == "recipients"


def test_a_record_naming_another_owner_is_refused(people) -> None:
    alice, bob = people["alice"], people["bob"]
    info = alice.upload(io.BytesIO(b"from alice"), ["bob"])
    _edit_record(info.blob_id, "SET #o = :o", {":o": {"S": "carol"}}, **{"#o": "owner"})
    with pytest.raises(ContextMismatch) as caught:
        bob.download(info.blob_id, io.BytesIO())
    assert caught.value.reason == "sender"


def test_an_old_file_presented_as_new_is_reported(people) -> None:
    alice, bob = people["alice"], people["bob"]
    info = alice.upload(io.BytesIO(b"last year's news"), ["bob"])
    # The record claims the blob was made two days after its content was sealed.
    _edit_record(
        info.blob_id, "SET created_at = :t", {":t": {"N": str(info.created_at + 2 * 86400)}}
    )
    with pytest.raises(ContextMismatch) as caught:
        bob.download(info.blob_id, io.BytesIO())
    assert caught.value.reason == "time"


def test_a_reservation_answering_another_blob_id_is_refused_before_upload(
    people, monkeypatch
) -> None:
    # A server that ignores the idempotency key would let one sealed file be
    # stored as a blob whose id it doesn't sign.
    from chalicelib.services.blobs import service

    alice = people["alice"]
    objects = alice._transfers._transfer._objects  # type: ignore[attr-defined]
    monkeypatch.setattr(service, "_derived_blob_id", lambda owner, key: "Z" * 22)
    with pytest.raises(ServerError) as info:
        alice.upload(io.BytesIO(b"x" * 300_000), ["bob"], idempotency_key="k" * 20)
    assert info.value.code == "malformed"
    assert objects.puts == 0  # nothing was sent


def test_the_blob_id_is_signed_into_the_content(people) -> None:
    alice, bob = people["alice"], people["bob"]
    info = alice.upload(io.BytesIO(b"hello"), ["bob"], idempotency_key="key_for_the_test_1")
    assert info.blob_id == derive_blob_id("alice", "key_for_the_test_1")
    sender = bob.download(info.blob_id, io.BytesIO())
    assert sender.context == f"sealbox/v1/blob-context/{info.blob_id}"
    assert sender.recipients == ("alice", "bob")
    assert sender.sealed_at_ms is not None
    assert abs(sender.sealed_at_ms / 1000 - info.created_at) < 60


def test_a_removed_reader_loses_the_file_and_its_old_download_url(people) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    info = alice.upload(io.BytesIO(b"for now, both of you"), ["bob", "carol"])
    earlier = bob.blob(info.blob_id)  # Bob holds a fresh download URL
    assert earlier.download is not None
    narrowed = alice.share(info.blob_id, ["carol"])
    assert narrowed.blob_id != info.blob_id  # re-sealed under a new file key
    with MotoObjects().get(earlier.download.url) as response:
        assert response.status == 404  # every version of the old object is gone
    with pytest.raises(ServerError):
        bob.blob(narrowed.blob_id)
    assert carol.download(narrowed.blob_id, io.BytesIO()).recipients == ("alice", "carol")


def test_messages_carry_an_app_context_that_decrypt_checks(people) -> None:
    alice, bob = people["alice"], people["bob"]
    sealed = alice.encrypt(b"see you at 5", ["bob"], context="chat/42/msg/7")
    opened = bob.decrypt(sealed, context="chat/42/msg/7")
    assert opened.plaintext == b"see you at 5"
    assert opened.sender.context == "chat/42/msg/7"
    # Replayed into another conversation or slot: refused, nothing returned.
    with pytest.raises(ContextMismatch) as info:
        bob.decrypt(sealed, context="chat/42/msg/8")
    assert info.value.reason == "context"
    # A message sealed without a context is refused where one is expected.
    bare = alice.encrypt(b"no context", ["bob"])
    with pytest.raises(ContextMismatch):
        bob.decrypt(bare, context="chat/42/msg/7")
    assert bob.decrypt(bare).sender.context == ""


@pytest.mark.parametrize("context", ["", "with space", "sealbox/v1/blob-context/x", "\x1b[2J"])
def test_an_app_context_is_printable_and_not_in_sealbox_namespace(people, context) -> None:
    with pytest.raises(InvalidInput):
        people["alice"].encrypt(b"m", ["bob"], context=context)
