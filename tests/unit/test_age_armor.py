"""ASCII armor rules beyond the CCTV armor vectors."""

from __future__ import annotations

import io

import pytest

from client_sim import age
from client_sim.age import armor
from client_sim.age.errors import DecryptionError


def _armor(data: bytes) -> bytes:
    out = io.BytesIO()
    writer = armor.ArmorWriter(out)
    writer.write(data)
    writer.close()
    return out.getvalue()


def _dearmor(text: bytes) -> bytes:
    return armor.ArmorReader(io.BytesIO(text)).read()


@pytest.mark.parametrize("size", [0, 1, 45, 46, 47, 48, 49, 95, 96, 97, 1000])
def test_round_trip_and_line_shape(size: int) -> None:
    data = bytes(range(256)) * 4
    data = data[:size]
    text = _armor(data)
    assert _dearmor(text) == data
    lines = text.split(b"\n")
    body = lines[1:-2]
    assert all(len(line) == 64 for line in body[:-1])
    if size % 48 in (46, 47):
        assert len(body[-1]) == 64  # a full-width last line with padding
        assert body[-1].endswith(b"=")


def test_streaming_writer_in_pieces() -> None:
    out = io.BytesIO()
    writer = armor.ArmorWriter(out)
    for i in range(300):
        writer.write(bytes([i % 256]) * (i % 7))
    writer.close()
    expected = b"".join(bytes([i % 256]) * (i % 7) for i in range(300))
    assert out.getvalue() == _armor(expected)


GOOD = _armor(b"\x00" * 100)


@pytest.mark.parametrize(
    "text",
    [
        b" " * (armor.MAX_WHITESPACE + 1) + GOOD,  # too much leading whitespace
        GOOD + b"\n" * (armor.MAX_WHITESPACE + 1),  # too much trailing whitespace
        GOOD.replace(b"-----END AGE ENCRYPTED FILE-----\n", b""),  # no END line
        GOOD.replace(b"BEGIN AGE", b"BEGIN PGP"),
        GOOD.replace(b"\n", b"\r", 1),  # bare CR as a line ending
        GOOD.replace(b"AAAA", b"AA\nAA", 1),  # a short line in the middle
        GOOD.replace(b"==\n", b"\n"),  # padding removed
        GOOD.replace(b"-----\n", b"-----\nVersion: 1\n", 1),  # a header
        GOOD + b"x",  # garbage after END
        b"x" + GOOD,  # garbage before BEGIN
    ],
)
def test_rejected_armor(text: bytes) -> None:
    with pytest.raises(DecryptionError):
        _dearmor(text)


def test_accepted_variations() -> None:
    assert _dearmor(b"\t\r\n " + GOOD.replace(b"\n", b"\r\n") + b" \n\t") == b"\x00" * 100
    assert _dearmor(GOOD.rstrip(b"\n")) == b"\x00" * 100  # no newline after END


def test_detection_needs_the_begin_marker() -> None:
    key = age.X25519Identity.generate()
    blob = age.encrypt_bytes(b"hello", [key.recipient()])
    assert age.decrypt_bytes(blob, [key]) == b"hello"
    with pytest.raises(age.DecryptionError):
        age.decrypt_bytes(b"  " + blob, [key])  # whitespace only before armor
