"""client_sim.sealed: the inner framing codec, without age."""

from __future__ import annotations

import hashlib
import io
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.binary import lp16
from client_sim import _hazmat, sealed
from client_sim.sealed import (
    RecipientMismatch,
    SealedError,
    SealedFormatError,
    SealedWriter,
    SignatureError,
    UnknownSender,
    unframe,
)
from tests.identities import bundle

ALICE, BOB, CAROL = bundle("alice"), bundle("bob"), bundle("carol")
RECIPIENTS = [BOB.card_id, ALICE.card_id]


def frame(data: bytes, *, sender=ALICE, recipients=RECIPIENTS, chunk: int = 0) -> bytes:
    out = io.BytesIO()
    with SealedWriter(out, sender=sender, recipient_card_ids=recipients) as writer:
        if chunk:
            for i in range(0, len(data), chunk):
                writer.write(data[i : i + chunk])
        else:
            writer.write(data)
    return out.getvalue()


def open_frame(
    stream: bytes, *, senders=(ALICE.card,), opener=(BOB.card_id,)
) -> tuple[bytes, sealed.VerifiedSender]:
    out = io.BytesIO()
    who = unframe(io.BytesIO(stream), out, sender_cards=senders, opener_card_ids=opener)
    return out.getvalue(), who


def test_round_trip_reports_the_verified_sender() -> None:
    data, who = open_frame(frame(b"hello, bob"))
    assert data == b"hello, bob"
    assert who.identity == "alice"
    assert who.card_id == ALICE.card_id
    assert who.card == ALICE.card
    assert set(who.recipient_card_ids) == set(RECIPIENTS)
    assert who.plaintext_length == 10


def test_layout_byte_by_byte() -> None:
    stream = frame(b"xyz")
    ids = sorted(b64url_decode(i) for i in RECIPIENTS)
    header = (
        b"SBSEALED\x01\x00"
        + b64url_decode(ALICE.card_id)
        + len(ids).to_bytes(2, "big")
        + b"".join(ids)
    )
    assert stream[: len(header)] == header
    assert stream[len(header) : len(header) + 3] == b"xyz"
    trailer = stream[len(header) + 3 :]
    assert len(trailer) == sealed.TRAILER_SIZE == 72
    assert trailer[:8] == (3).to_bytes(8, "big")
    message = (
        lp16(b"sealbox/v1/sealed-signature")
        + header
        + (3).to_bytes(8, "big")
        + hashlib.sha512(b"xyz").digest()
    )
    _hazmat.ed25519_verify_raw(ALICE.card.ed25519_public_key, trailer[8:], message)


def test_recipient_order_and_duplicates_do_not_change_the_header() -> None:
    a = frame(b"m", recipients=[ALICE.card_id, BOB.card_id])
    b = frame(b"m", recipients=[BOB.card_id, ALICE.card_id, BOB.card_id])
    assert a == b


@pytest.mark.parametrize("size", [0, 1, 71, 72, 73, 65535, 65536, 65537, 200_000])
def test_sizes_around_chunk_and_trailer_boundaries(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    assert open_frame(frame(data, chunk=4099))[0] == data


def test_writer_needs_recipients_within_bounds() -> None:
    with pytest.raises(ValueError, match="recipient"):
        SealedWriter(io.BytesIO(), sender=ALICE, recipient_card_ids=[])
    ids = [b64url_encode(hashlib.sha256(b"%d" % i).digest()) for i in range(1025)]
    SealedWriter(io.BytesIO(), sender=ALICE, recipient_card_ids=ids[:1024])
    with pytest.raises(ValueError, match="1 to 1024"):
        SealedWriter(io.BytesIO(), sender=ALICE, recipient_card_ids=ids)
    with pytest.raises(ValueError, match="card"):
        SealedWriter(io.BytesIO(), sender=ALICE, recipient_card_ids=["not-a-card-id"])


def test_writer_refuses_writes_after_close_and_closes_once() -> None:
    out = io.BytesIO()
    writer = SealedWriter(out, sender=ALICE, recipient_card_ids=RECIPIENTS)
    writer.write(b"a")
    writer.close()
    size = len(out.getvalue())
    writer.close()
    assert len(out.getvalue()) == size
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"b")


