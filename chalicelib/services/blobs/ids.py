"""Identifiers the blob service makes and reads back: blob ids, idempotency
keys and the request fingerprint they are bound to, and listing cursors.

The names keep their leading underscore: they are private to the package
(``service`` imports them; ``chalicelib.services.blobs`` re-exports the few
that tests pin down).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from chalicelib import crypto
from chalicelib.errors import InternalError, InvalidCursor, InvalidIdempotencyKey
from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.blobids import BLOB_ID_LABEL, BLOB_ID_RE, command_line_safe, derive_blob_id

BLOB_ID_BYTES = 16  # chalicelib.wire.blobids.BLOB_ID_BYTES
_BLOB_ID_RE = BLOB_ID_RE  # one shape, in chalicelib.wire.blobids
_IDEMPOTENCY_KEY_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")
_CREATED_KEY_RE = re.compile(r"[0-9]{10}#[A-Za-z0-9_-]{22}")
_BLOB_ID_LABEL = BLOB_ID_LABEL


def _valid_idempotency_key(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _IDEMPOTENCY_KEY_RE.fullmatch(value):
        raise InvalidIdempotencyKey()
    return value


def _command_line_safe(blob_id: str) -> bool:
    return command_line_safe(blob_id)


def _random_blob_id(rand: Callable[[int], bytes]) -> str:
    """128 random bits, base64url; redrawn in the 1/64 case of a leading "-"."""
    while True:
        blob_id = b64url_encode(rand(BLOB_ID_BYTES))
        if _command_line_safe(blob_id):
            return blob_id


def _derived_blob_id(owner: str, key: str) -> str:
    # One derivation, in the wire module: devices compute it too, to sign
    # the id into the sealed content before they reserve.
    try:
        return derive_blob_id(owner, key)
    except ValueError as exc:  # probability 64**-256
        raise InternalError() from exc


def _fingerprint(size: int, recipients: tuple[str, ...]) -> str:
    canonical = json.dumps({"recipients": list(recipients), "size": size}, sort_keys=True)
    return b64url_encode(crypto.sha256(canonical.encode())[:16])


def _encode_cursor(role: str, created_key: str) -> str:
    return b64url_encode(f"{role}:{created_key}".encode("ascii"))


def _decode_cursor(cursor: object, role: str) -> str:
    if not isinstance(cursor, str):
        raise InvalidCursor()
    try:
        text = b64url_decode(cursor, max_len=64).decode("ascii")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor() from exc
    cursor_role, _, created_key = text.partition(":")
    if cursor_role != role or not _CREATED_KEY_RE.fullmatch(created_key):
        raise InvalidCursor()
    return created_key
