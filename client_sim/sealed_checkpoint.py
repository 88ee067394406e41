"""The sealed header's optional field: the sender's transparency-log checkpoint.

Format 2's flags byte has one defined bit, :data:`CHECKPOINT_FLAG`: when it
is set, the recipient entries are followed by ``u16(length) || note``, the
sender device's latest accepted log checkpoint as a C2SP signed note
(UTF-8).  It is inside the signed header (the sender vouches that this is
what it saw) and inside the age payload (the server never sees it), so two
people's devices compare the log they were each shown with every message
they exchange (docs/spec/sealed.md, docs/spec/transparency.md).

This module only encodes the field and checks its **shape**: a reader
without the log's key still refuses a malformed field before any output.
Whether the note is signed by the log, and consistent with what the reader
saw, is the device's business (:meth:`client_sim.transparency.LogMonitor.compare`).
"""

from __future__ import annotations

from typing import Final

from chalicelib.wire.binary import u16
from chalicelib.wire.checkpoint import parse_checkpoint_text
from chalicelib.wire.note import split_note

__all__ = [
    "CHECKPOINT_FLAG",
    "KNOWN_FLAGS",
    "MAX_CHECKPOINT_NOTE",
    "checkpoint_field",
    "parse_checkpoint_note",
]

#: Flag bit 0: a log checkpoint follows the recipient entries.
CHECKPOINT_FLAG: Final = 0x01
#: Every flag bit a format 2 reader knows; any other set bit is refused.
KNOWN_FLAGS: Final = CHECKPOINT_FLAG
#: Longest note, in bytes.  A Sealbox checkpoint with the log's one
#: signature is at most ~730 bytes (a 256-byte origin twice, 20 digits of
#: size, 44 of root, the time line, 68 bytes of signature in base64), so
#: this fits every checkpoint a Sealbox log signs, leaves room for a
#: witness cosignature with a short origin, and keeps a header -- read
#: whole before any output -- small.
MAX_CHECKPOINT_NOTE: Final = 1024


def parse_checkpoint_note(raw: bytes) -> str:
    """``raw`` as a checkpoint note, checked for shape only (nothing verified).

    Raises:
        ValueError: empty or longer than :data:`MAX_CHECKPOINT_NOTE`, not a
            well-formed C2SP signed note (UTF-8, no control characters, a
            signature block), or its text is not a C2SP checkpoint (origin,
            canonical size, 32-byte root).
    """
    if not 1 <= len(raw) <= MAX_CHECKPOINT_NOTE:
        raise ValueError(f"a checkpoint note is 1 to {MAX_CHECKPOINT_NOTE} bytes")
    text, _ = split_note(raw)
    parse_checkpoint_text(text)
    return raw.decode("utf-8")


def checkpoint_field(note: str) -> bytes:
    """The header field for ``note``: ``u16(length) || UTF-8 note``.

    Raises:
        ValueError: ``note`` is not a checkpoint note (see
            :func:`parse_checkpoint_note`).
    """
    raw = note.encode("utf-8")
    parse_checkpoint_note(raw)
    return u16(len(raw)) + raw
