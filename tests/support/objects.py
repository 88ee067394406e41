"""Presigned transfers inside ``mock_aws``: moto answers ``requests`` calls.

moto intercepts botocore, and also the ``requests`` library (through
``responses``), but not ``http.client``; in-process tests therefore send
the presigned PUTs and GETs with ``requests``.  Over HTTP (e2e) the device
uses its own :class:`client_sim.transport.HttpObjectTransport`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field

import requests

from client_sim.transport import HttpReply, Readable


@dataclass
class BufferedResponse:
    status: int
    headers: Mapping[str, str]
    body: io.BytesIO = field(repr=False)

    def read(self, size: int = -1, /) -> bytes:
        return self.body.read(size)

    def close(self) -> None:
        self.body.close()

    def __enter__(self) -> BufferedResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class MotoObjects:
    """An ObjectTransport for ``mock_aws`` (bodies buffered; fine at test sizes)."""

    puts: int = 0
    gets: int = 0
    urls: list[str] = field(default_factory=list)

    def put(
        self, url: str, body: Readable, *, length: int, headers: Mapping[str, str]
    ) -> HttpReply:
        data = body.read(length)
        assert len(data) == length
        self.puts += 1
        self.urls.append(url)
        reply = requests.put(url, data=data, headers=dict(headers), timeout=30)
        return HttpReply(
            status=reply.status_code,
            headers={k.lower(): v for k, v in reply.headers.items()},
            body=reply.content,
        )

    def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> BufferedResponse:
        self.gets += 1
        self.urls.append(url)
        reply = requests.get(url, headers=dict(headers or {}), timeout=30)
        return BufferedResponse(
            status=reply.status_code,
            headers={k.lower(): v for k, v in reply.headers.items()},
            body=io.BytesIO(reply.content),
        )
