"""Progress: a live bar redrawn in place on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

from sealbox_tools.fleet.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_on_a_terminal_one_line_is_redrawn_in_place() -> None:
    out, clock = Terminal(), FakeClock()
    progress = Progress(200, out, stats=lambda: (123.4, 2), clock=clock)
    progress.start_phase("round 1 read")
    for _ in range(100):
        clock.now += 0.05
        progress.advance()
    progress.close()
    text = out.getvalue()
    assert "\n" not in text[:-1]  # redrawn, never scrolled ...
    assert text.endswith("\n")  # ... until it is closed
    frames = [f for f in text.split("\r\x1b[2K") if f]
    # At most ten redraws a second: 5 s of steps is about 50 frames, not 100.
    assert 40 <= len(frames) <= 60
    assert frames[-1].strip() == (
        "[############............]  50%  round 1 read  100/200 steps  123 req/s  2 errors"
    )


def test_elsewhere_plain_lines_at_phase_starts_and_every_interval() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = Progress(1000, out, stats=lambda: (50.0, 0), clock=clock, interval=5.0)
    progress.start_phase("round 0 act")
    for _ in range(600):
        clock.now += 0.1  # 60 s in all
        progress.advance()
    progress.start_phase("round 1 read")
    progress.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert "\x1b" not in out.getvalue()
    assert lines[0] == "fleet: round 0 act: 0/1000 steps (0%), 50 req/s, 0 errors"
    assert 12 <= len(lines) <= 15  # one per 5 s, plus phases and the end
    assert lines[-1] == "fleet: round 1 read: 600/1000 steps (60%), 50 req/s, 0 errors"


def test_tty_can_be_forced_and_nowhere_is_silent() -> None:
    out = io.StringIO()
    forced = Progress(10, out, tty=True)
    forced.start_phase("x")
    assert out.getvalue().startswith("\r\x1b[2K[")
    plain = Terminal()
    Progress(10, plain, tty=False).start_phase("x")
    assert plain.getvalue() == "fleet: x: 0/10 steps (0%), 0 req/s, 0 errors\n"
    silent = Progress(10, None)
    silent.start_phase("x")
    silent.advance(3)
    silent.close()
    assert silent.done == 3
