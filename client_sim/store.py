"""What one phone keeps about its person: the keystore, read and written in one place.

The :class:`~client_sim.keystore.Keystore` file holds the key bundles
(current first, then older ones for old data) and a few encrypted settings
-- the refresh token, the backup key, a card publication awaiting its
answer.  :class:`DeviceStore` is the only object that loads and saves it;
the session, the card directory and backup sync each read the settings they
own through it.  The bundle-list helpers at the bottom are pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from client_sim import backup as backup_format
from client_sim.errors import DeviceInUse, NoPrivateKey, NotLoggedIn
from client_sim.identity import KeyBundle
from client_sim.keystore import Keystore, KeystoreNotFound, KeystoreState

__all__ = [
    "BACKUP_KEY",
    "BACKUP_OPRF_VERSION",
    "DEVICE_COOKIE",
    "PENDING_CARD",
    "REFRESH_EXPIRES",
    "REFRESH_TOKEN",
    "SESSION_SETTINGS",
    "DeviceStatus",
    "DeviceStore",
    "current_first",
    "merged",
    "with_current",
    "without",
]

# Keystore setting names (values are encrypted with the rest of the keystore).
REFRESH_TOKEN: Final = "session.refresh-token"  # noqa: S105 - a setting name
REFRESH_EXPIRES: Final = "session.expires-at"
BACKUP_KEY: Final = "backup.key"
# The OPRF key version the backup key was hardened with (absent: version 1,
# no OPRF); a login under a newer one re-wraps the backup.
BACKUP_OPRF_VERSION: Final = "backup.oprf-version"
# Kept across logouts: this device's proof that it has logged in before,
# which lets its next login through a lockout strangers caused.
DEVICE_COOKIE: Final = "session.device-cookie"
# Owned by the session: written only through DeviceStore.save_session.
SESSION_SETTINGS: Final = (REFRESH_TOKEN, REFRESH_EXPIRES, DEVICE_COOKIE)
PENDING_CARD: Final = "card.pending"


@dataclass(frozen=True)
class DeviceStatus:
    """What ``whoami`` shows: nothing secret."""

    identity: str | None
    logged_in: bool
    card_id: str | None
    previous_cards: int


class DeviceStore:
    """Loads and saves the keystore under ``home``; knows nothing of the network.

    Raises (from every method): :class:`~client_sim.keystore.KeystoreError`
    (a :class:`~client_sim.errors.LocalStorageError`) when the keystore is
    unusable.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.keystore = Keystore(home)

    def load(self) -> KeystoreState | None:
        """The keystore, or None on a device that holds nothing yet."""
        try:
            return self.keystore.load()
        except KeystoreNotFound:
            return None

    def load_or(self, fallback: KeystoreState) -> KeystoreState:
        return self.load() or fallback

    def save(self, state: KeystoreState) -> None:
        """Write ``state``, keeping the session settings as they are stored.

        Only :class:`~client_sim.session.Session` changes the refresh token
        (:meth:`save_session`).  A state loaded before a renewal carries the
        token that renewal spent; writing it back would make the device
        present a spent token next time, which ends its session -- so every
        other writer keeps the stored one.
        """
        stored = self.load()
        if stored is not None and stored.identity == state.identity:
            state = state.with_settings(
                **{name: stored.settings.get(name) for name in SESSION_SETTINGS}
            )
        self.keystore.save(state)

    def save_session(self, state: KeystoreState) -> None:
        """Write ``state`` as it is, session settings included (the Session's own writes)."""
        self.keystore.save(state)

    def destroy(self) -> None:
        """Delete the keystore (keys, session, backup key) from this device."""
        self.keystore.destroy()

    def status(self) -> DeviceStatus:
        """Identity, session and card of this device; nothing secret."""
        state = self.load()
        if state is None:
            return DeviceStatus(None, False, None, 0)
        return DeviceStatus(
            identity=state.identity,
            logged_in=REFRESH_TOKEN in state.settings,
            card_id=state.current_card_id,
            previous_cards=len(state.previous),
        )

    def device_cookie(self, identity: str) -> str | None:
        """The device cookie this keystore holds for ``identity`` (None: none, or another's)."""
        state = self.load()
        if state is None or state.identity != identity:
            return None
        return state.settings.get(DEVICE_COOKIE)

    def require_session(self) -> KeystoreState:
        """The keystore of a logged-in device.

        Raises:
            NotLoggedIn: no keystore, or no refresh token in it.
        """
        state = self.load()
        if state is None or REFRESH_TOKEN not in state.settings:
            raise NotLoggedIn("log in first")
        return state

    def require_current(self, state: KeystoreState | None) -> tuple[KeystoreState, KeyBundle]:
        """``state`` and its current bundle.

        Raises:
            NoPrivateKey: no keystore, or no key in it.
        """
        if state is None or state.current is None:
            raise NoPrivateKey("this device has no private key: register, or log in to restore")
        return state, state.current

    def check_free(self, identity: str) -> None:
        """Raises DeviceInUse when the keystore belongs to another identity."""
        state = self.load()
        if state is not None and state.identity != identity:
            raise DeviceInUse(f"this device holds {state.identity}'s keys; clean it up first")


# --- bundle lists (pure) ------------------------------------------------------------------


def merged(
    ours: Sequence[KeyBundle], theirs: backup_format.BackupContents | Sequence[KeyBundle]
) -> tuple[KeyBundle, ...]:
    """Our bundles (order kept), then any of theirs we lack, newest first."""
    extra = theirs.bundles if isinstance(theirs, backup_format.BackupContents) else theirs
    have = {bundle.card_id for bundle in ours}
    added = sorted(
        (bundle for bundle in extra if bundle.card_id not in have),
        key=lambda bundle: bundle.card.created_at,
        reverse=True,
    )
    unique: dict[str, KeyBundle] = {}
    for bundle in (*ours, *added):
        unique.setdefault(bundle.card_id, bundle)
    return tuple(unique.values())


def current_first(bundles: tuple[KeyBundle, ...], card_id: str | None) -> tuple[KeyBundle, ...]:
    """``bundles`` with ``card_id``'s bundle moved to the front (unchanged if absent)."""
    chosen = next((bundle for bundle in bundles if bundle.card_id == card_id), None)
    if chosen is None:
        return bundles
    return (chosen, *(bundle for bundle in bundles if bundle.card_id != card_id))


def with_current(state: KeystoreState, card_id: str) -> KeystoreState:
    return state.with_bundles(current_first(state.bundles, card_id))


def without(state: KeystoreState, card_id: str) -> KeystoreState:
    """``state`` less ``card_id``'s bundle and any pending publication."""
    bundles = tuple(bundle for bundle in state.bundles if bundle.card_id != card_id)
    settings = {name: value for name, value in state.settings.items() if name != PENDING_CARD}
    return state.with_bundles(bundles, settings)
