"""How a device reaches the backend: over HTTP, or in process.

Both transports have the same one-method shape, so the SDK, the CLI and the
tests run unchanged against ``sealbox local``, a deployed stage, or the Chalice
app in the same process (``chalice.test.Client`` on moto, no network).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit


class TransportError(ConnectionError):
    """The request did not get an HTTP answer (refused, reset, timed out)."""


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
            TransportError: no HTTP reply was received.
        """
        ...


class HttpTransport:
    """HTTP(S) to a base URL such as ``http://127.0.0.1:8000``."""

    def __init__(self, base_url: str, *, timeout: float = 15.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("base_url must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout

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
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                return HttpReply(
                    status=response.status,
                    headers={k.lower(): v for k, v in response.headers.items()},
                    body=response.read(),
                )
        except urllib.error.HTTPError as exc:
            with exc:
                return HttpReply(
                    status=exc.code,
                    headers={k.lower(): v for k, v in exc.headers.items()},
                    body=exc.read(),
                )
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise TransportError(f"{method} {path}: no reply from the server") from exc


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
