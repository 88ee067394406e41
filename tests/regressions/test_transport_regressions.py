"""Regression tests for the device's HTTP transport, against loopback servers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from client_sim.errors import ConnectionFailed, RedirectRefused, ReplyTooLarge
from client_sim.transport import MAX_API_REPLY_BYTES, HttpTransport

Handler = Callable[[BaseHTTPRequestHandler], None]


@contextmanager
def loopback(handle: Handler) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A server on 127.0.0.1 answering every request with ``handle``; yields
    its base URL and the headers of every request it received."""
    seen: list[dict[str, str]] = []

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            handle(self)

        do_GET = do_POST = do_PUT = do_DELETE = _any

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _reply(status: int, body: bytes, headers: dict[str, str] | None = None) -> Handler:
    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(body)

    return handle


@pytest.fixture
def stalled() -> Iterator[threading.Event]:
    """Set at the end of a test: releases servers that stall mid-reply."""
    release = threading.Event()
    yield release
    release.set()


def test_a_json_reply_declaring_more_than_the_bound_was_read_whole(stalled) -> None:
    """HttpTransport read the whole reply into memory, whatever its size: a
    hostile or broken endpoint could exhaust a phone's memory.  A declared
    length over the bound is now refused before the body is read (this
    server never sends it: reading would hang until the timeout)."""

    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(MAX_API_REPLY_BYTES + 1))
        h.end_headers()
        h.wfile.write(b'{"a": "')
        h.wfile.flush()
        stalled.wait()

    with loopback(handle) as (url, _), pytest.raises(ReplyTooLarge):
        HttpTransport(url, timeout=5).request("GET", "/v1/me")


@pytest.mark.parametrize("status", [200, 400])
def test_a_chunked_json_reply_over_the_bound_was_read_whole(stalled, status: int) -> None:
    """Without a length, the transport reads one byte past the bound and stops."""

    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chunk = b"x" * 65536
        for _ in range(MAX_API_REPLY_BYTES // len(chunk) + 1):
            h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        h.wfile.flush()
        stalled.wait()

    with loopback(handle) as (url, _), pytest.raises(ReplyTooLarge):
        HttpTransport(url, timeout=5).request("GET", "/v1/me")


def test_a_reply_at_the_bound_is_read() -> None:
    body = b'"' + b"x" * (MAX_API_REPLY_BYTES - 2) + b'"'
    with loopback(_reply(200, body)) as (url, _):
        reply = HttpTransport(url, timeout=5).request("GET", "/v1/me")
    assert reply.body == body


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_origin_received_the_bearer_token(status: int) -> None:
    """urllib follows redirects and copies the request's headers, so a
    redirect from the API (an open redirect, a hijacked proxy) handed the
    ``Authorization`` header -- and a 307's body, which can hold a login key --
    to whatever origin it named.  Such a redirect is now refused."""
    with loopback(_reply(200, b"{}")) as (elsewhere, received):
        bounce = _reply(status, b"", {"Location": f"{elsewhere}/steal"})
        with loopback(bounce) as (url, _):
            transport = HttpTransport(url, timeout=5)
            with pytest.raises(RedirectRefused):
                transport.request("GET", "/v1/me", headers={"Authorization": "Bearer secret"})
            with pytest.raises(RedirectRefused):
                transport.request("POST", "/v1/sessions", body=b'{"login_key": "k"}')
    assert received == []


@pytest.mark.parametrize("target", ["http://localhost:{port}/x", "https://127.0.0.1:{port}/x"])
def test_another_scheme_or_host_on_the_same_port_is_another_origin(target: str) -> None:
    with loopback(_reply(200, b"{}")) as (elsewhere, received):
        port = elsewhere.rsplit(":", 1)[1]
        bounce = _reply(302, b"", {"Location": target.format(port=port)})
        with loopback(bounce) as (url, _), pytest.raises(RedirectRefused):
            HttpTransport(url, timeout=5).request(
                "GET", "/v1/me", headers={"Authorization": "Bearer secret"}
            )
    assert received == []


def test_a_redirect_within_the_origin_is_followed_with_its_credential() -> None:
    def handle(h: BaseHTTPRequestHandler) -> None:
        if h.path == "/v1/me":
            _reply(302, b"", {"Location": "/v1/me/"})(h)
        else:
            _reply(200, b'{"ok": true}')(h)

    with loopback(handle) as (url, seen):
        reply = HttpTransport(url, timeout=5).request(
            "GET", "/v1/me", headers={"Authorization": "Bearer secret"}
        )
    assert reply.json() == {"ok": True}
    assert [s.get("authorization") for s in seen] == ["Bearer secret"] * 2


def test_the_transport_errors_are_device_errors_and_hold_no_url() -> None:
    assert not issubclass(ReplyTooLarge, ConnectionFailed)
    assert "http" not in str(RedirectRefused())
    assert str(MAX_API_REPLY_BYTES) in str(ReplyTooLarge(MAX_API_REPLY_BYTES))
