"""Key backups: device-sealed blobs stored per identity and name, compare-and-swap.

A device seals its private key bundles under a key derived from the password
(``client_sim.backup``); this service stores the result and hands it back to
the same identity.  It can't open a backup and doesn't try: it checks only
the cleartext envelope (:func:`chalicelib.wire.backup.check_backup_envelope`)
and the size.

Every write is a compare-and-swap on ``version``, a counter the store keeps
per (identity, name):

* ``PUT`` without a version creates; it fails if the backup exists;
* ``PUT`` with version N replaces iff the stored version is N;
* ``DELETE`` resets, optionally only if the stored version is N.

Lifecycle (one transition function, :func:`backup_transition`)::

    (none) --create--> PRESENT --replace--> PRESENT
                          |  ^
                   delete |  | create
                          v  |
                         DELETED

A delete leaves a DELETED tombstone that keeps the version counter, and
every write bumps it, so versions never repeat for one name: a device that
read version N before a reset can never overwrite a backup created after it
(no ABA).  Tombstones read as absent.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from chalicelib.errors import (
    InvalidBackup,
    InvalidBackupKdf,
    InvalidBackupName,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    VersionConflict,
)
from chalicelib.services.lifecycle import InvalidTransition, Lifecycle
from chalicelib.wire.b64 import b64url_decode
from chalicelib.wire.backup import KdfOutOfRange, NotABackup, check_backup_envelope

# 256 bundles' worth of history would be ~400 KiB, DynamoDB's item limit;
# 256 KiB holds a current key and well over a hundred rotations.  The device
# refuses to seal more than this, so the limit is never a surprise.
MAX_BACKUP_BYTES: Final = 256 * 1024
# JavaScript-safe integers, like every number in the API.
MAX_VERSION: Final = 2**53 - 1
_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


# --- lifecycle ----------------------------------------------------------------


class BackupState(enum.Enum):
    PRESENT = "present"
    DELETED = "deleted"


class BackupEvent(enum.Enum):
    CREATE = "create"
    REPLACE = "replace"
    DELETE = "delete"


class InvalidBackupTransition(InvalidTransition):
    """``event`` is not allowed from the backup's current state.

    A subclass of the shared :class:`~chalicelib.services.lifecycle.InvalidTransition`
    (still a ``ValueError``), kept so its name and every ``except`` written
    against it stay as they were.
    """


BACKUP_LIFECYCLE: Final = Lifecycle[BackupState, BackupEvent](
    {
        (None, BackupEvent.CREATE): BackupState.PRESENT,
        (BackupState.DELETED, BackupEvent.CREATE): BackupState.PRESENT,
        (BackupState.PRESENT, BackupEvent.REPLACE): BackupState.PRESENT,
        (BackupState.PRESENT, BackupEvent.DELETE): BackupState.DELETED,
    },
    error=InvalidBackupTransition,
)


def backup_transition(state: BackupState | None, event: BackupEvent) -> BackupState:
    """The state after ``event`` happens to a backup in ``state`` (``None``: never written).

    Raises:
        InvalidBackupTransition: the event is not allowed from ``state``.
    """
    return BACKUP_LIFECYCLE.transition(state, event)


def backup_preconditions(event: BackupEvent) -> frozenset[BackupState | None]:
    """The states from which ``event`` may happen (what a store's condition checks)."""
    return BACKUP_LIFECYCLE.sources(event)


# --- records and the store -------------------------------------------------------


@dataclass(frozen=True)
class BackupRecord:
    name: str
    version: int
    updated_at: int
    ciphertext: bytes = field(repr=False)


class BackupStore(Protocol):
    """Persistence for backups (implemented by ``chalicelib.storage.directory``)."""

    def write(
        self,
        identity: str,
        name: str,
        ciphertext: bytes,
        *,
        event: BackupEvent,
        expected_version: int | None,
        at: int,
    ) -> int | None:
        """Apply CREATE (``expected_version`` None) or REPLACE (the version to match).

        Returns the new version, or None (nothing changed) when the stored
        state is not one :func:`backup_preconditions` allows or its version
        is not ``expected_version``.
        """

    def delete(self, identity: str, name: str, *, expected_version: int | None, at: int) -> bool:
        """Apply DELETE; False (nothing changed) unless PRESENT with a matching
        version (any version when ``expected_version`` is None)."""

    def get(self, identity: str, name: str) -> BackupRecord | None:
        """The PRESENT backup, or None (never written, or a tombstone)."""


# --- the service -------------------------------------------------------------------


class BackupService:
    """Store, fetch and reset an identity's key backups."""

    def __init__(self, store: BackupStore, *, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock

    def put(
        self,
        identity: str,
        name: object,
        ciphertext: object,
        version: object = None,
        *,
        authorize_replace: Callable[[], None] | None = None,
    ) -> tuple[int, int, bool]:
        """Create or replace a backup.

        ``authorize_replace`` runs once the input is valid and before a
        *replacement* is written (the route spends a step-up proof there), so
        a malformed request never costs one; it raises to refuse.

        Returns:
            ``(new version, updated_at, created)``.

        Raises:
            InvalidBackupName: ``name`` is not 1-64 of ``[a-z0-9._-]``
                starting with a letter or digit.
            InvalidRequest: ``version`` is not a positive integer.
            PayloadTooLarge: the backup exceeds :data:`MAX_BACKUP_BYTES`.
            InvalidBackupKdf: the envelope's work factors are outside the
                bounds every device applies.
            InvalidBackup: ``ciphertext`` is not canonical base64url of a
                Sealbox backup envelope.
            VersionConflict: no version given and the backup exists, or the
                stored version is not ``version`` (nothing changed).
            whatever ``authorize_replace`` raises (nothing changed).
        """
        backup_name = check_backup_name(name)
        expected = _version(version)
        blob = _backup_bytes(ciphertext)
        if expected is not None and authorize_replace is not None:
            authorize_replace()
        event = BackupEvent.CREATE if expected is None else BackupEvent.REPLACE
        now = int(self._clock())
        new_version = self._store.write(
            identity, backup_name, blob, event=event, expected_version=expected, at=now
        )
        if new_version is None:
            raise VersionConflict()
        return new_version, now, expected is None

    def get(self, identity: str, name: object) -> BackupRecord:
        """The caller's backup ``name``.

        Raises:
            InvalidBackupName: malformed name.
            NotFound: no such backup for this identity (other identities'
                backups are unreachable: the key includes the caller).
        """
        record = self._store.get(identity, check_backup_name(name))
        if record is None:
            raise NotFound("No backup with this name.")
        return record

    def delete(
        self,
        identity: str,
        name: object,
        version: object = None,
        *,
        authorize: Callable[[], None] | None = None,
    ) -> None:
        """Reset the caller's backup ``name``, optionally only at ``version``.

        ``authorize`` runs once the input is valid, before the write.

        Raises:
            InvalidBackupName, InvalidRequest: malformed name or version.
            NotFound: there is no such backup.
            VersionConflict: it exists with another version (nothing changed).
            whatever ``authorize`` raises (nothing changed).
        """
        backup_name = check_backup_name(name)
        expected = _version(version)
        if authorize is not None:
            authorize()
        if self._store.delete(
            identity, backup_name, expected_version=expected, at=int(self._clock())
        ):
            return
        # The write changed nothing; one read picks the honest answer.
        if self._store.get(identity, backup_name) is None:
            raise NotFound("No backup with this name.")
        raise VersionConflict()


def check_backup_name(name: object) -> str:
    """``name`` if it is a valid backup name.

    Raises:
        InvalidBackupName: not 1-64 characters of ``[a-z0-9._-]`` starting
            with a letter or a digit.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidBackupName()
    return name


def parse_version_param(raw: str | None) -> int | None:
    """A ``?version=`` query value: digits only, or absent.

    Raises:
        InvalidRequest: not a positive decimal integer.
    """
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 16:
        raise InvalidRequest("version must be a positive integer.")
    return _version(int(raw))


def _version(value: object) -> int | None:
    if value is None:
        return None
    # bool is an int subclass; true is not version 1.
    if type(value) is not int or not 1 <= value <= MAX_VERSION:
        raise InvalidRequest("version must be a positive integer.")
    return value


def _backup_bytes(value: object) -> bytes:
    if not isinstance(value, str):
        raise InvalidBackup()
    try:
        blob = b64url_decode(value, max_len=MAX_BACKUP_BYTES)
    except ValueError as exc:
        if len(value) > (MAX_BACKUP_BYTES * 4 + 2) // 3:
            raise PayloadTooLarge("The backup is larger than the server keeps.") from exc
        raise InvalidBackup() from exc
    try:
        check_backup_envelope(blob)
    except KdfOutOfRange as exc:
        raise InvalidBackupKdf() from exc
    except NotABackup as exc:
        raise InvalidBackup() from exc
    return blob
