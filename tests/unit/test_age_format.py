"""Header encoding and parsing rules (c2sp.org/age "Header")."""

from __future__ import annotations

import io

import pytest

from client_sim.age import DecryptionError, Stanza
from client_sim.age._format import (
    MAX_HEADER_SIZE,
    b64_decode,
    b64_encode,
    parse_header,
    serialize_header_without_mac,
    serialize_mac_line,
)
from client_sim.age._io import ByteSource

MAC = bytes(range(32))


def _parse(raw: bytes):
    return parse_header(ByteSource(io.BytesIO(raw)))


def _header(*stanzas: Stanza) -> bytes:
    return serialize_header_without_mac(list(stanzas)) + serialize_mac_line(MAC)


@pytest.mark.parametrize(
    ("body_len", "lines"),
    [
        (0, [""]),
        (1, ["AA"]),
        (47, ["A" * 63]),
        (48, ["A" * 64, ""]),
        (49, ["A" * 64, "AA"]),
        (96, ["A" * 64, "A" * 64, ""]),
    ],
)
def test_body_wrapping_ends_with_a_short_line(body_len: int, lines: list[str]) -> None:
    encoded = Stanza("t", (), bytes(body_len)).serialize().decode()
    assert encoded.split("\n")[1:-1] == lines
    parsed = _parse(_header(Stanza("t", (), bytes(body_len))))
    assert parsed.stanzas[0].body == bytes(body_len)


def test_round_trip_and_mac_input() -> None:
    stanzas = (Stanza("X25519", ("abc",), b"\x01" * 32), Stanza("other", ("a", "b", "c"), b""))
    raw = _header(*stanzas) + b"payload"
    src = ByteSource(io.BytesIO(raw))
    header = parse_header(src)
    assert header.stanzas == stanzas
    assert header.mac == MAC
    assert header.mac_input == serialize_header_without_mac(list(stanzas))
    assert src.read(100) == b"payload"  # left exactly at the payload


@pytest.mark.parametrize(
    "text",
    ["AA==", "AA=", "AB", "A", "AAA=", "AA\r", "AA\n", "A A", "AA-_", "é"],
)
def test_b64_rejects_non_canonical(text: str) -> None:
    with pytest.raises(ValueError, match="canonical"):
        b64_decode(text)


def test_b64_round_trip() -> None:
    for n in range(70):
        data = bytes(range(n))
        assert b64_decode(b64_encode(data)) == data


GOOD = _header(Stanza("X25519", ("share",), b"\x00" * 32))


@pytest.mark.parametrize(
    "raw",
    [
        b"",  # empty file
        b"age-encryption.org/v2\n" + GOOD.split(b"\n", 1)[1],  # unsupported version
        GOOD.replace(b"\n", b"\r\n", 1),  # CRLF version line
        b"age-encryption.org/v1\n--- " + b64_encode(MAC).encode() + b"\n",  # no stanza
        GOOD.replace(b"-> X25519", b"->X25519"),  # no space after ->
        GOOD.replace(b"-> X25519", b"-> X25519 "),  # empty argument
        GOOD.replace(b"-> X25519 share", b"->"),  # no arguments
        GOOD.replace(b"share", b"sh\x7fre"),  # non-VCHAR argument
        GOOD.replace(b"--- ", b"---  "),  # extra space before the MAC
        GOOD.replace(b"--- ", b"---"),  # no space before the MAC
        GOOD[:-1] + b" \n",  # trailing space after the MAC
        GOOD.replace(b"--- " + b64_encode(MAC).encode(), b"--- " + b64_encode(MAC[:31]).encode()),
        GOOD.replace(b"--- " + b64_encode(MAC).encode(), b"--- " + b64_encode(MAC).encode() + b"="),
        GOOD[:-1],  # MAC line without newline (truncated header)
        GOOD.split(b"---")[0],  # no MAC line at all
    ],
)
def test_malformed_headers_are_refused(raw: bytes) -> None:
    with pytest.raises(DecryptionError):
        _parse(raw)


def test_body_line_rules() -> None:
    line_64 = b"A" * 64
    base = b"age-encryption.org/v1\n-> t\n"
    mac = b"--- " + b64_encode(MAC).encode() + b"\n"
    assert _parse(base + line_64 + b"\n\n" + mac).stanzas[0].body == bytes(48)
    for body in [
        line_64 + b"\n" + mac,  # no final short line: the MAC line is not base64
        b"A" * 68 + b"\n" + mac,  # line over 64 columns
        line_64 + b"\nAA\nAA\n" + mac,  # two short lines
        b"AA==\n" + mac,  # padding
        b"AB\n" + mac,  # non-canonical trailing bits
        b"AA\r\n" + mac,  # spurious CR
        mac,  # missing body line entirely
    ]:
        with pytest.raises(DecryptionError):
            _parse(base + body)


def test_header_size_is_bounded() -> None:
    huge = b"age-encryption.org/v1\n-> t " + b"a" * MAX_HEADER_SIZE + b"\n\n"
    with pytest.raises(DecryptionError):
        _parse(huge + b"--- " + b64_encode(MAC).encode() + b"\n")


@pytest.mark.parametrize(
    ("kind", "args"), [("", ()), ("a b", ()), ("t", ("",)), ("t", ("é",)), ("t", ("a\n",))]
)
def test_stanza_constructor_validates_arguments(kind: str, args: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="visible ASCII"):
        Stanza(kind, args, b"")


def test_stanza_constructor_types() -> None:
    with pytest.raises(TypeError):
        Stanza("t", ["list"], b"")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Stanza("t", (), "text")  # type: ignore[arg-type]


def test_stanza_is_an_immutable_value() -> None:
    # Stanza is a plain class (no dataclasses at start-up): it must keep the
    # frozen dataclass's behaviour that callers rely on.
    import copy
    import pickle

    a = Stanza("X25519", ("share",), b"wrapped key")
    same = Stanza(type="X25519", args=("share",), body=b"wrapped key")
    assert a == same
    assert hash(a) == hash(same)
    assert a != Stanza("X25519", ("share",), b"other key")
    assert a != Stanza("X25519", ("other",), b"wrapped key")
    assert a != ("X25519", ("share",), b"wrapped key")
    assert Stanza("t") == Stanza("t", (), b"")
    assert len({a, same, Stanza("t")}) == 2
    assert copy.copy(a) == a
    assert copy.deepcopy(a) == a
    assert pickle.loads(pickle.dumps(a)) == a
    for name in ("type", "args", "body", "extra"):
        with pytest.raises(AttributeError):
            setattr(a, name, "x")
        with pytest.raises(AttributeError):
            delattr(a, name)
    assert (a.type, a.args, a.body) == ("X25519", ("share",), b"wrapped key")
    match a:
        case Stanza("X25519", args, body):
            assert (args, body) == (("share",), b"wrapped key")
        case _:
            pytest.fail("Stanza supports positional patterns")


def test_stanza_and_header_reprs_leave_out_key_material() -> None:
    # A stanza body is a wrapped file key and the header MAC is keyed by it.
    stanza = Stanza("X25519", ("share",), b"\x8f" * 32)
    assert repr(stanza) == "Stanza(type='X25519', args=('share',))"
    header = _parse(_header(stanza))
    assert bytes(header.stanzas[0].body) == b"\x8f" * 32
    shown = repr(header)
    assert "share" in shown
    for secret in (b"\x8f" * 32, MAC):
        assert repr(secret)[2:-1] not in shown
        assert b64_encode(secret) not in shown
