"""Sender-authenticated encryption: sign, then encrypt with age.

age alone proves nothing about who wrote a file: anyone with a recipient's
public key can encrypt to it.  A *sealed* message adds the sender's Ed25519
signature inside the age payload, so only the recipients learn (and can
check) who sent it, and the storage server sees a plain age file.

The inner stream (what a plain ``age -d`` prints) is, in version 2::

    header    = "SBSEALED" || version (2) || flags || sender card id (32)
                || sealed_at (u64, ms since the epoch) || lp8(context)
                || n (u16) || n x (recipient card id (32) || lp8(identity)), ascending by id
                [|| lp16(log checkpoint note), when flag bit 0 is set]
    body      = the plaintext, unchanged
    trailer   = plaintext length (u64) || Ed25519 signature (64)
    signature = Ed25519(lp16("sealbox/v1/sealed-signature") || header
                        || plaintext length (u64) || SHA-512(plaintext))

The signed header binds the sender, every recipient (card and identity),
the time of sealing and a *context*: what the message is for, such as the
blob id it was sealed for (:func:`blob_context`).  A reader hands the parsed
header to a check of its own before any plaintext is released, so a server
that serves one blob's object under another blob's id, or under another
reader set, is caught.  A sender that pins the transparency log carries
its latest checkpoint in the header, so readers compare the log they were
shown with the sender's (:mod:`client_sim.sealed_checkpoint`).  Version 1
streams (no time, no context, card ids only) are still read and reported
as unbound.

docs/spec/sealed.md has the byte-by-byte layout and the MUST-reject rules.

Two layers, kept apart:

* the framing codec (:class:`SealedWriter`, :func:`unframe`, in
  :mod:`client_sim.sealed_framing`, re-exported here) works on plain
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
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, cast

from chalicelib.wire.cards import Card
from client_sim import age
from client_sim.age.errors import AgeError
from client_sim.files import atomic_output
from client_sim.identity import KeyBundle, age_identities_for, age_recipients_for
from client_sim.sealed_framing import (
    BLOB_CONTEXT_LABEL,
    CHECKPOINT_FLAG,
    CHUNK_SIZE,
    MAX_CHECKPOINT_NOTE,
    MAX_CONTEXT,
    MAX_RECIPIENTS,
    RESERVED_CONTEXT_PREFIX,
    SEALED_MAGIC,
    SEALED_SIGNATURE_LABEL,
    SEALED_VERSION,
    TRAILER_SIZE,
    Addressee,
    ByteSink,
    ByteSource,
    ContextMismatch,
    FramingError,
    FramingReader,
    HeaderCheck,
    RecipientMismatch,
    SealedDecryptionError,
    SealedError,
    SealedFormatError,
    SealedHeader,
    SealedWriter,
    SenderResolver,
    SignatureError,
    Signer,
    UnknownSender,
    VerifiedSender,
    blob_context,
    framed_size,
    unframe,
)

__all__ = [
    "BLOB_CONTEXT_LABEL",
    "CHECKPOINT_FLAG",
    "MAX_CHECKPOINT_NOTE",
    "MAX_CONTEXT",
    "MAX_RECIPIENTS",
    "RESERVED_CONTEXT_PREFIX",
    "SEALED_MAGIC",
    "SEALED_SIGNATURE_LABEL",
    "SEALED_VERSION",
    "TRAILER_SIZE",
    "Addressee",
    "ContextMismatch",
    "FramingError",
    "FramingReader",
    "HeaderCheck",
    "Opened",
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
    "open_sealed",
    "open_sealed_as",
    "open_sealed_bytes",
    "open_sealed_to_path",
    "seal",
    "seal_bytes",
    "unframe",
]

# --- composition with age -----------------------------------------------------------


def seal(
    src: ByteSource,
    dst: ByteSink,
    *,
    sender: KeyBundle,
    recipients: Sequence[Card] | Sequence[Addressee],
    context: bytes = b"",
    sealed_at_ms: int | None = None,
    age_recipients: Sequence[age.Recipient] | None = None,
    checkpoint: str | None = None,
) -> None:
    """Sign ``src`` as ``sender`` and age-encrypt the framed stream to ``recipients``.

    ``age_recipients``, when given, are what the age layer encrypts to
    instead of the recipient cards' keys: group content names the epoch's
    address as its one recipient and encrypts to the epoch's age key
    (docs/spec/groups.md).  ``checkpoint``, when given, is the sender's
    latest transparency-log checkpoint, carried in the signed header.

    Every recipient card (id and identity), the ``context`` and the time of
    sealing are bound in the signed header; include the sender's own card in
    ``recipients`` to be able to read the message back.  The age recipients
    are post-quantum when every card has a PQ key, X25519 otherwise (see
    :func:`client_sim.identity.age_recipients_for`).

    Raises:
        ValueError: no recipients, more than :data:`MAX_RECIPIENTS`, an
            invalid context or checkpoint (see :class:`SealedWriter`).
    """
    # Validate before anything is written.
    framed_size(0, recipients, context=context, checkpoint=checkpoint)
    if age_recipients is None:
        age_recipients = age_recipients_for(cast(Sequence[Card], recipients))
    with (
        age.encrypt_writer(cast(BinaryIO, dst), age_recipients) as encrypted,
        SealedWriter(
            encrypted,
            sender=sender,
            recipients=recipients,
            context=context,
            sealed_at_ms=sealed_at_ms,
            checkpoint=checkpoint,
        ) as framed,
    ):
        while chunk := src.read(CHUNK_SIZE):
            framed.write(chunk)


def _bundles(keys: KeyBundle | Iterable[KeyBundle]) -> list[KeyBundle]:
    bundles = [keys] if isinstance(keys, KeyBundle) else list(keys)
    if not bundles:
        raise ValueError("at least one key bundle is needed to open a message")
    return bundles


def open_sealed(
    src: ByteSource,
    dst: ByteSink,
    keys: KeyBundle | Iterable[KeyBundle],
    sender_cards: Iterable[Card],
    *,
    resolve_sender: SenderResolver | None = None,
    check: HeaderCheck | None = None,
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
        check: the caller's check of the parsed header (see :func:`unframe`).

    Returns:
        The verified sender, only once the whole stream verified.

    Raises:
        SealedDecryptionError: the age layer failed (no matching identity,
            tampered ciphertext, truncated file).
        SealedError: any framing or signature failure (see :func:`unframe`).
    """
    bundles = _bundles(keys)
    return open_sealed_as(
        src,
        dst,
        identities=age_identities_for(bundles),
        opener_card_ids=[bundle.card_id for bundle in bundles],
        opener_identity=bundles[0].identity,
        sender_cards=sender_cards,
        resolve_sender=resolve_sender,
        check=check,
    )


