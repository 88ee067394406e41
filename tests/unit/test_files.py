"""client_sim.files: the one atomic-output helper and the one sized-source helper."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from client_sim import files
from client_sim.files import PRIVATE, atomic_output, atomic_write, sized_source, umask_mode

pytestmark = pytest.mark.unit


def _leftovers(directory: Path, keep: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != keep)


def test_the_file_appears_whole_and_private(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with atomic_output(target) as out:
        out.write(b"first half ")
        assert not target.exists()  # nothing is visible before the block ends
        out.write(b"second half")
    assert target.read_bytes() == b"first half second half"
    assert stat.S_IMODE(target.stat().st_mode) == PRIVATE
    assert _leftovers(tmp_path, "out.bin") == []


def test_a_failure_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def write_half() -> None:
        with atomic_output(target) as out:
            out.write(b"new and partial")
            raise RuntimeError("half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        write_half()
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path, "out.bin") == []


def test_an_interrupt_is_a_failure_too(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"

    def interrupted() -> None:
        with atomic_output(target) as out:
            out.write(b"partial")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert not target.exists()
    assert _leftovers(tmp_path, "out.bin") == []


def test_a_user_file_gets_the_mode_open_would_give(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "user.txt", b"x", mode=umask_mode())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "user.txt").stat().st_mode) == 0o640


def test_the_private_mode_holds_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        atomic_write(tmp_path / "key", b"secret")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "key").stat().st_mode) == PRIVATE


def test_sized_source_measures_a_path_and_closes_it(tmp_path: Path) -> None:
    path = tmp_path / "plain"
    path.write_bytes(b"0123456789")
    with sized_source(path) as (stream, size):
        assert size == 10
        assert stream.read() == b"0123456789"
    assert stream.closed


def test_sized_source_counts_what_is_left_of_a_seekable_stream() -> None:
    buffer = io.BytesIO(b"0123456789")
    buffer.seek(4)
    with sized_source(buffer) as (stream, size):
        assert size == 6
        assert stream.tell() == 4  # left where it was
        assert stream.read() == b"456789"
    assert not buffer.closed  # the caller's stream stays the caller's


class _Pipe:
    """A reader with no size: like a pipe or a socket."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1, /) -> bytes:
        return self._data.read(size)


def test_sized_source_says_none_for_a_pipe() -> None:
    pipe = _Pipe(b"abc")
    with sized_source(pipe) as (stream, size):
        assert size is None
        assert stream is pipe  # type: ignore[comparison-overlap]


def test_start_writeback_asks_the_kernel_for_the_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int, int, int]] = []
    monkeypatch.setattr(os, "posix_fadvise", lambda *args: calls.append(args), raising=False)
    with (tmp_path / "f").open("wb") as out:
        files.start_writeback(out.fileno(), 8, 100)
        assert calls == [(out.fileno(), 8, 100, os.POSIX_FADV_DONTNEED)]


def test_start_writeback_is_only_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: int) -> None:
        raise OSError(29, "Illegal seek")

    monkeypatch.setattr(os, "posix_fadvise", refuse, raising=False)
    files.start_writeback(0, 0, 1)  # a pipe or a file it does not apply to: nothing raised
    monkeypatch.delattr(os, "posix_fadvise", raising=False)
    files.start_writeback(0, 0, 1)  # a system without it
