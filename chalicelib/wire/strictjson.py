"""Strict JSON parsing for security-relevant documents.

Python's :func:`json.loads` quietly keeps the *last* of two duplicate keys
and accepts ``NaN``/``Infinity``.  Two parsers that disagree on a duplicate
key are a classic way to make a signer and a verifier read different claims,
so every format that carries keys or signed claims (the app key secret, JWT
headers and payloads) goes through :func:`loads_strict` instead.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["StrictJSONError", "loads_strict"]


class StrictJSONError(ValueError):
    """The document is not strict JSON.  The message never quotes the input."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise StrictJSONError("duplicate object key")
        obj[key] = value
    return obj


def _no_constants(_name: str) -> Any:
    raise StrictJSONError("non-finite number")


def loads_strict(text: str | bytes) -> Any:
    """Parse ``text`` as JSON, refusing duplicate keys and NaN/Infinity.

    Raises:
        StrictJSONError: the input is not valid UTF-8 JSON, repeats a key in
            an object or uses a non-finite number constant.  It is raised
            outside the ``except`` block, so it has no ``__context__``:
            :class:`json.JSONDecodeError` keeps the whole input in its ``doc``
            attribute, and the input may be a secret.
    """
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except StrictJSONError:
        raise
    except (ValueError, RecursionError):
        pass
    raise StrictJSONError("not valid JSON")
