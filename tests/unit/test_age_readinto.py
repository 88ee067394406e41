"""Opening an age payload straight into the caller's buffer (AgeReader.readinto).

Blob downloads open each 64 KiB chunk into one reused buffer, read from the
socket a block at a time (client_sim.age._io.BlockSource).  What a reader
releases must not change: the same bytes as ``read1``, the same errors at
the same points, and never a byte of a chunk that failed to authenticate --
``decrypt_into`` writes the plaintext before it checks the tag.
"""

from __future__ import annotations

import io
import os
import random

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from client_sim import _hazmat, age
from client_sim.age._io import _BLOCK_SIZE, BlockSource
from client_sim.age._stream import CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE

KEY = age.X25519Identity.generate()


class Trickle:
    """A source that returns a few bytes per call, with or without readinto."""

    def __init__(self, data: bytes, seed: int, *, readinto: bool) -> None:
        self._data = io.BytesIO(data)
        self._rng = random.Random(seed)
        if readinto:
            self.readinto = self._readinto

    def read(self, size: int = -1, /) -> bytes:
        n = self._rng.randint(1, 5000)
        return self._data.read(n if size < 0 else min(size, n))

    def _readinto(self, buffer: memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _read_all(reader: age.AgeReader, size: int) -> bytes:
    buffer = bytearray(size)
    out = bytearray()
    while filled := reader.readinto(buffer):
        out += buffer[:filled]
    return bytes(out)


@pytest.mark.parametrize(
    "length", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE, 2_300_017]
)
@pytest.mark.parametrize("buffer", [100, CHUNK_SIZE, CHUNK_SIZE + 3, 1024 * 1024])
def test_readinto_releases_what_read_releases(length: int, buffer: int) -> None:
    plain = os.urandom(length)
    blob = age.encrypt_bytes(plain, [KEY.recipient()])
    assert _read_all(age.decrypt_reader(io.BytesIO(blob), [KEY]), buffer) == plain


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("readinto", [False, True])
@pytest.mark.parametrize("armor", [False, True])
def test_readinto_from_a_trickling_source(seed: int, readinto: bool, armor: bool) -> None:
    plain = os.urandom(3 * CHUNK_SIZE + 11)
    blob = age.encrypt_bytes(plain, [KEY.recipient()], armor=armor)
    reader = age.decrypt_reader(Trickle(blob, seed, readinto=readinto), [KEY])
    assert _read_all(reader, 1024 * 1024) == plain


def test_readinto_after_a_partial_read_continues_in_order() -> None:
    plain = os.urandom(5 * CHUNK_SIZE + 7)
    reader = age.decrypt_reader(io.BytesIO(age.encrypt_bytes(plain, [KEY.recipient()])), [KEY])
    head = reader.read1(1000)
    assert head + _read_all(reader, 2 * CHUNK_SIZE) == plain


