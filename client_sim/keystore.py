"""The device keystore: private key bundles encrypted at rest (the simulator's Keychain).

Layout under the device's home directory::

    <home>/keystore/            0700
        device.key              0600  the device key (stand-in for Keychain / Keystore hardware)
        keystore.sbk            0600  the encrypted keystore
        .lock                   0600  serializes writers

``keystore.sbk`` (docs/spec/keystore.md has the byte-by-byte layout)::

    header     = "SBKSTORE" || version (2) || flags (0) || nonce (32)
    ciphertext = ChaCha20-Poly1305 under HKDF-SHA-256(device key, salt = nonce,
                 info = "sealbox/v1/keystore"), nonce 0, AAD = header
    body       = lp16(identity) || settings || key bundles (current first) || pins

Version 1 files (no pins) are still read, with no pins; every write is
version 2, so an old keystore migrates on its next save.

Any change to any byte fails authentication and raises :class:`KeystoreTampered`
(a :class:`KeystoreCorrupted`).  Writes are atomic (temporary file, fsync,
rename, fsync of the directory): a crash leaves either the old keystore or
the new one.  Files and the directory must not be readable by anyone but
the owner; a keystore with looser permissions is refused, not repaired.

The state holds the current bundle *and* every previous one (after a
rotation), so data sealed to an old card stays readable, plus small device
settings the SDK keeps with the keys and encrypted with them (its session
and backup key, as a phone keeps them in its Keychain), and the contact
pins: per contact identity, the card this device last accepted for it (see
:mod:`client_sim.trust`).  Nothing that holds
key material prints it; ``repr`` shows setting names, never values.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final, NoReturn

from chalicelib.wire.binary import Reader, lp16, u8, u16
from chalicelib.wire.cards import InvalidCard, card_id_from_str, card_id_to_str
from chalicelib.wire.identity import InvalidIdentity, normalize_identity
from client_sim import _hazmat
from client_sim.errors import LocalStorageError
from client_sim.files import atomic_output, atomic_write
from client_sim.identity import InvalidKeyBundle, KeyBundle

__all__ = [
    "DEVICE_KEY_MAGIC",
    "KEYSTORE_LABEL",
    "KEYSTORE_MAGIC",
    "KEYSTORE_VERSION",
    "MAX_BUNDLES",
    "MAX_PINS",
    "DeviceKey",
    "Keystore",
    "KeystoreCorrupted",
    "KeystoreError",
    "KeystoreNotFound",
    "KeystorePermissionError",
    "KeystoreState",
    "KeystoreTampered",
    "decode_keystore",
    "encode_keystore",
]

KEYSTORE_MAGIC: Final = b"SBKSTORE"
KEYSTORE_VERSION: Final = 2
# Version 1 had no pins; it is read (as a keystore with none) and never written.
KEYSTORE_READ_VERSIONS: Final = frozenset({1, 2})
KEYSTORE_FLAGS: Final = 0
KEYSTORE_LABEL: Final = b"sealbox/v1/keystore"
DEVICE_KEY_MAGIC: Final = b"SBDEVKEY"
DEVICE_KEY_VERSION: Final = 1
DEVICE_KEY_FINGERPRINT_LABEL: Final = b"sealbox/v1/device-key-fingerprint"

KEYSTORE_DIR: Final = "keystore"
KEYSTORE_FILE: Final = "keystore.sbk"
DEVICE_KEY_FILE: Final = "device.key"
LOCK_FILE: Final = ".lock"
SIDE_FILE_SUFFIX: Final = ".sbs"

HEADER_SIZE: Final = len(KEYSTORE_MAGIC) + 1 + 1 + _hazmat.AT_REST_NONCE_SIZE
# One current bundle plus history: a device that rotates monthly for ten
# years stays well inside.  Bounds the work a corrupted count can cause.
MAX_BUNDLES: Final = 256
MAX_SETTINGS: Final = 64
# One pinned card per contact; 4096 contacts fit well inside MAX_KEYSTORE_SIZE.
MAX_PINS: Final = 4096
MAX_SETTING_VALUE: Final = 1024
MAX_KEYSTORE_SIZE: Final = 2 * 1024 * 1024
_SETTING_NAME_RE: Final = re.compile(r"[a-z0-9_.-]{1,64}")


# --- errors -------------------------------------------------------------------


class KeystoreError(LocalStorageError):
    """Base of every keystore failure.  Messages never contain key material.

    A :class:`~client_sim.errors.LocalStorageError`: to the SDK's caller an
    unusable keystore is one failure, whatever the cause.
    """


class KeystoreNotFound(KeystoreError):
    """There is no keystore on this device yet."""


class KeystoreCorrupted(KeystoreError):
    """The keystore (or the device key file) is not a valid file of this version."""


class KeystoreTampered(KeystoreCorrupted):
    """The keystore failed authentication: modified, truncated, or a different device key."""


class KeystorePermissionError(KeystoreError):
    """A keystore file or directory is accessible to other users, or owned by someone else."""


# --- the device key -----------------------------------------------------------


class DeviceKey:
    """The 32-byte key that encrypts the keystore at rest.

    On a phone this key would live in the Keychain / Android Keystore and
    never be exported; the simulator keeps it in its own 0600 file
    (:meth:`load_or_create`) or takes one injected by the caller.  ``repr``
    shows a one-way fingerprint only.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != _hazmat.AT_REST_KEY_SIZE:
            raise ValueError("a device key is 32 bytes")
        self._key = key

    @classmethod
    def generate(cls, rand: Callable[[int], bytes] = _hazmat.random_bytes) -> DeviceKey:
        """A fresh device key from ``rand`` (the OS CSPRNG by default)."""
        return cls(rand(_hazmat.AT_REST_KEY_SIZE))

    @property
    def fingerprint(self) -> str:
        """A short, one-way identifier for logs and ``repr`` (not the key)."""
        return hashlib.sha256(DEVICE_KEY_FINGERPRINT_LABEL + self._key).hexdigest()[:16]

    def to_file_bytes(self) -> bytes:
        """The versioned file form: ``"SBDEVKEY" || version || key``.  Secret."""
        return DEVICE_KEY_MAGIC + u8(DEVICE_KEY_VERSION) + self._key

    @classmethod
    def from_file_bytes(cls, data: bytes) -> DeviceKey:
        """Parse :meth:`to_file_bytes` output.

        Raises:
            KeystoreCorrupted: wrong magic, version or length.
        """
        if (
            len(data) != len(DEVICE_KEY_MAGIC) + 1 + _hazmat.AT_REST_KEY_SIZE
            or not data.startswith(DEVICE_KEY_MAGIC)
            or data[len(DEVICE_KEY_MAGIC)] != DEVICE_KEY_VERSION
        ):
            raise KeystoreCorrupted("the device key file is not valid")
        return cls(data[len(DEVICE_KEY_MAGIC) + 1 :])

    @classmethod
    def load_or_create(
        cls, path: Path, rand: Callable[[int], bytes] = _hazmat.random_bytes
    ) -> DeviceKey:
        """Read the device key at ``path``, creating it (0600) if it does not exist.

        Raises:
            KeystorePermissionError: the file is accessible to other users.
            KeystoreCorrupted: the file is not a device key.
        """
        try:
            return cls.from_file_bytes(_read_private(path, 64))
        except FileNotFoundError:
            key = cls.generate(rand)
            atomic_write(path, key.to_file_bytes())
            return key

    def __repr__(self) -> str:
        return f"DeviceKey(fingerprint={self.fingerprint!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("DeviceKey cannot be pickled")


