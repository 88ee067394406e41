"""The ledger judges every delivery: exact bytes, verified signer, addressee."""

from __future__ import annotations

import random

import pytest

from sealbox_tools.fleet.ledger import MAGIC, Ledger, make_content, message_id_of

CANARY = "CANARY-test-0-1-0123456789abcdef0123"


@pytest.mark.parametrize("kind", ["message", "file"])
@pytest.mark.parametrize("size", [64, 200, 5000, 100_000])
def test_content_has_the_size_the_id_and_the_canary(kind: str, size: int) -> None:
    content = make_content(kind, "run.7.3", size, CANARY, random.Random(1))
    assert len(content) == max(size, len(MAGIC) + len("run.7.3\n") + len(CANARY))
    assert message_id_of(content) == "run.7.3"
    assert CANARY.encode() in content
    assert content == make_content(kind, "run.7.3", size, CANARY, random.Random(1))
    if kind == "message":
        content.decode("ascii")  # messages are text


def test_content_refuses_bad_ids_and_kinds() -> None:
    with pytest.raises(ValueError, match="message ids"):
        make_content("message", "has space", 100, CANARY, random.Random(1))
    with pytest.raises(ValueError, match="kind"):
        make_content("video", "id", 100, CANARY, random.Random(1))
    assert message_id_of(b"no header here") is None
    assert message_id_of(MAGIC + b"bad id!\n") is None


def ledger_with_one() -> tuple[Ledger, bytes]:
    ledger = Ledger()
    content = make_content("message", "m.1", 300, CANARY, random.Random(2))
    ledger.expect(
        "m.1",
        sender="alice",
        recipients=["bob", "carol"],
        content=content,
        kind="message",
        canary=CANARY,
    )
    return ledger, content


def test_deliveries_are_counted_once_per_recipient() -> None:
    ledger, content = ledger_with_one()
    assert ledger.undelivered() == []  # not sent yet: nothing is owed
    ledger.sent("m.1", "blob-1")
    assert ledger.expected_deliveries() == 2
    assert ledger.judge("bob", content, "alice", blob_id="blob-1") == "delivered"
    assert ledger.judge("bob", content, "alice", blob_id="blob-1") == "duplicate"
    assert ledger.undelivered() == [("m.1", "carol")]
    assert ledger.judge("carol", content, "alice", blob_id="blob-1") == "delivered"
    assert ledger.undelivered() == []
    assert ledger.delivered() == 2
    assert ledger.completed() == 1
    assert ledger.canaries() == [("m.1", CANARY)]


def test_every_kind_of_wrong_delivery_is_a_mismatch() -> None:
    ledger, content = ledger_with_one()
    ledger.sent("m.1", "blob-1")
    tampered = content[:-1] + bytes([content[-1] ^ 1])
    assert ledger.judge("bob", tampered, "alice", blob_id="blob-1") == "mismatch_content"
    assert ledger.judge("bob", content, "mallory", blob_id="blob-1") == "mismatch_sender"
    assert ledger.judge("dave", content, "alice", blob_id="blob-1") == "mismatch_recipient"
    assert (
        ledger.judge("bob", b"something else entirely", "alice", blob_id="blob-1")
        == "mismatch_unknown"
    )
    other = make_content("message", "m.404", 300, CANARY, random.Random(2))
    assert ledger.judge("bob", other, "alice", blob_id="blob-1") == "mismatch_unknown"
    # None of them counted as a delivery.
    assert ledger.delivered() == 0
    assert len(ledger.undelivered()) == 2


def test_a_share_adds_recipients_who_are_then_owed_the_message() -> None:
    ledger, content = ledger_with_one()
    ledger.sent("m.1", "blob-1")
    assert ledger.judge("dave", content, "alice", blob_id="blob-1") == "mismatch_recipient"
    ledger.shared("m.1", ["bob", "carol", "dave"], "blob-2")
    assert ("m.1", "dave") in ledger.undelivered()
    assert ledger.judge("dave", content, "alice", blob_id="blob-2") == "delivered"


def test_message_ids_are_unique() -> None:
    ledger, content = ledger_with_one()
    with pytest.raises(ValueError, match="twice"):
        ledger.expect(
            "m.1", sender="x", recipients=[], content=content, kind="message", canary=CANARY
        )


def test_the_ledger_never_prints_content_or_canaries() -> None:
    ledger, content = ledger_with_one()
    entry = ledger._entries["m.1"]
    assert CANARY not in repr(entry)
    assert content.hex() not in repr(entry)


def test_a_message_in_more_blobs_than_the_sender_made_is_a_mismatch() -> None:
    # A repeated upload that the idempotency key should have made the same
    # blob, made a second one: its readers see the message twice.  That is
    # not a harmless duplicate.
    ledger, content = ledger_with_one()
    ledger.sent("m.1", "blob-1")
    assert ledger.judge("bob", content, "alice", blob_id="blob-1") == "delivered"
    assert ledger.judge("bob", content, "alice", blob_id="blob-1") == "duplicate"
    assert ledger.judge("carol", content, "alice", blob_id="blob-2") == "mismatch_copy"
    assert ledger.judge("bob", content, "alice", blob_id="blob-2") == "mismatch_copy"


def test_a_shared_copy_is_one_more_blob_the_sender_made() -> None:
    ledger, content = ledger_with_one()
    ledger.sent("m.1", "blob-1")
    assert ledger.judge("bob", content, "alice", blob_id="blob-1") == "delivered"
    ledger.resealing("m.1", ["bob", "carol", "dave"])
    # A reader may meet the new copy before the sender's share returns.
    assert ledger.judge("bob", content, "alice", blob_id="blob-2") == "duplicate"
    ledger.shared("m.1", ["bob", "carol", "dave"], None)  # the new blob's id unknown
    assert ledger.judge("bob", content, "alice", blob_id="blob-2") == "duplicate"
    assert ledger.judge("dave", content, "alice", blob_id="blob-2") == "delivered"
    assert ledger.judge("carol", content, "alice", blob_id="blob-3") == "mismatch_copy"


def test_the_new_reader_of_a_share_may_read_it_before_the_share_returns() -> None:
    # The new reader may be restoring its history in the same phase as the
    # share: the new copy is in its inbox before the sender hears back.
    ledger, content = ledger_with_one()
    ledger.sent("m.1", "blob-1")
    ledger.resealing("m.1", ["bob", "carol", "dave"])
    assert ledger.judge("dave", content, "alice", blob_id="blob-2") == "delivered"
    assert ledger.judge("erin", content, "alice", blob_id="blob-2") == "mismatch_recipient"
