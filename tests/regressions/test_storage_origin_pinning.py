"""Presigned URLs from a hostile server: the device followed them anywhere.

The device sent ciphertext to (and read blobs from) whatever upload and
download URLs the server returned, on any host, port and scheme.  It now
checks each one against its configured storage origins before connecting
(client_sim/origins.py).  Each attack here points a URL at a loopback
listener that records every connection, and asserts that no listener was
contacted at all -- neither the foreign one nor, through a trick, the
allowed one -- and that the error names the origin but never the URL's
query (a bearer credential).
"""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from client_sim import age
from client_sim.blobs import BlobClient
from client_sim.errors import StorageOriginRefused, StorageTransferFailed
from client_sim.transport import HttpObjectTransport, HttpReply, InProcessObjectTransport

BLOB_ID = "B" * 22
SECRET = "X-Amz-Signature=0123456789abcdef-the-credential"
SIZE = 100_000  # over the inline limit: the upload goes to a presigned URL


class Listener:
    """A loopback TCP listener that records every connection it accepts and
    answers each request with ``reply`` (raw HTTP)."""

    def __init__(self, reply: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") -> None:
        self.reply = reply
        self.contacts = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.contacts += 1
            with conn:
                conn.settimeout(5)
                try:
                    _read_request(conn)
                    conn.sendall(self.reply)
                except OSError:
                    pass

    def close(self) -> None:
        self._sock.close()


def _read_request(conn: socket.socket) -> None:
    """Read one request, its body included (closing on unread data resets)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


@pytest.fixture
def storage() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


@pytest.fixture
def foreign() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


@dataclass
class HostileServer:
    """The API as a hostile server plays it: a reservation whose upload
    targets, and a READY blob whose download URL, point where it likes."""

    upload: list[str] = field(default_factory=list)
    download: str = ""

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        if (method, path) == ("POST", "/v1/blobs"):
            size = json.loads(body or b"{}")["size"]
            return _reply(201, self._reservation(size))
        if (method, path) in (
            ("GET", f"/v1/blobs/{BLOB_ID}"),
            ("POST", f"/v1/blobs/{BLOB_ID}/commit"),
        ):
            return _reply(200, self._blob())
        raise AssertionError(f"unexpected request {method} {path}")

    def _reservation(self, size: int) -> dict[str, Any]:
        if len(self.upload) == 1:
            upload: dict[str, Any] = {
                "kind": "single",
                "url": self.upload[0],
                "headers": {"Content-Length": str(size)},
            }
        else:
            part = -(-size // len(self.upload))
            lengths = [part] * (len(self.upload) - 1) + [size - part * (len(self.upload) - 1)]
            upload = {
                "kind": "multipart",
                "part_size": part,
                "parts": [
                    {"url": url, "headers": {"Content-Length": str(n)}, "part_number": i + 1}
                    for i, (url, n) in enumerate(zip(self.upload, lengths, strict=True))
                ],
            }
        return {
            "blob_id": BLOB_ID,
            "state": "reserved",
            "size": size,
            "version": 1,
            "upload": upload,
        }

    def _blob(self) -> dict[str, Any]:
        return {
            "blob_id": BLOB_ID,
            "owner": "alice",
            "recipients": ["bob"],
            "size": SIZE,
            "created_at": 1,
            "state": "ready",
            "version": 1,
            "header_length": 120,
            "download": {"url": self.download, "expires_in": 60},
        }


def _reply(status: int, obj: dict[str, Any]) -> HttpReply:
    return HttpReply(status, {"content-type": "application/json"}, json.dumps(obj).encode())


KEY = age.X25519Identity.generate()


def client(server: HostileServer, storage: Listener, objects: Any = None) -> BlobClient:
    return BlobClient(
        server,
        lambda: "token",
        objects=objects or HttpObjectTransport(timeout=5),
        storage_origins=[storage.origin],
    )


def upload(blobs: BlobClient) -> None:
    blobs.upload(io.BytesIO(bytes(SIZE)), recipients=[KEY.recipient()])


def assert_refused(refused: pytest.ExceptionInfo[StorageOriginRefused], origin: str) -> None:
    assert refused.value.origin == origin
    assert origin in str(refused.value)
    for shown in (str(refused.value), repr(refused.value)):
        assert SECRET not in shown
        assert "/b/k" not in shown


# Each trick: (URL, the origin the refusal names) for the storage port s and
# the foreign port f; every URL reaches one of the listeners if followed.
TRICKS = {
    "another-port": lambda s, f: (f"http://127.0.0.1:{f}/b/k?{SECRET}", f"http://127.0.0.1:{f}"),
    "another-host": lambda s, f: (f"http://localhost:{s}/b/k?{SECRET}", f"http://localhost:{s}"),
    "another-scheme": lambda s, f: (
        f"https://127.0.0.1:{s}/b/k?{SECRET}",
        f"https://127.0.0.1:{s}",
    ),
    # User info: the host is what follows the "@".
    "userinfo": lambda s, f: (
        f"http://127.0.0.1:{s}@127.0.0.1:{f}/b/k?{SECRET}",
        f"http://127.0.0.1:{f}",
    ),
    # urllib3 and urlsplit have read a backslash differently.
    "backslash": lambda s, f: (
        f"http://127.0.0.1:{s}\\@127.0.0.1:{f}/b/k?{SECRET}",
        f"http://127.0.0.1:{f}",
    ),
    "upper-case": lambda s, f: (f"HTTP://LOCALHOST:{f}/b/k?{SECRET}", f"http://localhost:{f}"),
    # The resolver's IDNA step maps full-width digits to ASCII: 127.0.0.1.
    "idn": lambda s, f: (
        f"http://\uff11\uff12\uff17.0.0.1:{f}/b/k?{SECRET}",
        f"http://%EF%BC%91%EF%BC%92%EF%BC%97.0.0.1:{f}",
    ),
    "percent-encoded": lambda s, f: (
        f"http://%31%32%37.0.0.1:{s}/b/k?{SECRET}",
        f"http://%31%32%37.0.0.1:{s}",
    ),
    # Without a port, http means 80, not the storage listener's port.
    "default-port": lambda s, f: (f"http://127.0.0.1/b/k?{SECRET}", "http://127.0.0.1"),
}


def trick(name: str, storage: Listener, foreign: Listener) -> tuple[str, str]:
    url, origin = TRICKS[name](storage.port, foreign.port)
    return str(url), str(origin)


@pytest.mark.parametrize("name", TRICKS)
def test_a_foreign_upload_url_is_refused_before_any_connection(
    name: str, storage: Listener, foreign: Listener
) -> None:
    url, origin = trick(name, storage, foreign)
    with pytest.raises(StorageOriginRefused) as refused:
        upload(client(HostileServer(upload=[url]), storage))
    assert_refused(refused, origin)
    assert (storage.contacts, foreign.contacts) == (0, 0)


@pytest.mark.parametrize("name", TRICKS)
def test_one_foreign_part_url_stops_the_whole_multipart_upload(
    name: str, storage: Listener, foreign: Listener
) -> None:
    """Every multipart target (presigned part) is checked before the first
    part is sent: no part reaches even the allowed origin."""
    bad, origin = trick(name, storage, foreign)
    good = f"{storage.origin}/b/k?partNumber=1&{SECRET}"
    with pytest.raises(StorageOriginRefused) as refused:
        upload(client(HostileServer(upload=[good, bad]), storage))
    assert_refused(refused, origin)
    assert (storage.contacts, foreign.contacts) == (0, 0)


@pytest.mark.parametrize("name", TRICKS)
def test_a_foreign_download_url_is_refused_before_any_connection(
    name: str, storage: Listener, foreign: Listener, tmp_path: Path
) -> None:
    url, origin = trick(name, storage, foreign)
    blobs = client(HostileServer(download=url), storage)
    with pytest.raises(StorageOriginRefused) as refused:
        blobs.download(BLOB_ID, tmp_path / "out", identities=[KEY])
    assert_refused(refused, origin)
    # share reads the header through the same URL.
    with pytest.raises(StorageOriginRefused):
        blobs.share(BLOB_ID, ["bob"], identities=[KEY], recipients=[KEY.recipient()])
    assert (storage.contacts, foreign.contacts) == (0, 0)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "objects",
    [HttpObjectTransport(timeout=5), InProcessObjectTransport(timeout=5)],
    ids=["http.client", "requests"],
)
def test_a_redirect_from_an_allowed_origin_to_a_foreign_one_is_not_followed(
    storage: Listener, foreign: Listener, tmp_path: Path, objects: Any
) -> None:
    """Both object transports: the ``requests`` one (in-process runs) followed
    redirects; the error names where the redirect pointed."""
    storage.reply = (
        f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {foreign.origin}/b/k?{SECRET}\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n"
    ).encode()
    blobs = client(HostileServer(download=f"{storage.origin}/b/k?{SECRET}"), storage, objects)
    with pytest.raises(StorageOriginRefused) as refused:
        blobs.download(BLOB_ID, tmp_path / "out", identities=[KEY])
    assert_refused(refused, foreign.origin)
    blobs = client(HostileServer(upload=[f"{storage.origin}/b/k?{SECRET}"]), storage, objects)
    with pytest.raises(StorageOriginRefused):
        upload(blobs)
    assert foreign.contacts == 0
    assert storage.contacts == 2


def test_a_redirect_within_the_allowed_origins_is_not_followed_either(
    storage: Listener, tmp_path: Path
) -> None:
    storage.reply = (
        f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {storage.origin}/elsewhere\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n"
    ).encode()
    blobs = client(HostileServer(download=f"{storage.origin}/b/k?{SECRET}"), storage)
    with pytest.raises(StorageTransferFailed) as failed:
        blobs.download(BLOB_ID, tmp_path / "out", identities=[KEY])
    assert failed.value.status == 307
    assert storage.contacts == 1


def test_an_allowed_origin_in_another_spelling_is_reached(storage: Listener) -> None:
    """Normalisation cuts both ways: upper case and an explicit default port
    name the same origin, so they are not refused."""
    spellings = [
        f"HTTP://127.0.0.1:{storage.port}/b/k?{SECRET}",
        f"http://127.0.0.1:{storage.port}/b/k?{SECRET}",
    ]
    for url in spellings:
        upload(client(HostileServer(upload=[url]), storage))
    assert storage.contacts == 2
