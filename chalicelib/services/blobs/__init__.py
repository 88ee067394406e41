"""Encrypted blob storage: reserve, upload, check, share, download, delete.

Devices encrypt files with age before anything leaves them; this service
only ever handles ciphertext, and mostly not even that: large files go from
the device straight to S3 through presigned URLs, and this service decides
what may be uploaded where, checks what arrived, and says who may download
it.

Life of a blob (an explicit state machine, one :func:`transition` function,
enforced in storage by conditional writes)::

    reserve ──▶ RESERVED ──(upload checked: right size, age v1 header)──▶ READY
                   │
                   └────(wrong size, or not shaped like age)──────────▶ REJECTED

* **Reserve** charges the owner's quota (bytes and count) atomically with
  the creation of the record and returns presigned upload instructions for
  a key the server chose: one PUT, or a multipart upload for blobs larger
  than one part.  With an idempotency key the blob id is derived from the
  owner and the key, so a retried request finds the same blob.
* **Check** runs when the owner commits, and again when S3 reports the new
  object (the SQS handler), whichever comes first; both settle through the
  same conditional transition, so the second one just reads the verdict.
  A rejected upload is never served: its record keeps the object's size,
  the reason and a SHA-256, the bytes are deleted at once, and its quota is
  released only once they are gone (``rejection``).
* **Share** replaces the recipient list; adding recipients needs a new age
  header from the device (the file key re-wrapped for the new set, which
  only a device can do).  The server splices it in front of the unchanged
  payload as a new S3 object version, compare-and-swapped on both the
  record's version and the object's ETag.
* **Delete** removes every S3 version and the record, and releases quota.

Who may see what: the owner and the listed recipients read a blob; anyone
else gets exactly the answer a nonexistent id gets.  Only the owner
changes a blob; a recipient trying to is told so (it already knows the
blob exists).

No chalice, no boto3: stores, the clock and randomness are injected.

The package, one idea per module:

* ``model``: the states, the transition function, the record and the values
  passed between the service and its stores;
* ``ports``: the store Protocols the service is written against;
* ``ids``: blob ids, idempotency keys and fingerprints, listing cursors;
* ``inputs``: the limits, and the checks of untrusted request input;
* ``rejection``: what becomes of a rejected upload (fingerprint, delete,
  then release the quota);
* ``service``: :class:`BlobService`.

Import from the package (``from chalicelib.services.blobs import X``): the
modules are its layout, not its interface.
"""

# The underscored names are private helpers that tests pin down (the id
# derivation and its label): re-exported explicitly (``as``) so they stay
# importable from here without joining ``__all__``.
from chalicelib.services.blobs.ids import (
    _BLOB_ID_LABEL as _BLOB_ID_LABEL,
)
from chalicelib.services.blobs.ids import (
    BLOB_ID_BYTES,
)
from chalicelib.services.blobs.ids import (
    _derived_blob_id as _derived_blob_id,
)
from chalicelib.services.blobs.ids import (
    _random_blob_id as _random_blob_id,
)
from chalicelib.services.blobs.inputs import (
    DEFAULT_PAGE,
    INLINE_MAX,
    MAX_PAGE,
    MAX_PARTS,
    MAX_RECIPIENTS,
    part_sizes,
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
    UploadedPart,
    UploadPlan,
    UploadTarget,
    Usage,
    Verdict,
    transition,
)
from chalicelib.services.blobs.ports import BlobStore, ObjectStore
from chalicelib.services.blobs.service import BlobService
from chalicelib.services.lifecycle import InvalidTransition

__all__ = [
    "BLOB_ID_BYTES",
    "DEFAULT_PAGE",
    "INLINE_MAX",
    "MAX_PAGE",
    "MAX_PARTS",
    "MAX_RECIPIENTS",
    "BlobPage",
    "BlobRecord",
    "BlobService",
    "BlobState",
    "BlobStore",
    "BlobView",
    "CreateOutcome",
    "InvalidTransition",
    "ObjectStore",
    "Quota",
    "Reservation",
    "StoredObject",
    "UpdateOutcome",
    "UploadPlan",
    "UploadTarget",
    "UploadedPart",
    "Usage",
    "Verdict",
    "part_sizes",
    "transition",
]
