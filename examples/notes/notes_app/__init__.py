"""End-to-end encrypted shared notes, on the Sealbox device SDK only.

Each note is sealed on the phone (signed by its author, encrypted to the
author and the people it is shared with) and stored as a blob; the server
sees ciphertext, sizes and who may read what.  The notes list comes from
the app's own backend route (``notes_server.routes``, ``GET /v1/notes``)
through :meth:`client_sim.Device.call`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass

from client_sim import Device

__all__ = ["Note", "NoteInfo", "Notebook"]

# Versioned so a later format can be told apart (the plaintext is the app's).
_FORMAT = b"notes/v1\n"


@dataclass(frozen=True)
class NoteInfo:
    """A note as the list shows it: no content (that stays sealed)."""

    id: str
    author: str
    mine: bool
    shared_with: tuple[str, ...]


@dataclass(frozen=True)
class Note:
    """A note opened on this phone: its text and its verified author."""

    id: str
    author: str
    text: str


class Notebook:
    """One person's notes on one phone."""

    def __init__(self, device: Device) -> None:
        self._device = device

    def write(self, text: str, *, share_with: Iterable[str] = ()) -> str:
        """Seal ``text`` for its author and ``share_with``; return the note's id."""
        data = _FORMAT + text.encode("utf-8")
        return self._device.upload(io.BytesIO(data), list(share_with)).blob_id

    def read(self, note_id: str) -> Note:
        """Open a note: decrypted here, its author's signature verified.

        Raises:
            client_sim.DecryptionFailed: not a note this phone can open, or
                tampered with.
            ValueError: a blob that is not a note.
        """
        out = io.BytesIO()
        sender = self._device.download(note_id, out)
        data = out.getvalue()
        if not data.startswith(_FORMAT):
            raise ValueError("not a note")
        return Note(note_id, sender.identity, data[len(_FORMAT) :].decode("utf-8"))

    def share(self, note_id: str, with_: Iterable[str]) -> str:
        """Re-seal a note of mine for ``with_`` (the new readers); return its new id."""
        return self._device.share(note_id, list(with_)).blob_id

    def delete(self, note_id: str) -> None:
        self._device.delete_blob(note_id)

    def list(self) -> list[NoteInfo]:
        """My notes and the notes shared with me, newest first (the app's route)."""
        reply = self._device.call("GET", "/v1/notes")
        return [
            NoteInfo(n["id"], n["author"], bool(n["mine"]), tuple(n["shared_with"]))
            for n in reply["notes"]
        ]
