"""The age error tree.

* :class:`AgeError` is the base of everything this package raises on purpose.
* :class:`DecryptionError` is the one opaque error for a file that can't be
  decrypted: a malformed header, a bad stanza, a wrong MAC, a damaged or
  truncated payload, bad armor.  Its message is the same generic text in every
  case, so an attacker feeding modified files learns nothing about which
  check failed, and callers have exactly one thing to catch.
* :class:`NoIdentityMatch` (a :class:`DecryptionError`) says only that none
  of the given identities can open any stanza: the usual "wrong key" case,
  which a user interface wants to tell apart.
* :class:`InvalidKey` is raised when parsing a key string; it is also a
  :class:`ValueError`, like every other bad argument.

Programmer mistakes (no recipients, wrong argument types, mixing incompatible
recipients) raise :class:`ValueError` or :class:`TypeError`.
"""

from __future__ import annotations

__all__ = ["AgeError", "DecryptionError", "InvalidKey", "NoIdentityMatch"]


class AgeError(Exception):
    """Base of every error this package raises deliberately."""


class DecryptionError(AgeError):
    """The file can't be decrypted.  Deliberately says nothing more."""

    default_message = "age: decryption failed: the file is damaged, altered, or not an age file"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)


class NoIdentityMatch(DecryptionError):
    """None of the identities could unwrap any recipient stanza."""

    default_message = "age: no identity matched any of the recipients"


class InvalidKey(AgeError, ValueError):
    """A recipient or identity string is malformed (its message never echoes
    the string, which may be a secret key)."""
