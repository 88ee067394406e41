"""The catch-up frame's format: exact parsing, MUST-reject codes, the roster check."""

from __future__ import annotations

import pytest

from chalicelib import crypto
from chalicelib.wire.binary import lp16
from chalicelib.wire.group_catchup import (
    MAX_CATCHUP_EPOCHS,
    NONCE_SIZE,
    ROSTER_CHECK_LABEL,
    CatchUpEntry,
    decode_catchup,
    encode_catchup,
    roster_check,
)
from chalicelib.wire.groups import InvalidGroupObject

pytestmark = pytest.mark.unit

CHECK = bytes(range(8))
ENTRIES = (CatchUpEntry(b"\x01delta", b"\x01" * 81), CatchUpEntry(b"\x01d2", b"\x00w"))


def test_a_frame_round_trips_and_its_layout_is_the_documented_one() -> None:
    frame = encode_catchup(ENTRIES, CHECK)
    assert frame[:3] == b"\x01\x02\x00"
    assert frame[3:11] == CHECK
    assert frame[11:13] == (6).to_bytes(2, "big")
    parsed = decode_catchup(frame)
    assert (parsed.entries, parsed.at_head, parsed.roster_check) == (ENTRIES, True, CHECK)
    more = decode_catchup(encode_catchup(ENTRIES[:1], None))
    assert (more.entries, more.at_head, more.roster_check) == (ENTRIES[:1], False, None)
    assert encode_catchup((), CHECK) == b"\x01\x00\x00" + CHECK


def test_the_roster_check_is_the_first_8_bytes_of_the_labelled_hash() -> None:
    nonce, digest = bytes(range(NONCE_SIZE)), bytes(range(32))
    expected = crypto.sha256(lp16(ROSTER_CHECK_LABEL) + nonce + digest)[:8]
    assert roster_check(nonce, digest) == expected
    assert roster_check(bytes(NONCE_SIZE), digest) != expected  # the nonce matters
    with pytest.raises(ValueError, match="fixed sizes"):
        roster_check(nonce[:-1], digest)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"", "truncated"),
        (b"\x02\x00\x00" + CHECK, "unsupported_version"),
        (b"\x00\x00\x00" + CHECK, "unsupported_version"),
        (b"\x01\x00\x02", "unknown_status"),
        (b"\x01\x00\x00" + CHECK[:7], "truncated"),
        (b"\x01\x00\x00" + CHECK + b"\x00", "trailing_data"),
        (b"\x01\x00\x01" + CHECK, "trailing_data"),  # "more" carries no check
        (b"\x01\x01\x01\x00\x02ab\x00\x03ab", "truncated"),
        (b"\x01\x01\x01\x00\x00\x00\x01a", "invalid_length"),
        (b"\x01\x01\x01\x00\x01a\x00\x00", "invalid_length"),
        (bytes([1, MAX_CATCHUP_EPOCHS + 1, 1]), "invalid_length"),
        (encode_catchup(ENTRIES, CHECK)[:-1], "truncated"),
    ],
)
def test_a_frame_that_breaks_the_format_is_refused(frame: bytes, code: str) -> None:
    with pytest.raises(InvalidGroupObject) as caught:
        decode_catchup(frame)
    assert caught.value.code == code


def test_the_encoder_refuses_what_the_decoder_would() -> None:
    with pytest.raises(ValueError, match="too many"):
        encode_catchup([ENTRIES[0]] * (MAX_CATCHUP_EPOCHS + 1), None)
    with pytest.raises(ValueError, match="1 to 65535"):
        encode_catchup([CatchUpEntry(b"", b"w")], None)
    with pytest.raises(ValueError, match="8 bytes"):
        encode_catchup(ENTRIES, CHECK[:7])
