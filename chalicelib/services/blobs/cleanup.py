"""Best-effort cleanup for the blob service: storage a failed record write
left unrecorded, and expired reservations (their multipart uploads, objects
and quota).

No chalice, no boto3 (a service module): the stores are injected.
"""

from __future__ import annotations

import contextlib
from logging import WARNING

from chalicelib.errors import SealboxError
from chalicelib.logs import log_event
from chalicelib.services.blobs.model import BlobRecord, BlobState
from chalicelib.services.blobs.ports import BlobStore, ObjectStore


class Cleanup:
    """Removes what the blob records don't (or no longer) account for."""

    def __init__(self, blobs: BlobStore, objects: ObjectStore) -> None:
        self._blobs = blobs
        self._objects = objects

    def drop_unrecorded_version(self, blob_id: str, version_id: str) -> None:
        """Delete object version ``version_id`` unless the blob's record names it.

        Best effort, after a record write that raised: the write may still
        have committed (a reply lost to a timeout), so the record is read
        first.  If that read or the deletion fails too, the version is left
        alone; the caller reports the original failure.
        """
        with contextlib.suppress(SealboxError):
            current = self._blobs.get(blob_id)
            if current is None or current.object_version != version_id:
                self._objects.delete_version(blob_id, version_id)

    def abort_unrecorded_upload(self, blob_id: str, upload_id: str, *, checked: bool) -> None:
        """Abort ``upload_id`` unless the blob's record names it; best effort.

        ``checked``: the store said the record was not written.  Otherwise the
        write raised and may still have committed (a lost reply), so the
        record is read first.  A failed read or abort is logged and the upload
        left to the lifecycle rule: the caller reports its own error.
        """
        try:
            current = None if checked else self._blobs.get(blob_id)
            if current is None or current.upload_id != upload_id:
                self._objects.abort_multipart(blob_id, upload_id)
        except SealboxError as exc:
            kind = type(exc).__qualname__
            log_event("blob_upload_abort_failed", level=WARNING, blob_id=blob_id, error_type=kind)

    def reclaim(self, record: BlobRecord) -> bool:
        """Remove an expired reservation and release its quota."""
        if record.upload_id is not None:
            self._objects.abort_multipart(record.blob_id, record.upload_id)
        self._objects.purge(record.blob_id)
        reclaimed = self._blobs.delete(record)
        if reclaimed:
            log_event("blob_reservation_reclaimed", blob_id=record.blob_id)
        return reclaimed

    def reclaim_expired(self, owner: str, now: int) -> bool:
        reclaimed = False
        for blob_id in self._blobs.expired_reservations(owner, now, limit=25):
            record = self._blobs.get(blob_id)
            if (
                record is not None
                and record.state is BlobState.RESERVED
                and record.expires_at <= now
                and self.reclaim(record)
            ):
                reclaimed = True
        return reclaimed
