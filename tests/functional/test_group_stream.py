"""Group content from files and streams: sealed and sent in constant memory.

A group blob from a path or a stream arrives byte for byte; a file that
changes size while it is read is refused with nothing stored (as for direct
blobs); sealing group content from a stream keeps memory flat in its size.
"""

from __future__ import annotations

import io
import os
import tracemalloc
from pathlib import Path

import pytest

from client_sim.errors import SourceChanged
from client_sim.transport import ChaliceTransport
from tests.functional.test_groups import People
from tests.support.fakes import Zeros

pytestmark = pytest.mark.functional


@pytest.fixture
def people(tmp_path: Path, transport: ChaliceTransport) -> People:
    crowd = People(tmp_path, transport)
    for name in ("alice", "bob"):
        crowd[name]
    return crowd


def test_a_group_blob_from_a_path_or_a_stream_arrives_byte_for_byte(
    people: People, tmp_path: Path
) -> None:
    alice, bob = people["alice"], people["bob"]
    group = alice.create_group(["bob"])
    data = os.urandom(300_000)  # above the inline limit: a presigned upload
    path = tmp_path / "report.bin"
    path.write_bytes(data)
    from_path = group.upload(path)
    from_stream = group.upload(io.BytesIO(data[:1000]))
    reader = bob.group(group.group_id)
    assert reader.download(from_path.blob_id).plaintext == data
    assert reader.download(from_stream.blob_id).plaintext == data[:1000]
    assert reader.download(from_path.blob_id).sender.identity == "alice"


class _Shrinking(io.BytesIO):
    """A stream that measures 10 bytes shorter than it reads (a file that grew)."""

    def seek(self, offset: int, whence: int = 0) -> int:
        position = super().seek(offset, whence)
        return position - 10 if whence == io.SEEK_END else position


def test_a_file_that_changes_size_while_read_is_refused_and_nothing_stored(
    people: People,
) -> None:
    alice = people["alice"]
    group = alice.create_group(["bob"])
    with pytest.raises(SourceChanged):
        group.upload(_Shrinking(os.urandom(5000)))
    assert alice.list_blobs("outbox").items == ()


def test_group_encrypt_file_and_stream_round_trip(people: People, tmp_path: Path) -> None:
    alice, bob = people["alice"], people["bob"]
    group = alice.create_group(["bob"])
    src, dst = tmp_path / "plain.txt", tmp_path / "sealed.age"
    src.write_bytes(b"minutes" * 1000)
    group.encrypt_file(src, dst, context="notes")
    opened = bob.group(group.group_id).decrypt(dst.read_bytes(), context="notes")
    assert opened.plaintext == b"minutes" * 1000


class _Sink:
    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def test_sealing_group_content_from_a_stream_keeps_memory_flat(people: People) -> None:
    alice = people["alice"]
    group = alice.create_group(["bob"])
    group.info()  # synced: what is measured is the call, not the first sync

    def peak(size: int) -> int:
        sink = _Sink()
        tracemalloc.start()
        try:
            group.encrypt_stream(Zeros(size), sink)  # type: ignore[arg-type]
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            assert sink.size > size

    small, large = peak(1 << 20), peak(24 << 20)
    # 24x the content may not cost more than a few chunks of extra peak
    # (the rest is the call's own fixed cost: keys, the group state).
    assert large < small + (1 << 20), (small, large)
