"""chalicelib.wire.binary: the length-prefixed field codec every format shares."""

from __future__ import annotations

import pytest

from chalicelib.wire.binary import Reader, TrailingData, Truncated, lp16, u8, u16, u32, u64


def test_round_trip_of_every_field_kind() -> None:
    data = u8(7) + u16(513) + u32(70000) + u64(2**40) + lp16(b"abc") + lp16(b"") + b"tail"
    reader = Reader(data)
    assert (reader.u8(), reader.u16(), reader.u32(), reader.u64()) == (7, 513, 70000, 2**40)
    assert reader.lp16() == b"abc"
    assert reader.lp16() == b""
    assert reader.rest() == b"tail"
    reader.finish()


def test_lp16_prefix_is_big_endian_length() -> None:
    assert lp16(b"\x00" * 258)[:2] == b"\x01\x02"


def test_lp16_refuses_more_than_65535_bytes() -> None:
    lp16(b"\x00" * 65535)
    with pytest.raises(ValueError, match="too long"):
        lp16(b"\x00" * 65536)


def test_truncated_field_raises() -> None:
    with pytest.raises(Truncated):
        Reader(u16(5) + b"abcd").lp16()
    with pytest.raises(Truncated):
        Reader(b"\x00").u16()


def test_trailing_bytes_raise() -> None:
    reader = Reader(lp16(b"x") + b"!")
    reader.lp16()
    with pytest.raises(TrailingData):
        reader.finish()


def test_out_of_range_integers_raise() -> None:
    with pytest.raises(OverflowError):
        u16(65536)
    with pytest.raises(OverflowError):
        u64(-1)
