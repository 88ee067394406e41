"""A two-stage pipeline for a stream: read ahead on a thread, through a bounded queue.

Sealing a file and moving its bytes can overlap on two cores: socket sends
and receives run outside Python's global lock, so a thread that only reads
(the network, or the encrypting reader of an upload) can keep a few blocks
ready while the caller seals, opens or writes.  :class:`ReadAhead` wraps a
readable: a thread reads blocks from it into a bounded queue and
:meth:`ReadAhead.read` serves them.  It is used by
``BlobTransfer(read_ahead=True)``; ``python -m bench.blobs`` measures it
against the same transfer in line, in the same run.

At most ``depth`` blocks are in flight, so memory stays flat in the
stream's length.  Failure semantics are those of the wrapped stream: an
exception raised by the wrapped ``read`` (on the thread) is raised again,
the same object, by the next :meth:`ReadAhead.read` once the data before
it has been consumed, and nothing after it is delivered.  Closing stops
and joins the thread; it never closes the wrapped stream (its owner does,
after).
"""

from __future__ import annotations

import queue
import threading
from typing import Protocol

__all__ = ["DEFAULT_BLOCK", "DEFAULT_DEPTH", "ReadAhead", "Readable"]

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
