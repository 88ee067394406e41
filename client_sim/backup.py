"""Key backup: the private key bundles sealed under the password-derived backup key.

The password module derives a 32-byte *backup key* from the user's password
(Argon2id, then HKDF; the login key comes from the same derivation under
another label and never opens a backup).  This module only receives that key
and a :class:`KdfParams` record of how it was derived, and embeds the record
in the blob as authenticated cleartext, so that a new device can restore with
nothing but the password::

    header     = "SBBACKUP" || version (1 or 2) || kdf algorithm (1 or 2)
                 || memory KiB (u32) || iterations (u32) || lanes (u32)
                 || salt length (1) || salt || [v2: OPRF key version (u32)]
                 || nonce (32)
    ciphertext = ChaCha20-Poly1305 under HKDF-SHA-256(backup key, salt = nonce,
                 info = "sealbox/v1/backup"), nonce 0, AAD = header
    body       = lp16(identity) || n (u16) || n x lp16(key bundle), current first

docs/spec/backup.md has the byte-by-byte layout.  Work factors are
range-checked on both ends (:class:`KdfBounds`): :func:`seal_backup` refuses
parameters too weak to protect a password, and :func:`parse_backup_header`
refuses parameters outside the bounds *before* anything is derived, so a
hostile blob can't make a device allocate gigabytes or spin for minutes.

Restore::

    params = parse_backup_header(blob)            # bounded, nothing derived yet
    backup_key = derive_backup_key(password, params)   # the password module
    contents = open_backup(blob, backup_key)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

# The cleartext framing (magic, version, algorithm, salt and work-factor
# bounds) is shared with the server, which checks it on upload without
# opening anything.
from chalicelib.wire.backup import (
    BACKUP_MAGIC,
    BACKUP_VERSION,
    BACKUP_VERSION_OPRF,
    KDF_ARGON2ID_HKDF_SHA256,
    KDF_ARGON2ID_OPRF_HKDF_SHA256,
    MAX_KDF_ITERATIONS,
    MAX_KDF_LANES,
    MAX_KDF_MEMORY_KIB,
    MAX_SALT_SIZE,
    MIN_KDF_ITERATIONS,
    MIN_KDF_LANES,
    MIN_KDF_MEMORY_KIB,
    MIN_SALT_SIZE,
)
from chalicelib.wire.binary import Reader, lp16, u8, u16, u32
from client_sim import _hazmat
from client_sim.identity import InvalidKeyBundle, KeyBundle

__all__ = [
    "BACKUP_LABEL",
    "BACKUP_MAGIC",
    "BACKUP_VERSION",
    "DEFAULT_BOUNDS",
    "KDF_ARGON2ID_HKDF_SHA256",
    "KDF_ARGON2ID_OPRF_HKDF_SHA256",
    "MAX_BACKUP_SIZE",
    "TESTING_BOUNDS",
    "BackupAuthenticationError",
    "BackupContents",
    "BackupError",
    "BackupFormatError",
    "KdfBounds",
    "KdfParams",
    "KdfParamsOutOfRange",
    "open_backup",
    "parse_backup_header",
    "seal_backup",
]

BACKUP_LABEL: Final = b"sealbox/v1/backup"
KNOWN_KDF_ALGORITHMS: Final = frozenset({KDF_ARGON2ID_HKDF_SHA256, KDF_ARGON2ID_OPRF_HKDF_SHA256})
# Each format version has exactly one derivation: v1 Argon2id then HKDF,
# v2 Argon2id and the OPRF then HKDF (and the OPRF key version in the header).
_VERSION_OF_KDF: Final = {
    KDF_ARGON2ID_HKDF_SHA256: BACKUP_VERSION,
    KDF_ARGON2ID_OPRF_HKDF_SHA256: BACKUP_VERSION_OPRF,
}
MAX_BUNDLES: Final = 256
# 256 bundles of ~1.5 KiB each plus framing; anything larger is refused
# before it is parsed or decrypted.
MAX_BACKUP_SIZE: Final = 1024 * 1024
_FIXED_HEADER: Final = len(BACKUP_MAGIC) + 1 + 1 + 4 + 4 + 4 + 1


# --- errors -------------------------------------------------------------------


class BackupError(Exception):
    """Base of every backup failure.  Messages never contain key material."""


class BackupFormatError(BackupError):
    """Not a backup blob, an unsupported version or algorithm, or malformed."""


class KdfParamsOutOfRange(BackupError, ValueError):
    """Work factors or salt outside the accepted bounds (seal or restore side)."""


class BackupAuthenticationError(BackupError):
    """The blob did not authenticate: a wrong password, or a modified blob.

    The two can't be told apart, and the message says so.
    """


# --- parameters ---------------------------------------------------------------


@dataclass(frozen=True)
class KdfParams:
    """How the backup key was derived from the password (stored in the clear).

    ``salt`` is the Argon2id salt the password module used, stored as bytes
    so restore needs no other input; none of these values is secret.
    ``oprf_key_version`` is the OPRF key the backup key was hardened with
    (format v2, ``algorithm`` = 2); 0 for a v1 backup (no OPRF).
    """

    memory_kib: int
    iterations: int
    lanes: int
    salt: bytes
    algorithm: int = KDF_ARGON2ID_HKDF_SHA256
    oprf_key_version: int = 0


@dataclass(frozen=True)
class KdfBounds:
    """The accepted range of each work factor (inclusive)."""

    min_memory_kib: int
    max_memory_kib: int
    min_iterations: int
    max_iterations: int
    min_lanes: int
    max_lanes: int

    def check(self, params: KdfParams) -> None:
        """Raise :class:`KdfParamsOutOfRange` unless ``params`` are within bounds.

        Also enforces Argon2's own rule (memory of at least 8 KiB per lane)
        and the salt length, and refuses unknown algorithms.
        """
        if params.algorithm not in KNOWN_KDF_ALGORITHMS:
            raise KdfParamsOutOfRange("unknown key derivation algorithm")
        hardened = params.algorithm == KDF_ARGON2ID_OPRF_HKDF_SHA256
        if type(params.oprf_key_version) is not int or not (
            (1 <= params.oprf_key_version < 2**32) if hardened else params.oprf_key_version == 0
        ):
            raise KdfParamsOutOfRange("the OPRF key version does not match the algorithm")
        for name in ("memory_kib", "iterations", "lanes"):
            if type(getattr(params, name)) is not int:
                raise KdfParamsOutOfRange(f"{name} must be an integer")
        if not self.min_memory_kib <= params.memory_kib <= self.max_memory_kib:
            raise KdfParamsOutOfRange(
                f"memory must be {self.min_memory_kib}-{self.max_memory_kib} KiB"
            )
        if not self.min_iterations <= params.iterations <= self.max_iterations:
            raise KdfParamsOutOfRange(
                f"iterations must be {self.min_iterations}-{self.max_iterations}"
            )
        if not self.min_lanes <= params.lanes <= self.max_lanes:
            raise KdfParamsOutOfRange(f"lanes must be {self.min_lanes}-{self.max_lanes}")
        if params.memory_kib < 8 * params.lanes:
            raise KdfParamsOutOfRange("Argon2 needs at least 8 KiB of memory per lane")
        if not isinstance(params.salt, bytes) or not (
            MIN_SALT_SIZE <= len(params.salt) <= MAX_SALT_SIZE
        ):
            raise KdfParamsOutOfRange(f"the salt must be {MIN_SALT_SIZE}-{MAX_SALT_SIZE} bytes")


# Lower bounds: OWASP's Argon2id minimum (19 MiB, 2 passes).  Upper bounds:
# what a phone can afford on restore (256 MiB, 10 passes, 8 lanes); a blob
# asking for more is refused before any memory is allocated.  The limits
# shared with the server (which refuses to store a backup outside them) are
# chalicelib.wire.backup's MIN_/MAX_KDF_* constants.
DEFAULT_BOUNDS: Final = KdfBounds(
    min_memory_kib=19 * 1024,
    max_memory_kib=MAX_KDF_MEMORY_KIB,
    min_iterations=2,
    max_iterations=MAX_KDF_ITERATIONS,
    min_lanes=MIN_KDF_LANES,
    max_lanes=MAX_KDF_LANES,
)
# For test suites and simulated fleets only, where thousands of devices
# derive keys: the lower bounds drop to Argon2's minimum.  The upper bounds
# stay, so a hostile blob is refused just the same.
TESTING_BOUNDS: Final = KdfBounds(
    min_memory_kib=MIN_KDF_MEMORY_KIB,
    max_memory_kib=DEFAULT_BOUNDS.max_memory_kib,
    min_iterations=MIN_KDF_ITERATIONS,
    max_iterations=DEFAULT_BOUNDS.max_iterations,
    min_lanes=1,
    max_lanes=DEFAULT_BOUNDS.max_lanes,
)


# --- contents -------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class BackupContents:
    """What a backup restores: the identity and its bundles, current first."""

    identity: str
    bundles: tuple[KeyBundle, ...]

    @property
    def current(self) -> KeyBundle:
        return self.bundles[0]

    def __repr__(self) -> str:
        return (
            f"BackupContents(identity={self.identity!r}, "
            f"current_card_id={self.current.card_id!r}, previous={len(self.bundles) - 1})"
        )

    __str__ = __repr__


# --- the blob ---------------------------------------------------------------------


def _header(params: KdfParams, nonce: bytes) -> bytes:
    version = _VERSION_OF_KDF[params.algorithm]
    return b"".join(
        (
            BACKUP_MAGIC,
            u8(version),
            u8(params.algorithm),
            u32(params.memory_kib),
            u32(params.iterations),
            u32(params.lanes),
            u8(len(params.salt)),
            params.salt,
            u32(params.oprf_key_version) if version == BACKUP_VERSION_OPRF else b"",
            nonce,
        )
    )


def seal_backup(
    bundles: Sequence[KeyBundle],
    backup_key: bytes,
    params: KdfParams,
    *,
    bounds: KdfBounds = DEFAULT_BOUNDS,
    rand: Callable[[int], bytes] = _hazmat.random_bytes,
) -> bytes:
    """Seal ``bundles`` (current first) under ``backup_key``.

    Args:
        bundles: the current bundle, then previous ones, all of one identity.
        backup_key: the 32-byte key derived from the password with ``params``.
        params: the derivation parameters, embedded in the clear.
        bounds: accepted work factors; keep the default outside tests.
        rand: source of the 32-byte nonce (deterministic only in vectors).

    Raises:
        KdfParamsOutOfRange: ``params`` are outside ``bounds``.
        ValueError: no bundle, too many, mixed identities, or a key that is
            not 32 bytes.
    """
    bounds.check(params)
    if len(backup_key) != _hazmat.AT_REST_KEY_SIZE:
        raise ValueError("the backup key is 32 bytes")
    if not 1 <= len(bundles) <= MAX_BUNDLES:
        raise ValueError(f"a backup holds 1 to {MAX_BUNDLES} key bundles")
    identity = bundles[0].identity
    if any(bundle.identity != identity for bundle in bundles):
        raise ValueError("every bundle in a backup must belong to one identity")
    if len({bundle.card_id for bundle in bundles}) != len(bundles):
        raise ValueError("a card appears twice in the backup")
    body = b"".join(
        (
            lp16(identity.encode("ascii")),
            u16(len(bundles)),
            *(lp16(bundle.to_bytes()) for bundle in bundles),
        )
    )
    header = _header(params, rand(_hazmat.AT_REST_NONCE_SIZE))
    nonce = header[-_hazmat.AT_REST_NONCE_SIZE :]
    return header + _hazmat.at_rest_seal(backup_key, nonce, BACKUP_LABEL, body, header)


def _parse_header(blob: bytes, bounds: KdfBounds) -> tuple[KdfParams, bytes, int]:
    if not isinstance(blob, bytes):
        raise BackupFormatError("a backup is bytes")
    if len(blob) > MAX_BACKUP_SIZE:
        raise BackupFormatError("the backup is larger than any valid backup")
    reader = Reader(blob)
    try:
        if reader.take(len(BACKUP_MAGIC)) != BACKUP_MAGIC:
            raise BackupFormatError("not a Sealbox key backup")
        version = reader.u8()
        if version not in (BACKUP_VERSION, BACKUP_VERSION_OPRF):
            raise BackupFormatError("unsupported backup version")
        algorithm = reader.u8()
        if _VERSION_OF_KDF.get(algorithm) != version:
            raise BackupFormatError("unsupported key derivation algorithm")
        memory_kib, iterations, lanes = reader.u32(), reader.u32(), reader.u32()
        salt = reader.take(reader.u8())
        oprf_key_version = reader.u32() if version == BACKUP_VERSION_OPRF else 0
        nonce = reader.take(_hazmat.AT_REST_NONCE_SIZE)
    except BackupFormatError:
        raise
    except ValueError as exc:
        raise BackupFormatError("the backup header is truncated") from exc
    params = KdfParams(
        memory_kib=memory_kib,
        iterations=iterations,
        lanes=lanes,
        salt=salt,
        algorithm=algorithm,
        oprf_key_version=oprf_key_version,
    )
    bounds.check(params)
    return params, nonce, len(blob) - reader.remaining


def parse_backup_header(blob: bytes, *, bounds: KdfBounds = DEFAULT_BOUNDS) -> KdfParams:
    """The KDF parameters of a backup, checked against ``bounds``.

    Call this before deriving anything from the password: it is what keeps a
    hostile blob from choosing an unaffordable work factor.  The values are
    not authenticated until :func:`open_backup` succeeds; the bounds are what
    makes trusting them for the derivation safe.

    Raises:
        BackupFormatError: not a backup, unsupported version or algorithm,
            truncated header, or oversized.
        KdfParamsOutOfRange: a work factor or the salt is outside ``bounds``.
    """
    return _parse_header(blob, bounds)[0]


def open_backup(
    blob: bytes, backup_key: bytes, *, bounds: KdfBounds = DEFAULT_BOUNDS
) -> BackupContents:
    """Authenticate, decrypt and parse a backup.

    Raises:
        BackupFormatError, KdfParamsOutOfRange: as :func:`parse_backup_header`,
            or an authenticated body that does not parse.
        BackupAuthenticationError: a wrong key (wrong password) or any
            modified byte.
        ValueError: ``backup_key`` is not 32 bytes.
    """
    _, nonce, header_size = _parse_header(blob, bounds)
    if len(backup_key) != _hazmat.AT_REST_KEY_SIZE:
        raise ValueError("the backup key is 32 bytes")
    header = blob[:header_size]
    try:
        body = _hazmat.at_rest_open(backup_key, nonce, BACKUP_LABEL, blob[header_size:], header)
    except _hazmat.InvalidTag as exc:
        raise BackupAuthenticationError(
            "the backup did not authenticate: wrong password, or it was modified"
        ) from exc
    try:
        reader = Reader(body)
        identity = reader.lp16().decode("ascii")
        count = reader.u16()
        if not 1 <= count <= MAX_BUNDLES:
            raise BackupFormatError("invalid number of key bundles")
        bundles = tuple(KeyBundle.from_bytes(reader.lp16()) for _ in range(count))
        reader.finish()
    except BackupFormatError:
        raise
    except (ValueError, InvalidKeyBundle, UnicodeDecodeError) as exc:
        raise BackupFormatError("the backup contents are not valid") from exc
    if any(bundle.identity != identity for bundle in bundles) or len(
        {bundle.card_id for bundle in bundles}
    ) != len(bundles):
        raise BackupFormatError("the backup contents are not consistent")
    return BackupContents(identity=identity, bundles=bundles)
