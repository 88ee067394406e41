"""Parsing key strings and key files, as the age CLI accepts them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from client_sim.age.errors import InvalidKey
from client_sim.age.x25519 import X25519Identity, X25519Recipient

if TYPE_CHECKING:
    from client_sim.age.pq import HybridIdentity, HybridRecipient

__all__ = [
    "parse_identities_file",
    "parse_identity",
    "parse_recipient",
    "parse_recipients_file",
]

#: Key files bigger than this are refused before parsing (age uses 16 MiB).
MAX_KEY_FILE_SIZE = 16 * 1024 * 1024


def parse_recipient(text: str) -> X25519Recipient | HybridRecipient:
    """Parse one recipient: ``age1pq1...`` (hybrid) or ``age1...`` (X25519).

    Raises:
        InvalidKey: not a supported recipient string.
        TypeError: ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise TypeError("a recipient must be a str")
    if text.startswith("age1pq1"):
        # Imported only for a hybrid key: start-up of a plain `sealbox age`.
        from client_sim.age.pq import HybridRecipient

        return HybridRecipient.parse(text)
    if text.startswith("age1"):
        return X25519Recipient.parse(text)
    raise InvalidKey("unknown recipient type (expected age1... or age1pq1...)")


def parse_identity(text: str) -> X25519Identity | HybridIdentity:
    """Parse one identity: ``AGE-SECRET-KEY-PQ-1...`` or ``AGE-SECRET-KEY-1...``.

    Raises:
        InvalidKey: not a supported identity string (the message never
            repeats the string).
        TypeError: ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise TypeError("an identity must be a str")
    if text.startswith("AGE-SECRET-KEY-PQ-1"):
        from client_sim.age.pq import HybridIdentity  # only for a hybrid key (start-up)

        return HybridIdentity.parse(text)
    if text.startswith("AGE-SECRET-KEY-1"):
        return X25519Identity.parse(text)
    raise InvalidKey(
        "unknown identity type (expected AGE-SECRET-KEY-1... or AGE-SECRET-KEY-PQ-1...)"
    )


def _key_lines(text: str) -> list[tuple[int, str]]:
    if not isinstance(text, str):
        raise TypeError("key files are parsed from str")
    if len(text) > MAX_KEY_FILE_SIZE:
        raise InvalidKey("key file is too large")
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        # Empty lines and '#' comments are skipped, as in age's key files.
        if line and not line.startswith("#"):
            lines.append((number, line))
    return lines


def parse_identities_file(text: str) -> list[X25519Identity | HybridIdentity]:
    """Parse an identity file (age-keygen's output format).

    One identity per line; empty lines and lines starting with ``#`` are
    ignored.

    Raises:
        InvalidKey: a line is not an identity (the message gives its line
            number, never its content), or there is no identity at all.
    """
    identities = []
    for number, line in _key_lines(text):
        try:
            identities.append(parse_identity(line))
        except InvalidKey:
            raise InvalidKey(f"malformed identity at line {number}") from None
    if not identities:
        raise InvalidKey("no identities found")
    return identities


def parse_recipients_file(text: str) -> list[X25519Recipient | HybridRecipient]:
    """Parse a recipients file (``-R``): one recipient per line, empty lines
    and ``#`` comments ignored.

    Raises:
        InvalidKey: a line is not a recipient, or there is none at all.
    """
    recipients = []
    for number, line in _key_lines(text):
        try:
            recipients.append(parse_recipient(line))
        except InvalidKey:
            raise InvalidKey(f"malformed recipient at line {number}") from None
    if not recipients:
        raise InvalidKey("no recipients found")
    return recipients