def test_an_exception_in_the_block_leaves_no_signature() -> None:
    out = io.BytesIO()

    def interrupted() -> None:
        with SealedWriter(out, sender=ALICE, recipient_card_ids=RECIPIENTS) as w:
            w.write(b"partial" * 20)
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        interrupted()
    with pytest.raises(SignatureError):
        open_frame(out.getvalue())


# --- MUST-reject cases -------------------------------------------------------------


def header_len(n: int = 2) -> int:
    return 8 + 1 + 1 + 32 + 2 + 32 * n


def test_bad_magic_version_flags() -> None:
    stream = frame(b"data")
    for offset, message in ((0, "not a Sealbox"), (8, "version"), (9, "flags")):
        mutated = bytearray(stream)
        mutated[offset] ^= 0x02
        with pytest.raises(SealedFormatError, match=message):
            open_frame(bytes(mutated))


def test_zero_or_too_many_recipients() -> None:
    stream = bytearray(frame(b"data"))
    stream[42:44] = (0).to_bytes(2, "big")
    with pytest.raises(SealedFormatError, match="count"):
        open_frame(bytes(stream))
    stream[42:44] = (sealed.MAX_RECIPIENTS + 1).to_bytes(2, "big")
    with pytest.raises(SealedFormatError, match="count"):
        open_frame(bytes(stream))


def test_unsorted_or_duplicate_recipients() -> None:
    stream = bytearray(frame(b"data"))
    first, second = bytes(stream[44:76]), bytes(stream[76:108])
    swapped = stream[:44] + second + first + stream[108:]
    with pytest.raises(SealedFormatError, match="ascending"):
        open_frame(bytes(swapped))
    duplicated = stream[:44] + first + first + stream[108:]
    with pytest.raises(SealedFormatError, match="ascending"):
        open_frame(bytes(duplicated))


def test_truncated_header() -> None:
    stream = frame(b"data")
    for cut in (0, 5, 43, header_len() - 1):
        with pytest.raises(SealedFormatError, match="header"):
            open_frame(stream[:cut])


def test_unknown_sender_is_reported_before_any_output() -> None:
    out = io.BytesIO()
    with pytest.raises(UnknownSender) as info:
        unframe(
            io.BytesIO(frame(b"secret")),
            out,
            sender_cards=[CAROL.card],
            opener_card_ids=[BOB.card_id],
        )
    assert info.value.card_id == ALICE.card_id
    assert out.getvalue() == b""


def test_wrong_recipient_set_is_reported_before_any_output() -> None:
    # Bob forwards Alice's signed inner stream to Carol: Carol's card is not bound.
    out = io.BytesIO()
    with pytest.raises(RecipientMismatch):
        unframe(
            io.BytesIO(frame(b"for bob only")),
            out,
            sender_cards=[ALICE.card],
            opener_card_ids=[CAROL.card_id],
        )
    assert out.getvalue() == b""


def test_header_naming_another_sender_card_fails_the_signature() -> None:
    # Carol signs but claims to be Alice: the header names Alice's card.
    class Impostor:
        card_id = ALICE.card_id

        def sign(self, message: bytes) -> bytes:
            return CAROL.sign(message)

    stream = frame(b"hi", sender=Impostor())
    with pytest.raises(SignatureError, match="verify"):
        open_frame(stream, senders=[ALICE.card, CAROL.card])


def test_bad_signature() -> None:
    stream = bytearray(frame(b"data"))
    stream[-1] ^= 0x01
    with pytest.raises(SignatureError, match="verify"):
        open_frame(bytes(stream))


def test_modified_plaintext() -> None:
    stream = bytearray(frame(b"data"))
    stream[header_len()] ^= 0x01
    with pytest.raises(SignatureError, match="verify"):
        open_frame(bytes(stream))


def test_truncated_trailer_and_missing_trailer() -> None:
    stream = frame(b"data")
    with pytest.raises(SignatureError):
        open_frame(stream[:-1])
    with pytest.raises(SignatureError, match="complete"):
        open_frame(stream[: header_len() + 3])
    with pytest.raises(SignatureError, match="complete"):
        open_frame(stream[: header_len()])


