"""The sealed-message errors (docs/spec/sealed.md's MUST-reject table).

One tree, :class:`SealedError`, whose subclasses say which check failed;
:mod:`client_sim.sealed_framing` and :mod:`client_sim.sealed` raise and
re-export them.
"""

from __future__ import annotations

__all__ = [
    "ContextMismatch",
    "RecipientMismatch",
    "SealedDecryptionError",
    "SealedError",
    "SealedFormatError",
    "SignatureError",
    "UnknownSender",
]


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
    it re-encrypted the signed inner stream to a new recipient.  Also raised
    when the header pairs the opener's card with another identity.
    """


class ContextMismatch(SealedError):
    """The message was sealed for another context than the one it is read in.

    Raised by a reader's header check (:data:`HeaderCheck`), before any
    plaintext is written: for example a blob whose object was sealed for
    another blob id, by another sender than the blob's owner, or for another
    set of readers than the blob record names.  ``reason`` says which
    (``"context"``, ``"sender"``, ``"recipients"``, ``"unbound"``).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SignatureError(SealedError):
    """The trailer is missing, truncated, followed by data, or does not verify."""


class SealedDecryptionError(SealedError):
    """The age layer could not decrypt the message (see ``__cause__``)."""