# --- state ----------------------------------------------------------------------


@dataclass(frozen=True, repr=False, eq=False)
class KeystoreState:
    """Everything the keystore holds: identity, key bundles and device settings.

    ``bundles[0]`` is the current bundle; the rest are previous bundles,
    newest first, kept so that old messages stay readable.  ``settings`` is
    a small map of strings kept (and encrypted) with the keys, such as the
    device's session (names ``[a-z0-9_.-]{1,64}``); ``repr`` shows the names
    only.  ``pins`` maps a contact's canonical identity to the card id this
    device accepted for it (trust on first use, verified rotations, or an
    explicit ``trust``); never the keystore's own identity.

    Raises (from the constructor):
        ValueError: the identity is not canonical, a bundle belongs to
            another identity, two bundles share a card, a pin is malformed,
            or a limit is exceeded.
    """

    identity: str
    bundles: tuple[KeyBundle, ...] = ()
    settings: Mapping[str, str] = field(default_factory=dict)
    pins: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            canonical = normalize_identity(self.identity)
        except InvalidIdentity as exc:
            raise ValueError("the keystore identity is not valid") from exc
        if canonical != self.identity:
            raise ValueError("the keystore identity must be canonical")
        bundles = tuple(self.bundles)
        if len(bundles) > MAX_BUNDLES:
            raise ValueError(f"a keystore holds at most {MAX_BUNDLES} key bundles")
        if any(not isinstance(b, KeyBundle) or b.identity != self.identity for b in bundles):
            raise ValueError("every key bundle must belong to the keystore identity")
        if len({b.card_id for b in bundles}) != len(bundles):
            raise ValueError("a card appears twice in the keystore")
        settings = dict(self.settings)
        if len(settings) > MAX_SETTINGS:
            raise ValueError(f"a keystore holds at most {MAX_SETTINGS} settings")
        for name, value in settings.items():
            if not isinstance(name, str) or not _SETTING_NAME_RE.fullmatch(name):
                raise ValueError("setting names are 1-64 characters of a-z, 0-9, '_', '.', '-'")
            if not isinstance(value, str) or len(value.encode("utf-8")) > MAX_SETTING_VALUE:
                raise ValueError(f"setting values are strings of at most {MAX_SETTING_VALUE} bytes")
        pins = dict(self.pins)
        if len(pins) > MAX_PINS:
            raise ValueError(f"a keystore holds at most {MAX_PINS} pins")
        for contact, card_id in pins.items():
            _check_pin(self.identity, contact, card_id)
        object.__setattr__(self, "bundles", bundles)
        object.__setattr__(self, "settings", MappingProxyType(dict(sorted(settings.items()))))
        object.__setattr__(self, "pins", MappingProxyType(dict(sorted(pins.items()))))

    @property
    def current(self) -> KeyBundle | None:
        """The bundle whose card is (or is about to be) the active one."""
        return self.bundles[0] if self.bundles else None

    @property
    def current_card_id(self) -> str | None:
        return self.bundles[0].card_id if self.bundles else None

    @property
    def previous(self) -> tuple[KeyBundle, ...]:
        """Superseded bundles, newest first."""
        return self.bundles[1:]

    @property
    def card_ids(self) -> tuple[str, ...]:
        return tuple(b.card_id for b in self.bundles)

    def bundle_for(self, card_id: str) -> KeyBundle | None:
        """The bundle (current or previous) whose card is ``card_id``."""
        return next((b for b in self.bundles if b.card_id == card_id), None)

    def with_current(self, bundle: KeyBundle) -> KeystoreState:
        """A state where ``bundle`` is current and the old current joins the history."""
        return self.with_bundles((bundle, *self.bundles))

    def with_bundles(
        self, bundles: tuple[KeyBundle, ...], settings: Mapping[str, str] | None = None
    ) -> KeystoreState:
        """A state with these bundles (and settings, if given); pins are kept."""
        return KeystoreState(
            self.identity, bundles, self.settings if settings is None else settings, self.pins
        )

    def with_pin(self, contact: str, card_id: str) -> KeystoreState:
        """A state where ``contact``'s pinned card is ``card_id``."""
        return KeystoreState(
            self.identity, self.bundles, self.settings, {**self.pins, contact: card_id}
        )

    def with_settings(self, **changes: str | None) -> KeystoreState:
        """A state with settings set (a string) or removed (``None``)."""
        settings = dict(self.settings)
        for name, value in changes.items():
            if value is None:
                settings.pop(name, None)
            else:
                settings[name] = value
        return self.with_bundles(self.bundles, settings)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeystoreState):
            return NotImplemented
        return (
            self.identity == other.identity
            and self.bundles == other.bundles
            and dict(self.settings) == dict(other.settings)
            and dict(self.pins) == dict(other.pins)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"KeystoreState(identity={self.identity!r}, current_card_id={self.current_card_id!r}, "
            f"previous={len(self.previous)}, settings={sorted(self.settings)!r}, "
            f"pins={len(self.pins)})"
        )

    __str__ = __repr__


