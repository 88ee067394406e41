"""Envelope sniffing: does a byte string start like an age v1 file?

The server never decrypts anything, but it refuses to store data that is not
even shaped like ciphertext: a device that uploads a plaintext by mistake
(or on purpose) gets its upload quarantined instead of served.  This module
is that check, written once for both sides: the backend runs it on the
first bytes of every upload, and devices use it to find where the header of
a stored file ends.  It is pure (no I/O, no chalice, no boto3) and never
needs a key.

What "shaped like age v1" means here (c2sp.org/age, and the stricter rules of
docs/spec/age.md where they only narrow the grammar):

* binary: the version line ``age-encryption.org/v1``; one or more stanzas,
  each ``-> `` plus arguments of visible ASCII and a body of canonical
  unpadded base64 in full 64-column lines ending with one shorter line;
  then the MAC line ``--- `` plus the canonical base64 of 32 bytes.  After
  the header come the 16-byte payload nonce and a STREAM payload, whose
  length is checked too when the total size is known;
* armored: optional whitespace, ``-----BEGIN AGE ENCRYPTED FILE-----``,
  then strict 64-column padded base64 lines whose decoding starts with a
  binary header as above.

The MAC itself can only be checked with the file key, so a check that
passes proves the *shape*, not that anyone can decrypt the file.  One more
check looks past the header (:func:`check_first_chunk`): the first payload
chunk must look like ciphertext, which is indistinguishable from random
bytes, so a plaintext behind a copied header is refused too (a chi-squared
test on its byte counts; docs/security.md gives its false-positive rate).
It is a guard against plaintext reaching the store, not a proof of
encryption: compressed or random-looking data passes, and so does anything
whose first chunk someone bothered to make random.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

__all__ = [
    "ARMOR_BEGIN",
    "INTRO",
    "MAX_HEADER_SIZE",
    "SNIFF_WINDOW",
    "AgeFileInfo",
    "NotAgeFile",
    "check_first_chunk",
    "check_header",
    "chi_squared",
    "payload_length_is_valid",
    "sniff",
]

INTRO = b"age-encryption.org/v1\n"
ARMOR_BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
#: Largest binary header Sealbox stores (all stanzas and the MAC line).  The
#: age module reads headers up to 1 MiB; stored files are held to less so
#: the whole header fits in one small ranged read.  32 post-quantum hybrid
#: recipients take about 52 KiB.
MAX_HEADER_SIZE = 64 * 1024
#: How many leading bytes of a file always suffice to decide.  The armored
#: form is the larger: up to 1 KiB of whitespace, the BEGIN line, then a
#: maximal header plus nonce and tag as 64-column base64 with CRLF line
#: ends: 1024 + 36 + ceil((65536 + 32) / 48) * 66 = 91,236 bytes.
SNIFF_WINDOW = 96 * 1024

_ARMOR_WHITESPACE = 1024
_COLUMNS = 64
_BYTES_PER_LINE = _COLUMNS // 4 * 3
_MAC_SIZE = 32
_NONCE_SIZE = 16
_TAG_SIZE = 16
_CHUNK_SIZE = 64 * 1024
#: The first payload chunk is tested only from this many bytes on (its bytes
#: within the prefix; a plaintext under 48 bytes makes a shorter chunk).
#: Shorter chunks have too few bytes per count for the test to mean much,
#: and a false positive there would refuse a tiny legitimate file.
MIN_TESTED_CHUNK = 64
#: Refuse a first chunk whose byte counts give a chi-squared statistic (255
#: degrees of freedom) above this.  Random bytes average 255 (sd 22.6);
#: P(X² > 500) is about 4e-18 for large chunks, and no chunk of 64 bytes to
#: 64 KiB exceeded 420 in a million random ones (bench/chunk_randomness.py).
#: Text scores in the thousands from 64 bytes on (English: about 20 times
#: the chunk length), zeros 255 times the length.
CHI_SQUARED_LIMIT = 500.0
_B64_RE = re.compile(rb"[A-Za-z0-9+/]*")
_ARMOR_LINE_RE = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_WHITESPACE = b" \t\r\n"


class NotAgeFile(ValueError):
    """The bytes are not shaped like an age v1 file.

    ``reason`` is a short fixed string (safe to store and show); the message
    never quotes the input.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AgeFileInfo:
    """What the sniffer learned.

    ``header_length`` is the size of the binary header (version line
    through the MAC line's newline); for an armored file it counts decoded
    bytes, not bytes of the stored text.
    """

    armored: bool
    header_length: int
    stanza_count: int


