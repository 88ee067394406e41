"""What was sent, and whether what arrived is exactly that.

Every message or file a simulated phone sends starts with a small header
naming its *message id*; the rest is filler with a canary plaintext in it
(a random marker the privacy audit later searches the server for).  Before
the upload, the sender records the message in the :class:`Ledger`: who
sends it, to whom, and the SHA-256 of the exact bytes.  A recipient that
decrypts a blob reads the message id from the plaintext and asks the ledger
to judge it against the sender the *signature* names (the SDK verified it
against the sender's card):

* ``delivered``: first arrival at this recipient, bytes and sender as sent;
* ``duplicate``: already delivered here (a shared copy, or a history re-read);
* ``mismatch_content`` / ``mismatch_sender`` / ``mismatch_recipient`` /
  ``mismatch_unknown``: wrong bytes, wrong signer, not addressed to this
  reader, or no such message -- each a failure of the system under test;
* ``mismatch_copy``: right bytes and signer, but the message now arrived in
  more distinct blobs than the sender made (one per send, one more per
  share): a repeated upload became a second blob instead of finding the
  first, as its idempotency key promises.  Without this its readers would
  see the message twice and judge the second copy a harmless duplicate.

The id travels inside the ciphertext, so a blob whose upload the sender
never saw complete (the reply lost, the retries exhausted) is still judged.
At the end, :meth:`Ledger.undelivered` lists every (message, recipient) of a
completed send that never arrived.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = [
    "MAGIC",
    "Ledger",
    "Outcome",
    "make_content",
    "message_id_of",
]

MAGIC: Final = b"SEALBOX-FLEET/1 "
_ID_RE = re.compile(rb"[A-Za-z0-9._-]{1,80}")
_WORDS = (
    "meet at the usual place",
    "the report is attached",
    "call me when you land",
    "photos from saturday",
    "see the notes below",
    "running late again",
    "the keys are with the neighbour",
    "happy birthday",
)

Outcome = Literal[
    "delivered",
    "duplicate",
    "mismatch_content",
    "mismatch_sender",
    "mismatch_recipient",
    "mismatch_unknown",
    "mismatch_copy",
]


def make_content(kind: str, message_id: str, size: int, canary: str, rng: random.Random) -> bytes:
    """The plaintext of one send: header, canary, filler; ``size`` bytes or
    just enough to hold the header and the canary.

    Messages are text; files are random bytes with the canary at a random
    offset (a marker in the middle of binary data, where a leak of a file
    would show it).
    """
    if not _ID_RE.fullmatch(message_id.encode("ascii")):
        raise ValueError("message ids are 1-80 characters of [A-Za-z0-9._-]")
    header = MAGIC + message_id.encode("ascii") + b"\n"
    marker = canary.encode("ascii")
    room = max(size - len(header) - len(marker), 0)
    if kind == "message":
        words: list[str] = []
        length = 0
        while length < room:
            words.append(rng.choice(_WORDS))
            length += len(words[-1]) + 2
        filler = (". ".join(words).encode("ascii") + b".\n")[:room]
        split = rng.randint(0, len(filler))
        return header + filler[:split] + marker + filler[split:]
    if kind == "file":
        filler = rng.randbytes(room)
        split = rng.randint(0, room)
        return header + filler[:split] + marker + filler[split:]
    raise ValueError(f"unknown content kind {kind!r}")


def message_id_of(plaintext: bytes) -> str | None:
    """The message id from a plaintext's header, or None if it has none."""
    if not plaintext.startswith(MAGIC):
        return None
    line = plaintext[len(MAGIC) : len(MAGIC) + 82].split(b"\n", 1)[0]
    return line.decode("ascii") if _ID_RE.fullmatch(line) else None


@dataclass
class _Entry:
    sender: str
    recipients: set[str]
    digest: bytes = field(repr=False)
    kind: str
    canary: str = field(repr=False)
    blob_ids: set[str] = field(default_factory=set)
    delivered_to: set[str] = field(default_factory=set)
    #: Blobs the sender made (or is making) for the message: the send's
    #: upload (however many tries it took, one idempotency key) and one per
    #: share.
    copies: int = 1
    #: Distinct blobs the message arrived in, at any reader.
    arrived_in: set[str] = field(default_factory=set)


