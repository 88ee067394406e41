"""The audit's log capture keeps every line, compressed, and gives them back whole."""

from __future__ import annotations

import logging

from sealbox_tools.audit import LOG_CHUNK, LogCapture, audit, needle


def test_lines_come_back_exactly_across_compressed_chunks() -> None:
    capture = LogCapture()
    # Loggers of this test's own, set up fully: another test may have set
    # the level of a shared parent such as "sealbox".
    logger = logging.getLogger("logcapture-test.lines")
    other = logging.getLogger("logcapture-test.other")
    for one in (logger, other):
        one.propagate = False
        one.setLevel(logging.DEBUG)
        one.addHandler(capture)
    try:
        lines = [f"line {n:05d} " + "x" * 200 for n in range(3 * LOG_CHUNK // 200)]
        lines[len(lines) // 2] += " the canary sings"
        for line in lines:
            logger.debug(line)
        other.warning("last words: swordfish-and-chips")
    finally:
        logger.removeHandler(capture)
        other.removeHandler(capture)
    assert capture.count == len(lines) + 1
    stacks = {stack.name: stack.data for stack in capture.haystacks()}
    assert stacks["logcapture-test.lines"] == "\n".join(f"DEBUG {line}" for line in lines).encode()
    assert stacks["logcapture-test.other"] == b"WARNING last words: swordfish-and-chips"
    report = audit(
        capture.haystacks(),
        [needle("canary", b"the canary sings"), needle("password", b"swordfish-and-chips")],
    )
    assert sorted(label for _, _, label in report.hits) == ["canary", "password"]
