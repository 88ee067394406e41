"""Strict JSON: duplicate keys and non-finite numbers are refused."""

from __future__ import annotations

import pytest

from chalicelib.wire.strictjson import StrictJSONError, loads_strict


def test_plain_documents_parse():
    assert loads_strict('{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert loads_strict(b'{"a": {"b": 1}}') == {"a": {"b": 1}}


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"x": {"b": 1, "b": 1}}',
        '{"a": NaN}',
        '{"a": Infinity}',
        '{"a": -Infinity}',
        "{",
        b"\xff",
        "[" * 100_000,
    ],
)
def test_refused(text):
    with pytest.raises(StrictJSONError) as info:
        loads_strict(text)
    assert info.value.__context__ is None or isinstance(info.value.__context__, StrictJSONError)
