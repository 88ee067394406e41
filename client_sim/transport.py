"""How a device reaches the backend: over HTTP, or in process.

Both transports have the same one-method shape, so the SDK, the CLI and the
tests run unchanged against ``sealbox local``, a deployed stage, or the Chalice
app in the same process (``chalice.test.Client`` on moto, no network).
"""

from __future__ import annotations

import http.client
import io
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from types import TracebackType
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

from client_sim.errors import ConnectionFailed, RedirectRefused, ReplyTooLarge

#: The largest API reply (JSON) the device reads, in bytes.  The largest
#: legitimate one is a key backup (256 KiB of ciphertext, about 342 KiB as
#: base64url) or a page of 50 cards with post-quantum keys (under 200 KiB);
#: 1 MiB leaves room and still bounds what a hostile endpoint can make a
#: phone hold.
MAX_API_REPLY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes = field(repr=False)

    def json(self) -> Any:
        """The body parsed as JSON (``None`` for an empty body).

        Raises:
            ValueError: the body is not JSON.
        """
        return json.loads(self.body) if self.body else None


class Transport(Protocol):
    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        """Send one request; return the reply whatever its status.

        Raises:
            ConnectionFailed: no HTTP reply was received.
        """
        ...


class HttpTransport:
    """HTTP(S) to a base URL such as ``http://127.0.0.1:8000``.

    Replies are read up to :data:`MAX_API_REPLY_BYTES`: a longer one (by its
    ``Content-Length``, or once one byte past the bound has arrived) raises
    :class:`ReplyTooLarge` and the rest is never read.  Redirects are
    followed only within the base URL's origin (scheme, host and port); one
    to another origin raises :class:`RedirectRefused` and nothing is sent
    there.  Refused rather than followed without ``Authorization``: the API
    never redirects across origins, and a request's body can be a credential
    too (a login key, which a 307 or 308 would re-send), so a redirect
    elsewhere means a misconfigured or hostile endpoint and the caller should
    hear about it.
    """

    def __init__(self, base_url: str, *, timeout: float = 15.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("base_url must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._opener = urllib.request.build_opener(_SameOriginRedirects(_origin(base_url)))

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        all_headers = {"Accept": "application/json", **(headers or {})}
        if body is not None:
            # Always explicit: urllib's default form Content-Type is wrong for
            # us and has made servers misbehave (DESIGN §8).
            all_headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self.base_url + path, data=body, method=method, headers=all_headers
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return HttpReply(
                    status=response.status,
                    headers={k.lower(): v for k, v in response.headers.items()},
                    body=_bounded_read(response),
                )
        except urllib.error.HTTPError as exc:
            with exc:
                return HttpReply(
                    status=exc.code,
                    headers={k.lower(): v for k, v in exc.headers.items()},
                    body=_bounded_read(exc),
                )
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            # The message is what a user reads (`sealbox: error: ...`); the
            # cause keeps the details for a debugger.
            raise ConnectionFailed("the server did not answer") from exc


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute URL, with the scheme's default port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port that isn't a number: no origin we'd match
        port = -1
    if port is None:
        port = 443 if scheme == "https" else 80
    return scheme, (parts.hostname or "").lower(), port


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """urllib's redirect handling, refusing any redirect that leaves ``origin``."""

    def __init__(self, origin: tuple[str, str, int]) -> None:
        self._origin = origin

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        """Raises:
        RedirectRefused: ``newurl`` (already absolute) is another origin.
        """
        if _origin(newurl) != self._origin:
            fp.close()
            raise RedirectRefused()
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Reply(Protocol):
    @property
    def headers(self) -> Message: ...

    def read(self, amt: int, /) -> bytes: ...


def _bounded_read(response: _Reply) -> bytes:
    """The body of ``response``, at most :data:`MAX_API_REPLY_BYTES` of it.

    Raises:
        ReplyTooLarge: it declares or sends more; what is left is not read.
    """
    declared = response.headers.get("Content-Length")
    # The declared length, when there is one, refuses before any body byte.
    if declared and declared.strip().isdigit() and int(declared) > MAX_API_REPLY_BYTES:
        raise ReplyTooLarge(MAX_API_REPLY_BYTES)
    body = response.read(MAX_API_REPLY_BYTES + 1)
    if len(body) > MAX_API_REPLY_BYTES:
        raise ReplyTooLarge(MAX_API_REPLY_BYTES)
    return bytes(body)


class ChaliceTransport:
    """In process, through ``chalice.test.Client`` (no network).

    The caller owns the client's lifetime (``with Client(app, ...) as c``)
    and, for AWS, the moto context around it.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        all_headers = {"Accept": "application/json", **(headers or {})}
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        response = self._client.http.request(
            method=method, path=path, headers=all_headers, body=body or b""
        )
        raw = response.body
        return HttpReply(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=raw if isinstance(raw, bytes) else str(raw).encode("utf-8"),
        )


# --- object storage (presigned URLs) -------------------------------------------------


class Readable(Protocol):
    """A binary stream: ``read(n)`` returns at most ``n`` bytes, ``b""`` at the end."""

    def read(self, size: int = -1, /) -> bytes: ...


class ObjectResponse(Protocol):
    """A streaming reply from object storage; close it (or use ``with``)."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Lower-case names."""
        ...

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...

    def __enter__(self) -> ObjectResponse: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class ObjectTransport(Protocol):
    """PUT and GET on absolute presigned URLs, with streaming bodies.

    Presigned URLs are bearer credentials: implementations never put one in
    an exception message or a log line.  They never follow a redirect (the
    caller checked the URL's origin, not where a redirect would lead).
    """

    def put(
        self, url: str, body: Readable, *, length: int, headers: Mapping[str, str]
    ) -> HttpReply:
        """Send exactly ``length`` bytes read from ``body``; the reply's body
        is read only up to a small bound (it is an error document at most).

        Raises:
            ConnectionFailed: no HTTP reply was received.
        """
        ...

    def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> ObjectResponse:
        """Start a GET; the caller streams the body from the response.

        Raises:
            ConnectionFailed: no HTTP reply was received.
        """
        ...


# Object storage answers a PUT with an empty body or a short XML error.
_MAX_REPLY_BODY = 64 * 1024


class _ExactBody:
    """``length`` bytes of ``body`` for http.client, which sends whatever
    ``read`` returns: a short source must fail the request, not hang it."""

    def __init__(self, body: Readable, length: int) -> None:
        self._body = body
        self._left = length

    def read(self, size: int = -1) -> bytes:
        if self._left == 0:
            return b""
        want = self._left if size < 0 else min(size, self._left)
        data = self._body.read(want)
        if not data:
            raise ConnectionFailed("the upload source ended before its declared length")
        if len(data) > want:
            raise ConnectionFailed("the upload source returned more than was asked for")
        self._left -= len(data)
        return data


class _HttpObjectResponse:
    def __init__(
        self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse
    ) -> None:
        self._connection = connection
        self._response = response
        self._headers = {k.lower(): v for k, v in response.getheaders()}

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    def read(self, size: int = -1, /) -> bytes:
        try:
            data = self._response.read(None if size < 0 else size)
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectionFailed("object storage: the download was interrupted") from exc
        self._check_end(len(data), size)
        return data

    def readinto(self, buffer: memoryview | bytearray, /) -> int:
        """Read into ``buffer`` (what it received; 0 at the end), as :meth:`read`."""
        try:
            got = self._response.readinto(buffer)
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectionFailed("object storage: the download was interrupted") from exc
        self._check_end(got, len(buffer))
        return got

    def _check_end(self, got: int, asked: int) -> None:
        # http.client answers a connection closed before Content-Length with
        # an empty read, as if the body had ended ("it might break
        # compatibility" to raise); a cut download must not pass for a
        # short one.
        if not got and asked and self._response.length:
            raise ConnectionFailed("object storage: the download was interrupted")

    def close(self) -> None:
        self._response.close()
        self._connection.close()

    def __enter__(self) -> _HttpObjectResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HttpObjectTransport:
    """Presigned URLs over HTTP(S) with ``http.client``: streamed bodies, an
    explicit Content-Length and Content-Type, and a timeout on every socket
    operation (DESIGN §8: urllib's defaults made moto fail multipart uploads
    and hang a plain PUT)."""

    def __init__(self, *, timeout: float = 60.0, blocksize: int = 64 * 1024) -> None:
        self._timeout = timeout
        self._blocksize = blocksize

    def _open(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # Not the URL in the message: it is a credential.
            raise ValueError("a presigned URL must be an absolute http(s) URL")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if parts.scheme == "https":
            return (
                http.client.HTTPSConnection(
                    parts.hostname,
                    parts.port,
                    timeout=self._timeout,
                    context=ssl.create_default_context(),
                    blocksize=self._blocksize,
                ),
                target,
            )
        return (
            http.client.HTTPConnection(
                parts.hostname, parts.port, timeout=self._timeout, blocksize=self._blocksize
            ),
            target,
        )

    def put(
        self, url: str, body: Readable, *, length: int, headers: Mapping[str, str]
    ) -> HttpReply:
        connection, target = self._open(url)
        all_headers = {"Content-Type": "application/octet-stream", **headers}
        all_headers["Content-Length"] = str(length)
        try:
            connection.request("PUT", target, body=_ExactBody(body, length), headers=all_headers)
            response = connection.getresponse()
            reply = HttpReply(
                status=response.status,
                headers={k.lower(): v for k, v in response.getheaders()},
                body=response.read(_MAX_REPLY_BODY),
            )
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectionFailed("PUT to object storage: no reply") from exc
        finally:
            connection.close()
        return reply

    def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> ObjectResponse:
        connection, target = self._open(url)
        try:
            connection.request("GET", target, headers=dict(headers or {}))
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise ConnectionFailed("GET from object storage: no reply") from exc
        return _HttpObjectResponse(connection, response)


class _BufferedObjectResponse:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self._body = io.BytesIO(body)

    def read(self, size: int = -1, /) -> bytes:
        return self._body.read(size)

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> _BufferedObjectResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessObjectTransport:
    """Presigned transfers for in-process runs on moto's ``mock_aws``.

    moto intercepts botocore and the ``requests`` library (through
    ``responses``) but not ``http.client``, so in-process fleets and tests
    send presigned PUTs and GETs with ``requests``.  Bodies are buffered in
    memory: in-process runs move small files; over HTTP use
    :class:`HttpObjectTransport`, which streams.
    """

    def __init__(self, *, timeout: float = 30.0) -> None:
        self._timeout = timeout

    def put(
        self, url: str, body: Readable, *, length: int, headers: Mapping[str, str]
    ) -> HttpReply:
        import requests  # the local extra; only in-process runs need it

        data = body.read(length)
        if len(data) != length:
            raise ConnectionFailed("the upload source ended before its declared length")
        try:
            reply = requests.put(
                url, data=data, headers=dict(headers), timeout=self._timeout, allow_redirects=False
            )
        except requests.RequestException:
            # requests' messages quote the URL, a bearer credential: no chain.
            raise ConnectionFailed("object storage: no reply") from None
        return HttpReply(
            status=reply.status_code,
            headers={k.lower(): v for k, v in reply.headers.items()},
            body=reply.content[:_MAX_REPLY_BODY],
        )

    def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> _BufferedObjectResponse:
        import requests

        try:
            reply = requests.get(
                url, headers=dict(headers or {}), timeout=self._timeout, allow_redirects=False
            )
        except requests.RequestException:
            raise ConnectionFailed("object storage: no reply") from None
        return _BufferedObjectResponse(
            reply.status_code, {k.lower(): v for k, v in reply.headers.items()}, reply.content
        )
