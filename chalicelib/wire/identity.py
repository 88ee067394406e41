"""Identities (usernames): one normalisation rule, used everywhere.

An identity is 3-64 characters of ``[a-z0-9._-]`` that start and end with
``[a-z0-9]``, after Unicode NFKC normalisation and lower-casing, so
``Alice`` and ``ＡＬＩＣＥ`` (full-width) are ``alice``.  Anything that
still contains another character after that is refused rather than folded
further: ``alıce`` with a dotless i stays
``alıce`` and is rejected, which keeps look-alikes from becoming distinct
accounts.  The result is safe to embed in DynamoDB keys and S3 key segments
(no ``/``, no ``..`` that means anything, no control characters), and on a
command line or as a file name: nothing starts with ``-`` (an option, such
as ``-rf`` or ``--help``) or ``.`` (a hidden file), and no name ends in a
separator either, so ``alice`` and ``alice.`` can't be two accounts.
"""

from __future__ import annotations

import re
import unicodedata

MIN_LENGTH = 3
MAX_LENGTH = 64
# Raw input is bounded before normalisation so NFKC never runs on megabytes.
MAX_RAW_LENGTH = 256

_IDENTITY_RE = re.compile(rf"[a-z0-9][a-z0-9._-]{{{MIN_LENGTH - 2},{MAX_LENGTH - 2}}}[a-z0-9]")
#: The rule in words, for error messages (one spelling on both sides).
RULE = "3-64 characters of a-z, 0-9, '.', '_' or '-', starting and ending with a letter or digit"


class InvalidIdentity(ValueError):
    """The string is not a valid Sealbox identity."""


def normalize_identity(raw: object) -> str:
    """Return the canonical identity for ``raw``.

    Raises:
        InvalidIdentity: ``raw`` is not a string, is too long, or is not
            3-64 characters of ``[a-z0-9._-]`` starting and ending with
            ``[a-z0-9]`` after NFKC and lower-casing.
    """
    if not isinstance(raw, str):
        raise InvalidIdentity("identity must be a string")
    if len(raw) > MAX_RAW_LENGTH:
        raise InvalidIdentity("identity is too long")
    candidate = unicodedata.normalize("NFKC", raw).lower()
    # fullmatch, not match: a trailing newline must not slip through ``$``.
    if not _IDENTITY_RE.fullmatch(candidate):
        raise InvalidIdentity(f"identity must be {RULE}")
    return candidate


def is_identity(value: str) -> bool:
    """True when ``value`` is already a canonical identity."""
    return isinstance(value, str) and _IDENTITY_RE.fullmatch(value) is not None
