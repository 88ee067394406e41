"""The age v1 header: stanzas, strict base64, parsing and serialisation.

Wire format (c2sp.org/age)::

    age-encryption.org/v1
    -> X25519 <base64 share>
    <base64 body, 64 columns per line, ending with a line shorter than 64>
    --- <base64 HMAC>

Parsing is strict in the ways the spec demands (see docs/spec/age.md for the
rule list and the tests that cover each rule).  Because only canonical
encodings are accepted, the bytes we read are exactly the bytes
:func:`serialize_header_without_mac` would produce for the parsed header, so
the MAC is checked over the bytes as read.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

from client_sim.age._io import ByteSource
from client_sim.age.errors import DecryptionError

__all__ = [
    "COLUMNS_PER_LINE",
    "INTRO",
    "MAC_SIZE",
    "MAX_HEADER_SIZE",
    "Header",
    "Stanza",
    "b64_decode",
    "b64_encode",
    "is_valid_argument",
    "parse_header",
    "serialize_header_without_mac",
    "serialize_mac_line",
]

INTRO = b"age-encryption.org/v1\n"
_STANZA_PREFIX = b"->"
_FOOTER_PREFIX = b"---"
COLUMNS_PER_LINE = 64
_BYTES_PER_LINE = COLUMNS_PER_LINE // 4 * 3  # 48
MAC_SIZE = 32
#: Largest header we read (all stanzas together).  Real headers are a few
#: hundred bytes per classic recipient and about 1.6 KiB per hybrid one; the
#: bound keeps a hostile input from making us buffer without limit.
MAX_HEADER_SIZE = 1024 * 1024

_B64_RE = re.compile(rb"[A-Za-z0-9+/]*")


def b64_encode(data: bytes) -> str:
    """Standard base64 without padding (age's encoding everywhere but armor)."""
    return base64.b64encode(data).rstrip(b"=").decode("ascii")


def b64_decode(text: str | bytes) -> bytes:
    """Decode canonical unpadded standard base64.

    Raises:
        ValueError: padding, a character outside the alphabet (CR and LF
            included), an impossible length, or non-zero trailing bits.
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    if not _B64_RE.fullmatch(raw) or len(raw) % 4 == 1:
        raise ValueError("not canonical unpadded base64")
    try:
        data = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except binascii.Error:
        raise ValueError("not canonical unpadded base64") from None
    # Non-zero bits after the last full byte would be a second encoding.
    if base64.b64encode(data).rstrip(b"=") != raw:
        raise ValueError("not canonical unpadded base64")
    return data


def is_valid_argument(arg: str) -> bool:
    """A stanza argument is one or more visible ASCII characters (VCHAR)."""
    return bool(arg) and all(33 <= ord(c) <= 126 for c in arg)


class Stanza:
    """One recipient stanza: ``-> type args...`` and a binary body.

    ``type`` is the first argument (``X25519``, ``scrypt``,
    ``mlkem768x25519``, or any other string an implementation defines).
    Immutable, compared and hashed by value; ``repr`` leaves the body out
    (it is a wrapped file key).

    A plain class rather than a frozen dataclass: importing ``dataclasses``
    (and the ``inspect`` tree it pulls in) and generating the methods was a
    measurable share of a ``sealbox age`` process's start-up
    (``python -X importtime``; tests/unit/test_cli_imports.py keeps it out).

    Raises:
        TypeError: (constructor) a field has the wrong type.
        ValueError: (constructor) an argument is not non-empty visible ASCII.
    """

    __slots__ = ("args", "body", "type")
    __match_args__ = ("type", "args", "body")

    type: str
    args: tuple[str, ...]
    body: bytes

    def __init__(self, type: str, args: tuple[str, ...] = (), body: bytes = b"") -> None:
        if not isinstance(type, str) or not isinstance(args, tuple):
            raise TypeError("Stanza(type: str, args: tuple[str, ...], body: bytes)")
        if not isinstance(body, bytes):
            raise TypeError("Stanza body must be bytes")
        if not all(isinstance(a, str) and is_valid_argument(a) for a in (type, *args)):
            raise ValueError("stanza arguments must be non-empty visible ASCII")
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "body", body)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: Stanza is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: Stanza is immutable")

    def __repr__(self) -> str:
        return f"Stanza(type={self.type!r}, args={self.args!r})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__ or not isinstance(other, Stanza):
            return NotImplemented
        return (self.type, self.args, self.body) == (other.type, other.args, other.body)

    def __hash__(self) -> int:
        return hash((self.type, self.args, self.body))

    def __reduce__(self) -> tuple[Callable[..., Stanza], tuple[str, tuple[str, ...], bytes]]:
        # copy and pickle rebuild through __init__ (the default would set the
        # slots one by one, which __setattr__ refuses).
        return (self.__class__, (self.type, self.args, self.body))

    def serialize(self) -> bytes:
        """The stanza as it appears in a header, with its final short line."""
        out = bytearray(b"-> " + " ".join((self.type, *self.args)).encode("ascii") + b"\n")
        encoded = b64_encode(self.body).encode("ascii")
        for i in range(0, len(encoded), COLUMNS_PER_LINE):
            out += encoded[i : i + COLUMNS_PER_LINE] + b"\n"
        if len(encoded) % COLUMNS_PER_LINE == 0:
            # A body that fills its last line (including an empty body) still
            # needs a final short line: an empty one.
            out += b"\n"
        return bytes(out)


class Header:
    """A parsed header: its stanzas, its MAC, and the exact MAC'd bytes.

    Internal (the parser's result); ``repr`` shows the stanzas only.
    """

    __slots__ = ("mac", "mac_input", "stanzas")

    def __init__(self, stanzas: tuple[Stanza, ...], mac: bytes, mac_input: bytes) -> None:
        self.stanzas = stanzas
        self.mac = mac
        self.mac_input = mac_input

    def __repr__(self) -> str:
        return f"Header(stanzas={self.stanzas!r})"


def serialize_header_without_mac(stanzas: tuple[Stanza, ...] | list[Stanza]) -> bytes:
    """Version line, stanzas and the ``---`` mark: the HMAC's input."""
    return INTRO + b"".join(s.serialize() for s in stanzas) + _FOOTER_PREFIX


def serialize_mac_line(mac: bytes) -> bytes:
    """What follows ``---``: a space, the base64 MAC, and a newline."""
    return b" " + b64_encode(mac).encode("ascii") + b"\n"


class _Budget:
    """Counts header bytes so the whole header stays under MAX_HEADER_SIZE."""

    __slots__ = ("left", "src")

    def __init__(self, src: ByteSource) -> None:
        self.src = src
        self.left = MAX_HEADER_SIZE

    def line(self) -> bytes:
        line = self.src.read_line(self.left)
        if line is None or not line.endswith(b"\n"):
            raise DecryptionError
        self.left -= len(line)
        return line


def _split_args(line: bytes) -> tuple[bytes, list[str]]:
    parts = line[:-1].split(b" ")
    return parts[0], [p.decode("latin-1") for p in parts[1:]]


def parse_header(src: ByteSource) -> Header:
    """Read and check a header from ``src``, leaving ``src`` at the payload.

    Checks everything that can be checked without a file key: the version
    line, the stanza syntax, canonical base64, line lengths, and the MAC
    line's shape.  Stanza contents are checked by identities; the MAC value
    by the caller once a file key is known.

    Raises:
        DecryptionError: the header is malformed in any way.
    """
    budget = _Budget(src)
    raw = bytearray()
    intro = budget.line()
    if intro != INTRO:
        raise DecryptionError
    raw += intro
    stanzas: list[Stanza] = []
    while True:
        if src.peek(len(_FOOTER_PREFIX)) == _FOOTER_PREFIX:
            line = budget.line()
            prefix, args = _split_args(line)
            if prefix != _FOOTER_PREFIX or len(args) != 1:
                raise DecryptionError
            try:
                mac = b64_decode(args[0])
            except ValueError:
                raise DecryptionError from None
            if len(mac) != MAC_SIZE:
                raise DecryptionError
            raw += _FOOTER_PREFIX
            break
        stanza, consumed = _parse_stanza(budget)
        stanzas.append(stanza)
        raw += consumed
    if not stanzas:
        raise DecryptionError
    return Header(tuple(stanzas), mac, bytes(raw))


def _parse_stanza(budget: _Budget) -> tuple[Stanza, bytes]:
    first = budget.line()
    prefix, args = _split_args(first)
    if prefix != _STANZA_PREFIX or not args or not all(map(is_valid_argument, args)):
        raise DecryptionError
    consumed = bytearray(first)
    body = bytearray()
    while True:
        line = budget.line()
        consumed += line
        try:
            # b64_decode refuses CR (and every other non-alphabet byte), so a
            # CRLF line ending can't slip through as part of a body line.
            chunk = b64_decode(line[:-1])
        except ValueError:
            raise DecryptionError from None
        if len(chunk) > _BYTES_PER_LINE:
            raise DecryptionError
        body += chunk
        if len(chunk) < _BYTES_PER_LINE:
            # The final short line (possibly empty) ends the stanza.
            break
    return Stanza(args[0], tuple(args[1:]), bytes(body)), bytes(consumed)
