"""The sealed-message framing codec: the signed inner stream, without age.

This is the byte format of docs/spec/sealed.md: :class:`SealedWriter` and
:class:`FramingReader` write it, :func:`unframe` reads and verifies it.  It
works on plain file-like objects and knows nothing of age;
:mod:`client_sim.sealed` pipes it through age and re-exports every public
name here, which is where callers import them from.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Protocol

from chalicelib.wire.binary import lp16, u8, u16, u64
from chalicelib.wire.cards import Card, card_id_from_str, card_id_to_str
from chalicelib.wire.identity import is_identity
from client_sim import _hazmat
from client_sim.sealed_checkpoint import (
    CHECKPOINT_FLAG,
    KNOWN_FLAGS,
    MAX_CHECKPOINT_NOTE,
    checkpoint_field,
    parse_checkpoint_note,
)
from client_sim.sealed_errors import (
    ContextMismatch,
    RecipientMismatch,
    SealedDecryptionError,
    SealedError,
    SealedFormatError,
    SignatureError,
    UnknownSender,
)

__all__ = [
    "BLOB_CONTEXT_LABEL",
    "CHECKPOINT_FLAG",
    "CHUNK_SIZE",
    "MAX_CHECKPOINT_NOTE",
    "MAX_CONTEXT",
    "MAX_RECIPIENTS",
    "RESERVED_CONTEXT_PREFIX",
    "SEALED_MAGIC",
    "SEALED_SIGNATURE_LABEL",
    "SEALED_VERSION",
    "TRAILER_SIZE",
    "Addressee",
    "ByteSink",
    "ByteSource",
    "ContextMismatch",
    "FramingError",
    "FramingReader",
    "HeaderCheck",
    "RecipientMismatch",
    "SealedDecryptionError",
    "SealedError",
    "SealedFormatError",
    "SealedHeader",
    "SealedWriter",
    "SenderResolver",
    "SignatureError",
    "Signer",
    "UnknownSender",
    "VerifiedSender",
    "blob_context",
    "framed_size",
    "unframe",
]

SEALED_MAGIC: Final = b"SBSEALED"
#: What writers produce.  Readers accept this and :data:`LEGACY_VERSION`.
SEALED_VERSION: Final = 2
LEGACY_VERSION: Final = 1
# The label is the same for both versions: the version byte sits inside the
# signed header, so a version 1 signature can't pass for a version 2 one.
SEALED_SIGNATURE_LABEL: Final = b"sealbox/v1/sealed-signature"
# Format 1 defines no flag: its flags byte must be zero.  Format 2 defines
# bit 0 (CHECKPOINT_FLAG, client_sim.sealed_checkpoint); the rest are reserved.
SEALED_FLAGS: Final = 0
CARD_ID_SIZE: Final = 32
MAX_RECIPIENTS: Final = 1024
#: Longest context, in bytes (a one-byte length).
MAX_CONTEXT: Final = 255
#: Contexts Sealbox itself writes start with this; an app's own contexts
#: must not (see :func:`blob_context`).
RESERVED_CONTEXT_PREFIX: Final = b"sealbox/"
BLOB_CONTEXT_LABEL: Final = b"sealbox/v1/blob-context"
_PREAMBLE_SIZE: Final = len(SEALED_MAGIC) + 1 + 1
_V1_FIXED_SIZE: Final = _PREAMBLE_SIZE + CARD_ID_SIZE + 2
_V2_FIXED_SIZE: Final = _PREAMBLE_SIZE + CARD_ID_SIZE + 8 + 1
_SIGNATURE_SIZE: Final = 64
TRAILER_SIZE: Final = 8 + _SIGNATURE_SIZE
CHUNK_SIZE: Final = 64 * 1024
# 2**63 - 1 ms is far beyond any clock; a u64 with the top bit set is refused
# so that the value is always a valid non-negative signed 64-bit integer too.
_MAX_SEALED_AT: Final = (1 << 63) - 1


def blob_context(blob_id: str) -> bytes:
    """The context a file stored as blob ``blob_id`` is sealed with.

    A device derives the blob id before it seals (from its idempotency key,
    :func:`chalicelib.wire.blobids.derive_blob_id`), so the id is inside the
    signature, and a download checks it against the blob it asked for.

    Raises:
        ValueError: ``blob_id`` is not a blob id.
    """
    from chalicelib.wire.blobids import is_blob_id

    if not is_blob_id(blob_id):
        raise ValueError("not a blob id")
    return BLOB_CONTEXT_LABEL + b"/" + blob_id.encode("ascii")


def _valid_context(context: bytes) -> bool:
    # Printable ASCII without spaces: a context is shown to users and logged
    # by apps, so it can't carry terminal escapes or look like two words.
    return len(context) <= MAX_CONTEXT and all(0x21 <= b <= 0x7E for b in context)


# --- the sender side ------------------------------------------------------------


class Signer(Protocol):
    """What the framing needs from a sender: its card id and its signing key."""

    @property
    def card_id(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


class Addressee(Protocol):
    """A recipient as the header names it: a card id and its identity (a
    :class:`~chalicelib.wire.cards.Card` or a key bundle is one)."""

    @property
    def card_id(self) -> str: ...

    @property
    def identity(self) -> str: ...


class ByteSink(Protocol):
    """Where bytes go (a file, a socket, a hash)."""

    def write(self, data: bytes, /) -> Any: ...


def _recipient_entries(recipients: Iterable[Addressee]) -> list[tuple[bytes, str]]:
    entries: dict[bytes, str] = {}
    for recipient in recipients:
        raw = card_id_from_str(recipient.card_id, field="recipient")
        identity = recipient.identity
        if not is_identity(identity):
            raise ValueError("a recipient identity is not canonical")
        if entries.setdefault(raw, identity) != identity:
            raise ValueError("one recipient card id is named with two identities")
    if not 1 <= len(entries) <= MAX_RECIPIENTS:
        raise ValueError(f"a sealed message binds 1 to {MAX_RECIPIENTS} recipient cards")
    return sorted(entries.items())


def _signed_message(header: bytes, length: int, digest: bytes) -> bytes:
    return lp16(SEALED_SIGNATURE_LABEL) + header + u64(length) + digest


def _encode_header(
    sender_card_id: str,
    sealed_at_ms: int,
    context: bytes,
    entries: list[tuple[bytes, str]],
    checkpoint: str | None = None,
) -> bytes:
    if not _valid_context(context):
        raise ValueError(f"a context is at most {MAX_CONTEXT} printable ASCII bytes, no spaces")
    if not 0 <= sealed_at_ms <= _MAX_SEALED_AT:
        raise ValueError("sealed_at_ms is out of range")
    # Without a checkpoint the header is byte for byte what it was before
    # the flag was defined.
    optional = b"" if checkpoint is None else checkpoint_field(checkpoint)
    return b"".join(
        (
            SEALED_MAGIC,
            u8(SEALED_VERSION),
            u8(SEALED_FLAGS if checkpoint is None else CHECKPOINT_FLAG),
            card_id_from_str(sender_card_id, field="sender"),
            u64(sealed_at_ms),
            u8(len(context)),
            context,
            u16(len(entries)),
            *(raw + u8(len(name)) + name.encode("ascii") for raw, name in entries),
            optional,
        )
    )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SealedWriter:
    """Frame a plaintext stream: header now, plaintext as written, trailer on close.

    Writes go straight through to ``dst`` while a SHA-512 of the plaintext is
    updated, so memory does not depend on the size.  :meth:`close` writes
    the signed trailer; it does not close ``dst``.  Used as a context manager,
    the trailer is written only when the block exits without an exception,
    so an interrupted stream never carries a signature.

    Args:
        dst: where the framed stream goes.
        sender: signs the message (its card id goes into the header).
        recipients: the cards the message is addressed to (card id and
            identity of each; the sender's own card too, to read it back).
        context: what the message is for, bound by the signature; at most
            :data:`MAX_CONTEXT` printable ASCII bytes.  Empty by default.
        sealed_at_ms: the time of sealing in ms since the Unix epoch;
            the device clock when omitted (vectors pass a fixed one).
        checkpoint: the sender's latest accepted transparency-log
            checkpoint (a signed note), carried in the signed header
            (flag bit 0); None: no checkpoint, and the header is as before.

    Raises (from the constructor):
        ValueError: no recipient, more than :data:`MAX_RECIPIENTS`, an
            invalid card id or identity, an invalid context or time, or a
            checkpoint that is not a checkpoint note of at most
            :data:`MAX_CHECKPOINT_NOTE` bytes.
    """

    def __init__(
        self,
        dst: ByteSink,
        *,
        sender: Signer,
        recipients: Iterable[Addressee],
        context: bytes = b"",
        sealed_at_ms: int | None = None,
        checkpoint: str | None = None,
    ) -> None:
        self._header = _encode_header(
            sender.card_id,
            _now_ms() if sealed_at_ms is None else sealed_at_ms,
            context,
            _recipient_entries(recipients),
            checkpoint,
        )
        self._dst = dst
        self._sender = sender
        self._hash = hashlib.sha512()
        self._length = 0
        self._closed = False
        dst.write(self._header)

    @property
    def header_size(self) -> int:
        """Bytes of the header (already written)."""
        return len(self._header)

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


def framed_size(
    plaintext_size: int,
    recipients: Iterable[Addressee],
    *,
    context: bytes = b"",
    checkpoint: str | None = None,
) -> int:
    """Bytes of the framed inner stream of a plaintext of ``plaintext_size``
    sealed to ``recipients`` with ``context`` (and ``checkpoint``) (header +
    plaintext + trailer), known before anything is signed.

    Raises:
        ValueError: as :class:`SealedWriter`, or a negative size.
    """
    if plaintext_size < 0:
        raise ValueError("invalid plaintext size")
    header = _encode_header("A" * 43, 0, context, _recipient_entries(recipients), checkpoint)
    return len(header) + plaintext_size + TRAILER_SIZE


class FramingError(SealedError):
    """The plaintext source delivered more or fewer bytes than announced."""


class FramingReader:
    """:class:`SealedWriter` turned around: read the framed stream of ``source``.

    For uploads whose size must be known up front: :attr:`size` is exact
    before the first read.  The header comes first, then the plaintext as it
    is read from ``source``, then the signed trailer once exactly
    ``plaintext_size`` bytes went through.  Memory is one chunk.  The
    keyword arguments are :class:`SealedWriter`'s.

    Raises (from :meth:`read`):
        FramingError: ``source`` ended early or has more bytes than
            announced; no trailer is ever produced then.
    """

    def __init__(
        self,
        source: ByteSource,
        plaintext_size: int,
        *,
        sender: Signer,
        recipients: Iterable[Addressee],
        context: bytes = b"",
        sealed_at_ms: int | None = None,
        checkpoint: str | None = None,
    ) -> None:
        if plaintext_size < 0:
            raise ValueError("invalid plaintext size")
        self._source = source
        self._left = plaintext_size
        self._buffer = bytearray()
        self._writer = SealedWriter(
            self,
            sender=sender,
            recipients=recipients,
            context=context,
            sealed_at_ms=sealed_at_ms,
            checkpoint=checkpoint,
        )
        self.size = self._writer.header_size + plaintext_size + TRAILER_SIZE
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
        block = self._source.read(min(self._left, CHUNK_SIZE))
        if not block:
            raise FramingError("the source ended before its announced size")
        self._left -= len(block)
        self._writer.write(block)


# --- the recipient side -----------------------------------------------------------


@dataclass(frozen=True)
class SealedHeader:
    """A parsed header, handed to a reader's :data:`HeaderCheck` before any
    plaintext is released (the signature over it is checked at the end).

    ``sealed_at_ms`` and ``context`` are None, and every recipient identity
    is None, in a version 1 (unbound) stream.  ``checkpoint`` is the
    sender's transparency-log checkpoint (a signed note, its shape checked
    but its log signature **not** verified), None when the header has none.
    """

    version: int
    sender: Card
    sealed_at_ms: int | None
    context: bytes | None
    recipients: tuple[tuple[str, str | None], ...]
    checkpoint: str | None = None

    @property
    def recipient_card_ids(self) -> tuple[str, ...]:
        return tuple(card_id for card_id, _ in self.recipients)

    @property
    def bound(self) -> bool:
        """True for a stream that signs its context, time and recipient identities."""
        return self.version >= SEALED_VERSION


HeaderCheck = Callable[[SealedHeader], None]
"""A reader's own check of a parsed header: raises (typically
:class:`ContextMismatch`) to refuse the message before any plaintext is
written; whatever it raises propagates."""


@dataclass(frozen=True)
class VerifiedSender:
    """Who sealed a message, established by a verified signature.

    ``card`` is the sender card named in the header (possibly superseded by
    now); ``header`` is everything else the signature covers.
    """

    card: Card
    header: SealedHeader
    plaintext_length: int

    @property
    def identity(self) -> str:
        return self.card.identity

    @property
    def card_id(self) -> str:
        return self.card.card_id

    @property
    def recipient_card_ids(self) -> tuple[str, ...]:
        return self.header.recipient_card_ids


class ByteSource(Protocol):
    """Where bytes come from (``read(n)``; empty at the end)."""

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


def _read_exact(src: ByteSource, n: int) -> bytes:
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


@dataclass(frozen=True)
class _RawHeader:
    bytes_: bytes
    version: int
    sender_id: str
    sealed_at_ms: int | None
    context: bytes | None
    recipients: tuple[tuple[str, str | None], ...]
    checkpoint: str | None


def _read_header(src: ByteSource) -> _RawHeader:
    """Parse a version 1 or 2 header, applying every format rule."""
    preamble = _read_exact(src, _PREAMBLE_SIZE)
    if preamble[: len(SEALED_MAGIC)] != SEALED_MAGIC:
        raise SealedFormatError("not a Sealbox sealed message")
    version = preamble[len(SEALED_MAGIC)]
    if version not in (LEGACY_VERSION, SEALED_VERSION):
        raise SealedFormatError("unsupported sealed message version")
    flags = preamble[-1]
    if flags & ~(KNOWN_FLAGS if version == SEALED_VERSION else SEALED_FLAGS):
        raise SealedFormatError("unknown sealed message flags")
    parts = [preamble]
    sender_raw = _read_exact(src, CARD_ID_SIZE)
    parts.append(sender_raw)
    sealed_at: int | None = None
    context: bytes | None = None
    if version == SEALED_VERSION:
        fixed = _read_exact(src, 8 + 1)
        sealed_at = int.from_bytes(fixed[:8], "big")
        if sealed_at > _MAX_SEALED_AT:
            raise SealedFormatError("the sealing time is out of range")
        context = _read_exact(src, fixed[8])
        if not _valid_context(context):
            raise SealedFormatError("the context is not printable ASCII")
        parts += [fixed, context]
    count_raw = _read_exact(src, 2)
    parts.append(count_raw)
    count = int.from_bytes(count_raw, "big")
    if not 1 <= count <= MAX_RECIPIENTS:
        raise SealedFormatError("invalid recipient count")
    recipients: list[tuple[bytes, str | None]] = []
    for _ in range(count):
        raw = _read_exact(src, CARD_ID_SIZE)
        parts.append(raw)
        name: str | None = None
        if version == SEALED_VERSION:
            size = _read_exact(src, 1)
            encoded = _read_exact(src, size[0])
            parts += [size, encoded]
            name = encoded.decode("ascii", errors="replace")
            # Canonical identities only: one spelling per identity, and
            # nothing a terminal would interpret when it is shown.
            if not is_identity(name):
                raise SealedFormatError("a recipient identity is not canonical")
        recipients.append((raw, name))
    # Strictly ascending: one canonical header per recipient set, no duplicates.
    if any(a[0] >= b[0] for a, b in itertools.pairwise(recipients)):
        raise SealedFormatError("recipient card ids are not strictly ascending")
    checkpoint: str | None = None
    if flags & CHECKPOINT_FLAG:
        length_raw = _read_exact(src, 2)
        length = int.from_bytes(length_raw, "big")
        # Bounded before it is read: the header is held whole before output.
        if not 1 <= length <= MAX_CHECKPOINT_NOTE:
            raise SealedFormatError("invalid checkpoint length")
        note = _read_exact(src, length)
        try:
            checkpoint = parse_checkpoint_note(note)
        except ValueError as exc:
            raise SealedFormatError("the checkpoint is not a signed checkpoint note") from exc
        parts += [length_raw, note]
    return _RawHeader(
        bytes_=b"".join(parts),
        version=version,
        sender_id=card_id_to_str(sender_raw),
        sealed_at_ms=sealed_at,
        context=context,
        recipients=tuple((card_id_to_str(raw), name) for raw, name in recipients),
        checkpoint=checkpoint,
    )


def unframe(
    src: ByteSource,
    dst: ByteSink,
    *,
    sender_cards: Iterable[Card],
    opener_card_ids: Iterable[str],
    opener_identity: str | None = None,
    resolve_sender: SenderResolver | None = None,
    check: HeaderCheck | None = None,
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
        opener_identity: the opener's identity; in a version 2 header the
            opener's card must be named with it.
        resolve_sender: called with the header's sender card id when it is
            not among ``sender_cards``, after the recipient check passed and
            before any plaintext is written.  The card it returns is used
            only if its id is the one asked for.
        check: the caller's own check of the parsed header (context, sender,
            recipients), called last, before any plaintext is written.

    Returns:
        The verified sender, only after the signature verified.

    Raises:
        SealedFormatError: bad magic, version, flags, time, context,
            recipient list or checkpoint field, or a stream that ends inside
            the header.
        UnknownSender: the sender card is not in ``sender_cards``.
        RecipientMismatch: no opener card is among the bound recipients, or
            the opener's card is named with another identity.
        SignatureError: truncated or missing trailer, trailing data, a length
            mismatch, or a signature that does not verify.
        Whatever ``resolve_sender`` or ``check`` raise.
    """
    cards_by_id = {card.card_id: card for card in sender_cards}
    opener = set(opener_card_ids)
    raw = _read_header(src)

    sender_card = cards_by_id.get(raw.sender_id)
    if sender_card is None and resolve_sender is None:
        raise UnknownSender(raw.sender_id)
    mine = [name for card_id, name in raw.recipients if card_id in opener]
    if not mine:
        raise RecipientMismatch("the message was not sealed to any of the opener's cards")
    if opener_identity is not None and any(n not in (None, opener_identity) for n in mine):
        raise RecipientMismatch("the opener's card is named with another identity")
    if sender_card is None:
        resolved = resolve_sender(raw.sender_id) if resolve_sender is not None else None
        # The card id is a hash of the content: a card whose id differs is
        # another card, whatever the resolver believed.
        if resolved is None or resolved.card_id != raw.sender_id:
            raise UnknownSender(raw.sender_id)
        sender_card = resolved
    # A sender that lists its own card names it with its own identity.
    if any(
        c == sender_card.card_id and n not in (None, sender_card.identity)
        for c, n in raw.recipients
    ):
        raise SealedFormatError("the sender's own card is named with another identity")
    header = SealedHeader(
        version=raw.version,
        sender=sender_card,
        sealed_at_ms=raw.sealed_at_ms,
        context=raw.context,
        recipients=raw.recipients,
        checkpoint=raw.checkpoint,
    )
    if check is not None:
        check(header)

    digest = hashlib.sha512()
    length = 0
    held = bytearray()
    while True:
        chunk = src.read(CHUNK_SIZE)
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
            _signed_message(raw.bytes_, length, digest.digest()),
        )
    except _hazmat.InvalidSignature as exc:
        raise SignatureError("the sender signature does not verify") from exc
    return VerifiedSender(card=sender_card, header=header, plaintext_length=length)
