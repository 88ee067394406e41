"""Sender-authenticated encryption: sign, then encrypt with age.

age alone proves nothing about who wrote a file: anyone with a recipient's
public key can encrypt to it.  A *sealed* message adds the sender's Ed25519
signature inside the age payload, so only the recipients learn (and can
check) who sent it, and the storage server sees a plain age file.

The inner stream (what a plain ``age -d`` prints) is::

    header    = "SBSEALED" || version (1) || flags (0)
                || sender card id (32) || n (u16) || n recipient card ids (32 each, ascending)
    body      = the plaintext, unchanged
    trailer   = plaintext length (u64) || Ed25519 signature (64)
    signature = Ed25519(lp16("sealbox/v1/sealed-signature") || header
                        || plaintext length (u64) || SHA-512(plaintext))

docs/spec/sealed.md has the byte-by-byte layout and the MUST-reject rules.

Two layers, kept apart:

* the framing codec (:class:`SealedWriter`, :func:`unframe`) works on plain
  file-like objects and knows nothing of age;
* :func:`seal`, :func:`open_sealed`, :func:`open_sealed_to_path` and the
  ``*_bytes`` helpers pipe the framing through ``client_sim.age``'s streaming
  ``encrypt_writer`` / ``decrypt_reader``, imported at call time.

Both directions stream in constant memory: the writer hashes as it goes and
the reader holds back only the fixed-size trailer.  Because the signature
comes last, a streaming reader writes plaintext *before* it knows whether
the signature verifies.  The functions here return the verified sender only
after the trailer verified; on any exception the caller MUST discard what was
written to ``dst``.  :func:`open_sealed_to_path` does that for you: it writes
to a temporary file and renames it into place only after verification.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, BinaryIO, Final, Protocol, cast

from chalicelib.wire.binary import lp16, u8, u16, u64
from chalicelib.wire.cards import Card, card_id_from_str, card_id_to_str
from client_sim import _hazmat, age
from client_sim.age.errors import AgeError
from client_sim.files import atomic_output
from client_sim.identity import KeyBundle, age_identities_for, age_recipients_for

__all__ = [
    "MAX_RECIPIENTS",
    "SEALED_MAGIC",
    "SEALED_SIGNATURE_LABEL",
    "SEALED_VERSION",
    "TRAILER_SIZE",
    "FramingError",
    "FramingReader",
    "Opened",
    "RecipientMismatch",
    "SealedDecryptionError",
    "SealedError",
    "SealedFormatError",
    "SealedWriter",
    "SenderResolver",
    "SignatureError",
    "Signer",
    "UnknownSender",
    "VerifiedSender",
    "framed_size",
    "open_sealed",
    "open_sealed_bytes",
    "open_sealed_to_path",
    "seal",
    "seal_bytes",
    "unframe",
]

SEALED_MAGIC: Final = b"SBSEALED"
SEALED_VERSION: Final = 1
SEALED_SIGNATURE_LABEL: Final = b"sealbox/v1/sealed-signature"
# No flag is defined in version 1; every bit is reserved and must be zero.
SEALED_FLAGS: Final = 0
CARD_ID_SIZE: Final = 32
MAX_RECIPIENTS: Final = 1024
_FIXED_HEADER_SIZE: Final = len(SEALED_MAGIC) + 1 + 1 + CARD_ID_SIZE + 2
_SIGNATURE_SIZE: Final = 64
_CARD_ID_SIZE: Final = 32
TRAILER_SIZE: Final = 8 + _SIGNATURE_SIZE
_CHUNK: Final = 64 * 1024


# --- errors -------------------------------------------------------------------


class SealedError(Exception):
    """Base of every failure to open a sealed message.

    Messages are deliberately generic; the subclass says which check failed.
    Whatever was already written to the destination MUST be discarded.
    """


class SealedFormatError(SealedError):
    """The inner stream is not a sealed message this version can read."""


class UnknownSender(SealedError):
    """The header names a sender card that is not among the accepted cards.

    Raised before any plaintext is written, when the card is neither among
    the accepted cards nor found by the resolver.  ``card_id`` names it.
    """

    def __init__(self, card_id: str) -> None:
        super().__init__("the message is signed by a card that is not among the accepted cards")
        self.card_id = card_id


class RecipientMismatch(SealedError):
    """None of the opener's cards is among the recipients the sender signed.

    This is what a forwarded message looks like: someone who could decrypt
    it re-encrypted the signed inner stream to a new recipient.
    """


class SignatureError(SealedError):
    """The trailer is missing, truncated, followed by data, or does not verify."""


class SealedDecryptionError(SealedError):
    """The age layer could not decrypt the message (see ``__cause__``)."""


# --- the sender side ------------------------------------------------------------


class Signer(Protocol):
    """What the framing needs from a sender: its card id and its signing key."""

    @property
    def card_id(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


class _Sink(Protocol):
    def write(self, data: bytes, /) -> Any: ...


def _recipient_ids(card_ids: Iterable[str]) -> list[bytes]:
    raw = sorted({card_id_from_str(card_id, field="recipient") for card_id in card_ids})
    if not 1 <= len(raw) <= MAX_RECIPIENTS:
        raise ValueError(f"a sealed message binds 1 to {MAX_RECIPIENTS} recipient cards")
    return raw


def _signed_message(header: bytes, length: int, digest: bytes) -> bytes:
    return lp16(SEALED_SIGNATURE_LABEL) + header + u64(length) + digest


class SealedWriter:
    """Frame a plaintext stream: header now, plaintext as written, trailer on close.

    Writes go straight through to ``dst`` while a SHA-512 of the plaintext is
    updated, so memory does not depend on the size.  :meth:`close` writes
    the signed trailer; it does not close ``dst``.  Used as a context manager,
    the trailer is written only when the block exits without an exception,
    so an interrupted stream never carries a signature.

    Raises (from the constructor):
        ValueError: no recipient, more than :data:`MAX_RECIPIENTS`, or an
            invalid card id.
    """

    def __init__(self, dst: _Sink, *, sender: Signer, recipient_card_ids: Iterable[str]) -> None:
        recipients = _recipient_ids(recipient_card_ids)
        self._header = b"".join(
            (
                SEALED_MAGIC,
                u8(SEALED_VERSION),
                u8(SEALED_FLAGS),
                card_id_from_str(sender.card_id, field="sender"),
                u16(len(recipients)),
                *recipients,
            )
        )
        self._dst = dst
        self._sender = sender
        self._hash = hashlib.sha512()
        self._length = 0
        self._closed = False
        dst.write(self._header)

    def write(self, data: bytes) -> int:
        """Append plaintext.  Raises ValueError after :meth:`close`."""
        if self._closed:
            raise ValueError("write to a closed SealedWriter")
        self._hash.update(data)
        self._length += len(data)
        self._dst.write(data)
        return len(data)

    def close(self) -> None:
        """Sign and write the trailer (once)."""
        if self._closed:
            return
        self._closed = True
        signature = self._sender.sign(
            _signed_message(self._header, self._length, self._hash.digest())
        )
        self._dst.write(u64(self._length) + signature)

    def __enter__(self) -> SealedWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            # Leave the stream without a trailer: it can never verify.
            self._closed = True


def framed_size(plaintext_size: int, recipient_count: int) -> int:
    """Bytes of the framed inner stream for a plaintext of ``plaintext_size``
    bound to ``recipient_count`` recipient cards (header + plaintext +
    trailer), known before anything is signed."""
    if plaintext_size < 0 or not 1 <= recipient_count <= MAX_RECIPIENTS:
        raise ValueError("invalid plaintext size or recipient count")
    header = len(SEALED_MAGIC) + 1 + 1 + _CARD_ID_SIZE + 2 + _CARD_ID_SIZE * recipient_count
    return header + plaintext_size + TRAILER_SIZE


class FramingError(SealedError):
    """The plaintext source delivered more or fewer bytes than announced."""


class FramingReader:
    """:class:`SealedWriter` turned around: read the framed stream of ``source``.

    For uploads whose size must be known up front: :attr:`size` is exact
    before the first read.  The header comes first, then the plaintext as it
    is read from ``source``, then the signed trailer once exactly
    ``plaintext_size`` bytes went through.  Memory is one chunk.

    Raises (from :meth:`read`):
        FramingError: ``source`` ended early or has more bytes than
            announced; no trailer is ever produced then.
    """

    def __init__(
        self,
        source: _Source,
        plaintext_size: int,
        *,
        sender: Signer,
        recipient_card_ids: Iterable[str],
    ) -> None:
        ids = list(recipient_card_ids)
        self.size = framed_size(plaintext_size, len(set(ids)))
        self._source = source
        self._left = plaintext_size
        self._buffer = bytearray()
        self._writer = SealedWriter(self, sender=sender, recipient_card_ids=ids)
        self._done = False

    def write(self, data: bytes) -> int:  # the SealedWriter's sink
        self._buffer += data
        return len(data)

    def read(self, size: int = -1, /) -> bytes:
        want = size if size >= 0 else 1 << 62
        while len(self._buffer) < want and not self._done:
            self._pump()
        out = bytes(self._buffer[:want])
        del self._buffer[:want]
        return out

    def _pump(self) -> None:
        if self._left == 0:
            if self._source.read(1):
                raise FramingError("the source has more bytes than announced")
            self._writer.close()
            self._done = True
            return
        block = self._source.read(min(self._left, _CHUNK))
        if not block:
            raise FramingError("the source ended before its announced size")
        self._left -= len(block)
        self._writer.write(block)


# --- the recipient side -----------------------------------------------------------


@dataclass(frozen=True)
class VerifiedSender:
    """Who sealed a message, established by a verified signature.

    ``card`` is the sender card named in the header (possibly superseded by
    now); ``recipient_card_ids`` are the cards the sender addressed.
    """

    card: Card
    recipient_card_ids: tuple[str, ...]
    plaintext_length: int

    @property
    def identity(self) -> str:
        return self.card.identity

    @property
    def card_id(self) -> str:
        return self.card.card_id


class _Source(Protocol):
    def read(self, n: int = ..., /) -> bytes: ...


SenderResolver = Callable[[str], Card | None]
"""Finds the sender card a header names, by card id, when the caller's
accepted cards don't include it: typically a lookup in a local cache and
then ``GET /v1/cards/{card_id}``, which also returns superseded cards, so a
message sealed before its sender rotated still verifies.  It returns a
verified card or None, and may raise to refuse the card (for instance when
it names another identity than the one the caller expects); whatever it
raises propagates, before any plaintext is written.
"""


def _read_exact(src: _Source, n: int) -> bytes:
    parts = []
    while n:
        chunk = src.read(n)
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    if n:
        raise SealedFormatError("the sealed message ends inside its header")
    return b"".join(parts)


def unframe(
    src: _Source,
    dst: _Sink,
    *,
    sender_cards: Iterable[Card],
    opener_card_ids: Iterable[str],
    resolve_sender: SenderResolver | None = None,
) -> VerifiedSender:
    """Read a framed inner stream, write its plaintext to ``dst``, verify the sender.

    The header is checked completely before any plaintext is written.  The
    plaintext then streams to ``dst`` while it is hashed; the last
    :data:`TRAILER_SIZE` bytes are held back and checked at the end.

    Args:
        src: the framed stream (e.g. an age ``decrypt_reader``).
        dst: where the plaintext goes.  Discard it if this raises.
        sender_cards: every card the caller accepts as a sender, superseded
            ones included (a sender may have rotated since sealing).  The
            card named in the header is looked up here by id.
        opener_card_ids: the opener's own card ids (current and previous);
            at least one must be among the recipients the sender signed.
        resolve_sender: called with the header's sender card id when it is
            not among ``sender_cards``, after the recipient check passed and
            before any plaintext is written.  The card it returns is used
            only if its id is the one asked for.

    Returns:
        The verified sender, only after the signature verified.

    Raises:
        SealedFormatError: bad magic, version, flags or recipient list, or a
            stream that ends inside the header.
        UnknownSender: the sender card is not in ``sender_cards``.
        RecipientMismatch: no opener card is among the bound recipients.
        SignatureError: truncated or missing trailer, trailing data, a length
            mismatch, or a signature that does not verify.
    """
    cards_by_id = {card.card_id: card for card in sender_cards}
    opener = set(opener_card_ids)

    fixed = _read_exact(src, _FIXED_HEADER_SIZE)
    if fixed[: len(SEALED_MAGIC)] != SEALED_MAGIC:
        raise SealedFormatError("not a Sealbox sealed message")
    pos = len(SEALED_MAGIC)
    if fixed[pos] != SEALED_VERSION:
        raise SealedFormatError("unsupported sealed message version")
    if fixed[pos + 1] != SEALED_FLAGS:
        raise SealedFormatError("unknown sealed message flags")
    sender_raw = fixed[pos + 2 : pos + 2 + CARD_ID_SIZE]
    count = int.from_bytes(fixed[-2:], "big")
    if not 1 <= count <= MAX_RECIPIENTS:
        raise SealedFormatError("invalid recipient count")
    recipients_raw = _read_exact(src, count * CARD_ID_SIZE)
    recipients = [
        recipients_raw[i : i + CARD_ID_SIZE] for i in range(0, len(recipients_raw), CARD_ID_SIZE)
    ]
    # Strictly ascending: one canonical header per recipient set, no duplicates.
    if any(a >= b for a, b in itertools.pairwise(recipients)):
        raise SealedFormatError("recipient card ids are not strictly ascending")
    header = fixed + recipients_raw

    sender_id = card_id_to_str(sender_raw)
    recipient_ids = tuple(card_id_to_str(r) for r in recipients)
    sender_card = cards_by_id.get(sender_id)
    if sender_card is None and resolve_sender is None:
        raise UnknownSender(sender_id)
    if opener.isdisjoint(recipient_ids):
        raise RecipientMismatch("the message was not sealed to any of the opener's cards")
    if sender_card is None:
        resolved = resolve_sender(sender_id) if resolve_sender is not None else None
        # The card id is a hash of the content: a card whose id differs is
        # another card, whatever the resolver believed.
        if resolved is None or resolved.card_id != sender_id:
            raise UnknownSender(sender_id)
        sender_card = resolved

    digest = hashlib.sha512()
    length = 0
    held = bytearray()
    while True:
        chunk = src.read(_CHUNK)
        if not chunk:
            break
        held += chunk
        if len(held) > TRAILER_SIZE:
            out = bytes(held[:-TRAILER_SIZE])
            del held[:-TRAILER_SIZE]
            digest.update(out)
            length += len(out)
            dst.write(out)
    if len(held) != TRAILER_SIZE:
        raise SignatureError("the sealed message has no complete signature trailer")
    if int.from_bytes(held[:8], "big") != length:
        raise SignatureError("the sealed message length does not match its trailer")
    try:
        _hazmat.ed25519_verify_raw(
            sender_card.ed25519_public_key,
            bytes(held[8:]),
            _signed_message(header, length, digest.digest()),
        )
    except _hazmat.InvalidSignature as exc:
        raise SignatureError("the sender signature does not verify") from exc
    return VerifiedSender(
        card=sender_card, recipient_card_ids=recipient_ids, plaintext_length=length
    )


# --- composition with age -----------------------------------------------------------


def seal(
    src: _Source,
    dst: _Sink,
    *,
    sender: KeyBundle,
    recipients: Sequence[Card],
) -> None:
    """Sign ``src`` as ``sender`` and age-encrypt the framed stream to ``recipients``.

    Every recipient card is bound in the signed header; include the sender's
    own card in ``recipients`` to be able to read the message back.  The age
    recipients are post-quantum when every card has a PQ key, X25519
    otherwise (see :func:`client_sim.identity.age_recipients_for`).

    Raises:
        ValueError: no recipients, or more than :data:`MAX_RECIPIENTS`.
    """
    recipient_ids = [card.card_id for card in recipients]
    _recipient_ids(recipient_ids)  # validate before anything is written
    age_recipients = age_recipients_for(recipients)
    with (
        age.encrypt_writer(cast(BinaryIO, dst), age_recipients) as encrypted,
        SealedWriter(encrypted, sender=sender, recipient_card_ids=recipient_ids) as framed,
    ):
        while chunk := src.read(_CHUNK):
            framed.write(chunk)


def _bundles(keys: KeyBundle | Iterable[KeyBundle]) -> list[KeyBundle]:
    bundles = [keys] if isinstance(keys, KeyBundle) else list(keys)
    if not bundles:
        raise ValueError("at least one key bundle is needed to open a message")
    return bundles


def open_sealed(
    src: _Source,
    dst: _Sink,
    keys: KeyBundle | Iterable[KeyBundle],
    sender_cards: Iterable[Card],
    *,
    resolve_sender: SenderResolver | None = None,
) -> VerifiedSender:
    """Decrypt with age, write the plaintext to ``dst``, and verify the sender.

    Args:
        src: the age file.
        dst: where the plaintext goes.  It receives data *before* the
            signature is checked; on any exception the caller MUST discard
            it (or use :func:`open_sealed_to_path`).
        keys: the opener's key bundles, current and previous: all their age
            identities are tried, and their card ids are what the sender must
            have bound as recipients.
        sender_cards: the cards accepted as the sender's (see :func:`unframe`).
        resolve_sender: finds a sender card not among ``sender_cards``
            (see :data:`SenderResolver`).

    Returns:
        The verified sender, only once the whole stream verified.

    Raises:
        SealedDecryptionError: the age layer failed (no matching identity,
            tampered ciphertext, truncated file).
        SealedError: any framing or signature failure (see :func:`unframe`).
    """
    bundles = _bundles(keys)
    age_error = AgeError
    try:
        reader = age.decrypt_reader(src, age_identities_for(bundles))
        with contextlib.closing(reader) if hasattr(reader, "close") else contextlib.nullcontext():
            return unframe(
                reader,
                dst,
                sender_cards=sender_cards,
                opener_card_ids=[bundle.card_id for bundle in bundles],
                resolve_sender=resolve_sender,
            )
    except age_error as exc:
        raise SealedDecryptionError("the message could not be decrypted") from exc


def open_sealed_to_path(
    src: _Source,
    path: str | os.PathLike[str],
    keys: KeyBundle | Iterable[KeyBundle],
    sender_cards: Iterable[Card],
    *,
    resolve_sender: SenderResolver | None = None,
) -> VerifiedSender:
    """Like :func:`open_sealed`, but ``path`` appears only if everything verified.

    The plaintext goes to a private (0600) temporary file next to ``path``
    (:func:`client_sim.files.atomic_output`), which is flushed to disk and
    renamed over ``path`` after the signature verified.  On any failure the
    temporary file is removed and ``path`` is untouched.

    Raises:
        SealedError: as :func:`open_sealed`.
        OSError: the file system failed.
    """
    with atomic_output(path) as out:
        sender = open_sealed(src, out, keys, sender_cards, resolve_sender=resolve_sender)
    return sender


@dataclass(frozen=True, repr=False)
class Opened:
    """A verified plaintext and its sender (from :func:`open_sealed_bytes`)."""

    plaintext: bytes
    sender: VerifiedSender

    def __repr__(self) -> str:
        # User plaintext never goes into logs or tracebacks through a repr.
        return f"Opened(sender={self.sender.card_id!r}, plaintext_length={len(self.plaintext)})"


def seal_bytes(data: bytes, *, sender: KeyBundle, recipients: Sequence[Card]) -> bytes:
    """:func:`seal` for a message held in memory."""
    out = io.BytesIO()
    seal(io.BytesIO(data), out, sender=sender, recipients=recipients)
    return out.getvalue()


def open_sealed_bytes(
    data: bytes,
    keys: KeyBundle | Iterable[KeyBundle],
    sender_cards: Iterable[Card],
    *,
    resolve_sender: SenderResolver | None = None,
) -> Opened:
    """:func:`open_sealed` for a message held in memory.

    The plaintext is returned only after the signature verified; nothing
    unverified escapes.
    """
    out = io.BytesIO()
    sender = open_sealed(io.BytesIO(data), out, keys, sender_cards, resolve_sender=resolve_sender)
    return Opened(plaintext=out.getvalue(), sender=sender)
