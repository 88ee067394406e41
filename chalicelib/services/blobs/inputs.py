"""What a blob request may ask for: the limits, and the checks of untrusted input.

Pure functions and constants, shared by the service and the routes (which
size their request bodies from them).  Every check raises the domain error
the edge maps to a 400 (or 413) with a stable code.
"""

from __future__ import annotations

import math
import re

from chalicelib.errors import (
    InvalidBlobHeader,
    InvalidRecipient,
    InvalidRequest,
    TooManyRecipients,
)
from chalicelib.wire import agefile
from chalicelib.wire.b64 import b64url_decode
from chalicelib.wire.identity import InvalidIdentity, normalize_identity

__all__ = [
    "DEFAULT_PAGE",
    "INLINE_MAX",
    "MAX_PAGE",
    "MAX_PARTS",
    "MAX_RECIPIENTS",
    "part_sizes",
    "valid_header",
    "valid_recipients",
]

#: Recipients per blob.  A recipient change is one DynamoDB transaction
#: (the record, a grant added or removed per recipient, the usage counter):
#: 1 + 2 * 32 + 1 items, under DynamoDB's limit of 100.
MAX_RECIPIENTS = 32
#: Largest ciphertext accepted inline (``PUT /v1/blobs/{id}/content``).
INLINE_MAX = 256 * 1024
#: Most parts a multipart upload is split into (the reservation answer
#: lists one presigned URL per part).
MAX_PARTS = 100
DEFAULT_PAGE = 25
MAX_PAGE = 100


def part_sizes(size: int, part_size: int) -> list[int]:
    """Sizes of the parts of a ``size``-byte multipart upload: full parts,
    then the remainder."""
    count = max(1, math.ceil(size / part_size))
    return [part_size] * (count - 1) + [size - part_size * (count - 1)]


def valid_recipients(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidRecipient()
    # Bounded before any normalisation work.
    if len(value) > 4 * MAX_RECIPIENTS:
        raise TooManyRecipients()
    try:
        members = sorted({normalize_identity(item) for item in value})
    except InvalidIdentity as exc:
        raise InvalidRecipient() from exc
    if len(members) > MAX_RECIPIENTS:
        raise TooManyRecipients()
    return tuple(members)


def valid_header(value: object) -> bytes:
    if not isinstance(value, str):
        raise InvalidBlobHeader()
    try:
        header = b64url_decode(value, max_len=agefile.MAX_HEADER_SIZE)
        agefile.check_header(header)
    except ValueError as exc:  # NotAgeFile is a ValueError
        raise InvalidBlobHeader() from exc
    return header


# A canonical group id: 16 bytes in unpadded base64url (chalicelib.wire.groups).
_GROUP_ID_RE = re.compile(r"[A-Za-z0-9_-]{21}[AQgw]")


def valid_group(group: object, *, enabled: bool) -> str | None:
    """A group blob's group id from untrusted input (None: not a group blob).

    Raises:
        InvalidRequest: not a group id, or groups not available.
    """
    if group is None:
        return None
    if not isinstance(group, str) or not _GROUP_ID_RE.fullmatch(group):
        raise InvalidRequest("group must be a group id.")
    if not enabled:
        raise InvalidRequest("Groups are not available.")
    return group
