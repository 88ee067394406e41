"""The fast paths of the age library give the same bytes as the plain ones.

Issue 17 made the chunk loop cheaper: one cipher object per payload
(``_hazmat.ChaCha20Poly1305Key``), chunk reads that bypass the header
buffer once it is drained (``ByteSource.read``), and plaintext read into
one reused buffer (``AgeWriter.write_from``).  Each is held here to the
result of the straightforward code, on awkward sizes and sources.
"""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client_sim import _hazmat, age
from client_sim.age._io import ByteSource

pytestmark = pytest.mark.unit

KEY = age.X25519Identity.generate()
CHUNK = 64 * 1024


class Trickle:
    """A source that hands out at most ``step`` bytes per read (a pipe, a socket)."""

    def __init__(self, data: bytes, step: int) -> None:
        self._src = io.BytesIO(data)
        self._step = step

    def read(self, size: int = -1, /) -> bytes:
        return self._src.read(self._step if size < 0 else min(size, self._step))


# --- ChaCha20Poly1305Key -----------------------------------------------------------------


def test_the_keyed_cipher_matches_the_one_shot_functions() -> None:
    key, nonce = bytes(range(32)), bytes(range(12))
    cipher = _hazmat.ChaCha20Poly1305Key(key)
    for message in (b"", b"x", bytes(CHUNK), bytes(range(256)) * 300):
        sealed = cipher.seal(nonce, message)
        assert sealed == _hazmat.chacha20poly1305_seal(key, nonce, message)
        assert cipher.open(nonce, sealed) == message
        assert cipher.open(nonce, memoryview(sealed)) == message


def test_the_keyed_cipher_refuses_altered_short_and_misshapen_input() -> None:
    cipher = _hazmat.ChaCha20Poly1305Key(bytes(32))
    sealed = bytearray(cipher.seal(bytes(12), b"attack at dawn"))
    sealed[3] ^= 1
    with pytest.raises(_hazmat.InvalidTag):
        cipher.open(bytes(12), bytes(sealed))
    with pytest.raises(_hazmat.InvalidTag):
        cipher.open(bytes(12), bytes(15))
    with pytest.raises(ValueError, match="nonces are 12 bytes"):
        cipher.seal(bytes(11), b"x")
    with pytest.raises(ValueError, match="nonces are 12 bytes"):
        cipher.open(bytes(13), bytes(16))
    with pytest.raises(ValueError, match="keys are 32 bytes"):
        _hazmat.ChaCha20Poly1305Key(bytes(31))


def test_the_keyed_cipher_never_shows_its_key() -> None:
    key = bytes(range(100, 132))
    cipher = _hazmat.ChaCha20Poly1305Key(key)
    for text in (repr(cipher), str(cipher)):
        assert key.hex() not in text
        assert repr(key) not in text
        assert "secret" in text
    assert not hasattr(cipher, "__dict__")  # nowhere to find it by attribute


# --- ByteSource ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=3 * CHUNK + 100),
    step=st.sampled_from([1, 7, 1000, CHUNK - 1, CHUNK, CHUNK + 17, 10**6]),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["read", "peek", "line"]),
            st.integers(min_value=1, max_value=CHUNK + 20),
        ),
        max_size=12,
    ),
)
def test_byte_source_reads_are_the_stream_whatever_the_source_hands_out(
    data: bytes, step: int, ops: list[tuple[str, int]]
) -> None:
    source = ByteSource(Trickle(data, step))
    position = 0
    for op, n in ops:
        if op == "read":
            got = source.read(n)
            assert got == data[position : position + n]
            position += len(got)
        elif op == "peek":
            assert source.peek(n) == data[position : position + n]
        else:
            line = source.read_line(n)
            rest = data[position:]
            newline = rest.find(b"\n", 0, n)
            if newline >= 0:
                assert line == rest[: newline + 1]
            elif len(rest) < n:
                assert line == rest
            else:
                assert line is None
                continue
            assert line is not None
            position += len(line)
    assert source.read(len(data) + 1) == data[position:]


def test_after_a_header_chunk_reads_go_straight_to_the_source() -> None:
    header = b"age-encryption.org/v1\n-> X25519 abc\n--- mac\n"
    payload = bytes(range(256)) * (3 * CHUNK // 256)
    source = ByteSource(io.BytesIO(header + payload))
    for expected in header.splitlines(keepends=True):
        assert source.read_line(100) == expected
    # The header read buffered part of the payload; the first chunk read
    # takes that part and exactly the rest, which empties the buffer ...
    assert source.read(CHUNK + 16) == payload[: CHUNK + 16]
    assert source._available() == 0
    # ... so the following chunks are handed over by the source untouched.
    assert source.read(CHUNK + 16) == payload[CHUNK + 16 : 2 * (CHUNK + 16)]
    assert source._available() == 0


# --- AgeWriter.write_from ------------------------------------------------------------------


class ReadOnly:
    """A source with ``read`` only (no ``readinto``)."""

    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)

    def read(self, size: int = -1, /) -> bytes:
        return self._src.read(size)


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 4 * CHUNK, 4 * CHUNK + 1, 9 * CHUNK + 12345]
)
@pytest.mark.parametrize("kind", ["readinto", "read", "trickle"])
def test_write_from_encrypts_exactly_the_source(size: int, kind: str) -> None:
    plaintext = bytes((i * 7) % 251 for i in range(size))
    src: object
    if kind == "readinto":
        src = io.BytesIO(plaintext)
    elif kind == "read":
        src = ReadOnly(plaintext)
    else:
        src = Trickle(plaintext, 5000)
    out = io.BytesIO()
    with age.encrypt_writer(out, [KEY.recipient()]) as writer:
        assert writer.write_from(src) == size  # type: ignore[arg-type]
    assert age.decrypt_bytes(out.getvalue(), [KEY]) == plaintext
    # The same ciphertext size as encrypting through write() (same chunking).
    assert len(out.getvalue()) == len(age.encrypt_bytes(plaintext, [KEY.recipient()]))


def test_write_from_refuses_a_closed_writer() -> None:
    writer = age.encrypt_writer(io.BytesIO(), [KEY.recipient()])
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write_from(io.BytesIO(b"late"))
