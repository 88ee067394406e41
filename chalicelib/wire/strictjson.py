"""Strict JSON parsing for security-relevant documents.

Python's :func:`json.loads` quietly keeps the *last* of two duplicate keys
and accepts ``NaN``/``Infinity``.  Two parsers that disagree on a duplicate
key are a classic way to make a signer and a verifier read different claims,
so every format that carries keys or signed claims (the app key secret, JWT
headers and payloads) goes through :func:`loads_strict` instead.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal, InvalidOperation
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


# Integers beyond this are refused as integers (they stay floats, which every
# integer field rejects): ``int()`` of ``1e999999999`` would exhaust memory.
_MAX_INTEGRAL = 2**63


def _finite_float(literal: str) -> float:
    result = float(literal)
    if math.isinf(result):
        raise StrictJSONError("number out of range")
    return result


def _number(literal: str) -> int | float:
    """A JSON number with a fraction or exponent.

    JSON has one number type, and JSON Schema counts ``5.0`` and ``5e0`` as
    the integer 5; so do request bodies (``integral_floats=True``): an
    integral value within 2**63 becomes an ``int``, anything else stays a
    ``float`` (and fails integer checks).  Signed documents (JWTs, the app
    key secret) keep the default: a number with a fraction or exponent is a
    ``float`` there, and integer claims refuse it.
    """
    try:
        value = Decimal(literal)
    except InvalidOperation as exc:  # not reachable for json's grammar
        raise StrictJSONError("not valid JSON") from exc
    # adjusted() is the exponent of the leading digit: checking it first keeps
    # the comparisons below away from astronomically large exponents.
    if value.adjusted() < 19 and abs(value) < _MAX_INTEGRAL and value == value.to_integral_value():
        return int(value)
    return _finite_float(literal)


def loads_strict(text: str | bytes, *, integral_floats: bool = False) -> Any:
    """Parse ``text`` as JSON, refusing duplicate keys and NaN/Infinity.

    Raises:
        StrictJSONError: the input is not valid UTF-8 JSON, repeats a key in
            an object or uses a non-finite number constant.  It is raised
            outside the ``except`` block, so it has no ``__context__``:
            :class:`json.JSONDecodeError` keeps the whole input in its ``doc``
            attribute, and the input may be a secret.
    """
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
            parse_float=_number if integral_floats else _finite_float,
        )
    except StrictJSONError:
        raise
    except (ValueError, RecursionError):
        pass
    raise StrictJSONError("not valid JSON")
