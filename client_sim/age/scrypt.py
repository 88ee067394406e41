"""The scrypt passphrase recipient type (c2sp.org/age, "The scrypt recipient type").

A stanza is ``-> scrypt <salt> <log2 N>`` with a 32-byte body: the file key
sealed with ChaCha20-Poly1305 (all-zero nonce) under
``scrypt(N, r = 8, p = 1, S = "age-encryption.org/v1/scrypt" || salt)``.

A passphrase stanza must be the only stanza in its file: otherwise anyone
holding another recipient's key could produce a file that "came from" the
passphrase holder.  The encrypting side enforces it through a unique label,
the decrypting side by refusing such headers.  The decrypting side also caps
the work factor so that a hostile file can't demand gigabytes of memory.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from client_sim import _hazmat
from client_sim.age._core import DEFAULT_MAX_WORK_FACTOR
from client_sim.age._format import Stanza, b64_decode, b64_encode
from client_sim.age.errors import DecryptionError, NoIdentityMatch

__all__ = [
    "DEFAULT_MAX_WORK_FACTOR",
    "DEFAULT_WORK_FACTOR",
    "ScryptIdentity",
    "ScryptRecipient",
]

STANZA_TYPE = "scrypt"
_LABEL = b"age-encryption.org/v1/scrypt"
_SALT_SIZE = 16
_FILE_KEY_SIZE = 16
_ZERO_NONCE = bytes(_hazmat.CHACHA20_POLY1305_NONCE_SIZE)
_BODY_SIZE = _FILE_KEY_SIZE + _hazmat.CHACHA20_POLY1305_TAG_SIZE
#: age's default for new files: about a second and 256 MiB on a laptop.
DEFAULT_WORK_FACTOR = 18
# Decimal without sign or leading zero; two digits are enough for any
# work factor we accept, and the bound keeps int() away from huge strings.
_WORK_FACTOR_RE = re.compile(r"[1-9][0-9]?")


def _passphrase_bytes(passphrase: str | bytes) -> bytes:
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    if not isinstance(passphrase, bytes):
        raise TypeError("passphrase must be str or bytes")
    if not passphrase:
        raise ValueError("passphrase must not be empty")
    return passphrase


def _check_work_factor(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int")
    if not 1 <= value <= _hazmat.SCRYPT_MAX_LOG_N:
        raise ValueError(f"{what} must be 1..{_hazmat.SCRYPT_MAX_LOG_N}")
    return value


class ScryptRecipient:
    """Encrypts to a passphrase.  Must be the only recipient of a file."""

    __slots__ = ("_passphrase", "_work_factor")

    def __init__(self, passphrase: str | bytes, *, work_factor: int = DEFAULT_WORK_FACTOR) -> None:
        """Raises:
        TypeError: wrong argument types.
        ValueError: empty passphrase, or ``work_factor`` outside 1..30.
        """
        self._passphrase = _passphrase_bytes(passphrase)
        self._work_factor = _check_work_factor(work_factor, "work_factor")

    @property
    def work_factor(self) -> int:
        """log2 of scrypt's N for new stanzas."""
        return self._work_factor

    def wrap(self, file_key: bytes) -> list[Stanza]:
        """One scrypt stanza (fresh salt).  Use through :func:`encrypt`, which
        keeps it the only stanza."""
        return self.wrap_with_labels(file_key)[0]

    def wrap_with_labels(self, file_key: bytes) -> tuple[list[Stanza], frozenset[str]]:
        """The stanza plus a label no other recipient shares, so that
        :func:`encrypt` refuses to combine it with any other recipient."""
        return self._wrap_with_labels(file_key, _hazmat.random_bytes)

    def _wrap_with_labels(
        self, file_key: bytes, rand: _hazmat.Rand
    ) -> tuple[list[Stanza], frozenset[str]]:
        # Private seam: tests inject ``rand`` to make the salt reproducible.
        if len(file_key) != _FILE_KEY_SIZE:
            raise ValueError("age file keys are 16 bytes")
        salt = rand(_SALT_SIZE)
        wrap_key = _hazmat.scrypt_derive(
            self._passphrase,
            _LABEL + salt,
            log_n=self._work_factor,
            max_log_n=self._work_factor,
        )
        body = _hazmat.chacha20poly1305_seal(wrap_key, _ZERO_NONCE, file_key)
        stanza = Stanza(STANZA_TYPE, (b64_encode(salt), str(self._work_factor)), body)
        unique = "scrypt/" + _hazmat.random_bytes(16).hex()
        return [stanza], frozenset({unique})

    def __repr__(self) -> str:
        return f"ScryptRecipient(work_factor={self._work_factor})"


class ScryptIdentity:
    """Decrypts passphrase-encrypted files, up to a maximum work factor."""

    __slots__ = ("_max_work_factor", "_passphrase")

    def __init__(
        self, passphrase: str | bytes, *, max_work_factor: int = DEFAULT_MAX_WORK_FACTOR
    ) -> None:
        """Raises:
        TypeError: wrong argument types.
        ValueError: empty passphrase, or ``max_work_factor`` outside 1..30.
        """
        self._passphrase = _passphrase_bytes(passphrase)
        self._max_work_factor = _check_work_factor(max_work_factor, "max_work_factor")

    @property
    def max_work_factor(self) -> int:
        """The largest log2(N) this identity will compute."""
        return self._max_work_factor

    def _capped(self, max_work_factor: int) -> ScryptIdentity:
        """A copy whose ceiling is at most ``max_work_factor``."""
        if max_work_factor >= self._max_work_factor:
            return self
        return ScryptIdentity(self._passphrase, max_work_factor=max_work_factor)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes:
        """The file key from the scrypt stanza, if the passphrase opens it.

        Raises:
            NoIdentityMatch: no scrypt stanza, or the passphrase (or the
                work factor in the stanza) is wrong.
            DecryptionError: the scrypt stanza is not alone, is malformed
                (argument count, salt not canonical base64 of 16 bytes,
                work factor not a decimal without leading zeros, body not 32
                bytes), or asks for more than :attr:`max_work_factor`.
        """
        for stanza in stanzas:
            if stanza.type != STANZA_TYPE:
                continue
            if len(stanzas) != 1 or len(stanza.args) != 2:
                raise DecryptionError
            salt_text, work_text = stanza.args
            try:
                salt = b64_decode(salt_text)
            except ValueError:
                raise DecryptionError from None
            if len(salt) != _SALT_SIZE or not _WORK_FACTOR_RE.fullmatch(work_text):
                raise DecryptionError
            work_factor = int(work_text)
            if work_factor > self._max_work_factor or len(stanza.body) != _BODY_SIZE:
                raise DecryptionError
            wrap_key = _hazmat.scrypt_derive(
                self._passphrase,
                _LABEL + salt,
                log_n=work_factor,
                max_log_n=self._max_work_factor,
            )
            try:
                return _hazmat.chacha20poly1305_open(wrap_key, _ZERO_NONCE, stanza.body)
            except _hazmat.InvalidTag:
                continue
        raise NoIdentityMatch

    def __repr__(self) -> str:
        return f"ScryptIdentity(max_work_factor={self._max_work_factor})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("identities are not picklable (that would copy the secret)")
