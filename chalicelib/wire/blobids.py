"""Blob ids: the one shape, shared by the server that makes them and the devices that read them.

A blob id is 16 bytes (random, or derived from the owner and an idempotency
key) in base64url without padding: exactly 22 characters of
``[A-Za-z0-9_-]``.  Nothing else is a blob id, so an id is safe in a URL
path, an S3 key and a terminal line, and a device refuses any other string
a server sends as one.

The derivation (:func:`derive_blob_id`) is shared: the server uses it so a
retried reservation finds the blob its first attempt made, and a device uses
it to know the id of the blob it is about to upload *before* it seals the
file, so the id can be signed into the sealed content (see
docs/spec/sealed.md) and checked against the reservation the server answers.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Final

__all__ = [
    "BLOB_ID_BYTES",
    "BLOB_ID_LABEL",
    "BLOB_ID_RE",
    "command_line_safe",
    "derive_blob_id",
    "is_blob_id",
]

BLOB_ID_BYTES: Final = 16
BLOB_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{22}")
BLOB_ID_LABEL: Final = b"sealbox/v1/blob-id"


def is_blob_id(value: object) -> bool:
    """True when ``value`` is a string of the blob id shape."""
    return isinstance(value, str) and BLOB_ID_RE.fullmatch(value) is not None


def command_line_safe(blob_id: str) -> bool:
    """False for an id starting with "-": every command line that takes it
    (`sealbox device get -x...`) would read it as an option; none is made."""
    return not blob_id.startswith("-")


def derive_blob_id(owner: str, key: str) -> str:
    """The id of the blob ``owner`` reserves with idempotency key ``key``.

    ``SHA-256(label || 0 || owner || 0 || key)``, first 16 bytes, base64url.
    Same owner and key, same id: a retried reservation can only ever find
    the blob its first attempt created, and another owner's key can't
    address it.  A counter makes the rare id with a leading "-" derive the
    next candidate instead, deterministically.

    Raises:
        ValueError: 256 candidates in a row started with "-" (probability
            64**-256: never).
    """
    for counter in range(256):
        digest = hashlib.sha256(
            BLOB_ID_LABEL
            + b"\x00"
            + owner.encode()
            + b"\x00"
            + key.encode()
            + (b"" if counter == 0 else b"\x00" + bytes([counter]))
        ).digest()
        blob_id = base64.urlsafe_b64encode(digest[:BLOB_ID_BYTES]).rstrip(b"=").decode("ascii")
        if command_line_safe(blob_id):
            return blob_id
    raise ValueError("no command-line-safe blob id")
