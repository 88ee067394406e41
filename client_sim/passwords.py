"""Password → login key + backup key, on the device.

The password never leaves the device.  It is stretched once with Argon2id
under a deterministic per-user salt, and the result is split with HKDF into
two independent 32-byte keys (the same shape as Bitwarden's master-key split
and E3Kit's ``derivePasswords``):

* the **login key** is sent to the server at registration and login, where it
  is hashed again with Argon2id;
* the **backup key** never leaves the device; it seals the private-key backup.

Knowing the login key (everything the server ever learns) gives no
information about the backup key: they come from one HKDF PRK under distinct
labels (DESIGN invariant 4).  The salt is derived from the identity so that
a new phone can derive the same keys from the username and password alone,
without asking the server first.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field

from chalicelib.wire.b64 import b64url_encode
from chalicelib.wire.identity import normalize_identity
from client_sim import _hazmat

PASSWORD_MIN_CHARS = 12
PASSWORD_MAX_CHARS = 1024
KEY_SIZE = 32

# Domain-separation labels: versioned, one constant each.
SALT_LABEL = b"sealbox/v1/password-salt"
LOGIN_KEY_LABEL = b"sealbox/v1/login-key"
BACKUP_KEY_LABEL = b"sealbox/v1/backup-key"
# Password hardening (docs/spec/passwords.md, derivation version 2): the OPRF
# input is this label and the Argon2id output; the two keys come from HKDF
# over the Argon2id output and the OPRF output, under labels of their own.
OPRF_INPUT_LABEL = b"sealbox/v1/oprf-input"
HARDENED_LOGIN_KEY_LABEL = b"sealbox/v1/hardened-login-key"
HARDENED_BACKUP_KEY_LABEL = b"sealbox/v1/hardened-backup-key"

# Hard bounds on any parameter set, including one read from a backup file:
# past these a hostile file could make a phone allocate gigabytes or spin
# for minutes.
MAX_MEMORY_KIB = 1024 * 1024  # 1 GiB
MAX_ITERATIONS = 16
MAX_LANES = 8


class WeakPassword(ValueError):
    """The password is outside the accepted length (12-1024 characters)."""


@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters, versioned with the derivation they belong to."""

    version: int
    memory_kib: int
    iterations: int
    lanes: int

    def check(self) -> None:
        """Refuse parameters outside the hard bounds.

        Raises:
            ValueError: unknown version, or a work factor out of range.
        """
        if self.version != 1:
            raise ValueError("unknown password KDF version")
        if not 1 <= self.lanes <= MAX_LANES:
            raise ValueError("Argon2id lanes out of range")
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise ValueError("Argon2id iterations out of range")
        # RFC 9106: memory must be at least 8 KiB per lane.
        if not 8 * self.lanes <= self.memory_kib <= MAX_MEMORY_KIB:
            raise ValueError("Argon2id memory out of range")

    @property
    def meets_owasp(self) -> bool:
        """True for at least OWASP's weakest recommended Argon2id setting
        (m=19 MiB, t=2) or its equal-cost m=46 MiB, t=1 alternative."""
        return (self.memory_kib >= 19 * 1024 and self.iterations >= 2) or (
            self.memory_kib >= 46 * 1024
        )


# The default: 64 MiB, 3 passes, 4 lanes (Bitwarden's Argon2id default, well
# above OWASP's minimum).  Every device of a user must use the same
# parameters, since the login key depends on them.
PASSWORD_KDF_V1 = KdfParams(version=1, memory_kib=64 * 1024, iterations=3, lanes=4)

# For simulated fleets and tests only: thousands of simulated phones would
# otherwise spend their time in Argon2id.  Never the default anywhere a person
# chooses a password.
PASSWORD_KDF_SIMULATION = KdfParams(version=1, memory_kib=256, iterations=1, lanes=1)


@dataclass(frozen=True)
class PasswordKeys:
    """The two keys derived from one password.  Neither appears in ``repr``.

    ``oprf_version`` is the OPRF key version they were hardened with (0: the
    version-1 derivation, Argon2id alone).  ``others`` holds the keys of the
    same password under the derivations an account may still be on (the
    version-1 keys; those of the previous OPRF key during a rotation), to log
    in once more and open older backups until they are re-wrapped.
    """

    identity: str
    params: KdfParams
    login_key: bytes = field(repr=False)
    backup_key: bytes = field(repr=False)
    oprf_version: int = 0
    others: tuple[PasswordKeys, ...] = field(default=(), repr=False)

    def under(self, oprf_version: int) -> PasswordKeys | None:
        """The keys of this password under ``oprf_version`` (0: version 1), if derived."""
        for keys in (self, *self.others):
            if keys.oprf_version == oprf_version:
                return keys
        return None

    @property
    def login_key_b64(self) -> str:
        """The login key as the API expects it (base64url, no padding)."""
        return b64url_encode(self.login_key)


