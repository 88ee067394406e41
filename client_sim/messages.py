"""Sender-signed data for one device: whom to seal to, and who sealed what it opens.

The sealed format (:mod:`client_sim.sealed`) signs the plaintext with the
sender's card key inside the age payload.  This object puts it to work for a
device: it turns identities into verified recipient cards through the card
directory, finds the card of whoever signed a message (local keys first,
then the directory, which keeps superseded and revoked cards, so data sealed
before a rotation still verifies), checks an expected sender, and reports
every failure to open or verify as one :class:`~client_sim.errors.DecryptionFailed`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from chalicelib.wire.cards import Card
from chalicelib.wire.identity import InvalidIdentity, normalize_identity
from client_sim.directory import CardDirectory
from client_sim.errors import DecryptionFailed, InvalidInput, SenderMismatch
from client_sim.identity import KeyBundle
from client_sim.sealed import (
    MAX_RECIPIENTS,
    SealedError,
    UnknownSender,
    VerifiedSender,
    open_sealed,
    open_sealed_bytes,
    open_sealed_to_path,
    seal,
)

__all__ = ["Decrypted", "Messages", "Sender", "canonical_identity"]


@dataclass(frozen=True)
class Sender:
    """Who signed decrypted data, established by a verified signature.

    ``identity`` is the identity named in the sender's self-signed card (the
    name to show).  ``revoked`` is True when the directory reported that card
    revoked: the data verifies, but its author has since disowned the key.
    """

    identity: str
    card_id: str
    revoked: bool = False


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


class Messages:
    """Seals to verified cards and opens with sender verification, for one device."""

    def __init__(self, directory: CardDirectory) -> None:
        self._directory = directory

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

    def seal(self, src: Any, dst: Any, current: KeyBundle, recipients: Sequence[Card]) -> None:
        """Sign ``src`` as ``current`` and encrypt it to ``recipients`` into ``dst``."""
        seal(src, dst, sender=current, recipients=recipients)

    def open_bytes(
        self, data: bytes, bundles: Sequence[KeyBundle], expected: str | None
    ) -> Decrypted:
        """Decrypt and verify data held in memory; nothing unverified is returned."""
        resolver = self._resolver(bundles, expected)
        try:
            opened = open_sealed_bytes(data, bundles, [], resolve_sender=resolver)
        except SealedError as exc:
            raise _decryption_failed(exc) from exc
        return Decrypted(plaintext=opened.plaintext, sender=self._sender(opened.sender))

    def open_stream(
        self,
        src: Any,
        dst: IO[bytes] | str | os.PathLike[str],
        bundles: Sequence[KeyBundle],
        expected: str | None,
    ) -> Sender:
        """Decrypt ``src`` into ``dst`` and verify who signed it.

        ``dst`` as a path appears only once everything verified; a stream
        receives plaintext before the signature at its end is checked, and
        the caller MUST discard it on any exception.

        Raises:
            DecryptionFailed: not for these keys, tampered, or unverifiable.
            SenderMismatch: signed by someone other than ``expected``.
        """
        resolver = self._resolver(bundles, expected)
        try:
            if isinstance(dst, str | os.PathLike):
                verified = open_sealed_to_path(src, dst, bundles, [], resolve_sender=resolver)
            else:
                verified = open_sealed(src, dst, bundles, [], resolve_sender=resolver)
        except SealedError as exc:
            raise _decryption_failed(exc) from exc
        return self._sender(verified)

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

    def _sender(self, verified: VerifiedSender) -> Sender:
        card = verified.card
        return Sender(
            identity=card.identity,
            card_id=card.card_id,
            revoked=self._directory.is_revoked(card.card_id),
        )


def _decryption_failed(exc: SealedError) -> DecryptionFailed:
    if isinstance(exc, UnknownSender):
        return DecryptionFailed("the sender's card is unknown to the directory")
    return DecryptionFailed(f"the data could not be decrypted or verified ({type(exc).__name__})")
