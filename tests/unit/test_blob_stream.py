"""client_sim.blobs.EncryptingReader: the ciphertext of a file, made as it is read."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from chalicelib.wire.agefile import sniff
from client_sim import age
from client_sim.blobs import EncryptingReader, age_file_size
from client_sim.errors import ConnectionFailed, SourceChanged
from client_sim.transport import _ExactBody
from tests.support.fakes import Zeros

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


# --- spooled_ciphertext (group blobs) ----------------------------------------------------


def _copy(src: Any, dst: Any) -> None:
    while chunk := src.read(64 * 1024):
        dst.write(chunk)


def test_spooled_ciphertext_rewinds_for_every_attempt_in_flat_memory() -> None:
    import tracemalloc

    from client_sim.blob_stream import spooled_ciphertext

    def peak(size: int) -> int:
        tracemalloc.start()
        try:
            with spooled_ciphertext(Zeros(size), _copy) as ciphertext:
                for _ in range(2):  # a retry sends it again from the start
                    stream, total = ciphertext()
                    assert total == size
                    read = 0
                    while chunk := stream.read(64 * 1024):
                        read += len(chunk)
                    assert read == size
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(1 << 20), peak(16 << 20)
    assert large < small + (512 << 10), (small, large)


def test_spooled_ciphertext_refuses_a_source_that_changed_size(tmp_path: Path) -> None:
    from client_sim.blob_stream import spooled_ciphertext

    path = tmp_path / "grows"
    path.write_bytes(b"x" * 1000)

    def grow_then_copy(src: Any, dst: Any) -> None:
        with path.open("ab") as more:
            more.write(b"y" * 10)
        _copy(src, dst)

    with pytest.raises(SourceChanged), spooled_ciphertext(path, grow_then_copy):
        pass
