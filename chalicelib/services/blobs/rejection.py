"""What happens to a rejected upload: fingerprint it, delete it, then release.

A rejected upload may be someone's plaintext (a device bug, or a user
storing files on purpose).  The server keeps none of it: the record gets
the object's size, the reason and a SHA-256 of the checked version -- enough
for an operator to later prove what was rejected (hash a candidate file and
compare) without the bytes -- and every version of ``blobs/<id>`` and of a
legacy ``quarantine/<id>`` copy is deleted at once.

The quota is released only once the bytes are gone: the record is settled
REJECTED with ``charge_held`` set, and :meth:`Rejections.dispose` releases
the charge in a conditional write after a successful purge.  A failed purge
keeps the charge (so a flood of rejected uploads can't hold data beyond
quota meanwhile) and is retried by the next commit, the S3 event's
redelivery, or the owner's delete.

No chalice, no boto3 (a service module): stores and the clock are injected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from logging import WARNING

from chalicelib import crypto
from chalicelib.errors import SealboxError, ServiceUnavailable
from chalicelib.logs import log_event
from chalicelib.services.blobs.model import BlobRecord, BlobState, StoredObject
from chalicelib.services.blobs.ports import BlobStore, ObjectStore


class Rejections:
    """Fingerprints and disposes of rejected uploads (see module docstring)."""

    def __init__(self, blobs: BlobStore, objects: ObjectStore, now: Callable[[], int]) -> None:
        self._blobs = blobs
        self._objects = objects
        self._now = now

    def fingerprint(self, blob_id: str, stored: StoredObject, prefix: bytes | None) -> str | None:
        """SHA-256 (hex) of the checked version ``stored``.

        ``prefix`` is what the check read from its start; when it is the whole
        object it is hashed as is, otherwise the version is streamed again
        (bounded memory).  None when the version vanished meanwhile (a
        concurrent check or delete removed it).

        Raises:
            ServiceUnavailable, InternalError: the bucket failed.
        """
        if prefix is not None and len(prefix) == stored.size:
            return crypto.sha256(prefix).hex()
        return self._objects.digest(blob_id, stored.version_id)

    def dispose(self, record: BlobRecord) -> BlobRecord:
        """Delete a REJECTED blob's bytes, then release its charge once.

        Returns the record as it now stands: ``charge_held`` unset when the
        bytes are gone and the charge released (by us or a concurrent
        caller), still set when the deletion failed (logged; retry later).
        Other states are returned unchanged.  Never raises for a storage
        failure: the verdict stands whatever happens to the bytes.
        """
        if record.state is not BlobState.REJECTED:
            return record
        try:
            # Every time, not only while the charge is held: a presigned PUT
            # still valid may have put content back after an earlier purge.
            self._objects.purge(record.blob_id)
            if not record.charge_held:
                return record
            after = replace(
                record, version=record.version + 1, charge_held=False, updated_at=self._now()
            )
            if self._blobs.release_rejected(record, after):
                log_event("blob_rejected_purged", blob_id=record.blob_id)
                return after
            current = self._blobs.get(record.blob_id)
        except SealboxError as exc:
            log_event(
                "blob_rejected_purge_failed",
                level=WARNING,
                blob_id=record.blob_id,
                error_type=type(exc).__qualname__,
            )
            return record
        # Released (or deleted) by a concurrent caller after our purge.
        return current if current is not None else replace(record, charge_held=False)


def deleted_or_retry(record: BlobRecord) -> None:
    """Raise, for a redelivery, while a rejected blob's bytes may remain
    (the S3 event handler's retry path).

    Raises:
        ServiceUnavailable: ``record`` is REJECTED and still charged.
    """
    if record.state is BlobState.REJECTED and record.charge_held:
        raise ServiceUnavailable()
