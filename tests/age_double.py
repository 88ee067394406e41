"""A stand-in for ``client_sim.age`` while the real package is not on this branch.

It has the same shape as the real interface the sealed layer uses -- the
``encrypt_writer`` / ``decrypt_reader`` streaming pair, the four key
constructors :mod:`client_sim.identity` calls, and the ``errors`` module --
and none of its cryptography: the "ciphertext" is the plaintext behind a
header naming the recipients' public-key hashes, closed by an HMAC keyed by
those hashes.  That is enough to exercise the composition (identity
matching, streaming, an error at EOF on tampering) and nothing more.

:func:`install` puts it in ``sys.modules`` only when ``client_sim.age``
cannot be imported; once the real package is merged the composition tests
run against it unchanged and this file can be deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import sys
import types
from collections.abc import Sequence
from typing import Any

import pytest

from client_sim import _hazmat

MAGIC = b"AGE-DOUBLE\n"
TAG = 32


class AgeError(Exception):
    pass


class DecryptionError(AgeError):
    pass


class NoIdentityMatch(DecryptionError):
    pass


def _tag(kind: str, public: bytes) -> bytes:
    return hashlib.sha256(kind.encode() + public).digest()


class _Recipient:
    kind = ""

    def __init__(self, public_key: bytes) -> None:
        self.public_key = public_key

    def wrap(self, file_key: bytes) -> list[Any]:
        return [_tag(self.kind, self.public_key)]


class X25519Recipient(_Recipient):
    kind = "X25519"


class MLKEM768X25519Recipient(_Recipient):
    kind = "mlkem768x25519"


class _Identity:
    kind = ""

    def __init__(self, public_key: bytes) -> None:
        self._public = public_key

    def unwrap(self, stanzas: Sequence[Any]) -> bytes:
        if _tag(self.kind, self._public) in stanzas:
            return b"file-key"
        raise NoIdentityMatch("no identity matched")


class X25519Identity(_Identity):
    kind = "X25519"

    def __init__(self, secret: bytes) -> None:
        super().__init__(_hazmat.x25519_public_key_of(secret))


class MLKEM768X25519Identity(_Identity):
    kind = "mlkem768x25519"

    def __init__(self, seed: bytes) -> None:
        super().__init__(_hazmat.pq_hybrid_public_key_of(seed))


class _Writer:
    def __init__(self, dst: Any, recipients: Sequence[_Recipient]) -> None:
        tags = sorted(t for r in recipients for t in r.wrap(b""))
        self._dst = dst
        self._mac = hmac.new(b"".join(tags), digestmod=hashlib.sha256)
        header = MAGIC + len(tags).to_bytes(2, "big") + b"".join(tags)
        self._mac.update(header)
        dst.write(header)

    def write(self, data: bytes) -> int:
        self._mac.update(data)
        self._dst.write(data)
        return len(data)

    def close(self) -> None:
        self._dst.write(self._mac.digest())

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Reader:
    def __init__(self, src: Any, identities: Sequence[_Identity]) -> None:
        header = src.read(len(MAGIC) + 2)
        if len(header) != len(MAGIC) + 2 or not header.startswith(MAGIC):
            raise DecryptionError("not an age file")
        count = int.from_bytes(header[-2:], "big")
        tags_raw = src.read(32 * count)
        tags = [tags_raw[i : i + 32] for i in range(0, len(tags_raw), 32)]
        for identity in identities:
            try:
                identity.unwrap(tags)
                break
            except NoIdentityMatch:
                continue
        else:
            raise NoIdentityMatch("no identity matched")
        self._src = src
        self._mac = hmac.new(b"".join(tags), header + tags_raw, hashlib.sha256)
        self._held = b""
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        if self._eof:
            return b""
        chunk = self._src.read(n if n > 0 else 1 << 16)
        data = self._held + chunk
        if not chunk:
            self._eof = True
            if len(data) != TAG or not hmac.compare_digest(self._mac.digest(), data):
                raise DecryptionError("tampered")
            return b""
        out, self._held = data[:-TAG], data[-TAG:]
        self._mac.update(out)
        return out if out else self.read(n)

    def close(self) -> None:
        pass


def encrypt_writer(dst: Any, recipients: Sequence[_Recipient]) -> _Writer:
    return _Writer(dst, recipients)


def decrypt_reader(src: Any, identities: Sequence[_Identity]) -> _Reader:
    return _Reader(src, identities)


def install(monkeypatch: pytest.MonkeyPatch) -> str:
    """Use the real ``client_sim.age`` when importable, else this double.

    Returns ``"real"`` or ``"double"`` so tests can report which one ran.
    """
    try:
        importlib.import_module("client_sim.age")
        importlib.import_module("client_sim.age.errors")
    except ImportError:
        pass
    else:
        return "real"
    module = types.ModuleType("client_sim.age")
    errors = types.ModuleType("client_sim.age.errors")
    for name in ("AgeError", "DecryptionError", "NoIdentityMatch"):
        setattr(errors, name, globals()[name])
    for name in (
        "X25519Recipient",
        "X25519Identity",
        "MLKEM768X25519Recipient",
        "MLKEM768X25519Identity",
        "encrypt_writer",
        "decrypt_reader",
    ):
        setattr(module, name, globals()[name])
    module.errors = errors  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "client_sim.age", module)
    monkeypatch.setitem(sys.modules, "client_sim.age.errors", errors)
    return "double"
