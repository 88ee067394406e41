"""WriteBehind's lent buffers: claim, fill in place, submit; never reused in flight.

``sealbox age -r`` seals its chunks straight into buffers that WriteBehind
lends (client_sim/age/_core.py, ``BatchSink``).  The hazard of lending is a
buffer handed out again while the thread is still writing it: the file would
silently get the next batch's bytes.  These tests stall a pipe so that
batches stay queued, and check that every byte arrives as submitted, that a
producer waits instead, and that errors and aborts never leave it hanging.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from client_sim.pipeline import LEND_BUFFERS, WriteBehind

pytestmark = pytest.mark.unit

LEND = 4096


def _fill(buffer: memoryview, value: int) -> None:
    buffer[:] = bytes([value]) * len(buffer)


def test_a_buffer_is_never_lent_while_it_is_queued_or_written() -> None:
    # The pipe is not read at first: the thread blocks in writev, one batch
    # waits in the queue, and the producer must wait for a buffer rather
    # than get one of those two back and overwrite it.
    read_end, write_end = os.pipe()
    dst = os.fdopen(write_end, "wb")
    out = WriteBehind(dst, lend=1 << 20)  # larger than the pipe: writev blocks
    submitted = 0
    batches = 8

    def produce() -> None:
        nonlocal submitted
        for value in range(batches):
            buffer = out.claim_batch()
            _fill(buffer, value + 1)
            out.submit_batch(len(buffer))
            submitted += 1

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    time.sleep(0.3)
    assert producer.is_alive()
    # One buffer in writev, one queued (depth 1); none left to lend.
    assert submitted == LEND_BUFFERS
    with os.fdopen(read_end, "rb") as reader:
        received: list[bytes] = []
        drain = threading.Thread(target=lambda: received.append(reader.read()), daemon=True)
        drain.start()
        producer.join(10)
        out.close()
        dst.close()
        drain.join(10)
    expected = b"".join(bytes([value + 1]) * (1 << 20) for value in range(batches))
    assert received == [expected]


def test_claiming_again_returns_the_same_buffer_until_it_is_submitted(tmp_path: Path) -> None:
    seen: set[int] = set()
    with (tmp_path / "out").open("wb") as dst, WriteBehind(dst, lend=LEND) as out:
        first = out.claim_batch()
        first[:2] = b"ab"
        again = out.claim_batch()
        assert again.obj is first.obj
        assert bytes(again[:2]) == b"ab"
        out.submit_batch(2)
        for _ in range(20):
            buffer = out.claim_batch()
            seen.add(id(buffer.obj))
            buffer[:1] = b"c"
            out.submit_batch(1)
    # At most LEND_BUFFERS buffers are ever made, whatever the output size.
    assert len(seen) <= LEND_BUFFERS
    assert (tmp_path / "out").read_bytes() == b"ab" + b"c" * 20


def test_written_and_submitted_bytes_keep_their_order(tmp_path: Path) -> None:
    with (tmp_path / "out").open("wb") as dst:
        dst.write(b"0")  # buffered in dst: flushed before the thread starts
        with WriteBehind(dst, lend=LEND) as out:
            out.write(b"1")  # below a write() batch: still pending
            buffer = out.claim_batch()
            buffer[:1] = b"2"
            out.submit_batch(1)
            out.write(b"3")
            buffer = out.claim_batch()
            buffer[:2] = b"45"
            out.submit_batch(2)
    assert (tmp_path / "out").read_bytes() == b"012345"


def test_submit_needs_a_claim_and_a_size_within_the_buffer(tmp_path: Path) -> None:
    with (tmp_path / "out").open("wb") as dst, WriteBehind(dst, lend=LEND) as out:
        with pytest.raises(ValueError, match="claimed"):
            out.submit_batch(1)
        out.claim_batch()
        for size in (0, -1, LEND + 1):
            with pytest.raises(ValueError, match="claimed"):
                out.submit_batch(size)
        out.submit_batch(LEND)
        with pytest.raises(ValueError, match="claimed"):
            out.submit_batch(1)  # the buffer is no longer the caller's
    assert (tmp_path / "out").stat().st_size == LEND
    with pytest.raises(ValueError, match="positive"):
        WriteBehind(dst, lend=0)


def test_a_failed_write_reaches_the_producer_and_it_never_hangs() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write fails with EPIPE
    failures: list[BaseException] = []
    with os.fdopen(write_end, "wb") as dst:
        out = WriteBehind(dst, lend=LEND)

        def produce() -> None:
            try:
                for _ in range(100):
                    out.claim_batch()
                    out.submit_batch(LEND)
                    time.sleep(0.005)
            except BrokenPipeError as exc:
                failures.append(exc)
            try:
                out.claim_batch()  # every buffer came back: no wait forever
            except BrokenPipeError as exc:
                failures.append(exc)

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        producer.join(10)
        assert not producer.is_alive()
        assert len(failures) == 2
        with pytest.raises(BrokenPipeError):
            out.close()
        out.abort()


def test_abort_drops_the_claimed_buffer(tmp_path: Path) -> None:
    with (tmp_path / "out").open("wb") as dst:
        out = WriteBehind(dst, lend=LEND)
        buffer = out.claim_batch()
        buffer[:5] = b"never"
        out.abort()
        with pytest.raises(ValueError, match="closed"):
            out.claim_batch()
        with pytest.raises(ValueError, match="closed"):
            out.submit_batch(5)
    assert (tmp_path / "out").read_bytes() == b""
