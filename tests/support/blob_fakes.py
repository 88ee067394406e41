"""In-memory blob and object stores for the blob service's unit tests (no I/O).

They implement the store Protocols of ``chalicelib.services.blobs`` with the
same conditional semantics as the DynamoDB and S3 adapters, so the service's
logic (state machine, quotas, idempotency, races) can be tested alone.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from chalicelib.errors import ServiceUnavailable
from chalicelib.services.blobs import (
    BlobRecord,
    BlobState,
    CreateOutcome,
    Quota,
    StoredObject,
    UpdateOutcome,
    UploadedPart,
    UploadTarget,
    Usage,
)

_ids = itertools.count(1)


def _etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


class MemoryBlobs:
    def __init__(self) -> None:
        self.records: dict[str, BlobRecord] = {}
        self.grants: dict[tuple[str, str], str] = {}
        self.usage_of: dict[str, Usage] = {}
        self.fail_next_settle = False

    def _charge(self, identity: str, size: int, count: int) -> None:
        usage = self.usage_of.get(identity, Usage(0, 0))
        self.usage_of[identity] = Usage(usage.bytes + size, usage.blobs + count)

    def get(self, blob_id: str) -> BlobRecord | None:
        return self.records.get(blob_id)

    def usage(self, identity: str) -> Usage:
        return self.usage_of.get(identity, Usage(0, 0))

    def create(self, record: BlobRecord, *, quota: Quota) -> CreateOutcome:
        if record.blob_id in self.records:
            return CreateOutcome.EXISTS
        usage = self.usage(record.owner)
        if usage.bytes + record.size > quota.max_bytes or usage.blobs >= quota.max_blobs:
            return CreateOutcome.OVER_QUOTA
        self.records[record.blob_id] = record
        self._charge(record.owner, record.size, 1)
        return CreateOutcome.CREATED

    def _same(self, before: BlobRecord) -> bool:
        stored = self.records.get(before.blob_id)
        return (
            stored is not None and stored.state is before.state and stored.version == before.version
        )

    def settle(self, before: BlobRecord, after: BlobRecord) -> bool:
        if self.fail_next_settle:
            self.fail_next_settle = False
            return False
        if not self._same(before):
            return False
        self.records[after.blob_id] = after
        if after.state is BlobState.READY:
            for recipient in after.recipients:
                self.grants[(recipient, after.created_key)] = after.blob_id
        if after.state is BlobState.REJECTED and not after.charge_held:
            self._charge(before.owner, -before.size, -1)
        return True

    def release_rejected(self, before: BlobRecord, after: BlobRecord) -> bool:
        if not self._same(before) or before.state is not BlobState.REJECTED:
            return False
        if not before.charge_held or after.charge_held:
            return False
        self.records[after.blob_id] = after
        self._charge(before.owner, -before.size, -1)
        return True

    def update_recipients(
        self, before: BlobRecord, after: BlobRecord, *, quota: Quota
    ) -> UpdateOutcome:
        if not self._same(before) or before.state is not BlobState.READY:
            return UpdateOutcome.CONFLICT
        delta = after.size - before.size
        if delta > 0 and self.usage(before.owner).bytes + delta > quota.max_bytes:
            return UpdateOutcome.OVER_QUOTA
        self.records[after.blob_id] = after
        for recipient in set(before.recipients) - set(after.recipients):
            self.grants.pop((recipient, before.created_key), None)
        for recipient in after.recipients:
            self.grants[(recipient, after.created_key)] = after.blob_id
        self._charge(before.owner, delta, 0)
        return UpdateOutcome.DONE

    def delete(self, record: BlobRecord) -> bool:
        stored = self.records.get(record.blob_id)
        if stored is None or stored.version != record.version:
            return False
        del self.records[record.blob_id]
        for recipient in record.recipients:
            self.grants.pop((recipient, record.created_key), None)
        if record.state is not BlobState.REJECTED or record.charge_held:
            self._charge(record.owner, -record.size, -1)
        return True

    def list_owned(
        self, owner: str, *, limit: int, before: str | None
    ) -> tuple[list[BlobRecord], str | None]:
        mine = sorted(
            (r for r in self.records.values() if r.owner == owner),
            key=lambda r: r.created_key,
            reverse=True,
        )
        mine = [r for r in mine if before is None or r.created_key < before]
        page = mine[:limit]
        return page, page[-1].created_key if len(mine) > limit else None

    def list_granted(
        self, recipient: str, *, limit: int, before: str | None
    ) -> tuple[list[BlobRecord], str | None]:
        keys = sorted((key for (who, key) in self.grants if who == recipient), reverse=True)
        keys = [k for k in keys if before is None or k < before]
        page = keys[:limit]
        records = [self.records[self.grants[(recipient, k)]] for k in page]
        return records, page[-1] if len(keys) > limit else None

    def expired_reservations(self, owner: str, now: int, *, limit: int) -> list[str]:
        return [
            r.blob_id
            for r in self.records.values()
            if r.owner == owner and r.state is BlobState.RESERVED and r.expires_at <= now
        ][:limit]


@dataclass
class _Version:
    version_id: str
    data: bytes

    @property
    def etag(self) -> str:
        return _etag(self.data)


@dataclass
class _Upload:
    blob_id: str
    parts: dict[int, bytes] = field(default_factory=dict)


class MemoryObjects:
    """A versioned bucket: ``content[blob_id]`` lists versions, oldest first."""

    def __init__(self) -> None:
        self.content: dict[str, list[_Version]] = {}
        self.quarantined: dict[str, bytes] = {}  # legacy copies; only ever purged
        self.fail_purges = 0  # the next this many purges raise ServiceUnavailable
        self.uploads: dict[str, _Upload] = {}
        self.presigned: list[str] = []

    # what a device does with a presigned URL
    def device_put(self, blob_id: str, data: bytes) -> str:
        version = _Version(f"v{next(_ids)}", data)
        self.content.setdefault(blob_id, []).append(version)
        return version.version_id

    def device_put_part(self, upload_id: str, number: int, data: bytes) -> None:
        self.uploads[upload_id].parts[number] = data

    def latest(self, blob_id: str) -> bytes | None:
        versions = self.content.get(blob_id)
        return versions[-1].data if versions else None

    # the ObjectStore protocol
    def presign_put(self, blob_id: str, size: int, ttl: int) -> UploadTarget:
        url = f"memory://put/{blob_id}?ttl={ttl}&sig={next(_ids)}"
        self.presigned.append(url)
        return UploadTarget(url=url, headers={"Content-Length": str(size)})

    def start_multipart(self, blob_id: str) -> str:
        upload_id = f"u{next(_ids)}"
        self.uploads[upload_id] = _Upload(blob_id)
        return upload_id

    def presign_parts(
        self, blob_id: str, upload_id: str, sizes: Sequence[int], ttl: int
    ) -> list[UploadTarget]:
        return [
            UploadTarget(
                url=f"memory://part/{upload_id}/{n}?sig={next(_ids)}",
                headers={"Content-Length": str(size)},
                part_number=n,
            )
            for n, size in enumerate(sizes, start=1)
        ]

    def list_parts(self, blob_id: str, upload_id: str) -> list[UploadedPart] | None:
        upload = self.uploads.get(upload_id)
        if upload is None:
            return None
        return [
            UploadedPart(number=n, size=len(data), etag=_etag(data))
            for n, data in sorted(upload.parts.items())
        ]

    def complete_multipart(
        self, blob_id: str, upload_id: str, parts: Sequence[UploadedPart]
    ) -> StoredObject | None:
        upload = self.uploads.pop(upload_id, None)
        if upload is None or self.content.get(blob_id):
            return None
        self.device_put(blob_id, b"".join(upload.parts[p.number] for p in parts))
        return self.head(blob_id)

    def abort_multipart(self, blob_id: str, upload_id: str) -> None:
        self.uploads.pop(upload_id, None)

    def head(self, blob_id: str, version_id: str | None = None) -> StoredObject | None:
        versions = self.content.get(blob_id, [])
        if version_id is not None:
            versions = [v for v in versions if v.version_id == version_id]
        if not versions:
            return None
        v = versions[-1]
        return StoredObject(version_id=v.version_id, etag=v.etag, size=len(v.data))

    def _version(self, blob_id: str, version_id: str) -> _Version:
        return next(v for v in self.content[blob_id] if v.version_id == version_id)

    def read_prefix(self, blob_id: str, version_id: str, length: int) -> bytes | None:
        found = [v for v in self.content.get(blob_id, []) if v.version_id == version_id]
        return found[0].data[:length] if found else None

    def put_new(self, blob_id: str, data: bytes) -> StoredObject | None:
        if self.content.get(blob_id):
            return None
        self.device_put(blob_id, data)
        return self.head(blob_id)

    def replace_header(
        self, blob_id: str, current: StoredObject, old_header_length: int, header: bytes
    ) -> StoredObject | None:
        latest = self.head(blob_id)
        if latest is None or latest.etag != current.etag:
            return None
        old = self._version(blob_id, current.version_id).data
        self.device_put(blob_id, header + old[old_header_length:])
        return self.head(blob_id)

    def delete_version(self, blob_id: str, version_id: str) -> None:
        self.content[blob_id] = [
            v for v in self.content.get(blob_id, []) if v.version_id != version_id
        ]

    def digest(self, blob_id: str, version_id: str) -> str | None:
        found = [v for v in self.content.get(blob_id, []) if v.version_id == version_id]
        return hashlib.sha256(found[0].data).hexdigest() if found else None

    def purge(self, blob_id: str) -> None:
        if self.fail_purges:
            self.fail_purges -= 1
            raise ServiceUnavailable()
        self.content.pop(blob_id, None)
        self.quarantined.pop(blob_id, None)

    def presign_get(self, blob_id: str, version_id: str, ttl: int) -> str:
        url = f"memory://get/{blob_id}?versionId={version_id}&ttl={ttl}&sig={next(_ids)}"
        self.presigned.append(url)
        return url
