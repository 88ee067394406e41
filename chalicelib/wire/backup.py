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
    "KDF_ARGON2ID_HKDF_SHA256",
    "MAX_SALT_SIZE",
    "MIN_BACKUP_SIZE",
    "MIN_SALT_SIZE",
    "NotABackup",
    "check_backup_envelope",
]

BACKUP_MAGIC: Final = b"SBBACKUP"
BACKUP_VERSION: Final = 1
# The only derivation version 1 knows: Argon2id (RFC 9106, v1.3) over the
# password and salt, then HKDF-SHA-256 to the backup key.
KDF_ARGON2ID_HKDF_SHA256: Final = 1
MIN_SALT_SIZE: Final = 16
MAX_SALT_SIZE: Final = 64
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


def check_backup_envelope(blob: bytes) -> None:
    """Check the cleartext framing of a backup without opening it.

    Checks the magic, the version, the KDF algorithm, the salt length and
    that the blob is long enough to hold its header and an AEAD tag.  Work
    factors are not judged here: the restoring device checks them against
    its own bounds before deriving anything.

    Raises:
        NotABackup: any check failed.
    """
    if len(blob) < MIN_BACKUP_SIZE:
        raise NotABackup("too short to be a key backup")
    if blob[: len(BACKUP_MAGIC)] != BACKUP_MAGIC:
        raise NotABackup("not a Sealbox key backup")
    if blob[len(BACKUP_MAGIC)] != BACKUP_VERSION:
        raise NotABackup("unsupported key backup version")
    if blob[len(BACKUP_MAGIC) + 1] != KDF_ARGON2ID_HKDF_SHA256:
        raise NotABackup("unsupported key derivation algorithm")
    salt_size = blob[_FIXED_HEADER - 1]
    if not MIN_SALT_SIZE <= salt_size <= MAX_SALT_SIZE:
        raise NotABackup("invalid salt length")
    if len(blob) < _FIXED_HEADER + salt_size + _NONCE_SIZE + _TAG_SIZE:
        raise NotABackup("too short to be a key backup")
