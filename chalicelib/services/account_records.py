"""Account records and the storage ports the account service needs.

The records are what :mod:`chalicelib.storage.dynamo` stores; the Protocols
are what it implements.  Split from :mod:`chalicelib.services.accounts`
(which re-exports every name) so that module holds the flows alone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class UserRecord:
    identity: str
    login_hash: str = field(repr=False)
    created_at: int
    # Bumped by every login-key change; sessions opened under an older epoch
    # stop working (a password change signs out the other devices).
    session_epoch: int = 0
    # The OPRF key version the login key was derived under; 0: before the
    # OPRF (the login key is Argon2id of the password alone).
    oprf_version: int = 0


@dataclass(frozen=True)
class SessionRecord:
    """One refresh token (stored under its digest): a generation of a family."""

    identity: str
    expires_at: int
    # The user's session_epoch when the session was opened.
    epoch: int = 0
    # The family (one login) this token belongs to, and its place in it.  A
    # token is live only while its generation is the family's.  Sessions
    # stored before rotation existed have no family and are refused.
    family: str = ""
    generation: int = 0


class Revoked(enum.Enum):
    """Why a session family ended (``NO``: it has not)."""

    NO = ""
    LOGOUT = "logout"
    REUSE = "reuse"


@dataclass(frozen=True)
class FamilyRecord:
    """The state of one login's chain of refresh tokens.

    ``generation`` names the one live token; rotating it is a compare-and-
    swap on this record, so of two renewals with the same token one wins.
    """

    identity: str
    generation: int
    expires_at: int
    revoked: Revoked = Revoked.NO
    # When the family last rotated (0: never): the token spent then may be
    # presented again for :data:`REFRESH_RETRY_GRACE` seconds (a lost reply).
    rotated_at: int = 0
    # The generation of the token that last rotation spent (None: stored
    # before it was recorded, read as the generation right before).
    rotated_from: int | None = None


@dataclass(frozen=True)
class AttemptRecord:
    """Consecutive login attempts not yet cleared by a success."""

    attempts: int
    locked_until: int
    expires_at: int


class UserStore(Protocol):
    def create(self, user: UserRecord) -> None:
        """Store ``user``; raise ``UsernameTaken`` if the identity exists."""

    def get(self, identity: str) -> UserRecord | None: ...

    def update_login_hash(self, identity: str, old_hash: str, new_hash: str) -> bool:
        """Replace the hash iff it is still ``old_hash``; False if it changed."""

    def change_login_key(
        self, identity: str, old_hash: str, new_hash: str, oprf_version: int
    ) -> int | None:
        """Replace the hash (and its OPRF version) iff it is still ``old_hash``; bump
        ``session_epoch``.

        Returns the new epoch, or None (nothing changed) if the hash changed.
        """

    def upgrade_login_hash(
        self, identity: str, old_hash: str, new_hash: str, oprf_version: int
    ) -> bool:
        """Replace the hash and its OPRF version iff the hash is still ``old_hash``
        (a migration to a newer derivation); False if it changed."""


class SessionStore(Protocol):
    def open(self, token_hash: str, session: SessionRecord) -> None:
        """Store a new family (generation ``session.generation``) and its first token."""

    def get(self, token_hash: str) -> SessionRecord | None:
        """The stored session, expired or not (the service checks expiry)."""

    def family(self, family: str) -> FamilyRecord | None:
        """The stored family, expired or not (the service checks expiry)."""

    def rotate(
        self,
        family: str,
        generation: int,
        token_hash: str,
        session: SessionRecord,
        at: int,
        spent: int,
    ) -> bool:
        """In one transaction: advance ``family`` from ``generation`` to
        ``session.generation`` (``rotated_at = at``, ``rotated_from =
        spent``: the generation of the token presented) iff it is still at
        ``generation`` and not revoked, and store the new token.  False
        (nothing written) when the family moved or was revoked meanwhile."""

    def revoke(self, family: str, why: Revoked) -> None:
        """Mark the family revoked (idempotent; the first reason is kept)."""


@dataclass(frozen=True)
class DeviceRecord:
    """A device cookie (stored under its digest): whose, and until when."""

    identity: str
    expires_at: int


class DeviceStore(Protocol):
    def create(self, cookie_hash: str, device: DeviceRecord) -> None: ...

    def get(self, cookie_hash: str) -> DeviceRecord | None:
        """The stored cookie, expired or not (the service checks expiry)."""

    def delete(self, cookie_hash: str) -> None:
        """Forget the cookie (idempotent)."""


class StepUpStore(Protocol):
    def create(self, proof_hash: str, identity: str, expires_at: int) -> None: ...

    def consume(self, proof_hash: str, identity: str, now: int) -> bool:
        """Delete the proof iff it exists, is ``identity``'s and unexpired at
        ``now`` (one conditional delete); False otherwise."""

    def mark_card_ended(self, identity: str) -> None:
        """Remember that ``identity`` had a card that ended (idempotent)."""

    def card_ended(self, identity: str) -> bool:
        """Whether :meth:`mark_card_ended` was ever called for ``identity``."""


class AttemptStore(Protocol):
    def get(self, identity: str) -> AttemptRecord | None:
        """The stored record, expired or not (the service checks expiry)."""

    def swap(self, identity: str, expected: AttemptRecord | None, new: AttemptRecord) -> bool:
        """Compare-and-swap: write ``new`` iff the stored record still equals
        ``expected`` (``None``: no record).  False when another attempt won."""
