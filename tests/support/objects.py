"""Presigned transfers inside ``mock_aws``, counted for assertions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from client_sim.origins import s3_bucket_origins
from client_sim.transport import HttpReply, InProcessObjectTransport, Readable
from sealbox_tools.local_stack import stage_environment

#: Where moto's in-process S3 presigns the ``test`` stage's URLs (the
#: bucket's virtual-hosted origins): the storage origins of in-process devices.
MOTO_STORAGE_ORIGINS = s3_bucket_origins(
    stage_environment("test")["SEALBOX_BLOBS_BUCKET"], "us-east-1"
)


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


def moto_objects() -> dict[str, Any]:
    """``Device``/``BlobClient`` options for presigned transfers to in-process moto."""
    return {"objects": MotoObjects(), "storage_origins": MOTO_STORAGE_ORIGINS}
