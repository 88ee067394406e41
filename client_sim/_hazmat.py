"""The device side's one room for ``cryptography.hazmat``.

Every other module in ``client_sim`` reaches low-level primitives through
the functions here.  Each function wraps exactly one primitive, states its
size limits, and says why it is safe to call the way it is (nonce policy,
contributory-DH check, work-factor bounds).  Nothing here invents a
primitive; everything composes what ``cryptography`` provides.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# --- password derivation (Argon2id, HKDF) -------------------------------------


def argon2id(
    secret: bytes, *, salt: bytes, memory_kib: int, iterations: int, lanes: int, length: int
) -> bytes:
    """Argon2id (RFC 9106) of ``secret``.

    The caller range-checks the work factors (``client_sim.passwords``) before
    calling: this wrapper only refuses what RFC 9106 itself forbids, so a
    hostile parameter set from a backup file is stopped before it gets here.
    """
    return Argon2id(
        salt=salt,
        length=length,
        iterations=iterations,
        lanes=lanes,
        memory_cost=memory_kib,
    ).derive(secret)


def hkdf_sha256_derive(ikm: bytes, *, salt: bytes | None, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869) extract-and-expand.

    Distinct ``info`` labels give independent keys from one input, which is
    how one Argon2id output becomes a login key and a backup key that reveal
    nothing about each other.
    """
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)