class Ledger:
    """Thread-safe record of sends and deliveries for one fleet run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def expect(
        self,
        message_id: str,
        *,
        sender: str,
        recipients: Iterable[str],
        content: bytes,
        kind: str,
        canary: str,
    ) -> None:
        """Record a send before its upload starts.

        Raises:
            ValueError: the message id was used before.
        """
        with self._lock:
            if message_id in self._entries:
                raise ValueError(f"message id {message_id} used twice")
            self._entries[message_id] = _Entry(
                sender=sender,
                recipients=set(recipients),
                digest=hashlib.sha256(content).digest(),
                kind=kind,
                canary=canary,
            )

    def sent(self, message_id: str, blob_id: str) -> None:
        """The upload completed as ``blob_id`` (from here on it must arrive)."""
        with self._lock:
            self._entries[message_id].blob_ids.add(blob_id)

    def resealing(self, message_id: str, recipients: Iterable[str]) -> None:
        """The sender is about to re-seal the message as one more blob, for
        ``recipients``.

        Called before the share starts: the new blob is readable before the
        share returns, and a reader restoring its history meanwhile (the new
        reader among them) must be judged against the new copy, not found to
        hold an extra copy or a message that wasn't for it.  If the share
        then fails, the failed step fails the run, and a new reader that
        never gets the copy shows as a missing delivery.
        """
        with self._lock:
            entry = self._entries[message_id]
            entry.copies += 1
            entry.recipients.update(recipients)

    def shared(self, message_id: str, recipients: Iterable[str], blob_id: str | None) -> None:
        """The sender re-sealed the message for more recipients.

        ``blob_id`` is the new blob's, or None when the sender could not
        learn it (its answer was lost).
        """
        with self._lock:
            entry = self._entries[message_id]
            entry.recipients.update(recipients)
            if blob_id is not None:
                entry.blob_ids.add(blob_id)

    def judge(self, reader: str, plaintext: bytes, signed_by: str, *, blob_id: str) -> Outcome:
        """Judge one decrypted, signature-verified blob read by ``reader``.

        Args:
            signed_by: the identity the SDK verified the signature against,
                never a name taken from the server's metadata.
            blob_id: the blob the plaintext came from.
        """
        message_id = message_id_of(plaintext)
        with self._lock:
            entry = self._entries.get(message_id) if message_id is not None else None
            if entry is None:
                return "mismatch_unknown"
            if hashlib.sha256(plaintext).digest() != entry.digest:
                return "mismatch_content"
            if signed_by != entry.sender:
                return "mismatch_sender"
            if reader not in entry.recipients:
                return "mismatch_recipient"
            entry.arrived_in.add(blob_id)
            if len(entry.arrived_in) > entry.copies:
                return "mismatch_copy"
            if reader in entry.delivered_to:
                return "duplicate"
            entry.delivered_to.add(reader)
            return "delivered"

    def completed(self) -> int:
        """Sends whose upload completed."""
        with self._lock:
            return sum(1 for e in self._entries.values() if e.blob_ids)

    def expected_deliveries(self) -> int:
        with self._lock:
            return sum(len(e.recipients) for e in self._entries.values() if e.blob_ids)

    def delivered(self) -> int:
        with self._lock:
            return sum(len(e.delivered_to) for e in self._entries.values())

    def undelivered(self) -> list[tuple[str, str]]:
        """(message id, recipient) of completed sends that never arrived."""
        with self._lock:
            return sorted(
                (message_id, recipient)
                for message_id, entry in self._entries.items()
                if entry.blob_ids
                for recipient in entry.recipients - entry.delivered_to
            )

    def canaries(self) -> list[tuple[str, str]]:
        """(message id, canary) of every message, sent or not."""
        with self._lock:
            return [(message_id, e.canary) for message_id, e in sorted(self._entries.items())]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
