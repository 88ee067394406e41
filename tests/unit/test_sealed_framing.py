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
from chalicelib.wire.checkpoint import sign_checkpoint
from chalicelib.wire.note import NoteSigner
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
RECIPIENTS = [BOB, ALICE]
SEALED_AT = 1_764_000_000_123


def frame(
    data: bytes,
    *,
    sender=ALICE,
    recipients=RECIPIENTS,
    chunk: int = 0,
    context: bytes = b"",
    sealed_at_ms: int = SEALED_AT,
) -> bytes:
    out = io.BytesIO()
    with SealedWriter(
        out, sender=sender, recipients=recipients, context=context, sealed_at_ms=sealed_at_ms
    ) as writer:
        if chunk:
            for i in range(0, len(data), chunk):
                writer.write(data[i : i + chunk])
        else:
            writer.write(data)
    return out.getvalue()


def frame_v1(data: bytes, *, sender=ALICE, recipients=RECIPIENTS) -> bytes:
    """A legacy (format 1) stream, built from the spec: readers still accept it."""
    ids = sorted({b64url_decode(r.card_id) for r in recipients})
    header = (
        b"SBSEALED\x01\x00"
        + b64url_decode(sender.card_id)
        + len(ids).to_bytes(2, "big")
        + b"".join(ids)
    )
    message = (
        lp16(b"sealbox/v1/sealed-signature")
        + header
        + len(data).to_bytes(8, "big")
        + hashlib.sha512(data).digest()
    )
    signature: bytes = sender.sign(message)
    return header + data + len(data).to_bytes(8, "big") + signature


def open_frame(
    stream: bytes, *, senders=(ALICE.card,), opener=(BOB.card_id,), **options
) -> tuple[bytes, sealed.VerifiedSender]:
    out = io.BytesIO()
    who = unframe(io.BytesIO(stream), out, sender_cards=senders, opener_card_ids=opener, **options)
    return out.getvalue(), who


def entries_at(stream: bytes) -> tuple[int, list[tuple[int, int]]]:
    """Offset of the recipient count, and (start, end) of each recipient entry."""
    count_at = 51 + stream[50]
    pos, spans = count_at + 2, []
    for _ in range(int.from_bytes(stream[count_at : count_at + 2], "big")):
        end = pos + 32 + 1 + stream[pos + 32]
        spans.append((pos, end))
        pos = end
    return count_at, spans


def test_round_trip_reports_the_verified_sender_and_what_it_signed() -> None:
    data, who = open_frame(frame(b"hello, bob", context=b"chat/42"))
    assert data == b"hello, bob"
    assert who.identity == "alice"
    assert who.card_id == ALICE.card_id
    assert who.card == ALICE.card
    assert set(who.recipient_card_ids) == {BOB.card_id, ALICE.card_id}
    assert who.plaintext_length == 10
    assert who.header.version == 2
    assert who.header.bound
    assert who.header.sealed_at_ms == SEALED_AT
    assert who.header.context == b"chat/42"
    assert dict(who.header.recipients) == {BOB.card_id: "bob", ALICE.card_id: "alice"}


def test_layout_byte_by_byte() -> None:
    stream = frame(b"xyz", context=b"blob")
    entries = sorted((b64url_decode(r.card_id), r.identity.encode()) for r in RECIPIENTS)
    header = (
        b"SBSEALED\x02\x00"
        + b64url_decode(ALICE.card_id)
        + SEALED_AT.to_bytes(8, "big")
        + b"\x04blob"
        + len(entries).to_bytes(2, "big")
        + b"".join(card_id + bytes([len(name)]) + name for card_id, name in entries)
    )
    assert stream[: len(header)] == header
    assert len(header) == sealed.framed_size(0, RECIPIENTS, context=b"blob") - 72
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


def test_legacy_format_1_still_opens_and_says_it_is_unbound() -> None:
    data, who = open_frame(frame_v1(b"from the first release"))
    assert data == b"from the first release"
    assert who.header.version == 1
    assert not who.header.bound
    assert who.header.context is None
    assert who.header.sealed_at_ms is None
    assert dict(who.header.recipients) == {BOB.card_id: None, ALICE.card_id: None}


