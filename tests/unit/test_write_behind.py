"""WriteBehind: a thread writes what the caller wrote, in order, and fails the same way.

It backs ``sealbox age``'s output (client_sim/age_cli.py), so besides
delivering every byte in order it must keep memory bounded when the
destination is slow, raise the destination's own error to the caller, and
write nothing more once aborted.  These use pipes and files: real file
descriptors, no network.
"""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest

from client_sim.pipeline import WRITE_BATCH, WRITE_DEPTH, WriteBehind, write_behind

pytestmark = pytest.mark.unit


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


@pytest.mark.parametrize("sizes", [[1], [65552] * 50, [7, 300_000, 3, 65536, 1]])
def test_every_byte_arrives_in_order(tmp_path: Path, sizes: list[int]) -> None:
    expected = b"".join(os.urandom(n) for n in sizes)
    with (tmp_path / "out").open("wb") as dst:
        dst.write(b"header")  # buffered in dst: WriteBehind flushes it first
        with WriteBehind(dst) as out:
            pos = 0
            for n in sizes:
                view = memoryview(bytearray(expected[pos : pos + n]))
                assert out.write(view) == n  # copied: the caller may reuse its buffer
                view[:] = bytes(n)
                pos += n
    assert (tmp_path / "out").read_bytes() == b"header" + expected
    assert "sealbox-write-behind" not in _threads()


def test_flush_means_written(tmp_path: Path) -> None:
    with (tmp_path / "out").open("wb") as dst, WriteBehind(dst) as out:
        out.write(b"x" * 10)
        out.flush()
        assert (tmp_path / "out").read_bytes() == b"x" * 10


def test_the_destinations_error_reaches_the_writer_and_nothing_follows_it() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE
    with os.fdopen(write_end, "wb") as dst:
        out = WriteBehind(dst)

        def write_until_it_fails() -> None:
            for _ in range(100):
                out.write(b"z" * WRITE_BATCH)
                time.sleep(0.01)
            out.close()

        with pytest.raises(BrokenPipeError):
            write_until_it_fails()
        with pytest.raises(BrokenPipeError):
            out.write(b"more")
        out.abort()
    assert "sealbox-write-behind" not in _threads()


def test_a_slow_destination_holds_the_writer_back(tmp_path: Path) -> None:
    # Memory stays bounded: with nobody reading the pipe, the caller is
    # stopped after the pipe's buffer plus the queued batches.
    read_end, write_end = os.pipe()
    accepted = 0
    dst = os.fdopen(write_end, "wb")
    out = WriteBehind(dst)

    def produce() -> None:
        nonlocal accepted
        for _ in range(64):
            accepted += out.write(b"p" * 65552)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    time.sleep(0.5)
    pipe_capacity = 1 << 20  # Linux's default is 64 KiB; leave room for a raised limit
    assert 0 < accepted <= pipe_capacity + (WRITE_DEPTH + 2) * (WRITE_BATCH + 65552)
    assert producer.is_alive()
    with os.fdopen(read_end, "rb") as reader:
        drained = threading.Thread(target=reader.read, daemon=True)
        drained.start()
        producer.join(10)
        out.close()
        dst.close()
        drained.join(10)
    assert accepted == 64 * 65552


def test_abort_drops_what_was_not_written(tmp_path: Path) -> None:
    with (tmp_path / "out").open("wb") as dst:
        out = WriteBehind(dst)
        out.write(b"a" * 10)  # below a batch: still with the caller
        out.abort()
        with pytest.raises(ValueError, match="closed"):
            out.write(b"b")
    assert (tmp_path / "out").read_bytes() == b""


def test_an_exception_in_the_block_aborts(tmp_path: Path) -> None:
    def fail_inside(dst: io.BufferedWriter) -> None:
        with WriteBehind(dst) as out:
            out.write(b"never")
            raise RuntimeError("the caller failed")

    with (tmp_path / "out").open("wb") as dst, pytest.raises(RuntimeError):
        fail_inside(dst)
    assert (tmp_path / "out").read_bytes() == b""


def test_in_memory_destinations_are_written_in_line() -> None:
    dst = io.BytesIO()
    assert write_behind(dst) is dst
    with pytest.raises(ValueError, match="positive"):
        WriteBehind(io.BytesIO(), batch=0)


def test_many_small_writes_in_one_batch(tmp_path: Path) -> None:
    # A batch of more pieces than one writev call takes (IOV_MAX, 1024 on
    # Linux): small writes, like a text stream's lines, must still all arrive.
    pieces = [os.urandom(100) for _ in range(3 * WRITE_BATCH // 100)]
    with (tmp_path / "out").open("wb") as dst, WriteBehind(dst) as out:
        for piece in pieces:
            out.write(piece)
    assert (tmp_path / "out").read_bytes() == b"".join(pieces)


def test_short_writes_are_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # writev may write fewer bytes than it was given (a signal, a full
    # device); the rest must follow, in order, with nothing repeated.
    real_writev = os.writev

    def stingy_writev(fd: int, buffers: list[memoryview]) -> int:
        return real_writev(fd, [bytes(buffers[0][:1000])])

    monkeypatch.setattr(os, "writev", stingy_writev)  # the os module pipeline calls
    data = [os.urandom(2500), os.urandom(10), os.urandom(1000), os.urandom(70000)]
    with (tmp_path / "out").open("wb") as dst, WriteBehind(dst, batch=1) as out:
        for piece in data:
            out.write(piece)
    assert (tmp_path / "out").read_bytes() == b"".join(data)
