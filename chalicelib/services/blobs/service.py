"""The blob service: one method per route, plus the S3 event check.

The life of a blob and who may see what are described in the package
docstring (:mod:`chalicelib.services.blobs`).

No chalice, no boto3: stores, the clock and randomness are injected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from chalicelib import crypto
from chalicelib.config import BlobSettings
from chalicelib.errors import (
    BlobArmored,
    BlobHeaderRequired,
    BlobIdempotencyConflict,
    BlobNotOwner,
    BlobNotReady,
    BlobNotReserved,
    BlobQuotaBytesExceeded,
    BlobQuotaCountExceeded,
    BlobRejected,
    BlobReservationExpired,
    BlobSizeMismatch,
    BlobTooLarge,
    BlobUploadExists,
    BlobUploadIncomplete,
    BlobUploadMissing,
    BlobVersionConflict,
    InternalError,
    InvalidBlobSize,
    InvalidRequest,
    NotAgeCiphertext,
    NotFound,
    SealboxError,
)
from chalicelib.logs import log_event
from chalicelib.services.blobs.access import Access
from chalicelib.services.blobs.cleanup import Cleanup
from chalicelib.services.blobs.ids import (
    _BLOB_ID_RE,
    _decode_cursor,
    _derived_blob_id,
    _encode_cursor,
    _fingerprint,
    _random_blob_id,
    _valid_idempotency_key,
)
from chalicelib.services.blobs.inputs import (
    DEFAULT_PAGE,
    INLINE_MAX,
    MAX_PAGE,
    MAX_PARTS,
    part_sizes,
    valid_header,
    valid_recipients,
)
from chalicelib.services.blobs.model import (
    BlobPage,
    BlobRecord,
    BlobState,
    BlobView,
    CreateOutcome,
    Quota,
    Reservation,
    StoredObject,
    UpdateOutcome,
    UploadPlan,
    Verdict,
    transition,
)
from chalicelib.services.blobs.ports import BlobStore, ObjectStore
from chalicelib.services.blobs.rejection import Rejections, deleted_or_retry
from chalicelib.wire import agefile

_MIB = 1024 * 1024
_LIMIT_RE = re.compile(r"[0-9]{1,3}")
_ROLES = ("outbox", "inbox")
_T = TypeVar("_T")


# --- the service ------------------------------------------------------------------------


class BlobService:
    """Every blob operation; one method per route, plus the S3 event check."""

    # A delete that loses its compare-and-swap re-reads and tries again.
    _DELETE_ROUNDS = 3

    def __init__(
        self,
        blobs: BlobStore,
        objects: ObjectStore,
        settings: BlobSettings,
        *,
        clock: Callable[[], float],
        random_bytes: Callable[[int], bytes] = crypto.random_bytes,
        group_member: Callable[[str, str], bool] | None = None,
    ) -> None:
        self._blobs = blobs
        self._objects = objects
        self._settings = settings
        self._clock = clock
        self._random = random_bytes
        self._quota = Quota(max_bytes=settings.quota_bytes, max_blobs=settings.quota_count)
        self._rejections = Rejections(blobs, objects, self._now)
        self._cleanup = Cleanup(blobs, objects)
        self._access = Access(blobs, group_member)

    def _now(self) -> int:
        return int(self._clock())

    # reserve ---------------------------------------------------------------

    def reserve(
        self,
        owner: str,
        *,
        size: object,
        recipients: object,
        idempotency_key: object = None,
        group: object = None,
    ) -> Reservation:
        """Reserve a blob of ``size`` bytes for ``owner`` and say how to upload it.

        With ``group`` (a group the owner is a current member of) the blob is
        readable by the group's current members and ``recipients`` must be
        empty.

        Raises:
            InvalidBlobSize, BlobTooLarge, InvalidRecipient, TooManyRecipients,
            InvalidIdempotencyKey: malformed input (nothing stored).
            BlobIdempotencyConflict: the key was used for a different request.
            BlobQuotaBytesExceeded, BlobQuotaCountExceeded: over quota, even
                after reclaiming the owner's expired reservations.
        """
        size = self._valid_size(size)
        members = valid_recipients(recipients)
        key = _valid_idempotency_key(idempotency_key)
        group_id = self._access.valid_group(owner, group, members)
        # "group:" is no identity, so a group blob's fingerprint can't equal
        # a shared blob's.
        fingerprint = _fingerprint(size, members if group_id is None else ("group:" + group_id,))
        now = self._now()
        if key is None:
            blob_id = _random_blob_id(self._random)
        else:
            blob_id = _derived_blob_id(owner, key)
            existing = self._blobs.get(blob_id)
            if existing is not None:
                replayed = self._replay(existing, owner, fingerprint, now)
                if replayed is not None:
                    return replayed
        part_size = self._part_size(size) if size > self._settings.part_size else None
        upload_id = self._objects.start_multipart(blob_id) if part_size else None
        record = BlobRecord(
            blob_id=blob_id,
            owner=owner,
            recipients=members,
            size=size,
            created_at=now,
            state=BlobState.RESERVED,
            version=1,
            expires_at=now + self._settings.reservation_ttl,
            fingerprint=fingerprint,
            part_size=part_size,
            upload_id=upload_id,
            updated_at=now,
            group=group_id,
        )
        try:
            outcome = self._blobs.create(record, quota=self._quota)
            if outcome is CreateOutcome.OVER_QUOTA and self._cleanup.reclaim_expired(owner, now):
                outcome = self._blobs.create(record, quota=self._quota)
        except Exception:
            # Not after the bucket's 8-day lifecycle rule: at once, unless
            # the write went through after all (then the record owns it).
            if upload_id is not None:
                self._cleanup.abort_unrecorded_upload(blob_id, upload_id, checked=False)
            raise
        if outcome is CreateOutcome.CREATED:
            return Reservation(record, self._plan(record, now))
        if upload_id is not None:
            self._cleanup.abort_unrecorded_upload(blob_id, upload_id, checked=True)
        if outcome is CreateOutcome.EXISTS:
            # A concurrent request with the same idempotency key won.
            existing = self._blobs.get(blob_id)
            if key is None or existing is None:
                raise InternalError()
            replayed = self._replay(existing, owner, fingerprint, now)
            if replayed is None:
                raise BlobVersionConflict()
            return replayed
        usage = self._blobs.usage(owner)
        if usage.bytes + size > self._quota.max_bytes:
            raise BlobQuotaBytesExceeded()
        raise BlobQuotaCountExceeded()

    def _replay(
        self, existing: BlobRecord, owner: str, fingerprint: str, now: int
    ) -> Reservation | None:
        """The answer to a repeated reservation, or None when the earlier
        one expired unused and has been reclaimed (reserve anew)."""
        if existing.owner != owner:
            # Ids are derived from the owner: only a hash collision gets here.
            raise InternalError()
        if existing.fingerprint != fingerprint:
            raise BlobIdempotencyConflict()
        if existing.state is not BlobState.RESERVED:
            return Reservation(existing, None)
        if existing.expires_at <= now:
            stored = self._objects.head(existing.blob_id)
            if stored is None:
                self._cleanup.reclaim(existing)
                return None
            # Uploaded in time but never checked (the event was lost): judge
            # it now rather than hand out URLs for an expired reservation.
            return Reservation(self._check(existing, stored), None)
        return Reservation(existing, self._plan(existing, now))

    def _part_size(self, size: int) -> int:
        # At most MAX_PARTS parts, in whole MiB.
        smallest = math.ceil(math.ceil(size / MAX_PARTS) / _MIB) * _MIB
        return max(self._settings.part_size, smallest)

    def _plan(self, record: BlobRecord, now: int) -> UploadPlan:
        # URLs never outlive the reservation they upload to.
        ttl = max(1, min(self._settings.upload_url_ttl, record.expires_at - now))
        if record.part_size is None or record.upload_id is None:
            target = self._objects.presign_put(record.blob_id, record.size, ttl)
            return UploadPlan(kind="single", targets=(target,), expires_in=ttl)
        targets = self._objects.presign_parts(
            record.blob_id, record.upload_id, part_sizes(record.size, record.part_size), ttl
        )
        return UploadPlan(
            kind="multipart", targets=tuple(targets), expires_in=ttl, part_size=record.part_size
        )

    # upload and check ---------------------------------------------------------------

    def upload_inline(self, owner: str, blob_id: str, data: bytes) -> BlobView:
        """Store a small ciphertext sent through the API and mark it READY.

        Everything is checked before anything is stored, so a refused body
        changes nothing and the reservation can still be used.

        Raises:
            NotFound, BlobNotOwner: see :meth:`view`; owner only.
            BlobNotReserved: the blob already has its content.
            BlobTooLarge: the reserved size is over :data:`INLINE_MAX`.
            BlobSizeMismatch: ``data`` is not the reserved size.
            NotAgeCiphertext: ``data`` is not shaped like an age v1 file,
                or its first payload chunk is clearly not ciphertext.
            BlobReservationExpired: too late (the reservation is reclaimed).
            BlobUploadExists: a presigned upload got there first.
        """
        record = self._owned(owner, blob_id)
        if record.state is not BlobState.RESERVED:
            raise BlobNotReserved()
        if record.size > INLINE_MAX:
            raise BlobTooLarge("Blobs over 256 KiB must use the presigned upload.")
        if len(data) != record.size:
            raise BlobSizeMismatch()
        try:
            info = agefile.sniff(data[: agefile.SNIFF_WINDOW], len(data))
            agefile.check_first_chunk(data[: agefile.SNIFF_WINDOW], info)
        except agefile.NotAgeFile as exc:
            raise NotAgeCiphertext() from exc
        if record.expires_at <= self._now():
            self._cleanup.reclaim(record)
            raise BlobReservationExpired()
        stored = self._objects.put_new(record.blob_id, data)
        if stored is None:
            raise BlobUploadExists()
        settled = self._settle(record, Verdict.ACCEPT, stored=stored, info=info)
        if settled.state is BlobState.REJECTED:
            raise BlobRejected()
        return self._view(settled)

    def commit(self, owner: str, blob_id: str) -> BlobView:
        """Check the uploaded object and mark the blob READY, or reject it.

        Idempotent: committing a READY blob returns it; committing a
        REJECTED one raises :class:`BlobRejected` again.

        Raises:
            NotFound, BlobNotOwner: see :meth:`view`; owner only.
            BlobRejected: wrong size, not age, or a first payload chunk
                that is clearly not ciphertext: the blob is REJECTED with
                the object's size and SHA-256, the object deleted and then
                its quota released (a failed deletion is retried by the
                next commit or S3 event; the charge stays until then).
            BlobUploadMissing: nothing uploaded yet (nothing changes).
            BlobUploadIncomplete: a multipart upload lacks parts.
            BlobReservationExpired: nothing uploaded in time; reclaimed.
        """
        record = self._owned(owner, blob_id)
        if record.state is BlobState.READY:
            return self._view(record)
        if record.state is BlobState.REJECTED:
            self._rejections.dispose(record)  # retry an interrupted deletion
            raise BlobRejected()
        stored = self._objects.head(record.blob_id)
        if stored is None and record.upload_id is not None:
            stored = self._complete_multipart(record)
        if stored is None:
            # No object: never uploaded, or a concurrent check (the S3
            # event) rejected it and moved it away after we read the record.
            # The record, read again, says which.
            current = self._blobs.get(record.blob_id)
            if current is None:
                raise NotFound()
            if current.state is BlobState.RESERVED:
                if current.expires_at <= self._now():
                    self._cleanup.reclaim(current)
                    raise BlobReservationExpired()
                raise BlobUploadMissing()
            settled = self._as_settled(current)
        else:
            settled = self._check(record, stored)
        if settled.state is BlobState.REJECTED:
            raise BlobRejected()
        return self._view(settled)

    def inspect_upload(self, blob_id: str, version_id: str | None) -> None:
        """React to S3's report of a new object at ``blobs/<blob_id>``.

        The same check as :meth:`commit`, for uploads nobody commits; also
        removes content whose blob no longer exists (uploaded with a URL
        that outlived its blob) and retries the deletion of rejected bytes.
        Settling is conditional, so it doesn't matter whether this or the
        commit runs first, or how often S3 reports the same object.

        Raises:
            ServiceUnavailable: a rejected upload's bytes could not be
                deleted (its quota stays charged); raised so SQS redelivers
                the report and the deletion is tried again.
        """
        if not _BLOB_ID_RE.fullmatch(blob_id):
            log_event("blob_event_ignored", reason="foreign_key")
            return
        record = self._blobs.get(blob_id)
        if record is None:
            self._objects.purge(blob_id)
            log_event("blob_orphan_removed", blob_id=blob_id)
            return
        if record.state is BlobState.REJECTED:
            deleted_or_retry(self._rejections.dispose(record))
            return
        if record.state is BlobState.READY:
            # Downloads are pinned to the checked version; anything else
            # under the key is never served and goes with the blob.
            return
        stored = self._objects.head(blob_id, version_id)
        if stored is None:
            # Nothing under that version: already moved, or a report of a
            # version that never existed (forged).  Nothing to check.
            log_event("blob_event_ignored", reason="no_such_object", blob_id=blob_id)
            return
        try:
            deleted_or_retry(self._check(record, stored))
        except (NotFound, BlobVersionConflict):
            # The blob was deleted, or is being deleted, while we checked:
            # the delete owns the outcome (and removes what it finds).  A
            # retried batch would only meet the same answer.
            log_event("blob_event_superseded", blob_id=blob_id)

    def _complete_multipart(self, record: BlobRecord) -> StoredObject | None:
        upload_id, part_size = _present(record.upload_id), _present(record.part_size)
        parts = self._objects.list_parts(record.blob_id, upload_id)
        if parts is None:
            # Completed by a concurrent commit, or aborted.
            return self._objects.head(record.blob_id)
        expected = part_sizes(record.size, part_size)
        by_number = {part.number: part for part in parts}
        misfits = [
            part
            for part in parts
            if not 1 <= part.number <= len(expected) or part.size != expected[part.number - 1]
        ]
        if misfits:
            # A part of the wrong size (S3 enforces signed lengths; moto
            # doesn't) can never make a valid upload: reject it now.
            self._objects.abort_multipart(record.blob_id, upload_id)
            self._settle(record, Verdict.REJECT, reason="size_mismatch")
            raise BlobRejected()
        if len(by_number) < len(expected):
            raise BlobUploadIncomplete()
        ordered = [by_number[number] for number in range(1, len(expected) + 1)]
        stored = self._objects.complete_multipart(record.blob_id, upload_id, ordered)
        return stored if stored is not None else self._objects.head(record.blob_id)

    def _check(self, record: BlobRecord, stored: StoredObject) -> BlobRecord:
        """Judge ``stored`` against ``record`` and settle the verdict."""
        if stored.size != record.size:
            return self._reject(record, stored, None, "size_mismatch")
        prefix = self._objects.read_prefix(
            record.blob_id, stored.version_id, min(stored.size, agefile.SNIFF_WINDOW)
        )
        if prefix is None:
            # The version vanished after the head: a concurrent check rejected
            # it and moved it away, or the owner deleted the blob.
            return self._settled_elsewhere(record)
        try:
            info = agefile.sniff(prefix, stored.size)
            agefile.check_first_chunk(prefix, info)
        except agefile.NotAgeFile as exc:
            return self._reject(record, stored, prefix, exc.reason)
        return self._settle(record, Verdict.ACCEPT, stored=stored, info=info)

    def _reject(
        self, record: BlobRecord, stored: StoredObject, prefix: bytes | None, reason: str
    ) -> BlobRecord:
        """Fingerprint the checked version, then settle REJECT."""
        sha256 = self._rejections.fingerprint(record.blob_id, stored, prefix)
        if sha256 is None:
            return self._settled_elsewhere(record)  # the version vanished meanwhile
        return self._settle(record, Verdict.REJECT, stored=stored, reason=reason, sha256=sha256)

    def _settle(
        self,
        record: BlobRecord,
        verdict: Verdict,
        *,
        stored: StoredObject | None = None,
        info: agefile.AgeFileInfo | None = None,
        reason: str | None = None,
        sha256: str | None = None,
    ) -> BlobRecord:
        """Apply ``verdict`` with a conditional write; return the record as it
        now stands (ours, or whatever a concurrent checker settled)."""
        state = transition(record.state, verdict)
        if state is BlobState.READY:
            checked, sniffed = _present(stored), _present(info)
            after = replace(
                record,
                state=state,
                version=record.version + 1,
                upload_id=None,
                object_version=checked.version_id,
                etag=checked.etag,
                header_length=sniffed.header_length,
                armored=sniffed.armored,
                updated_at=self._now(),
            )
        else:
            after = replace(
                record,
                state=state,
                version=record.version + 1,
                upload_id=None,
                reject_reason=reason,
                rejected_size=None if stored is None else stored.size,
                rejected_sha256=sha256,
                charge_held=True,  # released by dispose once the bytes are gone
                updated_at=self._now(),
            )
        if self._blobs.settle(record, after):
            if state is BlobState.REJECTED:
                log_event("blob_rejected", blob_id=record.blob_id, reason=reason)
                return self._rejections.dispose(after)
            return after
        return self._settled_elsewhere(record)

    def _settled_elsewhere(self, record: BlobRecord) -> BlobRecord:
        """The record as a concurrent writer left it, when ours lost the race.

        Raises:
            NotFound: the blob was deleted.
            BlobVersionConflict: it is still RESERVED (a delete in progress).
        """
        current = self._blobs.get(record.blob_id)
        if current is None:
            raise NotFound()
        if current.state is BlobState.RESERVED:
            raise BlobVersionConflict()
        return self._as_settled(current)

    def _as_settled(self, current: BlobRecord) -> BlobRecord:
        """A READY or REJECTED record, with a rejected one's bytes deleted
        (idempotent, and safe while the winner is still deleting them)."""
        return self._rejections.dispose(current)

    # read ---------------------------------------------------------------------------

    def view(self, caller: str, blob_id: str) -> BlobView:
        """The blob as its owner or a recipient sees it; READY blobs come with
        a presigned download URL for the checked object version.

        Raises:
            NotFound: no such blob, or ``caller`` is neither its owner nor a
                recipient (the same answer, so ids can't be probed).
        """
        return self._view(self._access.readable(caller, blob_id))

    def _view(self, record: BlobRecord) -> BlobView:
        if record.state is not BlobState.READY or record.object_version is None:
            return BlobView(record)
        ttl = self._settings.download_url_ttl
        url = self._objects.presign_get(record.blob_id, record.object_version, ttl)
        return BlobView(record, download_url=url, download_expires_in=ttl)

    def list_blobs(self, caller: str, *, role: object, limit: object, cursor: object) -> BlobPage:
        """A page of the caller's blobs (``outbox``: owned; ``inbox``: READY
        blobs that list the caller), newest first.

        ``role``, ``limit`` and ``cursor`` are the raw query values (strings
        or None).

        Raises:
            InvalidRequest: an unknown role or a limit outside 1-100.
            InvalidCursor: a cursor this listing did not hand out.
        """
        role = "outbox" if role is None else role
        if role not in _ROLES:
            raise InvalidRequest("role must be inbox or outbox.")
        assert isinstance(role, str)
        if limit is None:
            page_size = DEFAULT_PAGE
        elif isinstance(limit, str) and _LIMIT_RE.fullmatch(limit) and 1 <= int(limit) <= MAX_PAGE:
            page_size = int(limit)
        else:
            raise InvalidRequest(f"limit must be an integer from 1 to {MAX_PAGE}.")
        before = None if cursor is None else _decode_cursor(cursor, role)
        if role == "outbox":
            items, last = self._blobs.list_owned(caller, limit=page_size, before=before)
        else:
            items, last = self._blobs.list_granted(caller, limit=page_size, before=before)
            items = [r for r in items if r.state is BlobState.READY and caller in r.recipients]
        return BlobPage(
            items=tuple(items), next_cursor=None if last is None else _encode_cursor(role, last)
        )

    # share ----------------------------------------------------------------------------

    def set_recipients(
        self,
        owner: str,
        blob_id: str,
        *,
        recipients: object,
        version: object,
        header: object = None,
    ) -> BlobView:
        """Replace who may download a READY blob.

        Without ``header`` the new set must be a subset of the current one
        (revoking needs no new key material).  With ``header`` (base64url of
        one binary age header wrapping the same file key for the new set),
        the stored object becomes that header followed by the unchanged
        payload, as a new object version; the old version is deleted, so a
        removed recipient can't fetch the old header either.

        Raises:
            NotFound, BlobNotOwner: see :meth:`view`; owner only.
            InvalidRecipient, TooManyRecipients, InvalidRequest (version),
            InvalidBlobHeader: malformed input.
            BlobNotReady: not READY.
            BlobVersionConflict: ``version`` is not the current one, or the
                blob changed during the request (nothing changed).
            BlobHeaderRequired: recipients added without a header.
            BlobArmored: a header for an armored blob.
            BlobTooLarge, BlobQuotaBytesExceeded: the new header grows the
                blob past a limit.
        """
        members = valid_recipients(recipients)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidRequest("version must be the blob's current version (an integer).")
        new_header = None if header is None else valid_header(header)
        record = self._owned(owner, blob_id)
        if record.state is not BlobState.READY:
            raise BlobNotReady()
        if version != record.version:
            raise BlobVersionConflict()
        now = self._now()
        if new_header is None:
            if not set(members) <= set(record.recipients):
                raise BlobHeaderRequired()
            after = replace(record, recipients=members, version=record.version + 1, updated_at=now)
            outcome = self._blobs.update_recipients(record, after, quota=self._quota)
            if outcome is not UpdateOutcome.DONE:
                raise BlobVersionConflict()
            return self._view(after)
        if record.armored:
            raise BlobArmored()
        old_header_length = _present(record.header_length)
        size = record.size - old_header_length + len(new_header)
        if size > self._settings.max_size:
            raise BlobTooLarge()
        current = StoredObject(_present(record.object_version), _present(record.etag), record.size)
        stored = self._objects.replace_header(
            record.blob_id, current, old_header_length, new_header
        )
        if stored is None:
            raise BlobVersionConflict()
        after = replace(
            record,
            recipients=members,
            version=record.version + 1,
            size=size,
            object_version=stored.version_id,
            etag=stored.etag,
            header_length=len(new_header),
            updated_at=now,
        )
        try:
            outcome = self._blobs.update_recipients(record, after, quota=self._quota)
        except SealboxError:
            # The record write failed without a verdict (a throttle, a
            # timeout): the new version must not stay the latest unless the
            # record names it, or every later header change would fail its
            # ETag precondition against it.
            self._cleanup.drop_unrecorded_version(record.blob_id, stored.version_id)
            raise
        if outcome is not UpdateOutcome.DONE:
            # Undo the new version: nothing may change when the request fails.
            self._objects.delete_version(record.blob_id, stored.version_id)
            if outcome is UpdateOutcome.OVER_QUOTA:
                raise BlobQuotaBytesExceeded()
            raise BlobVersionConflict()
        self._objects.delete_version(record.blob_id, current.version_id)
        return self._view(after)

    # delete ---------------------------------------------------------------------------

    def delete(self, owner: str, blob_id: str) -> None:
        """Delete every stored version of the blob, its record and grants, and
        release its quota.

        Raises:
            NotFound, BlobNotOwner: see :meth:`view`; owner only.
            BlobVersionConflict: the blob kept changing during the request.
        """
        record = self._owned(owner, blob_id)
        for _ in range(self._DELETE_ROUNDS):
            if record.upload_id is not None:
                self._objects.abort_multipart(record.blob_id, record.upload_id)
            self._objects.purge(record.blob_id)
            if self._blobs.delete(record):
                # Content uploaded while we worked (a URL still valid) goes too;
                # anything later is removed by the S3 event handler.
                self._objects.purge(record.blob_id)
                return
            current = self._blobs.get(record.blob_id)
            if current is None:
                return
            record = current
        raise BlobVersionConflict()

    # helpers --------------------------------------------------------------------------

    def _owned(self, owner: str, blob_id: str) -> BlobRecord:
        record = self._access.readable(owner, blob_id)
        if record.owner != owner:
            raise BlobNotOwner()
        return record

    def _valid_size(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidBlobSize()
        if value > self._settings.max_size:
            raise BlobTooLarge()
        return value


def _present(value: _T | None) -> _T:
    """``value``, which the blob's state guarantees is set (a READY blob has
    its object; a multipart reservation its upload id)."""
    if value is None:
        raise InternalError()
    return value
