"""The backup envelope: what both sides know about a key backup blob.

The device seals its private key bundles into a backup (``client_sim.backup``
writes and opens it; docs/spec/backup.md has the layout).  The server stores
the blob but can't and mustn't open it: all it checks is that the bytes look
like a backup of a version it knows, so a client bug or a confused script
can't park arbitrary data in the key directory.  Those checks, and the
magic and version they compare against, live here once so the two sides
can't drift apart.  Pure: no chalice, no boto3, no cryptography.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BACKUP_MAGIC",
    "BACKUP_VERSION",
    "BACKUP_VERSION_OPRF",
    "KDF_ARGON2ID_HKDF_SHA256",
    "KDF_ARGON2ID_OPRF_HKDF_SHA256",
    "MAX_KDF_ITERATIONS",
    "MAX_KDF_LANES",
    "MAX_KDF_MEMORY_KIB",
    "MAX_SALT_SIZE",
    "MIN_BACKUP_SIZE",
    "MIN_KDF_ITERATIONS",
    "MIN_KDF_LANES",
    "MIN_KDF_MEMORY_KIB",
    "MIN_SALT_SIZE",
    "KdfOutOfRange",
    "NotABackup",
    "check_backup_envelope",
]

BACKUP_MAGIC: Final = b"SBBACKUP"
BACKUP_VERSION: Final = 1
# The only derivation version 1 knows: Argon2id (RFC 9106, v1.3) over the
# password and salt, then HKDF-SHA-256 to the backup key.
KDF_ARGON2ID_HKDF_SHA256: Final = 1
# Version 2 (password hardening, docs/spec/backup.md): the backup key is
# HKDF-SHA-256 over the Argon2id output and the OPRF output, and the header
# records the OPRF key version (u32, after the salt) the device evaluated.
BACKUP_VERSION_OPRF: Final = 2
KDF_ARGON2ID_OPRF_HKDF_SHA256: Final = 2
_KDF_OF_VERSION: Final = {
    BACKUP_VERSION: KDF_ARGON2ID_HKDF_SHA256,
    BACKUP_VERSION_OPRF: KDF_ARGON2ID_OPRF_HKDF_SHA256,
}
_OPRF_VERSION_SIZE: Final = 4
MIN_SALT_SIZE: Final = 16
MAX_SALT_SIZE: Final = 64
# The work factors any device accepts, the envelope of every device profile
# (client_sim.backup.KdfBounds): upper bounds are what a phone can afford on
# restore (256 MiB, 10 passes, 8 lanes), so a blob asking for more can't make
# one allocate gigabytes; lower bounds are Argon2's own minimum, which only
# the test and simulation profiles use (production devices refuse less than
# OWASP's 19 MiB and 2 passes themselves).  Plus Argon2's rule of at least
# 8 KiB of memory per lane.
MIN_KDF_MEMORY_KIB: Final = 8
MAX_KDF_MEMORY_KIB: Final = 256 * 1024
MIN_KDF_ITERATIONS: Final = 1
MAX_KDF_ITERATIONS: Final = 10
MIN_KDF_LANES: Final = 1
MAX_KDF_LANES: Final = 8
ARGON2_MIN_KIB_PER_LANE: Final = 8
_NONCE_SIZE: Final = 32
_TAG_SIZE: Final = 16
# magic, version, algorithm, three u32 work factors, the salt length byte.
_FIXED_HEADER: Final = len(BACKUP_MAGIC) + 1 + 1 + 4 + 4 + 4 + 1
# The smallest blob that can be valid: shortest salt, the nonce, an empty
# body's tag.  (A real body is never empty; the device decides that.)
MIN_BACKUP_SIZE: Final = _FIXED_HEADER + MIN_SALT_SIZE + _NONCE_SIZE + _TAG_SIZE


class NotABackup(ValueError):
    """The bytes are not a backup blob of a version this code knows.

    The message names the failed check, never the bytes.
    """


class KdfOutOfRange(NotABackup):
    """The backup's work factors are outside what any device accepts."""


def check_kdf_factors(memory_kib: int, iterations: int, lanes: int) -> None:
    """Range-check Argon2id work factors against the bounds every device uses.

    Raises:
        KdfOutOfRange: a factor is out of range, or there is less than 8 KiB
            of memory per lane.
    """
    if not MIN_KDF_MEMORY_KIB <= memory_kib <= MAX_KDF_MEMORY_KIB:
        raise KdfOutOfRange(f"memory must be {MIN_KDF_MEMORY_KIB}-{MAX_KDF_MEMORY_KIB} KiB")
    if not MIN_KDF_ITERATIONS <= iterations <= MAX_KDF_ITERATIONS:
        raise KdfOutOfRange(f"iterations must be {MIN_KDF_ITERATIONS}-{MAX_KDF_ITERATIONS}")
    if not MIN_KDF_LANES <= lanes <= MAX_KDF_LANES:
        raise KdfOutOfRange(f"lanes must be {MIN_KDF_LANES}-{MAX_KDF_LANES}")
    if memory_kib < ARGON2_MIN_KIB_PER_LANE * lanes:
        raise KdfOutOfRange("Argon2 needs at least 8 KiB of memory per lane")


def check_backup_envelope(blob: bytes) -> None:
    """Check the cleartext framing of a backup without opening it.

    Checks the magic, the version, the KDF algorithm, the work factors
    (:func:`check_kdf_factors`: the bounds every device applies before
    deriving anything, so the server keeps no backup any device would
    refuse), the salt length and that the blob is long enough to hold its
    header and an AEAD tag.

    Raises:
        KdfOutOfRange: the work factors are out of range.
        NotABackup: any other check failed.
    """
    if len(blob) < MIN_BACKUP_SIZE:
        raise NotABackup("too short to be a key backup")
    if blob[: len(BACKUP_MAGIC)] != BACKUP_MAGIC:
        raise NotABackup("not a Sealbox key backup")
    version = blob[len(BACKUP_MAGIC)]
    if version not in _KDF_OF_VERSION:
        raise NotABackup("unsupported key backup version")
    if blob[len(BACKUP_MAGIC) + 1] != _KDF_OF_VERSION[version]:
        raise NotABackup("unsupported key derivation algorithm")
    factors = len(BACKUP_MAGIC) + 2
    check_kdf_factors(
        *(int.from_bytes(blob[at : at + 4], "big") for at in range(factors, factors + 12, 4))
    )
    salt_size = blob[_FIXED_HEADER - 1]
    if not MIN_SALT_SIZE <= salt_size <= MAX_SALT_SIZE:
        raise NotABackup("invalid salt length")
    extra = _OPRF_VERSION_SIZE if version == BACKUP_VERSION_OPRF else 0
    if len(blob) < _FIXED_HEADER + salt_size + extra + _NONCE_SIZE + _TAG_SIZE:
        raise NotABackup("too short to be a key backup")
    if extra:
        at = _FIXED_HEADER + salt_size
        if int.from_bytes(blob[at : at + extra], "big") == 0:
            raise NotABackup("invalid OPRF key version")
