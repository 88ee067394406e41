"""Base64url without padding (RFC 4648 §5), strict in what it accepts.

Every binary field in the HTTP API uses this encoding.  Decoding is
canonical: padding, whitespace, characters outside the url-safe alphabet and
non-zero trailing bits are all refused, so each byte string has exactly one
accepted encoding.
"""

from __future__ import annotations

import base64
import binascii
import re

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")


def b64url_encode(data: bytes) -> str:
    """Encode ``data`` as unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, *, max_len: int | None = None) -> bytes:
    """Decode canonical unpadded base64url.

    Args:
        text: the encoded string.
        max_len: if given, refuse encodings of more than this many bytes
            before decoding anything.

    Raises:
        ValueError: not a string, not canonical base64url, or too long.
    """
    if not isinstance(text, str):
        raise ValueError("expected a base64url string")
    if max_len is not None and len(text) > (max_len * 4 + 2) // 3:
        raise ValueError("base64url value is too long")
    if not _B64URL_RE.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not canonical base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not canonical base64url") from exc
    # Non-zero padding bits would give a second encoding of the same bytes.
    if b64url_encode(data) != text:
        raise ValueError("not canonical base64url")
    return data
