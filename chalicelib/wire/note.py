"""C2SP signed notes with Ed25519 keys (c2sp.org/signed-note).

A signed note is UTF-8 text ending in a newline, a blank line, then one or
more signature lines ``— <key name> base64(key ID || signature)``.  The
transparency log signs its checkpoints (:mod:`chalicelib.wire.checkpoint`)
this way, so any C2SP tool (a witness, ``litetlog``, Go's
``golang.org/x/mod/sumdb/note``) can read them.  Only the Ed25519 signature
type (``0x01``) is implemented: the spec asks implementations to support only
what their design needs.

Key encodings are the ones Go's ``note`` package uses:

* verifier key (public, pinned in device configuration)::

      <name>+<hex key ID>+base64(0x01 || 32-byte Ed25519 public key)

* signer key (the log's secret, kept in its own Secrets Manager secret)::

      PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 || 32-byte Ed25519 seed)

with ``key ID = SHA-256(name || 0x0A || 0x01 || public key)[:4]``.

Every failure is a :class:`NoteError` (a ``ValueError``) subclass with a
stable ``code``.  :func:`open_note` raises unless a signature by the given
key verifies; it never returns an unverified text.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from dataclasses import dataclass, field
from typing import Final

from chalicelib import crypto

__all__ = [
    "ED25519_SIGNATURE_TYPE",
    "MAX_NOTE_SIGNATURES",
    "MAX_NOTE_SIZE",
    "NoteBadSignature",
    "NoteError",
    "NoteKeyInvalid",
    "NoteMalformed",
    "NoteSigner",
    "NoteUnverified",
    "NoteVerifier",
    "generate_signer",
    "key_id",
    "open_note",
    "parse_signer_key",
    "parse_verifier_key",
    "sign_note",
    "split_note",
]

ED25519_SIGNATURE_TYPE: Final = 0x01
# The spec asks verifiers to accept at least 16 signatures; Go's note
# package refuses more than 100.  A checkpoint with witness cosignatures
# fits in a few KiB.
MAX_NOTE_SIGNATURES: Final = 100
MAX_NOTE_SIZE: Final = 64 * 1024
_SIG_PREFIX: Final = "— "
_KEY_ID_RE = re.compile(r"[0-9a-f]{8}")
_PRIVATE_PREFIX: Final = "PRIVATE+KEY+"


class NoteError(ValueError):
    """A signed note or note key was refused.  ``code`` is stable."""

    code = "note_invalid"


class NoteMalformed(NoteError):
    """Not a well-formed signed note (encoding, layout, signature lines)."""

    code = "note_malformed"


class NoteUnverified(NoteError):
    """No signature by the expected key is present."""

    code = "note_unverified"


class NoteBadSignature(NoteError):
    """A signature claims the expected key but does not verify."""

    code = "note_bad_signature"


class NoteKeyInvalid(NoteError):
    """A verifier or signer key string is malformed or inconsistent."""

    code = "note_key_invalid"


def _valid_name(name: str) -> bool:
    # Non-empty, no Unicode spaces, no '+', printable (no control characters).
    return bool(name) and "+" not in name and not any(c.isspace() or ord(c) < 0x20 for c in name)


def key_id(name: str, public_key: bytes) -> int:
    """The 32-bit key ID of an Ed25519 note key (c2sp.org/signed-note)."""
    digest = hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ED25519_SIGNATURE_TYPE]) + public_key
    ).digest()
    return int.from_bytes(digest[:4], "big")


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise NoteKeyInvalid("not standard base64") from exc


@dataclass(frozen=True)
class NoteVerifier:
    """A pinned public key that checks note signatures."""

    name: str
    key_id: int
    public_key: bytes

    def __post_init__(self) -> None:
        if not _valid_name(self.name):
            raise NoteKeyInvalid("invalid key name")
        if len(self.public_key) != 32:
            raise NoteKeyInvalid("Ed25519 public keys are 32 bytes")
        if key_id(self.name, self.public_key) != self.key_id:
            raise NoteKeyInvalid("key ID does not match the key")
        try:
            crypto.ed25519_public_from_raw(self.public_key)
        except ValueError as exc:
            raise NoteKeyInvalid("not an Ed25519 public key") from exc

    @property
    def vkey(self) -> str:
        """The verifier key string ``name+hex(id)+base64(0x01 || key)``."""
        blob = base64.b64encode(bytes([ED25519_SIGNATURE_TYPE]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{blob}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (without the key ID) is valid over ``text``."""
        try:
            crypto.ed25519_verify(crypto.ed25519_public_from_raw(self.public_key), signature, text)
        except crypto.InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class NoteSigner:
    """A note signing key.  Its repr shows the public verifier key only."""

    name: str
    key_id: int
    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _valid_name(self.name):
            raise NoteKeyInvalid("invalid key name")
        if len(self.seed) != 32:
            raise NoteKeyInvalid("Ed25519 seeds are 32 bytes")
        if key_id(self.name, self.public_key) != self.key_id:
            raise NoteKeyInvalid("key ID does not match the key")

    def __repr__(self) -> str:
        return f"NoteSigner(vkey={self.verifier.vkey!r})"

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> NoteSigner:
        """The signer named ``name`` for a 32-byte Ed25519 seed (its key ID derived)."""
        if len(seed) != 32:
            raise NoteKeyInvalid("Ed25519 seeds are 32 bytes")
        public = crypto.ed25519_public_raw(crypto.ed25519_private_from_raw(seed).public_key())
        return cls(name, key_id(name, public), seed)

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        private = crypto.ed25519_private_from_raw(self.seed)
        return crypto.ed25519_public_raw(private.public_key())

    @property
    def verifier(self) -> NoteVerifier:
        """The matching public verifier."""
        return NoteVerifier(self.name, self.key_id, self.public_key)

    @property
    def skey(self) -> str:
        """The secret key string (for Secrets Manager only; never log it)."""
        blob = base64.b64encode(bytes([ED25519_SIGNATURE_TYPE]) + self.seed).decode()
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id:08x}+{blob}"

    def sign(self, text: bytes) -> bytes:
        """The raw 64-byte Ed25519 signature of ``text``."""
        return self._private.sign(text)

    @functools.cached_property
    def _private(self) -> crypto.Ed25519PrivateKey:
        # Loaded once per signer: loading costs as much as a signature, and
        # the log signs a checkpoint with every append.
        return crypto.ed25519_private_from_raw(self.seed)


