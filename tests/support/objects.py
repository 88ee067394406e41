"""Presigned transfers inside ``mock_aws``, counted for assertions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from client_sim.transport import HttpReply, InProcessObjectTransport, Readable


@dataclass
class MotoObjects(InProcessObjectTransport):
    """:class:`InProcessObjectTransport` that records what it sent."""

    puts: int = 0
    gets: int = 0
    urls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def put(
        self, url: str, body: Readable, *, length: int, headers: Mapping[str, str]
    ) -> HttpReply:
        self.puts += 1
        self.urls.append(url)
        return super().put(url, body, length=length, headers=headers)

    def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> Any:
        self.gets += 1
        self.urls.append(url)
        return super().get(url, headers=headers)