def test_trailing_data() -> None:
    stream = frame(b"data")
    with pytest.raises(SignatureError):
        open_frame(stream + b"\x00")
    with pytest.raises(SignatureError):
        open_frame(stream + stream[-72:])


def test_length_mismatch_in_trailer() -> None:
    stream = bytearray(frame(b"data"))
    stream[-72:-64] = (5).to_bytes(8, "big")
    with pytest.raises(SignatureError, match="length"):
        open_frame(bytes(stream))


def test_superseded_sender_card_still_verifies_old_messages() -> None:
    old, new = bundle("alice"), bundle("alice", 1)
    stream = frame(b"before the rotation", sender=old)
    data, who = open_frame(stream, senders=[new.card, old.card])
    assert data == b"before the rotation"
    assert who.card_id == old.card_id
    with pytest.raises(UnknownSender):
        open_frame(stream, senders=[new.card])


def test_opener_may_match_through_a_previous_card() -> None:
    stream = frame(b"to bob's old card", recipients=[bundle("bob").card_id])
    data, _ = open_frame(stream, opener=[bundle("bob", 1).card_id, bundle("bob").card_id])
    assert data == b"to bob's old card"


# --- properties ------------------------------------------------------------------

STREAM_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@STREAM_SETTINGS
@given(data=st.binary(max_size=3000), chunk=st.integers(min_value=0, max_value=700))
def test_property_round_trip(data: bytes, chunk: int) -> None:
    assert open_frame(frame(data, chunk=chunk))[0] == data


@STREAM_SETTINGS
@given(data=st.binary(max_size=400), where=st.integers(min_value=0), bit=st.integers(0, 7))
def test_property_any_bit_flip_fails(data: bytes, where: int, bit: int) -> None:
    stream = bytearray(frame(data))
    stream[where % len(stream)] ^= 1 << bit
    with pytest.raises(SealedError):
        open_frame(bytes(stream))


@STREAM_SETTINGS
@given(data=st.binary(max_size=400), keep=st.integers(min_value=0))
def test_property_any_truncation_fails(data: bytes, keep: int) -> None:
    stream = frame(data)
    with pytest.raises(SealedError):
        open_frame(stream[: keep % len(stream)])


@STREAM_SETTINGS
@given(data=st.binary(max_size=400), extra=st.binary(min_size=1, max_size=200))
def test_property_any_extension_fails(data: bytes, extra: bytes) -> None:
    with pytest.raises(SealedError):
        open_frame(frame(data) + extra)


# --- streaming memory ---------------------------------------------------------------


class _Stream:
    """A reader of ``size`` pseudo-random bytes that never holds them all."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = hashlib.sha512(b"block").digest() * 1024  # 64 KiB

    def read(self, n: int = -1) -> bytes:
        n = min(self.left, len(self.block) if n < 0 else n, len(self.block))
        self.left -= n
        return self.block[:n]


class _Sink:
    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return len(data)


def _peak_round_trip(size: int, tmp_path) -> int:
    # The framed stream goes through a file so that only the codec's own
    # buffers are measured.
    path = tmp_path / f"framed-{size}"
    tracemalloc.start()
    try:
        with (
            path.open("wb") as out,
            SealedWriter(out, sender=ALICE, recipient_card_ids=RECIPIENTS) as writer,
        ):
            src = _Stream(size)
            while chunk := src.read(64 * 1024):
                writer.write(chunk)
        sink = _Sink()
        with path.open("rb") as framed:
            unframe(framed, sink, sender_cards=[ALICE.card], opener_card_ids=[BOB.card_id])
        assert sink.count == size
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_size(tmp_path) -> None:
    small = _peak_round_trip(1 << 20, tmp_path)
    large = _peak_round_trip(32 << 20, tmp_path)
    # Both stay around a few 64 KiB chunks; 32x the data may not cost more
    # than a chunk or two of extra peak memory.
    assert large < small + 256 * 1024, (small, large)
    assert large < 1 << 20, large
