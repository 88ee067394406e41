"""Two-stage pipelines for a stream: read ahead, or write behind, on a thread.

Sealing a file and moving its bytes can overlap on two cores: socket sends
and receives run outside Python's global lock, so a thread that only reads
(the network, or the encrypting reader of an upload) can keep a few blocks
ready while the caller seals, opens or writes.  :class:`ReadAhead` wraps a
readable: a thread reads blocks from it into a bounded queue and
:meth:`ReadAhead.read` (or :meth:`ReadAhead.readinto`) serves them.
``BlobTransfer`` seals uploads larger than one part through it by default
(and receives downloads through it with ``read_ahead=True``); ``python -m
bench.blobs`` measures it against the same transfer in line, in the same
run.

At most ``depth`` blocks are in flight, so memory stays flat in the
stream's length.  Failure semantics are those of the wrapped stream: an
exception raised by the wrapped ``read`` (on the thread) is raised again,
the same object, by the next :meth:`ReadAhead.read` once the data before
it has been consumed, and nothing after it is delivered.  Closing stops
and joins the thread; it never closes the wrapped stream (its owner does,
after).

:class:`WriteBehind` is the other direction, for a file descriptor: the
caller's ``write`` hands its bytes over in batches and a thread writes them
with ``os.writev`` (a write to the page cache or a pipe also runs outside
the global lock, so it overlaps with sealing or opening the next chunks).
``sealbox age`` writes its output through it (``python -m
bench.age_throughput`` measures the whole process against the age CLI);
when encrypting, the age writer seals its chunks straight into buffers that
WriteBehind lends (:meth:`WriteBehind.claim_batch`), so no chunk is
allocated or copied on its way to the file.  A failed write is raised again
by the caller's next ``write``, ``flush``, ``claim_batch``,
``submit_batch`` or ``close``; nothing is written after it.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import IO, TYPE_CHECKING, Protocol

from client_sim.files import start_writeback

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = [
    "DEFAULT_BLOCK",
    "DEFAULT_DEPTH",
    "LEND_BUFFERS",
    "LEND_SIZE",
    "WRITE_BATCH",
    "WRITE_DEPTH",
    "ReadAhead",
    "Readable",
    "WriteBehind",
    "write_behind",
]

#: Bytes per queued block: four 64 KiB age chunks.
DEFAULT_BLOCK = 256 * 1024
#: Blocks in flight between the two threads (so about 2 MiB at most).
DEFAULT_DEPTH = 8
#: Bytes per batch handed to the writing thread (eight 64 KiB chunks), and
#: batches queued: with one being written and one being filled, at most about
#: 1.5 MiB is in flight.  Measured with ``sealbox age`` on 256 MiB: fewer,
#: larger batches cost less CPU (each is a thread handoff), and 1 MiB batches
#: took the process's peak RSS past its 32 MiB budget.
WRITE_BATCH = 512 * 1024
WRITE_DEPTH = 1
#: Bytes per buffer that :meth:`WriteBehind.claim_batch` lends (sixteen
#: sealed 64 KiB age chunks of 65,552 bytes), and how many exist: one being
#: filled while the other is queued or written.  Measured with ``sealbox
#: age -r`` on 256 MiB (bench.age_throughput): 1 MiB buffers cost about 3 %
#: less CPU than 512 KiB ones (half the thread handoffs), and a third buffer
#: bought nothing but 1 MiB of peak RSS.
LEND_SIZE = 16 * (64 * 1024 + 16)
LEND_BUFFERS = 2
# How often a blocked side looks whether the other one gave up (seconds).
_POLL = 0.05
# How long close() waits for the thread before leaving it (a daemon) behind.
_JOIN_TIMEOUT = 30.0


class Readable(Protocol):
    """A binary stream: ``read(n)`` returns at most ``n`` bytes, ``b""`` at the end."""

    def read(self, size: int = -1, /) -> bytes: ...


# What the writing thread takes: the parts to write, and the lent buffer
# they are in (None for bytes given to write()).
_Batch = tuple[list[bytes | memoryview], bytearray | None]


class _Failure:
    """What the thread passes on when the wrapped stream raised."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class ReadAhead:
    """Reads ``src`` on a thread, ``block`` bytes at a time, ``depth`` blocks ahead.

    :meth:`read` returns exactly what ``src`` would have returned overall,
    in the same order, and raises what ``src.read`` raised at the point the
    thread met it.  Use as a context manager (or call :meth:`close`): the
    thread stops reading as soon as the consumer is gone.
    """

    def __init__(
        self,
        src: Readable,
        *,
        block: int = DEFAULT_BLOCK,
        depth: int = DEFAULT_DEPTH,
        name: str = "sealbox-read-ahead",
    ) -> None:
        if block < 1 or depth < 1:
            raise ValueError("block and depth must be positive")
        self._src = src
        self._block = block
        self._queue: queue.Queue[bytes | _Failure] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._current = b""
        self._offset = 0
        self._finished = False
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: bytes | _Failure) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._src.read(self._block)
                if not self._put(data) or not data:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer as is
            self._put(_Failure(exc))

    def _next(self) -> bool:
        """Load the next block; False at the end."""
        if self._failure is not None:
            raise self._failure
        if self._finished:
            return False
        item = self._queue.get()
        if isinstance(item, _Failure):
            self._failure = item.error
            self._finished = True
            raise item.error
        if not item:
            self._finished = True
            return False
        self._current, self._offset = item, 0
        return True

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all that is left when negative); ``b""`` at the end.

        Like a file, it returns fewer than ``size`` only at the end.

        Raises:
            Whatever ``src.read`` raised, once the data before it is consumed.
            ValueError: read after :meth:`close`.
        """
        if self._stop.is_set():
            raise ValueError("read from a closed ReadAhead")
        want = size if size is not None and size >= 0 else 1 << 62
        parts: list[bytes] = []
        while want:
            left = len(self._current) - self._offset
            if not left:
                if not self._next():
                    break
                continue
            if self._offset == 0 and left <= want:
                part = self._current  # the whole block: no copy
            else:
                part = self._current[self._offset : self._offset + want]
            self._offset += len(part)
            want -= len(part)
            parts.append(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        """Copy up to ``len(buffer)`` bytes into ``buffer``; 0 at the end.

        What is left of the current block (one copy, no joined bytes in
        between); fewer than asked only at a block's end, like a socket.

        Raises:
            As :meth:`read`.
        """
        if self._stop.is_set():
            raise ValueError("read from a closed ReadAhead")
        view = memoryview(buffer).cast("B")
        if not view:
            return 0
        if len(self._current) == self._offset and not self._next():
            return 0
        taken = min(len(view), len(self._current) - self._offset)
        view[:taken] = memoryview(self._current)[self._offset : self._offset + taken]
        self._offset += taken
        return taken

    def close(self) -> None:
        """Stop the thread (it finishes its current ``src.read``) and drop what it read."""
        self._stop.set()
        self._drain()
        self._thread.join(_JOIN_TIMEOUT)
        self._drain()
        self._current = b""

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WriteBehind:
    """Writes to the file descriptor of ``dst`` on a thread, in batches.

    ``dst`` is flushed first, and must not be written to directly until
    :meth:`close` (or :meth:`abort`) returns; it is never closed here.
    Bytes reach the descriptor in the order written.  Use as a context
    manager: leaving the block normally writes everything and joins the
    thread; leaving it with an exception aborts (what was not written yet
    is dropped -- the caller is about to discard the output anyway).

    Besides :meth:`write` (which keeps ``bytes`` and copies anything
    else), a producer can fill buffers in place: :meth:`claim_batch` lends
    one of :data:`LEND_BUFFERS` buffers of ``lend`` bytes and
    :meth:`submit_batch` hands it to the thread, which returns it once
    written (``age.AgeWriter`` seals chunks into them).  A buffer is never
    lent while it is queued or being written.

    With ``writeback`` (a byte count), the thread also asks the kernel to
    start writing each ``writeback`` bytes to disk once they are written
    (:func:`client_sim.files.start_writeback`), for a file that will be
    fsynced.

    Raises:
        io.UnsupportedOperation, OSError: (constructor) ``dst`` has no file
            descriptor; see :func:`write_behind` for a fallback.
    """

    def __init__(
        self,
        dst: IO[bytes],
        *,
        batch: int = WRITE_BATCH,
        depth: int = WRITE_DEPTH,
        lend: int = LEND_SIZE,
        writeback: int = 0,
    ) -> None:
        if batch < 1 or depth < 1 or lend < 1 or writeback < 0:
            raise ValueError("batch, depth and lend must be positive, writeback not negative")
        self._fd = dst.fileno()
        dst.flush()
        self._writeback = writeback
        self._offset = _position(self._fd)  # where the next write lands
        self._handed = self._offset  # everything before was handed to the disk
        self._batch = batch
        self._pending: list[bytes | memoryview] = []
        self._pending_size = 0
        # Each item: the parts to write, and the lent buffer they are in
        # (returned to the ring once written), if any.
        self._queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=depth)
        self._lend = lend
        self._ring: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._ring_left = LEND_BUFFERS  # buffers that may still be made
        self._claimed: bytearray | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._discard = False  # set when stopping: the thread skips what is left
        self._thread = threading.Thread(target=self._run, name="sealbox-write-behind", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                parts, lent = item
                try:
                    if self._error is None and not self._discard:
                        self._offset += _writev_all(self._fd, parts)
                        if self._writeback and self._offset - self._handed >= self._writeback:
                            start_writeback(self._fd, self._handed, self._offset - self._handed)
                            self._handed = self._offset
                finally:
                    if lent is not None:
                        self._ring.put(lent)
            except BaseException as exc:  # noqa: BLE001 - handed to the writer as is
                self._error = exc
            finally:
                self._queue.task_done()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ValueError("write to a closed WriteBehind")

    def _hand_over(self) -> None:
        if not self._pending:
            return
        parts, self._pending, self._pending_size = self._pending, [], 0
        self._put((parts, None))

    def _put(self, item: _Batch) -> None:
        while True:
            self._check()
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def claim_batch(self) -> memoryview:
        """A ``lend``-byte buffer to fill, then pass on with :meth:`submit_batch`.

        The buffer is the caller's until then (claiming again returns the
        same one); it waits while every buffer of the ring is queued or
        being written.

        Raises:
            OSError: an earlier batch failed to write.
            ValueError: after :meth:`close` or :meth:`abort`.
        """
        self._check()
        while self._claimed is None:
            if self._ring_left and self._ring.empty():
                # Buffers are made as needed: a short output uses one.
                self._ring_left -= 1
                self._claimed = bytearray(self._lend)
                continue
            try:
                self._claimed = self._ring.get(timeout=_POLL)
            except queue.Empty:
                self._check()  # the thread failed: it may never return one
        return memoryview(self._claimed)

    def submit_batch(self, size: int) -> None:
        """Queue the first ``size`` bytes of the claimed buffer, after
        everything written before; the buffer is no longer the caller's.

        Raises:
            OSError: an earlier batch failed to write.
            ValueError: nothing is claimed, ``size`` is out of range, or
                after :meth:`close` or :meth:`abort`.
        """
        self._check()
        lent = self._claimed
        if lent is None or not 0 < size <= len(lent):
            raise ValueError("submit_batch needs a claimed buffer and 0 < size <= lend")
        self._claimed = None
        try:
            self._hand_over()  # what write() took goes first
            self._put(([memoryview(lent)[:size]], lent))
        except BaseException:
            self._ring.put(lent)  # not queued: back to the ring
            raise

    def write(self, data: ReadableBuffer, /) -> int:
        """Queue ``data`` (copied unless it is ``bytes``); returns its length.

        Raises:
            OSError: an earlier batch failed to write (nothing more is written).
            ValueError: after :meth:`close` or :meth:`abort`.
        """
        self._check()
        part = data if isinstance(data, bytes) else bytes(data)
        if part:
            self._pending.append(part)
            self._pending_size += len(part)
            if self._pending_size >= self._batch:
                self._hand_over()
        return len(part)

    def flush(self) -> None:
        """Return once everything written so far is in the file descriptor.

        Raises:
            OSError: a write failed.
        """
        self._hand_over()
        self._queue.join()
        self._check()

    def close(self) -> None:
        """Write what is left, stop the thread; idempotent.

        Raises:
            OSError: a write failed.
        """
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._stop()

    def abort(self) -> None:
        """Stop the thread, dropping what was not written yet; never raises."""
        if not self._closed:
            self._pending, self._pending_size = [], 0
            self._claimed = None
            self._stop()

    def _stop(self) -> None:
        self._closed = True
        self._discard = True
        # The thread now skips every queued batch; the marker ends it.
        self._queue.put(None)
        self._thread.join(_JOIN_TIMEOUT)

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


# writev refuses more buffers than this in one call (EINVAL); POSIX
# guarantees at least 16, Linux allows 1024.
_IOV_MAX = (
    max(16, min(os.sysconf("SC_IOV_MAX"), 1024))
    if "SC_IOV_MAX" in getattr(os, "sysconf_names", {})
    else 16
)


def _position(fd: int) -> int:
    """The descriptor's offset (0 for a pipe, which has none)."""
    try:
        return os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        return 0


def _writev_all(fd: int, parts: list[bytes | memoryview]) -> int:
    """Write every byte of ``parts`` to ``fd``, at most ``_IOV_MAX`` buffers a
    call (``os.writev`` may also write fewer bytes than it was given); the
    number of bytes."""
    views = [memoryview(part) for part in parts if part]
    total = sum(len(view) for view in views)
    first = 0
    while first < len(views):
        written = os.writev(fd, views[first : first + _IOV_MAX])
        while first < len(views) and written >= len(views[first]):
            written -= len(views[first])
            first += 1
        if written:
            views[first] = views[first][written:]
    return total


def write_behind(dst: IO[bytes]) -> WriteBehind | IO[bytes]:
    """A :class:`WriteBehind` over ``dst``, or ``dst`` itself when it has no
    file descriptor (an in-memory stream: nothing to overlap)."""
    try:
        dst.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return dst
    return WriteBehind(dst)
