"""BlobClient(read_ahead=True): the same bytes, the same errors, nothing partial left.

The read-ahead thread (client_sim.pipeline) only moves where sealing and
receiving happen; every failure must surface as the same exception type as
in line, and a failed download must leave nothing at its destination.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from client_sim import age
from client_sim.blobs import BlobClient
from client_sim.errors import ConnectionFailed, SourceChanged
from client_sim.transport import Readable
from tests.functional.blob_helpers import User, make_user
from tests.support.objects import MOTO_STORAGE_ORIGINS, MotoObjects

pytestmark = pytest.mark.functional

MIB = 1024 * 1024


class HostileObjects(MotoObjects):
    """Storage that flips one byte of every download, or cuts it short."""

    def __init__(self, *, flip_at: int | None = None, cut_at: int | None = None) -> None:
        super().__init__()
        self.flip_at = flip_at
        self.cut_at = cut_at

    def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> Any:
        response = super().get(url, headers=headers)
        body = bytearray(response.read())
        if self.flip_at is not None:
            body[self.flip_at] ^= 1
        return _Reply(response.status, response.headers, bytes(body), self.cut_at)


class _Reply:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes, cut_at: int | None):
        self.status = status
        self.headers = headers
        self._body = io.BytesIO(body)
        self._cut_at = cut_at

    def read(self, size: int = -1, /) -> bytes:
        if self._cut_at is not None and self._body.tell() >= self._cut_at:
            raise ConnectionFailed("object storage: the download was interrupted")
        return self._body.read(size)

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> _Reply:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def alice(api, transport) -> User:
    user = make_user(api, transport, "alice")
    user.blobs = BlobClient(
        transport,
        lambda: user.token,
        objects=user.objects,
        storage_origins=MOTO_STORAGE_ORIGINS,
        read_ahead=True,
    )
    return user


def _reader(
    user: User, transport, objects: MotoObjects, read_ahead: bool | None = True
) -> BlobClient:
    return BlobClient(
        transport,
        lambda: user.token,
        objects=objects,
        storage_origins=MOTO_STORAGE_ORIGINS,
        read_ahead=read_ahead,
    )


@pytest.mark.parametrize("size", [300_000, 12 * MIB + 12345], ids=["single-put", "multipart"])
def test_read_ahead_round_trips(alice: User, tmp_path: Path, size: int) -> None:
    plaintext = bytes(range(251)) * (size // 251) + bytes(size % 251)
    source = tmp_path / "in.bin"
    source.write_bytes(plaintext)
    info = alice.blobs.upload(source, recipients=[alice.recipient()])
    assert info.state == "ready"
    out = tmp_path / "out.bin"
    alice.blobs.download(info.blob_id, out, identities=[alice.key])
    assert out.read_bytes() == plaintext


def test_read_ahead_upload_of_a_file_that_grows_is_source_changed(
    alice: User, tmp_path: Path
) -> None:
    class Growing(io.BytesIO):
        """Claims ``size`` bytes (seek/tell) but delivers one more."""

        def __init__(self, data: bytes) -> None:
            super().__init__(data + b"!")
            self._claimed = len(data)

        def seek(self, offset: int, whence: int = 0) -> int:
            if whence == io.SEEK_END:
                return self._claimed
            return super().seek(offset, whence)

    data = bytes(400_000)
    with pytest.raises(SourceChanged):
        alice.blobs.upload(Growing(data), recipients=[alice.recipient()])
    assert [info.state for info in alice.blobs.iter_blobs()] == ["reserved"]


@pytest.mark.parametrize("read_ahead", [True, None, False])
@pytest.mark.parametrize(
    ("where", "size"),
    [
        ("header", 3 * 65536 + 5),
        ("payload", 3 * 65536 + 5),
        # Past the writing thread's 1 MiB batches: some were written already.
        ("payload", 3 * MIB + 5),
    ],
)
def test_read_ahead_download_of_tampered_content_fails_and_leaves_nothing(
    alice: User, transport, tmp_path: Path, where: str, size: int, read_ahead: bool | None
) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(bytes(size))
    info = alice.blobs.upload(source, recipients=[alice.recipient()])
    offset = 40 if where == "header" else info.size - 100
    hostile = _reader(alice, transport, HostileObjects(flip_at=offset), read_ahead)
    out = tmp_path / "out" / "file.bin"
    out.parent.mkdir()
    with pytest.raises(age.DecryptionError):
        hostile.download(info.blob_id, out, identities=[alice.key])
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("read_ahead", [True, None, False])
def test_read_ahead_download_cut_short_is_connection_failed_and_leaves_nothing(
    alice: User, transport, tmp_path: Path, read_ahead: bool | None
) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(bytes(5 * 65536))
    info = alice.blobs.upload(source, recipients=[alice.recipient()])
    hostile = _reader(alice, transport, HostileObjects(cut_at=2 * 65536), read_ahead)
    out = tmp_path / "out" / "file.bin"
    out.parent.mkdir()
    with pytest.raises(ConnectionFailed):
        hostile.download(info.blob_id, out, identities=[alice.key])
    assert list(out.parent.iterdir()) == []


def test_the_read_ahead_window_reads_only_what_it_is_given() -> None:
    # The upload side wraps whatever ciphertext it is handed; a Readable
    # that returns short reads still yields every byte once.
    from client_sim.pipeline import ReadAhead

    class Trickle:
        def __init__(self, data: bytes) -> None:
            self._src = io.BytesIO(data)

        def read(self, size: int = -1, /) -> bytes:
            return self._src.read(min(size, 1000) if size >= 0 else 1000)

    data = bytes(range(256)) * 1000
    source: Readable = Trickle(data)
    with ReadAhead(source, block=65536) as ahead:
        assert ahead.read(len(data) + 1) == data


@pytest.mark.parametrize(
    ("read_ahead", "size", "threads"),
    [
        # The default: uploads larger than a part sealed ahead, downloads in line.
        (None, 300_000, []),
        (None, 16 * MIB + 1, ["sealbox-upload"]),
        (True, 300_000, ["sealbox-upload", "sealbox-download"]),
        (False, 16 * MIB + 1, []),
    ],
)
def test_which_transfers_read_ahead(
    alice: User,
    transport,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    read_ahead: bool | None,
    size: int,
    threads: list[str],
) -> None:
    import client_sim.blobs
    from client_sim.pipeline import ReadAhead

    started: list[str] = []

    class Recording(ReadAhead):
        def __init__(self, src: Any, **kwargs: Any) -> None:
            started.append(kwargs["name"])
            super().__init__(src, **kwargs)

    monkeypatch.setattr(client_sim.blobs, "ReadAhead", Recording)
    client = _reader(alice, transport, alice.objects, read_ahead)
    source = tmp_path / "in.bin"
    source.write_bytes(bytes(size))  # above the inline limit: presigned URLs
    info = client.upload(source, recipients=[alice.recipient()])
    client.download(info.blob_id, tmp_path / "out.bin", identities=[alice.key])
    assert (tmp_path / "out.bin").read_bytes() == bytes(size)
    assert started == threads


@pytest.mark.parametrize("read_ahead", [None, True])
def test_a_long_download_hands_each_8_mib_to_the_disk_as_it_goes(
    alice: User, transport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_ahead: bool | None
) -> None:
    import client_sim.pipeline

    handed: list[tuple[int, int]] = []
    monkeypatch.setattr(
        client_sim.pipeline,
        "start_writeback",
        lambda fd, offset, length: handed.append((offset, length)),
    )
    client = _reader(alice, transport, alice.objects, read_ahead)
    source = tmp_path / "in.bin"
    source.write_bytes(bytes(20 * MIB + 5))
    info = client.upload(source, recipients=[alice.recipient()])
    client.download(info.blob_id, tmp_path / "out.bin", identities=[alice.key])
    assert (tmp_path / "out.bin").read_bytes() == bytes(20 * MIB + 5)
    assert handed == [(0, 8 * MIB), (8 * MIB, 8 * MIB)]
    # Into a file object of the caller's, nothing is handed (it may not be fsynced).
    handed.clear()
    with (tmp_path / "mine.bin").open("wb") as mine:
        client.download(info.blob_id, mine, identities=[alice.key])
    assert handed == []
