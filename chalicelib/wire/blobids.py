"""Blob ids: the one shape, shared by the server that makes them and the devices that read them.

A blob id is 16 bytes (random, or derived from the owner and an idempotency
key) in base64url without padding: exactly 22 characters of
``[A-Za-z0-9_-]``.  Nothing else is a blob id, so an id is safe in a URL
path, an S3 key and a terminal line, and a device refuses any other string
a server sends as one.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["BLOB_ID_RE", "is_blob_id"]

BLOB_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{22}")


def is_blob_id(value: object) -> bool:
    """True when ``value`` is a string of the blob id shape."""
    return isinstance(value, str) and BLOB_ID_RE.fullmatch(value) is not None
