"""Helpers shared by the native key types (not public)."""

from __future__ import annotations

from client_sim import _hazmat
from client_sim.age import bech32
from client_sim.age.errors import InvalidKey

__all__ = ["decode_key", "fingerprint"]


def decode_key(text: str, *, hrp: str, prefix: str, size: int, what: str) -> bytes:
    """Decode a Bech32 key string with exactly ``hrp`` (case-sensitive) and
    ``size`` payload bytes.

    Raises:
        InvalidKey: anything else.  The message names the key kind only,
            never the string (it may be a secret key).
    """
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str")
    if not text.startswith(prefix):
        raise InvalidKey(f"malformed {what}")
    try:
        got_hrp, data = bech32.decode(text)
    except bech32.Bech32Error:
        raise InvalidKey(f"malformed {what}") from None
    if got_hrp != hrp or len(data) != size:
        raise InvalidKey(f"malformed {what}")
    return data


def fingerprint(public: bytes) -> str:
    """A short public fingerprint for ``repr``: 8 bytes of SHA-256, in hex."""
    return _hazmat.sha256(public)[:8].hex()
