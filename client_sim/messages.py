"""Sender-signed data for one device: whom to seal to, and who sealed what it opens.

The sealed format (:mod:`client_sim.sealed`) signs the plaintext with the
sender's card key inside the age payload.  This object puts it to work for a
device: it turns identities into verified recipient cards through the card
directory, finds the card of whoever signed a message (local keys first,
then the directory, which keeps superseded and revoked cards, so data sealed
before a rotation still verifies), checks an expected sender, and reports
every failure to open or verify as one :class:`~client_sim.errors.DecryptionFailed`.

It also speaks for the *context* a message is sealed in (what it is for,
signed with it): an app's own string for :meth:`Device.encrypt`, or the
blob id for a stored file.  An opener that expects a context gets
:class:`~client_sim.errors.ContextMismatch` for any other, before any
plaintext is released.

With the transparency log pinned, it also gossips: every message it seals
carries the device's latest accepted log checkpoint in the signed header,
and every message it opens has the sender's checkpoint compared with the
device's own (:meth:`~client_sim.transparency.LogMonitor.compare`) before
any plaintext is released, so a log that shows two people two different
trees is caught by the first message between them
(:class:`~client_sim.errors.SplitView`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from chalicelib.wire.cards import Card
from chalicelib.wire.identity import InvalidIdentity, normalize_identity
from client_sim import sealed
from client_sim.directory import CardDirectory
from client_sim.errors import (
    ContextMismatch,
    DecryptionFailed,
    InvalidInput,
    RetiredKeyUsed,
    SenderMismatch,
)
from client_sim.group_chain import GroupChain, open_group_content
from client_sim.identity import KeyBundle
from client_sim.sealed import (
    MAX_CHECKPOINT_NOTE,
    MAX_RECIPIENTS,
    HeaderCheck,
    SealedError,
    SealedHeader,
    UnknownSender,
    VerifiedSender,
    open_sealed,
    open_sealed_bytes,
    open_sealed_to_path,
    seal,
)
from client_sim.transparency import LogMonitor

__all__ = ["Decrypted", "Messages", "Sender", "app_context", "canonical_identity", "expect_context"]


@dataclass(frozen=True)
class Sender:
    """Who signed decrypted data, and what they signed with it.

    ``identity`` is the identity named in the sender's self-signed card (the
    name to show).  ``card_status`` is what the directory says of that card
    now: ``active``, ``superseded`` (its owner rotated) or ``revoked`` (its
    owner disowned the key), with ``status_changed_at`` (the directory's
    clock, seconds) for the last two; ``revoked`` is the same as
    ``card_status == "revoked"``.  Data sealed with a card after it stopped
    being active is refused (:data:`RETIRED_KEY_SKEW`), so what verifies
    under a retired card was sealed while it was current.
    ``sealed_at_ms`` (the sender's clock, ms since the epoch), ``context``
    and ``recipients`` (the identities the sender addressed, itself
    included) are signed by the sender; all three are None for data in the
    legacy format 1, which signs none of them.
    """

    identity: str
    card_id: str
    revoked: bool = False
    sealed_at_ms: int | None = None
    context: str | None = None
    recipients: tuple[str, ...] | None = None
    card_status: str = "active"
    status_changed_at: int | None = None


@dataclass(frozen=True, repr=False)
class Decrypted:
    plaintext: bytes
    sender: Sender

    def __repr__(self) -> str:
        # Plaintext never reaches a log or a traceback through a repr.
        return f"Decrypted(sender={self.sender!r}, plaintext_length={len(self.plaintext)})"


def canonical_identity(name: object) -> str:
    """``name`` as a canonical identity.

    Raises:
        InvalidInput: it is not one (DESIGN §3's rules).
    """
    try:
        return normalize_identity(name)
    except InvalidIdentity as exc:
        raise InvalidInput(str(exc)) from exc


#: How far a sender's clock may run ahead of the directory's when a card is
#: retired: data sealed with a superseded or revoked card more than this
#: after the directory retired it is refused as :class:`RetiredKeyUsed`.
RETIRED_KEY_SKEW = 600


def app_context(value: object) -> bytes:
    """An app's context string as the bytes the sealed header carries.

    Raises:
        InvalidInput: not 1-255 printable ASCII characters without spaces,
            or in the ``sealbox/`` namespace Sealbox keeps for its own.
    """
    if not isinstance(value, str) or not value.isascii():
        raise InvalidInput("a context is printable ASCII")
    raw = value.encode("ascii")
    if not raw or len(raw) > sealed.MAX_CONTEXT or not all(0x21 <= b <= 0x7E for b in raw):
        raise InvalidInput(f"a context is 1-{sealed.MAX_CONTEXT} printable characters, no spaces")
    if raw.startswith(sealed.RESERVED_CONTEXT_PREFIX):
        raise InvalidInput("contexts starting with 'sealbox/' are Sealbox's own")
    return raw


def expect_context(context: bytes) -> HeaderCheck:
    """A header check that accepts only data sealed with ``context``."""

    def check(header: SealedHeader) -> None:
        if header.context is None:
            raise sealed.ContextMismatch("unbound", "the data is not bound to any context")
        if header.context != context:
            raise sealed.ContextMismatch("context", "the data was sealed for another context")

    return check


def _all_of(*checks: HeaderCheck | None) -> HeaderCheck:
    chosen = [check for check in checks if check is not None]

    def every(header: SealedHeader) -> None:
        for check in chosen:
            check(header)

    return every


class Messages:
    """Seals to verified cards and opens with sender verification, for one device.

    ``log``: the device's transparency-log monitor when the app pins a log
    key; then sealed messages carry and check checkpoints (see the module
    docstring).  None: nothing is carried, and a carried checkpoint is
    ignored (its shape is still checked by the format).
    """

    def __init__(self, directory: CardDirectory, log: LogMonitor | None = None) -> None:
        self._directory = directory
        self._log = log

    def checkpoint(self) -> str | None:
        """The log checkpoint sealed messages carry: this device's latest
        accepted one, or None (no log pinned, none accepted yet).

        No request is made: it is what the device already verified.
        """
        if self._log is None:
            return None
        latest = self._log.latest()
        if latest is None or len(latest.note.encode("utf-8")) > MAX_CHECKPOINT_NOTE:
            # A Sealbox log's checkpoints always fit; a note that doesn't is
            # left out rather than failing the message.
            return None
        return latest.note

    def recipients(self, current: KeyBundle, to: Iterable[str]) -> list[Card]:
        """This device's card, then the verified active cards of ``to`` (self left out).

        Raises:
            TypeError: ``to`` is a single string.
            InvalidInput: an invalid identity, or too many recipients.
            UsersNotFound, CardVerificationFailed: as from the directory.
        """
        if isinstance(to, str):
            # A lone string would be read as its characters.
            raise TypeError("to must be a collection of identities, not a string")
        cards = self._directory.find(canonical_identity(name) for name in to)
        recipients = [current.card] + [
            card for card in cards.values() if card.card_id != current.card_id
        ]
        if len(recipients) > MAX_RECIPIENTS:
            raise InvalidInput(f"at most {MAX_RECIPIENTS - 1} recipients")
        return recipients

    def seal(
        self,
        src: Any,
        dst: Any,
        current: KeyBundle,
        recipients: Sequence[Card],
        context: bytes = b"",
    ) -> None:
        """Sign ``src`` as ``current`` with ``context`` (and this device's log
        checkpoint, :meth:`checkpoint`) and encrypt it to ``recipients`` into ``dst``."""
        seal(
            src,
            dst,
            sender=current,
            recipients=recipients,
            context=context,
            checkpoint=self.checkpoint(),
        )

    def seal_to(
        self, src: Any, dst: Any, current: KeyBundle, to: Iterable[str], context: str | None
    ) -> None:
        """Seal ``src`` as ``current`` for ``to`` and itself, with an app's
        ``context`` (see :func:`app_context`) or none.

        Raises:
            InvalidInput: an invalid identity or context, too many recipients.
            UsersNotFound, CardVerificationFailed: as from the directory.
        """
        bound = b"" if context is None else app_context(context)
        self.seal(src, dst, current, self.recipients(current, to), bound)

    def open_bytes(
        self,
        data: bytes,
        bundles: Sequence[KeyBundle],
        expected: str | None,
        *,
        context: str | None = None,
        check: HeaderCheck | None = None,
    ) -> Decrypted:
        """Decrypt and verify data held in memory; nothing unverified is returned.

        ``context`` is an app's expected context; ``check`` sees the parsed
        header before anything is released.  See :meth:`open_stream`.
        """
        statuses: dict[str, tuple[str, int | None]] = {}
        check = self._checks(bundles, context, check, statuses)
        resolver = self._resolver(bundles, expected)
        try:
            opened = open_sealed_bytes(data, bundles, [], resolve_sender=resolver, check=check)
        except SealedError as exc:
            raise _decryption_failed(exc) from exc
        return Decrypted(plaintext=opened.plaintext, sender=self._sender(opened.sender, statuses))

    def open_stream(
        self,
        src: Any,
        dst: IO[bytes] | str | os.PathLike[str],
        bundles: Sequence[KeyBundle],
        expected: str | None,
        *,
        context: str | None = None,
        check: HeaderCheck | None = None,
    ) -> Sender:
        """Decrypt ``src`` into ``dst`` and verify who signed it.

        ``dst`` as a path appears only once everything verified; a stream
        receives plaintext before the signature at its end is checked, and
        the caller MUST discard it on any exception.  ``check`` sees the
        parsed header before any plaintext is written; ``context`` (an app's
        context string) adds :func:`expect_context`.

        Raises:
            DecryptionFailed: not for these keys, tampered, or unverifiable.
            SenderMismatch: signed by someone other than ``expected``.
            ContextMismatch: another context than ``context``, or refused by
                ``check``.
            InvalidInput: ``context`` is not a valid context.
        """
        statuses: dict[str, tuple[str, int | None]] = {}
        check = self._checks(bundles, context, check, statuses)
        resolver = self._resolver(bundles, expected)
        options: dict[str, Any] = {"resolve_sender": resolver, "check": check}
        try:
            if isinstance(dst, str | os.PathLike):
                verified = open_sealed_to_path(src, dst, bundles, [], **options)
            else:
                verified = open_sealed(src, dst, bundles, [], **options)
        except SealedError as exc:
            raise _decryption_failed(exc) from exc
        return self._sender(verified, statuses)

    def open_group(
        self, src: Any, dst: Any, chain: GroupChain, *, check: HeaderCheck | None = None
    ) -> Sender:
        """Decrypt group content with ``chain``'s epoch secrets and verify its sender
        (:func:`client_sim.group_chain.open_group_content`), with the same
        sender-card status checks as any other data.

        Raises:
            DecryptionFailed, ContextMismatch, RetiredKeyUsed: as :meth:`open_stream`.
        """
        statuses: dict[str, tuple[str, int | None]] = {}
        checks = self._checks([], None, check, statuses)
        try:
            verified = open_group_content(
                src, dst, chain=chain, resolve_sender=self._resolver([], None), check=checks
            )
        except SealedError as exc:
            raise _decryption_failed(exc) from exc
        return self._sender(verified, statuses)

    def card(self, card_id: str) -> Card | None:
        """A verified card by id, whatever its status; None if the directory has none."""
        return self._directory.card_by_id(card_id)

    def _resolver(
        self, bundles: Sequence[KeyBundle], expected: str | None
    ) -> Callable[[str], Card | None]:
        wanted = canonical_identity(expected) if expected is not None else None
        own = {bundle.card_id: bundle.card for bundle in bundles}

        def resolve(card_id: str) -> Card | None:
            card = own.get(card_id) or self._directory.card_by_id(card_id)
            # The name a user sees is the one the sender's own key signed
            # into the card; it must be the one the caller expects.
            if card is not None and wanted is not None and card.identity != wanted:
                raise SenderMismatch(f"signed by {card.identity}, not by {wanted}")
            return card

        return resolve

    def _checks(
        self,
        bundles: Sequence[KeyBundle],
        context: str | None,
        check: HeaderCheck | None,
        statuses: dict[str, tuple[str, int | None]],
    ) -> HeaderCheck:
        """Every check of a header before plaintext is released: the sender's
        log checkpoint against ours, the app's context, the caller's own
        check, and the sender card's status."""
        expected = None if context is None else expect_context(app_context(context))
        current = bundles[0].card_id if bundles else None

        def retired(header: SealedHeader) -> None:
            card_id = header.sender.card_id
            if card_id == current:
                status: tuple[str, int | None] = ("active", None)
            else:
                # Cached: a retired card's status never changes back, and an
                # active one is asked again at most every cache lifetime.
                status = self._directory.status_of(card_id) or ("active", None)
            statuses[card_id] = status
            state, changed_at = status
            sealed_at = header.sealed_at_ms
            if state == "active" or changed_at is None or sealed_at is None:
                return
            if sealed_at > (changed_at + RETIRED_KEY_SKEW) * 1000:
                # Whoever holds a retired key (a thief, a lost phone) can't
                # pass new data off as sent while it was current -- unless
                # they backdate it, which the signed time can't rule out.
                raise RetiredKeyUsed(card_id, state, changed_at, sealed_at)

        return _all_of(self._gossip, expected, check, retired)

    def _gossip(self, header: SealedHeader) -> None:
        # First, so that a fork is reported whatever else is wrong with the
        # message: the note is signed by the log, so it is evidence on its
        # own, even before the sender's signature (at the end) is checked.
        # SplitView and LogVerificationFailed are DeviceErrors, not
        # SealedErrors: they propagate as themselves.
        if self._log is not None and header.checkpoint is not None:
            self._log.compare(header.checkpoint)

    def _sender(
        self, verified: VerifiedSender, statuses: dict[str, tuple[str, int | None]]
    ) -> Sender:
        card = verified.card
        header = verified.header
        names = tuple(sorted({name for _, name in header.recipients if name is not None}))
        state, changed_at = statuses.get(card.card_id, ("active", None))
        return Sender(
            identity=card.identity,
            card_id=card.card_id,
            revoked=state == "revoked",
            sealed_at_ms=header.sealed_at_ms,
            # Printable ASCII by the format's rules, so safe to show.
            context=None if header.context is None else header.context.decode("ascii"),
            recipients=names if header.bound else None,
            card_status=state,
            status_changed_at=changed_at,
        )


def _decryption_failed(exc: SealedError) -> DecryptionFailed:
    if isinstance(exc, sealed.ContextMismatch):
        return ContextMismatch(exc.reason, str(exc))
    if isinstance(exc, UnknownSender):
        return DecryptionFailed("the sender's card is unknown to the directory")
    return DecryptionFailed(f"the data could not be decrypted or verified ({type(exc).__name__})")
