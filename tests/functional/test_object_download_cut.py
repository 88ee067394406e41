"""A download that storage cuts short is ConnectionFailed, however it is read.

Blob downloads read the socket with ``readinto`` (a block at a time); the
plain ``read`` path stays for other callers.  Both must turn the peer
closing early into the SDK's ConnectionFailed, never into a short success.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from client_sim.errors import ConnectionFailed
from client_sim.transport import HttpObjectTransport

pytestmark = pytest.mark.functional

PROMISED = 300_000
SENT = 100_000


@pytest.fixture
def cutting_storage() -> Iterator[str]:
    """A loopback server that promises PROMISED bytes, sends SENT, and closes."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {PROMISED}\r\n\r\n".encode()
                conn.sendall(head + b"\x01" * SENT)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/blobs/x?X-Amz-Signature=s"
    server.close()


@pytest.mark.parametrize("how", ["read", "readinto"])
def test_a_download_cut_short_is_connection_failed(cutting_storage: str, how: str) -> None:
    received: list[int] = []
    buffer = bytearray(65536)

    def drain(response: Any) -> None:
        while True:
            got = response.readinto(buffer) if how == "readinto" else len(response.read(65536))
            if not got:
                return
            received.append(got)

    with HttpObjectTransport(timeout=5).get(cutting_storage) as response:
        assert response.status == 200
        with pytest.raises(ConnectionFailed, match="interrupted"):
            drain(response)
    assert sum(received) <= SENT