def _tampered(plain: bytes, chunk: int) -> bytes:
    blob = bytearray(age.encrypt_bytes(plain, [KEY.recipient()]))
    payload_start = (
        len(blob)
        - (len(plain) // CHUNK_SIZE) * ENCRYPTED_CHUNK_SIZE
        - (len(plain) % CHUNK_SIZE + 16 if len(plain) % CHUNK_SIZE else 0)
    )
    blob[payload_start + chunk * ENCRYPTED_CHUNK_SIZE + 100] ^= 1
    return bytes(blob)


def test_a_damaged_chunk_leaves_no_plaintext_in_the_buffer() -> None:
    """The chunks before the damaged one come out; the damaged chunk's place
    in the buffer holds zeros (its plaintext was decrypted there first), and
    the next read raises."""
    plain = b"\x5a" * (4 * CHUNK_SIZE + 10)
    reader = age.decrypt_reader(io.BytesIO(_tampered(plain, 2)), [KEY])
    buffer = bytearray(b"\xff" * (4 * CHUNK_SIZE))
    assert reader.readinto(buffer) == 2 * CHUNK_SIZE
    assert buffer[: 2 * CHUNK_SIZE] == plain[: 2 * CHUNK_SIZE]
    assert buffer[2 * CHUNK_SIZE : 3 * CHUNK_SIZE] == bytes(CHUNK_SIZE)
    for _ in range(2):  # the error repeats
        with pytest.raises(age.DecryptionError):
            reader.readinto(buffer)


def test_a_damaged_first_chunk_raises_at_once_with_zeros() -> None:
    plain = b"\x5a" * (2 * CHUNK_SIZE)
    reader = age.decrypt_reader(io.BytesIO(_tampered(plain, 0)), [KEY])
    buffer = bytearray(b"\xff" * (2 * CHUNK_SIZE))
    with pytest.raises(age.DecryptionError):
        reader.readinto(buffer)
    assert buffer[:CHUNK_SIZE] == bytes(CHUNK_SIZE)


def test_decrypt_into_writes_plaintext_before_it_checks_the_tag() -> None:
    """Why open_into scrubs: cryptography leaves the unauthenticated
    plaintext in the output buffer when the tag fails."""
    aead = ChaCha20Poly1305(bytes(32))
    sealed = bytearray(aead.encrypt(bytes(12), b"secret" * 10, None))
    sealed[-1] ^= 1
    out = bytearray(60)
    with pytest.raises(InvalidTag):
        aead.decrypt_into(bytes(12), bytes(sealed), None, out)
    assert out == b"secret" * 10


def test_open_into_scrubs_the_output_when_the_tag_fails() -> None:
    key = _hazmat.ChaCha20Poly1305Key(bytes(32))
    sealed = bytearray(key.seal(bytes(12), b"secret" * 10))
    out = bytearray(b"\xff" * 70)
    assert key.open_into(bytes(12), bytes(sealed), memoryview(out)) == 60
    assert out[:60] == b"secret" * 10
    sealed[-1] ^= 1
    with pytest.raises(_hazmat.InvalidTag):
        key.open_into(bytes(12), bytes(sealed), memoryview(out))
    assert out == bytes(60) + b"\xff" * 10  # only the chunk's own bytes are touched
    with pytest.raises(ValueError, match="too small"):
        key.open_into(bytes(12), bytes(sealed), memoryview(out)[:59])
    with pytest.raises(_hazmat.InvalidTag):
        key.open_into(bytes(12), b"short", memoryview(out))


@pytest.mark.parametrize("readinto", [False, True])
def test_block_source_serves_exact_reads_across_fills(readinto: bool) -> None:
    data = os.urandom(3 * _BLOCK_SIZE + 12345)
    head = data[:70_000]
    source = BlockSource(
        head, Trickle(data[70_000:], 1, readinto=readinto), False, max_request=65552
    )
    out = bytearray()
    while view := source.read_view(65552):
        out += view
        assert len(view) == 65552 or source.at_end()
    assert out == data
    assert source.at_end()


def test_block_source_memory_is_flat() -> None:
    """Small streams keep the small buffer; long ones grow once, to a block."""
    small = BlockSource(b"x" * 10, io.BytesIO(b"y" * 100_000), False, max_request=65552)
    while small.read_view(65552):
        pass
    assert len(small._buf) == 2 * 65552
    long = BlockSource(b"", io.BytesIO(os.urandom(20 * _BLOCK_SIZE)), False, max_request=65552)
    sizes = set()
    while long.read_view(65552):
        sizes.add(len(long._buf))
    assert sizes == {2 * 65552, _BLOCK_SIZE + 65552}


def test_block_source_refuses_reads_larger_than_it_was_made_for() -> None:
    source = BlockSource(b"", io.BytesIO(b""), False, max_request=10)
    with pytest.raises(ValueError, match="max_request"):
        source.read_view(11)


def test_a_small_payload_that_came_with_the_header_needs_no_buffer() -> None:
    source = BlockSource(b"p" * 1000, io.BytesIO(b""), False, max_request=65552)
    assert bytes(source.read_view(65552)) == b"p" * 1000
    assert source.at_end()
    assert len(source._buf) == 1000  # no second buffer was made to learn the end
