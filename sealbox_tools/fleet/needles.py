"""The secrets a fleet run produces, collected for the privacy audit to look for.

Every password, password-derived key and private key seed a simulated phone
ever holds is a needle: the audit then searches everything the server side
stores for each of them, and a run passes only with zero hits.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from chalicelib.wire.binary import Reader
from chalicelib.wire.oprf_keys import OprfKey
from client_sim.passwords import KdfParams, stretch_password

__all__ = ["Secrets", "bundle_secrets"]


class Secrets:
    """Every secret of the run, by label (thread-safe; first label wins)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_value: dict[bytes, str] = {}
        self._passwords: list[tuple[str, str]] = []

    def add(self, label: str, secret: bytes) -> None:
        with self._lock:
            self._by_value.setdefault(bytes(secret), label)

    def password(self, identity: str, password: str) -> None:
        with self._lock:
            self._passwords.append((identity, password))
        self.add(f"{identity} password", password.encode("utf-8"))

    def derived_keys(self, kdf: KdfParams, oprf_keys: Sequence[OprfKey] = ()) -> None:
        """Add the login and backup keys of every password seen.

        With ``oprf_keys`` (a run with password hardening), also the keys
        hardened under each: computed here with the OPRF key directly, as
        the devices got them through the blinded protocol.
        """
        with self._lock:
            pairs = list(self._passwords)
        for n, (identity, password) in enumerate(pairs):
            stretched = stretch_password(identity, password, kdf)
            keys = stretched.version1()
            self.add(f"{identity} login key #{n}", keys.login_key)
            self.add(f"{identity} backup key #{n}", keys.backup_key)
            for key in oprf_keys:
                output = key.output(stretched.identity, stretched.oprf_input)
                self.add(f"{identity} OPRF output v{key.version} #{n}", output)
                hardened = stretched.hardened(output, key.version)
                self.add(f"{identity} hardened login key #{n}", hardened.login_key)
                self.add(f"{identity} hardened backup key #{n}", hardened.backup_key)

    def items(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return sorted(((label, value) for value, label in self._by_value.items()))

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_value)


def bundle_secrets(bundle_bytes: bytes) -> list[tuple[str, bytes]]:
    """The private seeds inside a serialized key bundle (``KeyBundle.to_bytes``).

    The layout is the keystore's (docs/spec/keystore.md): label, version,
    card, then the Ed25519 seed, the X25519 secret and the ML-KEM seed, each
    length-prefixed.
    """
    reader = Reader(bundle_bytes)
    reader.lp16()  # label
    reader.lp16()  # version
    reader.lp16()  # the card (public)
    return [
        ("ed25519 seed", reader.lp16()),
        ("x25519 secret", reader.lp16()),
        ("mlkem768x25519 seed", reader.lp16()),
    ]
