"""The audit's log capture keeps every line, compressed, and gives them back whole."""

from __future__ import annotations

import logging

from sealbox_tools.audit import LOG_CHUNK, LOG_OVERLAP, Haystack, LogCapture, audit, needle


def whole(stacks: list[Haystack]) -> dict[str, bytes]:
    """Each logger's text from its pieces (each piece's overlap dropped)."""
    texts: dict[str, bytes] = {}
    for stack in stacks:
        assert (stack.overlap > 0) == (stack.name in texts)
        texts[stack.name] = texts.get(stack.name, b"") + stack.data[stack.overlap :]
    return texts


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
    stacks = whole(list(capture.haystacks()))
    assert stacks["logcapture-test.lines"] == "\n".join(f"DEBUG {line}" for line in lines).encode()
    assert stacks["logcapture-test.other"] == b"WARNING last words: swordfish-and-chips"
    report = audit(
        capture.haystacks(),
        [needle("canary", b"the canary sings"), needle("password", b"swordfish-and-chips")],
    )
    assert sorted(label for _, _, label in report.hits) == ["canary", "password"]


def capture_lines(lines: list[str]) -> LogCapture:
    capture = LogCapture()
    logger = logging.getLogger("logcapture-test.pieces")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(capture)
    try:
        for line in lines:
            logger.debug(line)
    finally:
        logger.removeHandler(capture)
    return capture


def test_a_long_log_is_read_a_piece_at_a_time() -> None:
    # A whole logger's text, inflated and joined, was the peak of a fleet's
    # audit (about a megabyte per phone at 200 phones).
    lines = [f"line {n:05d} " + "x" * 200 for n in range(5 * LOG_CHUNK // 200)]
    capture = capture_lines(lines)
    stacks = list(capture.haystacks())
    assert len(stacks) >= 5
    largest = max(len(stack.data) for stack in stacks)
    assert largest <= LOG_CHUNK + LOG_OVERLAP + 300
    report = audit(stacks, [needle("absent", b"nowhere in these lines")])
    # Counted as one haystack of its full size.
    assert report.scanned == {"log": 1}
    assert report.scanned_bytes == {"log": len("\n".join(f"DEBUG {x}" for x in lines))}


def test_a_needle_across_the_seam_of_two_pieces_is_found_once() -> None:
    size = len(f"DEBUG line 00000 {'x' * 200}\n")
    seam = -(-LOG_CHUNK // size)  # the first line of the second piece
    lines = [f"line {n:05d} " + "x" * 200 for n in range(3 * seam)]
    lines[seam - 1] = lines[seam - 1][:-9] + "seam-left"
    lines[seam] = f"line {seam:05d} seam-right" + "x" * 190
    capture = capture_lines(lines)
    stacks = list(capture.haystacks())
    across = f"seam-left\nDEBUG line {seam:05d} seam-right".encode()
    assert not any(across in stack.data[stack.overlap :] for stack in stacks)  # split by the seam
    assert any(across in stack.data for stack in stacks)
    report = audit(
        stacks, [needle("across", across), needle("everywhere", b"xxxxxxxxxxxxxxxxxxxx")]
    )
    assert sorted(report.hits) == [
        ("log", "logcapture-test.pieces", "across"),
        ("log", "logcapture-test.pieces", "everywhere"),
    ]