def _check_pin(own: str, contact: object, card_id: object) -> None:
    if not isinstance(contact, str):
        raise ValueError("pins are keyed by identity")
    try:
        canonical = normalize_identity(contact)
        card_id_from_str(card_id)
    except (InvalidIdentity, InvalidCard) as exc:
        raise ValueError("a pin is a canonical identity and a card id") from exc
    if canonical != contact or contact == own:
        raise ValueError("pins name other identities, canonically")


# --- the file format ------------------------------------------------------------


def _encode_body(state: KeystoreState, version: int = KEYSTORE_VERSION) -> bytes:
    parts = [lp16(state.identity.encode("ascii")), u16(len(state.settings))]
    for name, value in state.settings.items():
        parts += [lp16(name.encode("ascii")), lp16(value.encode("utf-8"))]
    parts.append(u16(len(state.bundles)))
    parts += [lp16(bundle.to_bytes()) for bundle in state.bundles]
    if version >= 2:
        parts.append(u16(len(state.pins)))
        for contact, card_id in state.pins.items():
            parts += [lp16(contact.encode("ascii")), lp16(card_id_from_str(card_id))]
    elif state.pins:
        raise ValueError("a version 1 keystore has no pins")
    return b"".join(parts)


def _sorted_map(reader: Reader, limit: int, what: str) -> list[tuple[str, bytes]]:
    """``u16(n)`` then ``n`` pairs of lp16 fields whose ASCII keys are strictly
    ascending: sorted and unique, so a given state has one encoding."""
    count = reader.u16()
    if count > limit:
        raise ValueError(f"too many {what}")
    pairs: list[tuple[str, bytes]] = []
    previous = ""
    for _ in range(count):
        key = reader.lp16().decode("ascii")
        if key <= previous:
            raise ValueError(f"{what} are not sorted")
        previous = key
        pairs.append((key, reader.lp16()))
    return pairs