def open_sealed_as(
    src: ByteSource,
    dst: ByteSink,
    *,
    identities: Sequence[age.Identity],
    opener_card_ids: Iterable[str],
    opener_identity: str,
    sender_cards: Iterable[Card],
    resolve_sender: SenderResolver | None = None,
    check: HeaderCheck | None = None,
) -> VerifiedSender:
    """:func:`open_sealed` for an opener that is not a card: age ``identities``
    decrypt, and the sender must have addressed ``opener_card_ids`` under
    ``opener_identity`` (a group epoch's key id and address).

    Raises:
        As :func:`open_sealed`.
    """
    age_error = AgeError
    try:
        reader = age.decrypt_reader(src, list(identities))
        with contextlib.closing(reader) if hasattr(reader, "close") else contextlib.nullcontext():
            return unframe(
                reader,
                dst,
                sender_cards=sender_cards,
                opener_card_ids=opener_card_ids,
                opener_identity=opener_identity,
                resolve_sender=resolve_sender,
                check=check,
            )
    except age_error as exc:
        raise SealedDecryptionError("the message could not be decrypted") from exc


def open_sealed_to_path(
    src: ByteSource,
    path: str | os.PathLike[str],
    keys: KeyBundle | Iterable[KeyBundle],
    sender_cards: Iterable[Card],
    *,
    resolve_sender: SenderResolver | None = None,
    check: HeaderCheck | None = None,
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
        sender = open_sealed(
            src, out, keys, sender_cards, resolve_sender=resolve_sender, check=check
        )
    return sender


@dataclass(frozen=True, repr=False)
class Opened:
    """A verified plaintext and its sender (from :func:`open_sealed_bytes`)."""

    plaintext: bytes
    sender: VerifiedSender

    def __repr__(self) -> str:
        # User plaintext never goes into logs or tracebacks through a repr.
        return f"Opened(sender={self.sender.card_id!r}, plaintext_length={len(self.plaintext)})"


def seal_bytes(
    data: bytes,
    *,
    sender: KeyBundle,
    recipients: Sequence[Card],
    context: bytes = b"",
    sealed_at_ms: int | None = None,
    checkpoint: str | None = None,
) -> bytes:
    """:func:`seal` for a message held in memory."""
    out = io.BytesIO()
    seal(
        io.BytesIO(data),
        out,
        sender=sender,
        recipients=recipients,
        context=context,
        sealed_at_ms=sealed_at_ms,
        checkpoint=checkpoint,
    )
    return out.getvalue()


def open_sealed_bytes(
    data: bytes,
    keys: KeyBundle | Iterable[KeyBundle],
    sender_cards: Iterable[Card],
    *,
    resolve_sender: SenderResolver | None = None,
    check: HeaderCheck | None = None,
) -> Opened:
    """:func:`open_sealed` for a message held in memory.

    The plaintext is returned only after the signature verified; nothing
    unverified escapes.
    """
    out = io.BytesIO()
    sender = open_sealed(
        io.BytesIO(data), out, keys, sender_cards, resolve_sender=resolve_sender, check=check
    )
    return Opened(plaintext=out.getvalue(), sender=sender)