def check_password(password: object) -> str:
    """Return ``password`` in Unicode NFC, or raise :class:`WeakPassword`.

    NFC makes the same password typed on different keyboards (composed or
    decomposed accents) derive the same keys.
    """
    if not isinstance(password, str):
        raise TypeError("password must be a string")
    if len(password) > 4 * PASSWORD_MAX_CHARS:
        raise WeakPassword(f"passwords are at most {PASSWORD_MAX_CHARS} characters")
    normalized = unicodedata.normalize("NFC", password)
    if len(normalized) < PASSWORD_MIN_CHARS:
        raise WeakPassword(f"passwords are at least {PASSWORD_MIN_CHARS} characters")
    if len(normalized) > PASSWORD_MAX_CHARS:
        raise WeakPassword(f"passwords are at most {PASSWORD_MAX_CHARS} characters")
    return normalized


def password_salt(identity: str) -> bytes:
    """The deterministic per-user Argon2id salt: SHA-256(label || 0 || identity)."""
    return hashlib.sha256(SALT_LABEL + b"\x00" + identity.encode("ascii")).digest()


@dataclass(frozen=True)
class StretchedPassword:
    """Argon2id of a password: the input of both derivations.  Not in ``repr``."""

    identity: str
    params: KdfParams
    master: bytes = field(repr=False)

    @property
    def oprf_input(self) -> bytes:
        """The private OPRF input (RFC 9497 ``input``): label || master."""
        return OPRF_INPUT_LABEL + self.master

    def version1(self) -> PasswordKeys:
        """The version-1 keys (no OPRF)."""
        return PasswordKeys(
            identity=self.identity,
            params=self.params,
            login_key=_hazmat.hkdf_sha256(
                self.master, salt=b"", info=LOGIN_KEY_LABEL, length=KEY_SIZE
            ),
            backup_key=_hazmat.hkdf_sha256(
                self.master, salt=b"", info=BACKUP_KEY_LABEL, length=KEY_SIZE
            ),
        )

    def hardened(self, oprf_output: bytes, oprf_version: int) -> PasswordKeys:
        """The version-2 keys: HKDF over ``master || oprf_output``.

        Raises:
            ValueError: ``oprf_output`` is not 64 bytes or the version is not positive.
        """
        if len(oprf_output) != 64 or oprf_version < 1:
            raise ValueError("an OPRF output is 64 bytes, under a positive key version")
        ikm = self.master + oprf_output
        return PasswordKeys(
            identity=self.identity,
            params=self.params,
            login_key=_hazmat.hkdf_sha256(
                ikm, salt=b"", info=HARDENED_LOGIN_KEY_LABEL, length=KEY_SIZE
            ),
            backup_key=_hazmat.hkdf_sha256(
                ikm, salt=b"", info=HARDENED_BACKUP_KEY_LABEL, length=KEY_SIZE
            ),
            oprf_version=oprf_version,
        )


def stretch_password(
    username: str, password: str, params: KdfParams = PASSWORD_KDF_V1
) -> StretchedPassword:
    """Argon2id of ``password`` under ``username``'s salt.

    Raises:
        chalicelib.wire.identity.InvalidIdentity: ``username`` is not valid.
        WeakPassword: the password is shorter than 12 or longer than 1024
            characters.
        ValueError: ``params`` are out of bounds.
    """
    identity = normalize_identity(username)
    secret = check_password(password).encode("utf-8")
    params.check()
    master = _hazmat.argon2id(
        secret,
        salt=password_salt(identity),
        memory_kib=params.memory_kib,
        iterations=params.iterations,
        lanes=params.lanes,
        length=KEY_SIZE,
    )
    return StretchedPassword(identity=identity, params=params, master=master)


def derive_password_keys(
    username: str, password: str, params: KdfParams = PASSWORD_KDF_V1
) -> PasswordKeys:
    """Derive the version-1 login key and backup key for ``username`` (no OPRF).

    Raises:
        chalicelib.wire.identity.InvalidIdentity: ``username`` is not valid.
        WeakPassword: the password is shorter than 12 or longer than 1024
            characters.
        ValueError: ``params`` are out of bounds.
    """
    return stretch_password(username, password, params).version1()