def _decode_body(body: bytes, version: int = KEYSTORE_VERSION) -> KeystoreState:
    reader = Reader(body)
    identity = reader.lp16().decode("ascii")
    settings = {
        name: value.decode("utf-8") for name, value in _sorted_map(reader, MAX_SETTINGS, "settings")
    }
    count = reader.u16()
    if count > MAX_BUNDLES:
        raise ValueError("too many key bundles")
    bundles = tuple(KeyBundle.from_bytes(reader.lp16()) for _ in range(count))
    pins: dict[str, str] = {}
    if version >= 2:
        for contact, raw in _sorted_map(reader, MAX_PINS, "pins"):
            if len(raw) != 32:
                raise ValueError("a pinned card id is 32 bytes")
            pins[contact] = card_id_to_str(raw)
    reader.finish()
    return KeystoreState(identity, bundles, settings, pins)


def encode_keystore(
    state: KeystoreState,
    device_key: DeviceKey,
    *,
    rand: Callable[[int], bytes] = _hazmat.random_bytes,
    version: int = KEYSTORE_VERSION,
) -> bytes:
    """The encrypted file form of ``state`` under ``device_key``.

    ``rand`` supplies the 32-byte nonce; only the vector generator passes a
    deterministic one.  ``version=1`` (no pins) exists only so vectors and
    migration tests can make an old file; the SDK always writes the current
    version.
    """
    if version not in KEYSTORE_READ_VERSIONS:
        raise ValueError("unknown keystore version")
    header = KEYSTORE_MAGIC + u8(version) + u8(KEYSTORE_FLAGS)
    header += rand(_hazmat.AT_REST_NONCE_SIZE)
    nonce = header[-_hazmat.AT_REST_NONCE_SIZE :]
    ciphertext = _hazmat.at_rest_seal(
        device_key._key, nonce, KEYSTORE_LABEL, _encode_body(state, version), header
    )
    return header + ciphertext


def decode_keystore(data: bytes, device_key: DeviceKey) -> KeystoreState:
    """Authenticate, decrypt and parse a keystore file.

    Raises:
        KeystoreCorrupted: not a keystore, an unsupported version or flags,
            or a body that does not parse.
        KeystoreTampered: authentication failed (modified, truncated, or
            encrypted under another device key).
    """
    if len(data) > MAX_KEYSTORE_SIZE:
        raise KeystoreCorrupted("the keystore is larger than any valid keystore")
    if len(data) < HEADER_SIZE or not data.startswith(KEYSTORE_MAGIC):
        raise KeystoreCorrupted("not a Sealbox keystore")
    header = data[:HEADER_SIZE]
    version = header[len(KEYSTORE_MAGIC)]
    if version not in KEYSTORE_READ_VERSIONS:
        raise KeystoreCorrupted("unsupported keystore version")
    if header[len(KEYSTORE_MAGIC) + 1] != KEYSTORE_FLAGS:
        raise KeystoreCorrupted("unknown keystore flags")
    nonce = header[-_hazmat.AT_REST_NONCE_SIZE :]
    try:
        body = _hazmat.at_rest_open(
            device_key._key, nonce, KEYSTORE_LABEL, data[HEADER_SIZE:], header
        )
    except _hazmat.InvalidTag as exc:
        raise KeystoreTampered(
            "the keystore failed authentication (modified, or another device key)"
        ) from exc
    try:
        return _decode_body(body, version)
    except (ValueError, InvalidKeyBundle, UnicodeDecodeError) as exc:
        # Authenticated but unparseable: written by a buggy or newer writer.
        raise KeystoreCorrupted("the keystore contents are not valid") from exc


