"""client_sim.blobs.EncryptingReader: the ciphertext of a file, made as it is read."""

from __future__ import annotations

import io

import pytest

from chalicelib.wire.agefile import sniff
from client_sim import age
from client_sim.blobs import EncryptingReader, age_file_size
from client_sim.errors import ConnectionFailed, SourceChanged
from client_sim.transport import _ExactBody

KEY = age.X25519Identity.generate()


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 3 * 65536, 1_000_003])
def test_the_size_is_known_up_front_and_exact(size: int) -> None:
    plaintext = bytes(range(256)) * (size // 256) + bytes(size % 256)
    reader = EncryptingReader(io.BytesIO(plaintext), size, [KEY.recipient()])
    out = bytearray()
    step = 1
    while chunk := reader.read(step):
        assert len(chunk) <= step
        out += chunk
        step = step * 3 + 1  # odd sizes, like a socket's
    assert len(out) == reader.size
    assert reader.size == age_file_size(sniff(bytes(out)).header_length + 16, size)
    assert age.decrypt_bytes(bytes(out), [KEY]) == plaintext


def test_memory_stays_around_one_block() -> None:
    size = 24 * 1024 * 1024
    reader = EncryptingReader(io.BytesIO(bytes(size)), size, [KEY.recipient()])
    largest = 0
    while reader.read(64 * 1024):
        largest = max(largest, reader._sink.size)
    assert largest < 1200 * 1024


@pytest.mark.parametrize("actual", [999, 1001])
def test_a_source_that_changes_size_fails_and_never_seals(actual: int) -> None:
    reader = EncryptingReader(io.BytesIO(bytes(actual)), 1000, [KEY.recipient()])
    produced = bytearray()

    def drain() -> None:
        while chunk := reader.read(100):
            produced.extend(chunk)

    with pytest.raises(SourceChanged):
        drain()
    # No final chunk was written: what went out can't pass for a whole file.
    with pytest.raises(age.DecryptionError):
        age.decrypt_bytes(bytes(produced), [KEY])


def test_an_upload_body_shorter_than_declared_fails_instead_of_hanging() -> None:
    body = _ExactBody(io.BytesIO(b"abc"), 5)
    assert body.read(10) == b"abc"
    with pytest.raises(ConnectionFailed):
        body.read(10)
    assert _ExactBody(io.BytesIO(b"abcdef"), 5).read() == b"abcde"