def _b64_canonical(raw: bytes) -> bytes | None:
    """Decode canonical unpadded standard base64, or None."""
    if not _B64_RE.fullmatch(raw) or len(raw) % 4 == 1:
        return None
    try:
        data = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except binascii.Error:
        return None
    if base64.b64encode(data).rstrip(b"=") != raw:
        return None
    return data


def _is_vchar_argument(arg: bytes) -> bool:
    return bool(arg) and all(33 <= byte <= 126 for byte in arg)


class _Lines:
    """LF-terminated lines of a header that must end within ``MAX_HEADER_SIZE``."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data[:MAX_HEADER_SIZE]
        self.pos = pos

    def line(self) -> bytes:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            # Either the header is larger than we store, or the bytes we
            # were given end inside it.
            full = len(self.data) >= MAX_HEADER_SIZE
            raise NotAgeFile("header_too_large" if full else "header_truncated")
        line = self.data[self.pos : end]
        self.pos = end + 1
        return line

    def startswith(self, prefix: bytes) -> bool:
        return self.data.startswith(prefix, self.pos)


def _parse_binary_header(data: bytes) -> tuple[int, int]:
    """(header length, stanza count) of the binary header starting ``data``.

    Raises:
        NotAgeFile: ``data`` does not start with a well-formed header, or
            the header does not end within :data:`MAX_HEADER_SIZE` bytes.
    """
    if not data.startswith(INTRO):
        raise NotAgeFile("header_truncated" if INTRO.startswith(data) else "not_age")
    lines = _Lines(data, len(INTRO))
    stanzas = 0
    while True:
        if lines.startswith(b"---"):
            prefix, _, rest = lines.line().partition(b" ")
            if prefix != b"---" or b" " in rest:
                raise NotAgeFile("malformed_header")
            mac = _b64_canonical(rest)
            if mac is None or len(mac) != _MAC_SIZE:
                raise NotAgeFile("malformed_header")
            break
        parts = lines.line().split(b" ")
        if parts[0] != b"->" or len(parts) < 2 or not all(map(_is_vchar_argument, parts[1:])):
            raise NotAgeFile("malformed_header")
        while True:
            body = _b64_canonical(lines.line())
            if body is None or len(body) > _BYTES_PER_LINE:
                raise NotAgeFile("malformed_header")
            if len(body) < _BYTES_PER_LINE:
                break
        stanzas += 1
    if stanzas == 0:
        raise NotAgeFile("malformed_header")
    return lines.pos, stanzas


def payload_length_is_valid(length: int) -> bool:
    """Whether ``length`` bytes after the header can be nonce + STREAM.

    The payload is a 16-byte nonce, then chunks of 64 KiB plaintext plus a
    16-byte tag; every chunk but the last is full, and the last is empty
    only when it is the only one.
    """
    body = length - _NONCE_SIZE
    if body < _TAG_SIZE:
        return False
    full, rest = divmod(body, _CHUNK_SIZE + _TAG_SIZE)
    if rest == 0:
        return True
    if rest < _TAG_SIZE:
        return False
    return not (rest == _TAG_SIZE and full > 0)


def _dearmor(data: bytes) -> tuple[bytes, bool]:
    """Decode the armored body in ``data``: (decoded bytes, END reached).

    Stops once enough is decoded for a maximal header and the start of the
    payload, at the END line, or where ``data`` ends.

    Raises:
        NotAgeFile: the armor is malformed within ``data``.
    """
    start = len(data) - len(data.lstrip(_WHITESPACE))
    if start > _ARMOR_WHITESPACE:
        raise NotAgeFile("malformed_armor")
    pos = start + len(ARMOR_BEGIN)
    if data.startswith(b"\r\n", pos):
        pos += 2
    elif data.startswith(b"\n", pos):
        pos += 1
    else:
        raise NotAgeFile("malformed_armor")
    out = bytearray()
    while len(out) < MAX_HEADER_SIZE + _NONCE_SIZE + _TAG_SIZE:
        end = data.find(b"\n", pos, pos + _COLUMNS + 2)
        if end < 0:
            if len(data) - pos <= _COLUMNS + 1:
                return bytes(out), False  # the prefix ends inside a line
            raise NotAgeFile("malformed_armor")
        line = data[pos:end].removesuffix(b"\r")
        pos = end + 1
        if line.startswith(b"-----END"):
            return bytes(out), True
        if not line or len(line) > _COLUMNS or len(line) % 4 or not _ARMOR_LINE_RE.fullmatch(line):
            raise NotAgeFile("malformed_armor")
        try:
            chunk = base64.b64decode(line, validate=True)
        except binascii.Error:
            raise NotAgeFile("malformed_armor") from None
        if base64.b64encode(chunk) != line:
            raise NotAgeFile("malformed_armor")
        out += chunk
        if len(line) < _COLUMNS or line.endswith(b"="):
            # The last data line: END must follow.
            if not data.startswith(b"-----END", pos) and len(data) > pos:
                raise NotAgeFile("malformed_armor")
            return bytes(out), len(data) > pos
    return bytes(out), False


def sniff(prefix: bytes, total_size: int | None = None) -> AgeFileInfo:
    """Check that ``prefix``, the first bytes of a file, starts an age v1 file.

    Args:
        prefix: the file's first ``min(total_size, SNIFF_WINDOW)`` bytes or
            more (only the header and the payload's length are examined).
        total_size: the whole file's size, when known.  For a binary file
            the payload's length must then be one age's STREAM can have.

    Raises:
        NotAgeFile: with ``reason`` one of ``not_age``, ``malformed_header``,
            ``malformed_armor``, ``header_truncated`` (the bytes end inside
            the header), ``header_too_large`` or ``bad_payload_length``.
        TypeError: ``prefix`` is not bytes.
    """
    if not isinstance(prefix, bytes):
        raise TypeError("prefix must be bytes")
    if prefix[: _ARMOR_WHITESPACE + len(ARMOR_BEGIN)].lstrip(_WHITESPACE).startswith(ARMOR_BEGIN):
        decoded, complete = _dearmor(prefix[:SNIFF_WINDOW])
        length, stanzas = _parse_binary_header(decoded)
        if complete and not payload_length_is_valid(len(decoded) - length):
            raise NotAgeFile("bad_payload_length")
        return AgeFileInfo(armored=True, header_length=length, stanza_count=stanzas)
    length, stanzas = _parse_binary_header(prefix)
    if total_size is not None and not payload_length_is_valid(total_size - length):
        raise NotAgeFile("bad_payload_length")
    return AgeFileInfo(armored=False, header_length=length, stanza_count=stanzas)


def chi_squared(data: bytes) -> float:
    """Pearson's chi-squared statistic of ``data``'s byte counts against the
    uniform distribution (255 degrees of freedom).

    Raises:
        ValueError: ``data`` is empty.
    """
    if not data:
        raise ValueError("no bytes to count")
    # bytes.count runs in C: 256 passes over at most 64 KiB beat a Python loop.
    squares = sum(data.count(value) ** 2 for value in range(256))
    return squares * 256 / len(data) - len(data)


def check_first_chunk(prefix: bytes, info: AgeFileInfo) -> None:
    """Refuse a file whose first payload chunk is clearly not ciphertext.

    ``prefix`` and ``info`` are what :func:`sniff` was given and returned.
    The chunk is the payload after the 16-byte nonce, up to one STREAM
    chunk (64 KiB + tag), as far as ``prefix`` holds it (decoded, for an
    armored file); it is tested when at least :data:`MIN_TESTED_CHUNK`
    bytes of it are there.

    Raises:
        NotAgeFile: ``payload_not_random``: its chi-squared statistic is
            above :data:`CHI_SQUARED_LIMIT`.
    """
    if info.armored:
        data, _ = _dearmor(prefix[:SNIFF_WINDOW])
    else:
        data = prefix
    start = info.header_length + _NONCE_SIZE
    chunk = data[start : start + _CHUNK_SIZE + _TAG_SIZE]
    if len(chunk) >= MIN_TESTED_CHUNK and chi_squared(chunk) > CHI_SQUARED_LIMIT:
        raise NotAgeFile("payload_not_random")


def check_header(header: bytes) -> AgeFileInfo:
    """Check that ``header`` is exactly one binary age header, nothing more.

    Used for header replacements, where the device sends only the header.

    Raises:
        NotAgeFile: malformed, too large, or followed by extra bytes.
        TypeError: ``header`` is not bytes.
    """
    if not isinstance(header, bytes):
        raise TypeError("header must be bytes")
    if len(header) > MAX_HEADER_SIZE:
        raise NotAgeFile("header_too_large")
    length, stanzas = _parse_binary_header(header)
    if length != len(header):
        raise NotAgeFile("malformed_header")
    return AgeFileInfo(armored=False, header_length=length, stanza_count=stanzas)