# --- files ------------------------------------------------------------------------


def _check_side_name(name: str, magic: bytes) -> None:
    # Side files are named by the SDK, never by input; the suffix lets
    # destroy() find them all, and the magic has the keystore's length.
    if (
        not re.fullmatch(r"[a-z0-9-]{1,32}", name.removesuffix(SIDE_FILE_SUFFIX))
        or not name.endswith(SIDE_FILE_SUFFIX)
        or (magic and (len(magic) != len(KEYSTORE_MAGIC) or magic == KEYSTORE_MAGIC))
    ):
        raise ValueError("not a side file name or magic")


def _check_private(st: os.stat_result, what: str) -> None:
    if st.st_uid != os.getuid():
        raise KeystorePermissionError(f"the {what} is owned by another user")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise KeystorePermissionError(f"the {what} is accessible to other users")


def _read_private(path: Path, limit: int) -> bytes:
    """Read a small private file without following symlinks.

    Raises:
        FileNotFoundError: it does not exist.
        KeystorePermissionError: it is not a regular, owner-only file.
        KeystoreCorrupted: it is larger than ``limit``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise KeystorePermissionError(f"cannot open {path.name} safely") from exc
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise KeystorePermissionError(f"{path.name} is not a regular file")
        _check_private(st, path.name)
        data = f.read(limit + 1)
    if len(data) > limit:
        raise KeystoreCorrupted(f"{path.name} is larger than any valid file")
    return data


class Keystore:
    """The keystore of one simulated device, under ``home``.

    Args:
        home: the device's home directory (created if missing).
        device_key: inject a device key (tests, or a platform keystore);
            by default it is read from, or created in, ``keystore/device.key``.
        rand: randomness for nonces and a new device key.
    """

    def __init__(
        self,
        home: str | os.PathLike[str],
        *,
        device_key: DeviceKey | None = None,
        rand: Callable[[int], bytes] = _hazmat.random_bytes,
    ) -> None:
        self._home = Path(home)
        self._device_key = device_key
        self._rand = rand

    @property
    def directory(self) -> Path:
        return self._home / KEYSTORE_DIR

    @property
    def path(self) -> Path:
        return self.directory / KEYSTORE_FILE

    @property
    def device_key_path(self) -> Path:
        return self.directory / DEVICE_KEY_FILE

    def exists(self) -> bool:
        """True when a keystore file is present (it may still fail to load)."""
        return self.path.exists()

    def _ensure_directory(self) -> None:
        self._home.mkdir(parents=True, exist_ok=True)
        try:
            self.directory.mkdir(mode=0o700)
        except FileExistsError:
            pass
        else:
            # mkdir's mode is filtered by the umask; set it exactly.
            self.directory.chmod(0o700)
        self._check_directory()

    def _check_directory(self) -> None:
        st = os.lstat(self.directory)
        if not stat.S_ISDIR(st.st_mode):
            raise KeystorePermissionError("the keystore path is not a directory")
        _check_private(st, "keystore directory")

    def _key_for_reading(self) -> DeviceKey:
        if self._device_key is not None:
            return self._device_key
        try:
            return DeviceKey.from_file_bytes(_read_private(self.device_key_path, 64))
        except FileNotFoundError as exc:
            raise KeystoreCorrupted("the keystore exists but its device key is missing") from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(
            self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def load(self) -> KeystoreState:
        """Read, authenticate and decrypt the keystore.

        Raises:
            KeystoreNotFound: there is no keystore.
            KeystorePermissionError: the directory or a file is not owner-only.
            KeystoreTampered: authentication failed.
            KeystoreCorrupted: the file (or the device key file) is invalid.
        """
        if not self.directory.exists() or not self.path.exists():
            raise KeystoreNotFound("no keystore on this device")
        self._check_directory()
        data = _read_private(self.path, MAX_KEYSTORE_SIZE)
        return decode_keystore(data, self._key_for_reading())

    def save(self, state: KeystoreState) -> None:
        """Write ``state`` atomically, creating the directory and device key if needed.

        Raises:
            KeystorePermissionError: an existing directory or file is not owner-only.
            KeystoreCorrupted: an existing device key file is invalid.
        """
        self._ensure_directory()
        with self._locked():
            key = self._device_key
            if key is None:
                key = DeviceKey.load_or_create(self.device_key_path, self._rand)
                self._device_key = key
            atomic_write(self.path, encode_keystore(state, key, rand=self._rand))

    # --- side files under the same protection -------------------------------------

    def read_sealed(self, name: str, magic: bytes, label: bytes, limit: int) -> bytes | None:
        """The authenticated body of side file ``name``, or None when there is none.

        A side file (the card cache) lives in the keystore directory, under
        the same permission checks, and is sealed like the keystore: header
        ``magic || 01 || 00 || nonce``, then the body under the device key
        with its own ``label`` and the header as AAD.  Nothing in it is used
        unless it authenticates.  No device key yet means no side file.

        Raises:
            KeystorePermissionError: the directory or file is not owner-only.
            KeystoreTampered: it fails authentication (planted, modified,
                truncated, another device key, another label).
            KeystoreCorrupted: a wrong magic, version, flags or size.
        """
        _check_side_name(name, magic)
        path = self.directory / name
        if not self.directory.exists() or not path.exists():
            return None
        self._check_directory()
        try:
            data = _read_private(path, limit)
        except FileNotFoundError:
            return None
        if self._device_key is None and not self.device_key_path.exists():
            raise KeystoreCorrupted("a sealed file exists but the device key is missing")
        if len(data) < HEADER_SIZE or not data.startswith(magic):
            raise KeystoreCorrupted(f"{name} is not a sealed file of this kind")
        header = data[:HEADER_SIZE]
        if header[len(magic)] != 1 or header[len(magic) + 1] != 0:
            raise KeystoreCorrupted(f"{name} has an unsupported version or flags")
        try:
            return _hazmat.at_rest_open(
                self._key_for_reading()._key,
                header[-_hazmat.AT_REST_NONCE_SIZE :],
                label,
                data[HEADER_SIZE:],
                header,
            )
        except _hazmat.InvalidTag as exc:
            raise KeystoreTampered(f"{name} failed authentication") from exc

    def write_sealed(self, name: str, magic: bytes, label: bytes, body: bytes) -> None:
        """Seal ``body`` into side file ``name`` (see :meth:`read_sealed`), atomically.

        Not synced to disk: side files are caches that the next lookup
        refills (an unreadable one reads as absent), and lookups are hot.
        """
        _check_side_name(name, magic)
        self._ensure_directory()
        with self._locked():
            key = self._device_key
            if key is None:
                key = DeviceKey.load_or_create(self.device_key_path, self._rand)
                self._device_key = key
            header = magic + u8(1) + u8(0) + self._rand(_hazmat.AT_REST_NONCE_SIZE)
            nonce = header[-_hazmat.AT_REST_NONCE_SIZE :]
            sealed = _hazmat.at_rest_seal(key._key, nonce, label, body, header)
            with atomic_output(self.directory / name, durable=False) as out:
                out.write(header + sealed)

    def remove(self, name: str) -> None:
        """Delete side file ``name`` if it exists."""
        _check_side_name(name, b"")
        (self.directory / name).unlink(missing_ok=True)

    def destroy(self) -> None:
        """Delete the keystore, its side files and the device key (unregister / cleanup)."""
        if self.directory.is_dir():
            for extra in self.directory.glob("*" + SIDE_FILE_SUFFIX):
                extra.unlink(missing_ok=True)
        for name in (KEYSTORE_FILE, DEVICE_KEY_FILE, LOCK_FILE):
            (self.directory / name).unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError, OSError):
            self.directory.rmdir()
        self._device_key = None

    def __repr__(self) -> str:
        return f"Keystore(path={str(self.path)!r})"
