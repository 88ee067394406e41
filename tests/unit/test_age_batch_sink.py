"""AgeWriter sealing into a sink's lent buffers (``BatchSink``): same file, same rules.

``sealbox age -r`` writes through WriteBehind, which lends buffers that the
writer seals chunks into, a batch at a time.  The output must be byte for
byte what the one-bytes-per-chunk path writes, a submitted buffer must
never be touched again, and an abort (an exception in the block, or a
writer dropped without ``close()``) must still leave no final chunk.
"""

from __future__ import annotations

import gc
import io
from pathlib import Path

import pytest

from client_sim import age
from client_sim.age._core import BatchSink, _encrypt_writer
from client_sim.pipeline import WriteBehind
from tests.unit.test_age_api import KEY, counter_rand

pytestmark = pytest.mark.unit

CHUNK = 64 * 1024
SEALED = CHUNK + 16


class RecordingSink:
    """A BatchSink that checks the lending contract from the sink's side.

    Each claim gets a fresh buffer; at submit the bytes are copied to the
    output and the buffer is kept with a snapshot, so :meth:`untouched`
    can tell whether the writer wrote into a buffer after submitting it.
    """

    def __init__(self, lend: int) -> None:
        self.out = bytearray()
        self.lend = lend
        self.claimed: bytearray | None = None
        self.submitted: list[tuple[bytearray, bytes]] = []

    def write(self, data: bytes) -> int:
        self.out += data
        return len(data)

    def claim_batch(self) -> memoryview:
        if self.claimed is None:
            self.claimed = bytearray(self.lend)
        return memoryview(self.claimed)

    def submit_batch(self, size: int) -> None:
        assert self.claimed is not None
        assert 0 < size <= self.lend
        self.out += self.claimed[:size]
        self.submitted.append((self.claimed, bytes(self.claimed)))
        self.claimed = None

    def untouched(self) -> bool:
        return all(bytes(buffer) == snapshot for buffer, snapshot in self.submitted)


def _reference(pieces: list[bytes]) -> bytes:
    out = io.BytesIO()
    with _encrypt_writer(out, [KEY.recipient()], armor=False, rand=counter_rand()) as writer:
        for piece in pieces:
            writer.write(piece)
    return out.getvalue()


SIZES = [
    [],
    [b"x"],
    [bytes(CHUNK - 1)],
    [bytes(CHUNK)],
    [bytes(CHUNK + 1)],
    [bytes(16 * CHUNK)],
    [bytes(16 * CHUNK + 1)],
    [bytes(3), bytes(5 * CHUNK), bytes(CHUNK - 3), bytes(40 * CHUNK + 7)],
]


@pytest.mark.parametrize("lend", [SEALED, 3 * SEALED + 5, 16 * SEALED])
@pytest.mark.parametrize("pieces", SIZES, ids=lambda p: "+".join(str(len(x)) for x in p) or "0")
def test_the_sink_gets_the_same_file_and_its_buffers_are_left_alone(
    pieces: list[bytes], lend: int
) -> None:
    sink = RecordingSink(lend)
    assert isinstance(sink, BatchSink)
    writer = _encrypt_writer(sink, [KEY.recipient()], armor=False, rand=counter_rand())  # type: ignore[arg-type]
    with writer:
        for piece in pieces:
            writer.write(piece)
    assert bytes(sink.out) == _reference(pieces)
    assert sink.untouched()
    assert sink.claimed is None  # the final chunk was submitted
    assert age.decrypt_bytes(bytes(sink.out), [KEY]) == b"".join(pieces)


def test_a_buffer_smaller_than_a_sealed_chunk_is_refused() -> None:
    writer = age.encrypt_writer(RecordingSink(SEALED - 1), [KEY.recipient()])  # type: ignore[arg-type]
    writer.write(b"x")
    with pytest.raises(ValueError, match="at least one sealed chunk"):
        writer.close()


def test_write_behind_is_a_sink_and_the_file_matches(tmp_path: Path) -> None:
    pieces = [bytes(range(256)) * 1000, bytes(20 * CHUNK + 9)]
    with (tmp_path / "out").open("wb") as dst, WriteBehind(dst) as out:
        assert isinstance(out, BatchSink)
        with _encrypt_writer(out, [KEY.recipient()], armor=False, rand=counter_rand()) as w:  # type: ignore[arg-type]
            for piece in pieces:
                w.write(piece)
    assert (tmp_path / "out").read_bytes() == _reference(pieces)


def test_an_abort_leaves_no_final_chunk_in_the_sink(tmp_path: Path) -> None:
    # The caller catches the error inside WriteBehind's block, so what was
    # submitted is written: the file must still fail to decrypt.

    def interrupted(out: WriteBehind) -> None:
        with age.encrypt_writer(out, [KEY.recipient()]) as writer:  # type: ignore[arg-type]
            writer.write(bytes(20 * CHUNK + 5))
            raise RuntimeError("interrupted")

    with (
        (tmp_path / "out").open("wb") as dst,
        WriteBehind(dst) as out,
        pytest.raises(RuntimeError, match="interrupted"),
    ):
        interrupted(out)
    written = (tmp_path / "out").read_bytes()
    assert len(written) > 16 * SEALED  # a batch went out before the abort
    with pytest.raises(age.DecryptionError):
        age.decrypt_bytes(written, [KEY])


def test_a_forgotten_writer_leaves_no_final_chunk_in_the_sink(tmp_path: Path) -> None:
    with (tmp_path / "out").open("wb") as dst, WriteBehind(dst) as out:
        writer = age.encrypt_writer(out, [KEY.recipient()])  # type: ignore[arg-type]
        writer.write(bytes(17 * CHUNK))
        del writer
        gc.collect()
    with pytest.raises(age.DecryptionError):
        age.decrypt_bytes((tmp_path / "out").read_bytes(), [KEY])
