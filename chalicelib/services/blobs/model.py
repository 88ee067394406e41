"""What a blob is: its states and the one transition function, its record,
and the values the service and its stores pass to each other.

Data only: no I/O, no validation of client input (see ``service`` and ``ids``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from chalicelib.services.lifecycle import Lifecycle

# --- the state machine ----------------------------------------------------------


class BlobState(enum.Enum):
    RESERVED = "reserved"
    READY = "ready"
    REJECTED = "rejected"


class Verdict(enum.Enum):
    """The outcome of checking an uploaded object."""

    ACCEPT = "accept"
    REJECT = "reject"


# A verdict for a blob that is no longer waiting for one (a bug) raises the
# shared InvalidTransition itself: the name blobs always raised, and still a
# RuntimeError (see chalicelib.services.lifecycle).
BLOB_LIFECYCLE: Final = Lifecycle[BlobState, Verdict](
    {
        (BlobState.RESERVED, Verdict.ACCEPT): BlobState.READY,
        (BlobState.RESERVED, Verdict.REJECT): BlobState.REJECTED,
    }
)


def transition(state: BlobState, verdict: Verdict) -> BlobState:
    """The state a blob in ``state`` moves to on ``verdict``.

    READY and REJECTED are final: a blob is checked once.

    Raises:
        InvalidTransition: ``state`` takes no verdict.
    """
    return BLOB_LIFECYCLE.transition(state, verdict)


# --- records -----------------------------------------------------------------------


@dataclass(frozen=True)
class BlobRecord:
    """One blob's metadata, as stored.

    ``version`` grows by one with every write, and every write is
    conditional on the version it read.  ``expires_at`` is the reservation's
    deadline (meaningful while RESERVED).  ``object_version`` pins the S3
    object version that was checked: downloads are presigned for exactly
    that version.

    A REJECTED record keeps, instead of the bytes, what proves what was
    rejected: ``rejected_size`` and ``rejected_sha256`` (hex) of the checked
    object version (None when no object was ever assembled, e.g. a multipart
    upload with a part of the wrong size).  ``charge_held`` is True while a
    rejected blob's bytes may still be in the bucket and its quota is still
    charged; it turns False in the same conditional write that releases the
    charge, after the bytes are gone (meaningless in other states).
    """

    blob_id: str
    owner: str
    recipients: tuple[str, ...]
    size: int
    created_at: int
    state: BlobState
    version: int
    expires_at: int
    fingerprint: str
    part_size: int | None = None
    upload_id: str | None = None
    object_version: str | None = None
    etag: str | None = None
    header_length: int | None = None
    armored: bool = False
    reject_reason: str | None = None
    updated_at: int = 0
    rejected_size: int | None = None
    rejected_sha256: str | None = None
    charge_held: bool = False
    #: A group blob: readable by the group's current members (checked at
    #: every read against the group's head), not by a recipient list.
    group: str | None = None

    @property
    def created_key(self) -> str:
        """Sort key of listings: creation time, then id (unique, ordered)."""
        return f"{self.created_at:010d}#{self.blob_id}"

    def may_read(self, identity: str) -> bool:
        return identity == self.owner or identity in self.recipients


@dataclass(frozen=True)
class StoredObject:
    """One version of a blob's S3 object."""

    version_id: str
    etag: str
    size: int


@dataclass(frozen=True)
class UploadedPart:
    number: int
    size: int
    etag: str


@dataclass(frozen=True)
class UploadTarget:
    """Where and how to send one PUT: a presigned URL (a bearer
    credential, hence not in ``repr``) and the headers it was signed with."""

    url: str = field(repr=False)
    headers: dict[str, str]
    part_number: int | None = None


@dataclass(frozen=True)
class UploadPlan:
    kind: str  # "single" or "multipart"
    targets: tuple[UploadTarget, ...]
    expires_in: int
    part_size: int | None = None


@dataclass(frozen=True)
class Reservation:
    """A reserved blob and how to upload it (``plan`` is None once the blob
    is no longer waiting for an upload, on an idempotent replay)."""

    record: BlobRecord
    plan: UploadPlan | None


@dataclass(frozen=True)
class BlobView:
    record: BlobRecord
    download_url: str | None = field(default=None, repr=False)
    download_expires_in: int = 0


@dataclass(frozen=True)
class BlobPage:
    items: tuple[BlobRecord, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class Usage:
    bytes: int
    blobs: int


@dataclass(frozen=True)
class Quota:
    max_bytes: int
    max_blobs: int


class CreateOutcome(enum.Enum):
    CREATED = "created"
    EXISTS = "exists"
    OVER_QUOTA = "over_quota"


class UpdateOutcome(enum.Enum):
    DONE = "done"
    CONFLICT = "conflict"
    OVER_QUOTA = "over_quota"
