"""Strict JSON: duplicate keys and non-finite numbers are refused."""

from __future__ import annotations

import pytest

from chalicelib.wire.strictjson import NotUTF8, StrictJSONError, loads_strict


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


def test_integral_numbers_are_integers_as_in_json_schema_when_asked() -> None:
    numbers = loads_strict("[1.0, 5e0, 2E3, -0.0]", integral_floats=True)
    assert numbers == [1, 5, 2000, 0]
    assert all(type(v) is int for v in numbers)
    assert loads_strict("1.5", integral_floats=True) == 1.5
    # Beyond 2**63 a number stays a float, which integer fields refuse.
    assert isinstance(loads_strict("9223372036854775808.0", integral_floats=True), float)


def test_by_default_a_number_with_a_fraction_is_a_float() -> None:
    assert type(loads_strict("1.0")) is float


@pytest.mark.parametrize("integral_floats", [False, True])
def test_huge_exponents_are_refused_quickly(integral_floats: bool) -> None:
    with pytest.raises(StrictJSONError):
        loads_strict("1e99999999", integral_floats=integral_floats)
    assert loads_strict("1e-99999999", integral_floats=integral_floats) == 0.0


VALID = '{"username": "alice", "login_key": "k\u00e9y"}'


@pytest.mark.parametrize(
    "raw",
    [
        VALID.encode("utf-16"),  # with a BOM: json.loads(bytes) detects and decodes it
        VALID.encode("utf-16-le"),
        VALID.encode("utf-16-be"),
        VALID.encode("utf-32"),
        VALID.encode("utf-32-le"),
        b"\xef\xbb\xbf" + VALID.encode(),  # a UTF-8 BOM (RFC 8259 §8.1: not part of the text)
        b'{"a": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 (CESU-8): not UTF-8
        b'{"a": "\xc0\xae"}',  # an overlong encoding of "."
        b'{"a": "\\ud800"}',  # an escaped lone surrogate: no UTF-8 string has it
        b'{"\\udfff": 1}',
        b'[["\\ud800x"]]',
        '{"a": "\\udc00"}',
    ],
)
def test_documents_that_are_not_utf8_are_refused_as_such(raw: bytes | str) -> None:
    with pytest.raises(NotUTF8) as info:
        loads_strict(raw)
    # No chained decode error: it would hold the whole input.
    assert info.value.__context__ is None
    assert info.value.__cause__ is None


def test_not_utf8_is_a_strict_json_error() -> None:
    assert issubclass(NotUTF8, StrictJSONError)


def test_utf8_and_escaped_pairs_still_parse() -> None:
    assert loads_strict(VALID.encode())["login_key"] == "k\u00e9y"
    assert loads_strict(b'["\\ud83d\\ude00", "\xf0\x9f\x98\x80"]') == ["\U0001f600"] * 2
