"""Identities (usernames): one normalisation rule, used everywhere.

An identity is 3-64 characters of ``[a-z0-9._-]`` after Unicode NFKC
normalisation and lower-casing, so ``Alice`` and ``ＡＬＩＣＥ`` (full-width) are
``alice``.  Anything that still contains another character after that is
refused rather than folded further: ``alıce`` with a dotless i stays
``alıce`` and is rejected, which keeps look-alikes from becoming distinct
accounts.  The result is safe to embed in DynamoDB keys and S3 key segments
(no ``/``, no ``..`` that means anything, no control characters).
"""

from __future__ import annotations

import re
import unicodedata

MIN_LENGTH = 3
MAX_LENGTH = 64
# Raw input is bounded before normalisation so NFKC never runs on megabytes.
MAX_RAW_LENGTH = 256

_IDENTITY_RE = re.compile(rf"[a-z0-9._-]{{{MIN_LENGTH},{MAX_LENGTH}}}")


class InvalidIdentity(ValueError):
    """The string is not a valid Sealbox identity."""


def normalize_identity(raw: object) -> str:
    """Return the canonical identity for ``raw``.

    Raises:
        InvalidIdentity: ``raw`` is not a string, is too long, or is not
            3-64 characters of ``[a-z0-9._-]`` after NFKC and lower-casing.
    """
    if not isinstance(raw, str):
        raise InvalidIdentity("identity must be a string")
    if len(raw) > MAX_RAW_LENGTH:
        raise InvalidIdentity("identity is too long")
    candidate = unicodedata.normalize("NFKC", raw).lower()
    # fullmatch, not match: a trailing newline must not slip through ``$``.
    if not _IDENTITY_RE.fullmatch(candidate):
        raise InvalidIdentity("identity must be 3-64 characters of a-z, 0-9, '.', '_' or '-'")
    return candidate


def is_identity(value: str) -> bool:
    """True when ``value`` is already a canonical identity."""
    return isinstance(value, str) and _IDENTITY_RE.fullmatch(value) is not None