def _split_key(text: str) -> tuple[str, int, bytes]:
    if not isinstance(text, str):
        raise NoteKeyInvalid("a note key is a string")
    # The base64 key may itself contain "+"; the name and the ID cannot.
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise NoteKeyInvalid("a note key is name+keyid+key")
    name, hex_id, blob = parts
    if not _KEY_ID_RE.fullmatch(hex_id):
        raise NoteKeyInvalid("key ID is not 8 lowercase hex digits")
    raw = _b64decode(blob)
    if len(raw) != 33 or raw[0] != ED25519_SIGNATURE_TYPE:
        raise NoteKeyInvalid("not an Ed25519 note key")
    return name, int(hex_id, 16), raw[1:]


def parse_verifier_key(vkey: str) -> NoteVerifier:
    """Parse ``name+hex(id)+base64(0x01 || public key)``.

    Raises:
        NoteKeyInvalid: malformed, not Ed25519, or the ID does not match.
    """
    name, kid, public = _split_key(vkey)
    return NoteVerifier(name, kid, public)


def parse_signer_key(skey: str) -> NoteSigner:
    """Parse ``PRIVATE+KEY+name+hex(id)+base64(0x01 || seed)``.

    Raises:
        NoteKeyInvalid: malformed, not Ed25519, or the ID does not match.
            The message never contains the key.
    """
    if not isinstance(skey, str) or not skey.startswith(_PRIVATE_PREFIX):
        raise NoteKeyInvalid("not a note signer key")
    name, kid, seed = _split_key(skey[len(_PRIVATE_PREFIX) :])
    return NoteSigner(name, kid, seed)


