"""client_sim.pipeline: a read-ahead thread keeps the stream's semantics and bounds."""

from __future__ import annotations

import io
import threading
import time

import pytest

from client_sim.pipeline import ReadAhead

pytestmark = pytest.mark.unit

DATA = bytes(range(256)) * 4099  # not a multiple of any block size below


class Boom(Exception):
    """The wrapped stream's own error type."""


class FailingSource:
    """Delivers ``good`` bytes in small reads, then raises ``error``."""

    def __init__(self, good: bytes, error: BaseException) -> None:
        self._src = io.BytesIO(good)
        self._error = error
        self.reads = 0

    def read(self, size: int = -1, /) -> bytes:
        self.reads += 1
        data = self._src.read(min(size, 1000))
        if not data:
            raise self._error
        return data


class CountingSource:
    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)
        self.reads = 0

    def read(self, size: int = -1, /) -> bytes:
        self.reads += 1
        return self._src.read(size)


@pytest.mark.parametrize("block", [1, 7, 4096, 65536, 10**7])
@pytest.mark.parametrize("read_size", [1, 1000, 65536, -1])
def test_read_ahead_delivers_exactly_the_stream(block: int, read_size: int) -> None:
    # Tiny blocks or reads on a shorter stream: a queued item per byte is slow.
    data = DATA if block >= 4096 and read_size >= 1000 else DATA[:5003]
    src = io.BytesIO(data)
    out = bytearray()
    with ReadAhead(src, block=block, depth=3) as ahead:
        while chunk := ahead.read(read_size):
            assert read_size < 0 or len(chunk) <= read_size
            out += chunk
        assert ahead.read(5) == b""
    assert bytes(out) == data


def test_read_ahead_returns_short_reads_only_at_the_end() -> None:
    with ReadAhead(io.BytesIO(DATA), block=1000, depth=2) as ahead:
        sizes = []
        while chunk := ahead.read(4096):
            sizes.append(len(chunk))
    assert all(size == 4096 for size in sizes[:-1])
    assert sum(sizes) == len(DATA)


def test_read_ahead_raises_the_sources_error_after_the_data_before_it() -> None:
    error = Boom("source failed")
    with ReadAhead(FailingSource(DATA[:5000], error), block=4096, depth=2) as ahead:
        got = bytearray()

        def drain() -> None:
            while chunk := ahead.read(100):
                got.extend(chunk)

        with pytest.raises(Boom) as raised:
            drain()
        assert raised.value is error  # the same object, not a copy or a wrapper
        assert bytes(got) == DATA[:5000]
        # And it keeps failing: nothing after the error is ever delivered.
        with pytest.raises(Boom):
            ahead.read(1)


def test_read_ahead_stays_a_bounded_number_of_blocks_ahead() -> None:
    src = CountingSource(DATA)
    with ReadAhead(src, block=100, depth=3):
        time.sleep(0.3)
        # depth blocks queued, plus at most one read waiting to be queued.
        assert src.reads <= 4


def test_read_ahead_close_stops_and_joins_its_thread_promptly() -> None:
    before = set(threading.enumerate())
    ahead = ReadAhead(io.BytesIO(DATA), block=10, depth=2)
    ahead.read(5)
    started = time.monotonic()
    ahead.close()
    assert time.monotonic() - started < 5
    assert set(threading.enumerate()) <= before
    with pytest.raises(ValueError, match="closed"):
        ahead.read(1)


def test_read_ahead_refuses_nonsense_sizes() -> None:
    with pytest.raises(ValueError, match="positive"):
        ReadAhead(io.BytesIO(b""), block=0)
    with pytest.raises(ValueError, match="positive"):
        ReadAhead(io.BytesIO(b""), depth=0)


@pytest.mark.parametrize("block", [7, 4096, 65536])
@pytest.mark.parametrize("size", [1, 1000, 65536])
def test_read_ahead_readinto_delivers_exactly_the_stream(block: int, size: int) -> None:
    data = DATA if size >= 1000 else DATA[:5003]
    out = bytearray()
    buffer = bytearray(size)
    with ReadAhead(io.BytesIO(data), block=block, depth=3) as ahead:
        while filled := ahead.readinto(buffer):
            assert filled <= size
            out += buffer[:filled]
        assert ahead.readinto(buffer) == 0
        assert ahead.readinto(bytearray()) == 0
    assert bytes(out) == data


def test_read_ahead_readinto_raises_the_sources_error_after_the_data_before_it() -> None:
    error = Boom("source failed")
    buffer = bytearray(300)
    with ReadAhead(FailingSource(DATA[:5000], error), block=4096, depth=2) as ahead:
        got = bytearray()

        def drain() -> None:
            while filled := ahead.readinto(buffer):
                got.extend(buffer[:filled])

        with pytest.raises(Boom) as raised:
            drain()
        assert raised.value is error
        assert bytes(got) == DATA[:5000]
        with pytest.raises(Boom):
            ahead.readinto(buffer)
    with pytest.raises(ValueError, match="closed"):
        ahead.readinto(buffer)


def test_write_behind_hands_each_writeback_span_to_the_disk(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import client_sim.pipeline
    from client_sim.pipeline import WriteBehind

    handed: list[tuple[int, int]] = []
    monkeypatch.setattr(
        client_sim.pipeline, "start_writeback", lambda fd, at, n: handed.append((at, n))
    )
    with (tmp_path / "out").open("wb") as out:
        out.write(b"h" * 10)  # already in the file: the spans start after it
        with WriteBehind(out, writeback=1000, lend=300) as behind:
            for _ in range(10):
                view = behind.claim_batch()
                view[:300] = b"x" * 300
                behind.submit_batch(300)
            behind.write(b"y" * 500)
    assert (tmp_path / "out").read_bytes() == b"h" * 10 + b"x" * 3000 + b"y" * 500
    assert handed == [(10, 1200), (1210, 1200), (2410, 1100)]