def test_recipient_order_and_duplicates_do_not_change_the_header() -> None:
    a = frame(b"m", recipients=[ALICE, BOB])
    b = frame(b"m", recipients=[BOB, ALICE, BOB])
    assert a[:-64] == b[:-64]  # Ed25519 is deterministic too, but the header is the point
    assert a == b


@pytest.mark.parametrize("size", [0, 1, 71, 72, 73, 65535, 65536, 65537, 200_000])
def test_sizes_around_chunk_and_trailer_boundaries(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    assert open_frame(frame(data, chunk=4099))[0] == data


class _Named:
    def __init__(self, card_id: str, identity: str) -> None:
        self.card_id, self.identity = card_id, identity


def test_writer_needs_recipients_within_bounds() -> None:
    with pytest.raises(ValueError, match="recipient"):
        SealedWriter(io.BytesIO(), sender=ALICE, recipients=[])
    many = [
        _Named(b64url_encode(hashlib.sha256(b"%d" % i).digest()), f"user{i}") for i in range(1025)
    ]
    SealedWriter(io.BytesIO(), sender=ALICE, recipients=many[:1024])
    with pytest.raises(ValueError, match="1 to 1024"):
        SealedWriter(io.BytesIO(), sender=ALICE, recipients=many)
    with pytest.raises(ValueError, match="card"):
        SealedWriter(io.BytesIO(), sender=ALICE, recipients=[_Named("not-a-card-id", "bob")])


@pytest.mark.parametrize("name", ["Bob", "b", "bob ", "b\u00f6b", "bob\x1b[2J"])
def test_writer_refuses_a_recipient_identity_that_is_not_canonical(name: str) -> None:
    with pytest.raises(ValueError, match="canonical"):
        SealedWriter(io.BytesIO(), sender=ALICE, recipients=[_Named(BOB.card_id, name)])


def test_writer_refuses_one_card_named_twice_with_two_identities() -> None:
    with pytest.raises(ValueError, match="two identities"):
        SealedWriter(
            io.BytesIO(),
            sender=ALICE,
            recipients=[BOB, _Named(BOB.card_id, "mallory")],
        )


@pytest.mark.parametrize(
    "context", [b"with space", b"tab\t", b"\x1b[31m", "caf\u00e9".encode(), b"x" * 256]
)
def test_writer_refuses_a_context_that_is_not_printable_ascii(context: bytes) -> None:
    with pytest.raises(ValueError, match="context"):
        SealedWriter(io.BytesIO(), sender=ALICE, recipients=RECIPIENTS, context=context)


def test_writer_takes_a_context_of_up_to_255_bytes() -> None:
    context = b"~" * 255
    assert open_frame(frame(b"m", context=context))[1].header.context == context


def test_writer_refuses_writes_after_close_and_closes_once() -> None:
    out = io.BytesIO()
    writer = SealedWriter(out, sender=ALICE, recipients=RECIPIENTS)
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
        with SealedWriter(out, sender=ALICE, recipients=RECIPIENTS) as w:
            w.write(b"partial" * 20)
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        interrupted()
    with pytest.raises(SignatureError):
        open_frame(out.getvalue())


# --- MUST-reject cases -------------------------------------------------------------


def header_len() -> int:
    return sealed.framed_size(0, RECIPIENTS) - sealed.TRAILER_SIZE


def test_bad_magic_version_flags() -> None:
    stream = frame(b"data")
    for offset, message in ((0, "not a Sealbox"), (8, "version"), (9, "flags")):
        mutated = bytearray(stream)
        mutated[offset] ^= 0x04
        with pytest.raises(SealedFormatError, match=message):
            open_frame(bytes(mutated))


def test_version_1_header_under_a_version_2_byte_is_refused() -> None:
    # Relabelling a legacy stream as version 2 makes it unparseable or
    # unverifiable; it never opens.
    legacy = bytearray(frame_v1(b"data"))
    legacy[8] = 2
    with pytest.raises(SealedError):
        open_frame(bytes(legacy))


def test_a_version_2_stream_relabelled_as_version_1_never_opens() -> None:
    stream = bytearray(frame(b"data"))
    stream[8] = 1
    with pytest.raises(SealedError):
        open_frame(bytes(stream))


def test_zero_or_too_many_recipients() -> None:
    stream = bytearray(frame(b"data"))
    count_at, _ = entries_at(bytes(stream))
    stream[count_at : count_at + 2] = (0).to_bytes(2, "big")
    with pytest.raises(SealedFormatError, match="count"):
        open_frame(bytes(stream))
    stream[count_at : count_at + 2] = (sealed.MAX_RECIPIENTS + 1).to_bytes(2, "big")
    with pytest.raises(SealedFormatError, match="count"):
        open_frame(bytes(stream))


def test_unsorted_or_duplicate_recipients() -> None:
    stream = frame(b"data")
    _, [(a0, a1), (b0, b1)] = entries_at(stream)
    first, second = stream[a0:a1], stream[b0:b1]
    swapped = stream[:a0] + second + first + stream[b1:]
    with pytest.raises(SealedFormatError, match="ascending"):
        open_frame(swapped)
    duplicated = stream[:a0] + first + first + stream[b1:]
    with pytest.raises(SealedFormatError, match="ascending"):
        open_frame(duplicated)


@pytest.mark.parametrize("name", [b"BOB", b"b", b"bob\x1b", b"b\xc3\xb6b", b""])
def test_a_recipient_identity_that_is_not_canonical_is_refused(name: bytes) -> None:
    stream = frame(b"data")
    _, spans = entries_at(stream)
    bob = next(
        span for span in spans if stream[span[0] : span[0] + 32] == b64url_decode(BOB.card_id)
    )
    entry = stream[bob[0] : bob[0] + 32] + bytes([len(name)]) + name
    with pytest.raises(SealedFormatError, match="canonical"):
        open_frame(stream[: bob[0]] + entry + stream[bob[1] :])


@pytest.mark.parametrize("byte", [0x20, 0x7F, 0x0A, 0x1B, 0xC3])
def test_a_context_byte_outside_printable_ascii_is_refused(byte: int) -> None:
    stream = bytearray(frame(b"data", context=b"abc"))
    stream[52] = byte
    with pytest.raises(SealedFormatError, match="context"):
        open_frame(bytes(stream))


def test_a_sealing_time_with_the_top_bit_set_is_refused() -> None:
    stream = bytearray(frame(b"data"))
    stream[42] |= 0x80
    with pytest.raises(SealedFormatError, match="time"):
        open_frame(bytes(stream))


def test_truncated_header() -> None:
    stream = frame(b"data", context=b"ctx")
    count_at, spans = entries_at(stream)
    for cut in (0, 5, 43, 50, 52, count_at + 1, spans[0][0] + 32, spans[-1][1] - 1):
        with pytest.raises(SealedFormatError, match="header"):
            open_frame(stream[:cut])


def test_the_opener_card_named_with_another_identity_is_refused() -> None:
    # Alice's header says Bob's card is "carol": Bob's device refuses to show it.
    stream = frame(b"hi", recipients=[ALICE, _Named(BOB.card_id, "carol")])
    assert open_frame(stream)[0] == b"hi"  # an opener that doesn't say who it is
    with pytest.raises(RecipientMismatch, match="identity"):
        open_frame(stream, opener_identity="bob")


def test_the_sender_card_named_with_another_identity_is_refused() -> None:
    stream = frame(b"hi", recipients=[BOB, _Named(ALICE.card_id, "carol")])
    with pytest.raises(SealedFormatError, match="sender"):
        open_frame(stream)


def test_the_header_check_sees_everything_signed_before_any_output() -> None:
    seen: list[sealed.SealedHeader] = []
    out = io.BytesIO()

    def check(header: sealed.SealedHeader) -> None:
        seen.append(header)
        assert out.getvalue() == b""
        raise sealed.ContextMismatch("context", "not this one")

    with pytest.raises(sealed.ContextMismatch) as info:
        unframe(
            io.BytesIO(frame(b"secret", context=b"blob-a")),
            out,
            sender_cards=[ALICE.card],
            opener_card_ids=[BOB.card_id],
            check=check,
        )
    assert info.value.reason == "context"
    assert out.getvalue() == b""
    [header] = seen
    assert header.context == b"blob-a"
    assert header.sender == ALICE.card


@pytest.mark.parametrize("field", ["time", "context"])
def test_changing_the_time_or_the_context_breaks_the_signature(field: str) -> None:
    stream = bytearray(frame(b"data", context=b"blob-a"))
    if field == "time":
        stream[49] ^= 0x01  # one millisecond later
    else:
        stream[56] = ord("b")  # blob-a -> blob-b
    with pytest.raises(SignatureError):
        open_frame(bytes(stream))


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
    stream = frame(b"to bob's old card", recipients=[bundle("bob")])
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
            SealedWriter(out, sender=ALICE, recipients=RECIPIENTS) as writer,
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


# --- the sender's log checkpoint (flag bit 0) -------------------------------------------

LOG_SIGNER = NoteSigner.from_seed("log.example/kt", hashlib.sha256(b"framing log").digest())


def _note(origin_size: int = 14) -> str:
    signer = (
        LOG_SIGNER
        if origin_size == 14
        else NoteSigner.from_seed("o" * origin_size, hashlib.sha256(b"o").digest())
    )
    return sign_checkpoint(signer.name, 7, b"\x01" * 32, SEALED_AT // 1000, signer)


def test_a_carried_checkpoint_is_signed_reported_and_sized() -> None:
    note = _note()
    plain = frame(b"data")
    carried = io.BytesIO()
    with SealedWriter(
        carried, sender=ALICE, recipients=RECIPIENTS, sealed_at_ms=SEALED_AT, checkpoint=note
    ) as writer:
        writer.write(b"data")
    stream = carried.getvalue()
    assert stream[9] == sealed.CHECKPOINT_FLAG
    assert plain[9] == 0
    assert len(stream) == len(plain) + 2 + len(note.encode())
    assert len(stream) == sealed.framed_size(4, RECIPIENTS, checkpoint=note)
    who = unframe(
        io.BytesIO(stream), io.BytesIO(), sender_cards=[ALICE.card], opener_card_ids=[BOB.card_id]
    )
    assert who.header.checkpoint == note
    plain_who = unframe(
        io.BytesIO(plain), io.BytesIO(), sender_cards=[ALICE.card], opener_card_ids=[BOB.card_id]
    )
    assert plain_who.header.checkpoint is None
    # The upload path's reader frames the same bytes.
    reader = sealed.FramingReader(
        io.BytesIO(b"data"),
        4,
        sender=ALICE,
        recipients=RECIPIENTS,
        sealed_at_ms=SEALED_AT,
        checkpoint=note,
    )
    assert reader.size == len(stream)
    assert reader.read() == stream


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not a note\n",
        _note().replace("\n\n", "\n"),
        # well formed, but with witness cosignatures it is over the bound
        _note(256) + "".join(f"\u2014 witness{i} {'A' * 96}\n" for i in range(4)),
    ],
    ids=["empty", "no-signature", "no-blank-line", "over-1024-bytes"],
)
def test_a_writer_refuses_a_checkpoint_that_is_not_one(bad: str) -> None:
    with pytest.raises(ValueError, match="note"):
        SealedWriter(io.BytesIO(), sender=ALICE, recipients=RECIPIENTS, checkpoint=bad)
    with pytest.raises(ValueError, match="note"):
        sealed.framed_size(0, RECIPIENTS, checkpoint=bad)


def test_the_largest_sealbox_checkpoint_fits() -> None:
    note = _note(256)
    assert len(note.encode()) <= sealed.MAX_CHECKPOINT_NOTE
    SealedWriter(io.BytesIO(), sender=ALICE, recipients=RECIPIENTS, checkpoint=note).close()
