"""Progress of a fleet run: a live bar on a terminal, plain lines otherwise.

On a terminal one line is redrawn in place (at most ten times a second)::

    [#########...............]  38%  round 2 act  1,204/3,160 steps  212 req/s  0 errors

Anywhere else (CI logs, a pipe) a plain line is printed when a phase starts
and then at most every ``interval`` seconds, so logs stay short and
readable::

    fleet: round 2 act: 1204/3160 steps (38%), 212 req/s, 0 errors
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import IO

__all__ = ["Progress"]

_BAR = 24


class Progress:
    """Counts finished steps and shows them.  Thread-safe.

    Args:
        total: the number of steps the run will take.
        out: where to write (None: nowhere).
        tty: force the terminal (True) or plain (False) form; by default
            ``out.isatty()`` decides.
        stats: returns (requests per second, errors) for the line.
        interval: seconds between plain lines.
        clock: monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        total: int,
        out: IO[str] | None,
        *,
        tty: bool | None = None,
        stats: Callable[[], tuple[float, int]] = lambda: (0.0, 0),
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.phase = ""
        self._out = out
        self._tty = bool(out is not None and (out.isatty() if tty is None else tty))
        self.stats = stats
        self._interval = interval if not self._tty else 0.1
        self._clock = clock
        self._last = float("-inf")
        self._lock = threading.Lock()
        self._drawn = False

    def start_phase(self, label: str) -> None:
        """A new phase begins: always shown."""
        with self._lock:
            self.phase = label
            self._show(force=True)

    def advance(self, n: int = 1) -> None:
        """``n`` more steps finished."""
        with self._lock:
            self.done = min(self.done + n, self.total)
            self._show(force=False)

    def close(self) -> None:
        """Show the final state and end the live line."""
        with self._lock:
            self._show(force=True)
            if self._tty and self._drawn and self._out is not None:
                self._out.write("\n")
                self._out.flush()

    def line(self) -> str:
        """The current progress, as the plain form prints it."""
        rate, errors = self.stats()
        percent = self.done * 100 // self.total
        if self._tty:
            filled = self.done * _BAR // self.total
            return (
                f"[{'#' * filled}{'.' * (_BAR - filled)}] {percent:3d}%  {self.phase}  "
                f"{self.done:,}/{self.total:,} steps  {rate:.0f} req/s  {errors} errors"
            )
        return (
            f"fleet: {self.phase}: {self.done}/{self.total} steps ({percent}%), "
            f"{rate:.0f} req/s, {errors} errors"
        )

    def _show(self, *, force: bool) -> None:
        if self._out is None:
            return
        now = self._clock()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        if self._tty:
            # \r and erase-line: redraw in place, whatever was there before.
            self._out.write("\r\x1b[2K" + self.line())
            self._drawn = True
        else:
            self._out.write(self.line() + "\n")
        self._out.flush()
