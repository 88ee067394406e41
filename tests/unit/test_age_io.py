"""ByteSource and decryption over sources that return short reads (pipes)."""

from __future__ import annotations

import io
import random

import pytest

from client_sim import age
from client_sim.age._io import ByteSource


class Trickle:
    """A reader that returns a few bytes per call, like a slow pipe."""

    def __init__(self, data: bytes, seed: int) -> None:
        self._data = io.BytesIO(data)
        self._rng = random.Random(seed)

    def read(self, size: int = -1, /) -> bytes:
        n = self._rng.randint(1, 9) if size < 0 else min(size, self._rng.randint(1, 9))
        return self._data.read(n)


DATA = bytes(range(256)) * 700


@pytest.mark.parametrize("seed", range(3))
def test_byte_source_reads_peeks_and_lines(seed: int) -> None:
    src = ByteSource(Trickle(b"line one\nline two\n" + DATA, seed))
    assert src.read_line(100) == b"line one\n"
    assert src.peek(4) == b"line"
    assert src.read_line(5) is None  # no newline within the limit
    assert src.read_line(100) == b"line two\n"
    assert src.read(70_000) == DATA[:70_000]
    assert src.peek(1) == DATA[70_000:70_001]
    assert src.read(10**6) == DATA[70_000:]
    assert src.read(1) == b""
    assert src.peek(1) == b""
    assert src.read_line(10) == b""


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("armor", [False, True])
def test_decrypt_from_a_trickling_source(seed: int, armor: bool) -> None:
    key = age.X25519Identity.generate()
    plain = DATA[: 2 * 65536 + 3]
    blob = age.encrypt_bytes(plain, [key.recipient()], armor=armor)
    reader = age.decrypt_reader(Trickle(blob, seed), [key])
    assert reader.read() == plain
