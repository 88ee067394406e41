"""Transparency-log checkpoints (c2sp.org/tlog-checkpoint) as Sealbox signs them.

A checkpoint is a :mod:`signed note <chalicelib.wire.note>` whose text is::

    <origin>\\n
    <tree size, decimal, no leading zeros>\\n
    <base64 RFC 6962 root hash>\\n
    sealbox/v1/checkpoint-time <unix seconds>\\n      (Sealbox's one extension line)

The generic C2SP parser (:func:`parse_checkpoint_text`) accepts any extension
lines; :func:`open_log_checkpoint` is what devices and auditors call: it
checks the log's signature with the pinned key, the origin, and that exactly
the Sealbox time extension is present, and returns a :class:`Checkpoint`.
The time lets a device refuse a checkpoint older than its freshness bound
(docs/spec/transparency.md).

Every failure is a :class:`CheckpointError` (a ``ValueError``) subclass with
a stable ``code``, or a :class:`~chalicelib.wire.note.NoteError`.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final

from chalicelib.wire.merkle import HASH_SIZE, MAX_TREE_SIZE
from chalicelib.wire.note import NoteSigner, NoteVerifier, open_note, sign_note

__all__ = [
    "CHECKPOINT_TIME_LABEL",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMalformed",
    "CheckpointOriginMismatch",
    "checkpoint_text",
    "open_log_checkpoint",
    "parse_checkpoint_text",
    "sign_checkpoint",
]

CHECKPOINT_TIME_LABEL: Final = b"sealbox/v1/checkpoint-time"
_TIME_LABEL: Final = CHECKPOINT_TIME_LABEL.decode("ascii")
_DECIMAL_RE = re.compile(r"0|[1-9][0-9]{0,19}")
MAX_ORIGIN_SIZE: Final = 256


class CheckpointError(ValueError):
    """A checkpoint was refused.  ``code`` is stable."""

    code = "checkpoint_invalid"


class CheckpointMalformed(CheckpointError):
    """The note text is not a well-formed (Sealbox) checkpoint."""

    code = "checkpoint_malformed"


class CheckpointOriginMismatch(CheckpointError):
    """The checkpoint is for another log."""

    code = "checkpoint_origin_mismatch"


@dataclass(frozen=True)
class Checkpoint:
    """A log's signed tree head: ``size`` leaves whose RFC 6962 root is ``root``.

    ``timestamp`` is the Sealbox time extension (unix seconds), ``None`` for
    a checkpoint parsed without it.  ``note`` is the signed note it came
    from (kept so a device can hand it on as evidence), empty when built
    locally.
    """

    origin: str
    size: int
    root: bytes
    timestamp: int | None = None
    extensions: tuple[str, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        if not self.origin or len(self.origin) > MAX_ORIGIN_SIZE or "\n" in self.origin:
            raise CheckpointMalformed("invalid origin")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointMalformed("tree size out of range")
        if len(self.root) != HASH_SIZE:
            raise CheckpointMalformed("root hash is not 32 bytes")


def checkpoint_text(origin: str, size: int, root: bytes, timestamp: int) -> str:
    """The note text of a Sealbox checkpoint (see the module docstring)."""
    Checkpoint(origin, size, root)  # validates
    if not 0 <= timestamp < 2**63:
        raise CheckpointMalformed("timestamp out of range")
    root_b64 = base64.b64encode(root).decode()
    return f"{origin}\n{size}\n{root_b64}\n{_TIME_LABEL} {timestamp}\n"


def sign_checkpoint(origin: str, size: int, root: bytes, timestamp: int, signer: NoteSigner) -> str:
    """The signed note of a Sealbox checkpoint."""
    return sign_note(checkpoint_text(origin, size, root, timestamp), signer)


def _decimal(text: str, what: str) -> int:
    if not _DECIMAL_RE.fullmatch(text):
        raise CheckpointMalformed(f"{what} is not a canonical decimal")
    return int(text)


def parse_checkpoint_text(text: str) -> Checkpoint:
    """Parse a C2SP checkpoint body (the note text, already verified).

    Raises:
        CheckpointMalformed: fewer than three lines, an empty line, a size
            with leading zeros, or a root that is not 32 bytes of base64.
    """
    if not text.endswith("\n"):
        raise CheckpointMalformed("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3 or any(not line for line in lines):
        raise CheckpointMalformed("checkpoint needs origin, size and root lines")
    origin, size_text, root_text, *extensions = lines
    size = _decimal(size_text, "tree size")
    try:
        root = base64.b64decode(root_text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise CheckpointMalformed("root hash is not base64") from exc
    if base64.b64encode(root).decode() != root_text:
        raise CheckpointMalformed("root hash is not canonical base64")
    return Checkpoint(origin, size, root, None, tuple(extensions))


def open_log_checkpoint(note: str, verifier: NoteVerifier, *, origin: str) -> Checkpoint:
    """Verify a Sealbox log checkpoint and return it.

    Raises:
        NoteError: not a signed note, or not signed by ``verifier``.
        CheckpointOriginMismatch: signed for another origin.
        CheckpointMalformed: not exactly origin, size, root and the time line.
    """
    text = open_note(note, verifier)
    parsed = parse_checkpoint_text(text)
    if parsed.origin != origin:
        raise CheckpointOriginMismatch("checkpoint is for another log")
    if len(parsed.extensions) != 1:
        raise CheckpointMalformed("a Sealbox checkpoint has exactly one extension line")
    label, sep, value = parsed.extensions[0].partition(" ")
    if label != _TIME_LABEL or not sep:
        raise CheckpointMalformed("missing checkpoint time")
    timestamp = _decimal(value, "checkpoint time")
    if timestamp >= 2**63:
        raise CheckpointMalformed("checkpoint time out of range")
    return Checkpoint(parsed.origin, parsed.size, parsed.root, timestamp, (), note)
