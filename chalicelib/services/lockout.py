"""Login throttling policy and the login-key hasher, shared by the account flows.

Kept apart from :mod:`chalicelib.services.accounts` so that module stays one
idea (the account state machine) and these two knobs can be read on their
own: how fast a guesser may go, and what a stored login key costs to check.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib import crypto

LOGIN_KEY_SIZE = 32


@dataclass(frozen=True)
class LockoutPolicy:
    """Exponential backoff after ``free_attempts`` consecutive failures.

    After the ``free_attempts``-th consecutive failure the account waits
    ``base_delay`` seconds, doubling with each further failure up to
    ``max_delay``.  With the defaults an online guesser gets 5 tries, then
    about one more per hour: a few dozen guesses a day against a login key
    derived from a 12+ character password.  The record expires ``window``
    seconds after the last attempt.
    """

    free_attempts: int = 5
    base_delay: int = 30
    max_delay: int = 3600
    window: int = 86400

    def delay_after(self, attempts: int) -> int:
        if attempts < self.free_attempts:
            return 0
        exponent = min(attempts - self.free_attempts, 32)
        return min(self.base_delay << exponent, self.max_delay)


class LoginKeyHasher:
    """Argon2id over login keys, with a dummy hash for unknown users."""

    def __init__(self, *, memory_kib: int, iterations: int, lanes: int) -> None:
        self._params = {"memory_kib": memory_kib, "iterations": iterations, "lanes": lanes}
        self._dummy: str | None = None

    def hash(self, login_key: bytes) -> str:
        return crypto.argon2id_hash(login_key, **self._params)

    def verify(self, login_key: bytes, phc: str) -> bool:
        return crypto.argon2id_verify(login_key, phc)

    def verify_dummy(self, login_key: bytes) -> bool:
        """Spend one verification's worth of work and return False."""
        if self._dummy is None:
            # Made once per warm container with the live parameters, so its
            # cost matches a real user's hash.
            self._dummy = self.hash(crypto.random_bytes(LOGIN_KEY_SIZE))
        crypto.argon2id_verify(login_key, self._dummy)
        return False

    def needs_rehash(self, phc: str) -> bool:
        return crypto.argon2id_needs_rehash(phc, **self._params)
