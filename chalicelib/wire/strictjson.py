"""Strict JSON parsing for security-relevant documents.

Python's :func:`json.loads` quietly keeps the *last* of two duplicate keys
and accepts ``NaN``/``Infinity``.  Two parsers that disagree on a duplicate
key are a classic way to make a signer and a verifier read different claims,
so every format that carries keys or signed claims (the app key secret, JWT
headers and payloads) goes through :func:`loads_strict` instead.

It also accepts only UTF-8 (RFC 8259 §8.1): :func:`json.loads` on bytes
guesses UTF-16 and UTF-32, skips a byte-order mark and decodes with
``surrogatepass``, so one request could mean different things to a proxy, a
log pipeline and the API, and a string no UTF-8 encoder can write back
(a lone surrogate) could reach storage.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["NotUTF8", "StrictJSONError", "loads_strict"]


class StrictJSONError(ValueError):
    """The document is not strict JSON.  The message never quotes the input."""


class NotUTF8(StrictJSONError):
    """The document is not UTF-8 text, or a string in it is not a sequence of
    Unicode scalar values (an escaped lone surrogate such as ``"\\ud800"``)."""


_BOM = "\ufeff"


def _utf8_text(text: str | bytes) -> str:
    """``text`` as a ``str``, refusing what isn't UTF-8 without a BOM.

    Raises:
        NotUTF8: undecodable bytes (incl. encoded surrogates, overlong forms,
            UTF-16/32), a leading byte-order mark, or a lone surrogate in a
            ``str`` input.
    """
    if isinstance(text, bytes | bytearray):
        try:
            # Strict codec: no surrogatepass, no BOM sniffing, no guessing.
            decoded = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            # Raised below, outside this block: the decode error keeps the
            # whole input in ``.object``, and the input may be a secret.
            decoded = None
        if decoded is None:
            raise NotUTF8("not UTF-8")
        text = decoded
    if text.startswith(_BOM):
        raise NotUTF8("byte-order mark")
    _require_scalar_values(text)
    return text


def _require_scalar_values(text: str) -> None:
    """Refuse a string holding a surrogate code point (it has no UTF-8 form).

    Raises:
        NotUTF8: it holds one.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raised = True
    else:
        raised = False
    if raised:
        raise NotUTF8("lone surrogate")


def _strings_are_scalar_values(value: Any) -> None:
    """Walk a parsed document (iteratively: depth is bounded only by the
    parser) and refuse any key or string that decoded to a lone surrogate.

    Raises:
        NotUTF8: one did.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _require_scalar_values(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


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
        NotUTF8: the input is not UTF-8 (bytes that don't decode, a
            byte-order mark) or a string in it is an escaped lone surrogate.
        StrictJSONError: the input is not valid JSON, repeats a key in
            an object or uses a non-finite number constant.  It is raised
            outside the ``except`` block, so it has no ``__context__``:
            :class:`json.JSONDecodeError` keeps the whole input in its ``doc``
            attribute, and the input may be a secret.
    """
    text = _utf8_text(text)
    try:
        document = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
            parse_float=_number if integral_floats else _finite_float,
        )
    except StrictJSONError:
        raise
    except (ValueError, RecursionError):
        document = _INVALID
    if document is _INVALID:
        raise StrictJSONError("not valid JSON")
    _strings_are_scalar_values(document)
    return document


_INVALID = object()