def generate_signer(name: str) -> NoteSigner:
    """A fresh Ed25519 note signer named ``name``."""
    return NoteSigner.from_seed(name, crypto.ed25519_private_raw(crypto.ed25519_generate()))


def sign_note(text: str, signer: NoteSigner) -> str:
    """``text`` followed by a blank line and ``signer``'s signature line.

    Raises:
        NoteMalformed: ``text`` is empty, does not end in a newline, or holds
            control characters other than newline.
    """
    _check_text(text)
    raw = text.encode("utf-8")
    sig = signer.key_id.to_bytes(4, "big") + signer.sign(raw)
    return f"{text}\n{_SIG_PREFIX}{signer.name} {base64.b64encode(sig).decode()}\n"


_CONTROL_RE: Final = re.compile("[\x00-\x09\x0b-\x1f\ufffd]")


def _check_text(text: str) -> None:
    if not isinstance(text, str) or not text.endswith("\n"):
        raise NoteMalformed("note text must end with a newline")
    # Control characters other than newline, or U+FFFD (a decoding error).
    if _CONTROL_RE.search(text):
        raise NoteMalformed("note holds control characters")


def split_note(note: str | bytes) -> tuple[str, list[tuple[str, bytes]]]:
    """The text of ``note`` and its signature lines (key name, key ID || signature),
    checked for shape only: **nothing is verified**.

    For a reader that must refuse a malformed note before it can (or
    without being able to) check a signature; :func:`open_note` is the
    one that verifies.

    Raises:
        NoteMalformed: not UTF-8, over :data:`MAX_NOTE_SIZE`, control
            characters, no blank line before a signature block of 1 to
            :data:`MAX_NOTE_SIGNATURES` well-formed lines, or a text that
            does not end in a newline.
    """
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_SIZE:
            raise NoteMalformed("note is too large")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteMalformed("note is not UTF-8") from exc
    if not isinstance(note, str) or len(note.encode("utf-8")) > MAX_NOTE_SIZE:
        raise NoteMalformed("note is too large")
    if any(ord(c) < 0x20 and c != "\n" for c in note) or "\ufffd" in note:
        raise NoteMalformed("note holds control characters")
    if not note.endswith("\n"):
        raise NoteMalformed("note must end with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteMalformed("note has no signature block")
    text, block = note[: split + 1], note[split + 2 :]
    lines = block.split("\n")[:-1]  # the block ends with "\n"
    if not lines:
        raise NoteMalformed("note has no signatures")
    if len(lines) > MAX_NOTE_SIGNATURES:
        raise NoteMalformed("note has too many signatures")
    return text, [_parse_signature_line(line) for line in lines]


def open_note(note: str | bytes, verifier: NoteVerifier) -> str:
    """The text of ``note`` once a signature by ``verifier`` is checked.

    Signatures from other keys are ignored (they may be witnesses'
    cosignatures or a rotated key's).

    Raises:
        NoteMalformed: not a well-formed signed note (:func:`split_note`).
        NoteBadSignature: a signature names this key but does not verify.
        NoteUnverified: no signature by this key.
    """
    text, signatures = split_note(note)
    verified = False
    raw_text = text.encode("utf-8")
    for name, sig in signatures:
        if name != verifier.name or int.from_bytes(sig[:4], "big") != verifier.key_id:
            continue  # another key: MUST be ignored (c2sp.org/signed-note)
        if not verifier.verify(raw_text, sig[4:]):
            raise NoteBadSignature("a signature by the log key does not verify")
        verified = True
    if not verified:
        raise NoteUnverified("no signature by the expected key")
    return text


def _parse_signature_line(line: str) -> tuple[str, bytes]:
    if not line.startswith(_SIG_PREFIX):
        raise NoteMalformed("signature line must start with an em dash and a space")
    rest = line[len(_SIG_PREFIX) :]
    name, sep, blob = rest.partition(" ")
    if not sep or not _valid_name(name) or " " in blob:
        raise NoteMalformed("malformed signature line")
    try:
        sig = base64.b64decode(blob.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise NoteMalformed("signature is not base64") from exc
    if len(sig) < 5:
        raise NoteMalformed("signature is too short")
    return name, sig
