"""The stores the blob service needs (implemented by ``chalicelib.storage``).

Protocols only: the service is written against these and never sees boto3;
``chalicelib.storage.blob_records`` and ``chalicelib.storage.blob_objects``
implement them on DynamoDB and S3, ``tests.support.blob_fakes`` in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chalicelib.services.blobs.model import (
    BlobRecord,
    CreateOutcome,
    Quota,
    StoredObject,
    UpdateOutcome,
    UploadedPart,
    UploadTarget,
    Usage,
)

# --- stores (implemented by chalicelib.storage) -------------------------------------


class BlobStore(Protocol):
    """Blob records, per-recipient grants and per-owner usage counters.

    The stored usage of an owner is the size and number of its RESERVED and
    READY blobs and of its REJECTED blobs whose ``charge_held`` is set
    (bytes possibly still stored); every method keeps it so in the same
    transaction as the record change.
    """

    def get(self, blob_id: str) -> BlobRecord | None:
        """The record (strongly consistent read), or None."""

    def create(self, record: BlobRecord, *, quota: Quota) -> CreateOutcome:
        """Create ``record`` and charge its size and one blob to its owner.

        Nothing is written unless both succeed: EXISTS when the id is taken,
        OVER_QUOTA when the charge would pass ``quota``.
        """

    def settle(self, before: BlobRecord, after: BlobRecord) -> bool:
        """Write ``after`` iff the stored record still has ``before``'s state
        and version.  Moving to READY also writes a grant per recipient;
        moving to REJECTED with ``after.charge_held`` unset also releases
        ``before``'s charge (set, the charge stays until
        :meth:`release_rejected`).  False when another writer got there
        first."""

    def release_rejected(self, before: BlobRecord, after: BlobRecord) -> bool:
        """Write ``after`` (``charge_held`` unset) and release ``before``'s
        charge, iff the stored record is still ``before`` (REJECTED, same
        version) and ``before.charge_held``: two callers can't both release.
        False when another writer got there first."""

    def update_recipients(
        self, before: BlobRecord, after: BlobRecord, *, quota: Quota
    ) -> UpdateOutcome:
        """Write ``after`` (new recipients, maybe a new object and size) iff
        the stored record is still ``before``; grants follow the recipient
        change and usage the size change, in one transaction."""

    def delete(self, record: BlobRecord) -> bool:
        """Delete the record, its grants and its charge (unless REJECTED with
        the charge already released), iff its version is still
        ``record.version``."""

    def usage(self, identity: str) -> Usage: ...

    def list_owned(
        self, owner: str, *, limit: int, before: str | None
    ) -> tuple[list[BlobRecord], str | None]:
        """The owner's blobs, newest first, with created keys below
        ``before``; and the created key to continue from (None at the end)."""

    def list_granted(
        self, recipient: str, *, limit: int, before: str | None
    ) -> tuple[list[BlobRecord], str | None]:
        """READY blobs that list ``recipient``, newest first, like
        :meth:`list_owned`."""

    def expired_reservations(self, owner: str, now: int, *, limit: int) -> list[str]:
        """Ids of the owner's RESERVED blobs whose deadline is ``now`` or earlier."""


class ObjectStore(Protocol):
    """The blob bucket.  Keys are derived from blob ids here, never taken
    from a client: ``blobs/<id>`` for content; ``quarantine/<id>`` is
    where older releases kept rejected uploads (only ever deleted now)."""

    def presign_put(self, blob_id: str, size: int, ttl: int) -> UploadTarget:
        """A write-once PUT of exactly ``size`` bytes."""

    def start_multipart(self, blob_id: str) -> str:
        """Start a multipart upload; returns its upload id."""

    def presign_parts(
        self, blob_id: str, upload_id: str, sizes: Sequence[int], ttl: int
    ) -> list[UploadTarget]:
        """One presigned PUT per part, each of exactly its size."""

    def list_parts(self, blob_id: str, upload_id: str) -> list[UploadedPart] | None:
        """Parts uploaded so far; None when the upload no longer exists."""

    def complete_multipart(
        self, blob_id: str, upload_id: str, parts: Sequence[UploadedPart]
    ) -> StoredObject | None:
        """Assemble the object, write-once; None if an object already exists."""

    def abort_multipart(self, blob_id: str, upload_id: str) -> None: ...

    def head(self, blob_id: str, version_id: str | None = None) -> StoredObject | None:
        """The latest (or the given) version of the content, or None."""

    def read_prefix(self, blob_id: str, version_id: str, length: int) -> bytes | None:
        """The first ``length`` bytes of one version (a ranged GET); None when
        that version no longer exists (a concurrent check or delete removed it)."""

    def put_new(self, blob_id: str, data: bytes) -> StoredObject | None:
        """Store ``data`` as the content, write-once; None if content exists."""

    def replace_header(
        self, blob_id: str, current: StoredObject, old_header_length: int, header: bytes
    ) -> StoredObject | None:
        """Write ``header`` + the bytes of ``current`` after its old header as
        a new version, iff ``current`` is still the latest; None otherwise."""

    def delete_version(self, blob_id: str, version_id: str) -> None: ...

    def digest(self, blob_id: str, version_id: str) -> str | None:
        """SHA-256 (hex) of one version of the content, read in bounded
        memory; None when that version no longer exists."""

    def purge(self, blob_id: str) -> None:
        """Delete every version (and delete marker) of the content and of a
        quarantined copy; idempotent.  Raises rather than return when any
        deletion failed."""

    def presign_get(self, blob_id: str, version_id: str, ttl: int) -> str: ...
