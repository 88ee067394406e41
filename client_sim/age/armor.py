"""ASCII armor for age files: strict PEM, streaming in both directions.

The armored form is RFC 7468's strict PEM with the label ``AGE ENCRYPTED
FILE``, standard padded base64, and 64-column lines::

    -----BEGIN AGE ENCRYPTED FILE-----
    <64 columns per line; the last line 1..64 columns>
    -----END AGE ENCRYPTED FILE-----

Because armor would otherwise make age files malleable, the reader accepts
exactly one encoding per file.  It allows only what the spec and the CCTV
vectors allow: whitespace before the BEGIN line and after the END line (at
most :data:`MAX_WHITESPACE` bytes each), LF or CRLF line endings, and a
missing newline after END.  It rejects headers, empty lines, short lines
before the last one, lines over 64 columns, whitespace inside the block,
missing or misplaced padding, non-canonical base64 and anything outside the
block.  Errors surface as the opaque :class:`DecryptionError` when they are
reached, so a damaged trailer fails the read that reaches it.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import BinaryIO

from client_sim.age._io import ByteSource, Readable
from client_sim.age.errors import DecryptionError

__all__ = ["BEGIN", "END", "MAX_WHITESPACE", "ArmorReader", "ArmorWriter", "looks_armored"]

BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
END = b"-----END AGE ENCRYPTED FILE-----"
_COLUMNS = 64
_BYTES_PER_LINE = _COLUMNS // 4 * 3
#: Whitespace tolerated before BEGIN and after END.
MAX_WHITESPACE = 1024
_WHITESPACE = b" \t\r\n"
_LINE_RE = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def looks_armored(src: ByteSource) -> bool:
    """True when ``src`` (unconsumed) starts with optional whitespace and the
    BEGIN marker's ``-----BEGIN`` prefix.  A binary age file starts with
    ``age-encryption.org/``, so the two can't be confused."""
    head = src.peek(MAX_WHITESPACE + len(BEGIN))
    return head.lstrip(_WHITESPACE).startswith(b"-----BEGIN")


class ArmorWriter:
    """Encodes bytes written to it as an armored block on ``dst``.

    ``close()`` writes the last line and the END marker; it does not close
    ``dst``.  Memory is at most one 48-byte line.
    """

    __slots__ = ("_closed", "_dst", "_pending", "_started")

    def __init__(self, dst: BinaryIO) -> None:
        self._dst = dst
        self._pending = bytearray()
        self._started = False
        self._closed = False

    def _start(self) -> None:
        if not self._started:
            self._dst.write(BEGIN + b"\n")
            self._started = True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed ArmorWriter")
        self._start()
        self._pending += data
        whole = len(self._pending) // _BYTES_PER_LINE * _BYTES_PER_LINE
        if whole:
            encoded = base64.b64encode(bytes(self._pending[:whole]))
            lines = [encoded[i : i + _COLUMNS] for i in range(0, len(encoded), _COLUMNS)]
            self._dst.write(b"\n".join(lines) + b"\n")
            del self._pending[:whole]
        return len(data)

    def close(self) -> None:
        if self._closed:
            return
        self._start()
        self._closed = True
        if self._pending:
            self._dst.write(base64.b64encode(bytes(self._pending)) + b"\n")
            self._pending.clear()
        self._dst.write(END + b"\n")


class ArmorReader:
    """Decodes an armored block from ``src`` as a binary ``read(n)`` stream.

    Raises :class:`DecryptionError` on any deviation from the strict format,
    at the read that reaches it; after the END marker it checks that only
    whitespace follows before reporting end of file.
    """

    __slots__ = ("_done", "_src", "_started", "_unread")

    def __init__(self, src: ByteSource | Readable) -> None:
        self._src = src if isinstance(src, ByteSource) else ByteSource(src)
        self._started = False
        self._done = False
        self._unread = b""

    def _line(self) -> bytes:
        """One line without its LF or CRLF.  EOF, or a line longer than a
        full one, is an error."""
        line = self._src.read_line(_COLUMNS + 2)
        if line is None or not line:
            raise DecryptionError
        if line.endswith(b"\r\n"):
            return line[:-2]
        if line.endswith(b"\n"):
            return line[:-1]
        # Only the END line may lack a newline (at end of file).
        if line == END:
            return line
        raise DecryptionError

    def _begin(self) -> None:
        skipped = 0
        while self._src.peek(1) in (b" ", b"\t", b"\r", b"\n"):
            self._src.skip(1)
            skipped += 1
            if skipped > MAX_WHITESPACE:
                raise DecryptionError
        if self._line() != BEGIN:
            raise DecryptionError
        self._started = True

    def _finish(self) -> None:
        tail = self._src.read(MAX_WHITESPACE + 1)
        if len(tail) > MAX_WHITESPACE or tail.strip(_WHITESPACE):
            raise DecryptionError
        self._done = True

    def _next_block(self) -> bytes:
        if not self._started:
            self._begin()
        line = self._line()
        if line == END:
            self._finish()
            return b""
        if len(line) > _COLUMNS or not line or len(line) % 4 or not _LINE_RE.fullmatch(line):
            raise DecryptionError
        try:
            data = base64.b64decode(line, validate=True)
        except binascii.Error:
            raise DecryptionError from None
        if base64.b64encode(data) != line:
            raise DecryptionError  # non-canonical trailing bits
        if len(line) < _COLUMNS or line.endswith(b"="):
            # A short or padded line ends the data: END must follow at once.
            if self._line() != END:
                raise DecryptionError
            self._finish()
        return data

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` decoded bytes (all remaining when negative)."""
        out = bytearray(self._unread)
        self._unread = b""
        while (size < 0 or len(out) < size) and not self._done:
            out += self._next_block()
        if size >= 0 and len(out) > size:
            self._unread = bytes(out[size:])
            del out[size:]
        return bytes(out)
