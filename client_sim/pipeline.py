"""Two-stage pipelines for streams: read ahead, and write behind, on a thread.

On a device with two cores, sealing a file and moving its bytes can
overlap: ChaCha20-Poly1305, file reads and writes and socket sends and
receives all run outside Python's global lock, so a second thread that
only moves bytes keeps the disk or the network busy while the first one
seals or opens the next chunks (``python -m bench.age_throughput`` and
``python -m bench.blobs`` measure the gain against the same work done in
line).

* :class:`ReadAhead` wraps a readable: a thread reads blocks from it into a
  bounded queue; :meth:`ReadAhead.read` serves them.
* :class:`WriteBehind` wraps a writable: :meth:`WriteBehind.write` queues
  the bytes; a thread writes them; :meth:`WriteBehind.flush` waits for them.

Both keep at most ``depth`` blocks in flight, so memory stays flat in the
stream's length.  Failure semantics are those of the wrapped stream: an
exception raised by the wrapped ``read`` or ``write`` (on the thread) is
raised again, the same object, by the next call on the caller's side, and
nothing after it is delivered.  Closing either one stops and joins its
thread; neither closes the stream it wraps (its owner does, after).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["DEFAULT_BLOCK", "DEFAULT_DEPTH", "ReadAhead", "Readable", "Writable", "WriteBehind"]

#: Bytes per queued block: four 64 KiB age chunks.
DEFAULT_BLOCK = 256 * 1024
#: Blocks in flight between the two threads (so about 2 MiB at most).
DEFAULT_DEPTH = 8
# How often a blocked side looks whether the other one gave up (seconds).
_POLL = 0.05
# How long close() waits for the thread before leaving it (a daemon) behind.
_JOIN_TIMEOUT = 30.0


class Readable(Protocol):
    """A binary stream: ``read(n)`` returns at most ``n`` bytes, ``b""`` at the end."""

    def read(self, size: int = -1, /) -> bytes: ...


class Writable(Protocol):
    """A binary sink with ``write``."""

    def write(self, data: bytes, /) -> object: ...


class _Failure:
    """What the thread passes on when the wrapped stream raised."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = b""


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
    """Writes to ``dst`` on a thread; at most ``depth`` blocks wait.

    Small writes are gathered into blocks of about ``block`` bytes before
    they are queued.  :meth:`flush` returns once everything written so far
    reached ``dst`` (and ``dst.flush()`` ran, if it has one); an exception
    from ``dst.write`` is raised by the next :meth:`write` or
    :meth:`flush`, and nothing after it is written.  :meth:`close` flushes;
    :meth:`abort` drops what is still queued.  As a context manager, an
    exception inside the block aborts.
    """

    def __init__(
        self,
        dst: Writable,
        *,
        block: int = DEFAULT_BLOCK,
        depth: int = DEFAULT_DEPTH,
        name: str = "sealbox-write-behind",
    ) -> None:
        if block < 1 or depth < 1:
            raise ValueError("block and depth must be positive")
        self._dst = dst
        self._block = block
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._queue: queue.Queue[list[bytes] | Callable[[], None] | None] = queue.Queue(
            maxsize=depth
        )
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stop.is_set():
                return
            if self._failure is not None:
                if callable(item):
                    item()  # a flush waiting on it must wake up
                continue
            try:
                if callable(item):
                    item()
                else:
                    for part in item:
                        self._dst.write(part)
            except BaseException as exc:  # noqa: BLE001 - handed to the producer as is
                self._failure = exc

    def _enqueue(self, item: list[bytes] | Callable[[], None] | None) -> None:
        while True:
            if not self._thread.is_alive():
                raise RuntimeError("the write-behind thread is gone")
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure

    def write(self, data: ReadableBuffer, /) -> int:
        """Queue ``data`` (copied unless it is ``bytes``); returns its length.

        Raises:
            Whatever ``dst.write`` raised for earlier data.
            ValueError: write after :meth:`close` or :meth:`abort`.
        """
        if self._closed:
            raise ValueError("write to a closed WriteBehind")
        self._check()
        block = data if isinstance(data, bytes) else bytes(data)
        if block:
            self._pending.append(block)
            self._pending_size += len(block)
            if self._pending_size >= self._block:
                self._send_pending()
        return len(block)

    def _send_pending(self) -> None:
        if self._pending:
            batch, self._pending, self._pending_size = self._pending, [], 0
            self._enqueue(batch)

    def flush(self) -> None:
        """Wait until everything written so far reached ``dst``; flush ``dst``.

        Raises:
            Whatever ``dst.write`` or ``dst.flush`` raised.
        """
        if self._closed:
            return
        self._send_pending()
        done = threading.Event()

        def flush_dst() -> None:
            try:
                flush = getattr(self._dst, "flush", None)
                if flush is not None and self._failure is None:
                    flush()
            finally:
                done.set()

        self._enqueue(flush_dst)
        while not done.wait(_POLL):
            if not self._thread.is_alive():
                raise RuntimeError("the write-behind thread is gone")
        self._check()

    def close(self) -> None:
        """Flush, then stop the thread; idempotent.

        Raises:
            As for :meth:`flush` (the thread is stopped either way).
        """
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._shutdown()

    def abort(self) -> None:
        """Stop the thread without writing what is still queued."""
        if self._closed:
            return
        self._stop.set()
        self._pending = []
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._shutdown()

    def _shutdown(self) -> None:
        self._closed = True
        try:
            self._queue.put(None, timeout=_JOIN_TIMEOUT)
        except queue.Full:
            self._stop.set()
        self._thread.join(_JOIN_TIMEOUT)

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()
