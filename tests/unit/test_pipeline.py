"""client_sim.pipeline: read-ahead and write-behind threads keep the stream's semantics."""

from __future__ import annotations

import io
import threading
import time

import pytest

from client_sim.pipeline import ReadAhead, WriteBehind

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


class SlowSink(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushed = 0

    def write(self, data: object, /) -> int:  # type: ignore[override]
        time.sleep(0.001)
        return super().write(data)  # type: ignore[arg-type]

    def flush(self) -> None:
        self.flushed += 1


def test_write_behind_writes_everything_in_order_and_flush_waits_for_it() -> None:
    sink = SlowSink()
    with WriteBehind(sink, block=1000, depth=2) as behind:
        for i in range(0, len(DATA), 777):
            behind.write(memoryview(DATA)[i : i + 777])
        behind.flush()
        assert sink.getvalue() == DATA  # flush returned only once all of it landed
        assert sink.flushed == 1
    assert sink.getvalue() == DATA


def test_write_behind_copies_mutable_buffers() -> None:
    sink = io.BytesIO()
    buffer = bytearray(b"first")
    with WriteBehind(sink) as behind:
        behind.write(buffer)
        buffer[:] = b"XXXXX"  # the caller reuses its buffer at once
    assert sink.getvalue() == b"first"


class FailingSink:
    def __init__(self, error: BaseException, after: int) -> None:
        self.error = error
        self.after = after
        self.data = bytearray()

    def write(self, data: bytes, /) -> int:
        if len(self.data) + len(data) > self.after:
            raise self.error
        self.data += data
        return len(data)


def test_write_behind_raises_the_sinks_error_and_writes_nothing_after_it() -> None:
    error = OSError(28, "No space left on device")
    sink = FailingSink(error, after=3000)
    behind = WriteBehind(sink, block=1000, depth=2)

    def write_all() -> None:
        for i in range(0, len(DATA), 500):
            behind.write(DATA[i : i + 500])
        behind.flush()

    with pytest.raises(OSError, match="No space") as raised:
        write_all()
    assert raised.value is error
    assert len(sink.data) <= 3000
    with pytest.raises(OSError, match="No space"):
        behind.flush()
    behind.abort()
    assert DATA.startswith(bytes(sink.data))


def test_write_behind_abort_drops_what_is_queued_and_joins() -> None:
    before = set(threading.enumerate())
    sink = SlowSink()
    behind = WriteBehind(sink, block=10, depth=50)

    def fail_midway() -> None:
        with behind:
            for i in range(0, 2000, 10):
                behind.write(DATA[i : i + 10])
            raise Boom

    with pytest.raises(Boom):
        fail_midway()
    assert len(sink.getvalue()) < 2000  # not everything was written
    assert set(threading.enumerate()) <= before
    with pytest.raises(ValueError, match="closed"):
        behind.write(b"more")
