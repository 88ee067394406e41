"""age v1 file encryption (c2sp.org/age) for the device side.

The surface is small, like age's own::

    from client_sim import age

    identity = age.X25519Identity.generate()
    blob = age.encrypt_bytes(b"hello", [identity.recipient()])
    assert age.decrypt_bytes(blob, [identity]) == b"hello"

* :func:`encrypt` / :func:`decrypt` stream between file objects;
  :func:`encrypt_writer` / :func:`decrypt_reader` return file-like objects
  for building on top; :func:`encrypt_bytes` / :func:`decrypt_bytes` work in
  memory.
* :func:`rewrap_header` re-encrypts a file's key to new recipients without
  touching its payload (sharing a stored file by sending only its header).
* A :class:`Recipient` has one method, ``wrap(file_key)``; an
  :class:`Identity` has one method, ``unwrap(stanzas)``.  Native types:
  X25519 (``age1...``), scrypt passphrases, and the post-quantum hybrid
  ``mlkem768x25519`` (``age1pq1...``).
* Every failure to decrypt a file is one opaque :class:`DecryptionError`
  (:class:`NoIdentityMatch` when no key fits); bad arguments raise
  ``ValueError``/``TypeError``.

docs/spec/age.md lists what is implemented, the limits, and the tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from client_sim.age._core import (
    AgeReader,
    AgeWriter,
    Identity,
    Recipient,
    RecipientWithLabels,
    decrypt,
    decrypt_bytes,
    decrypt_reader,
    encrypt,
    encrypt_bytes,
    encrypt_writer,
    rewrap_header,
)
from client_sim.age._format import Stanza
from client_sim.age._keys import (
    parse_identities_file,
    parse_identity,
    parse_recipient,
    parse_recipients_file,
)
from client_sim.age.errors import AgeError, DecryptionError, InvalidKey, NoIdentityMatch
from client_sim.age.x25519 import X25519Identity, X25519Recipient

if TYPE_CHECKING:
    from client_sim.age.pq import HybridIdentity, HybridRecipient
    from client_sim.age.scrypt import (
        DEFAULT_MAX_WORK_FACTOR as DEFAULT_MAX_SCRYPT_WORK_FACTOR,
    )
    from client_sim.age.scrypt import (
        DEFAULT_WORK_FACTOR as DEFAULT_SCRYPT_WORK_FACTOR,
    )
    from client_sim.age.scrypt import ScryptIdentity, ScryptRecipient

# The post-quantum and passphrase types load on first use: a plain X25519
# `sealbox age` never needs them, and every module it imports is start-up
# time (tests/unit/test_cli_imports.py).
_SCRYPT_NAMES = {
    "ScryptIdentity": "ScryptIdentity",
    "ScryptRecipient": "ScryptRecipient",
    "DEFAULT_SCRYPT_WORK_FACTOR": "DEFAULT_WORK_FACTOR",
    "DEFAULT_MAX_SCRYPT_WORK_FACTOR": "DEFAULT_MAX_WORK_FACTOR",
}


def __getattr__(name: str) -> Any:
    if name in ("HybridIdentity", "HybridRecipient"):
        from client_sim.age import pq

        return getattr(pq, name)
    if name in _SCRYPT_NAMES:
        from client_sim.age import scrypt

        return getattr(scrypt, _SCRYPT_NAMES[name])
    raise AttributeError(f"module 'client_sim.age' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MAX_SCRYPT_WORK_FACTOR",
    "DEFAULT_SCRYPT_WORK_FACTOR",
    "AgeError",
    "AgeReader",
    "AgeWriter",
    "DecryptionError",
    "HybridIdentity",
    "HybridRecipient",
    "Identity",
    "InvalidKey",
    "NoIdentityMatch",
    "Recipient",
    "RecipientWithLabels",
    "ScryptIdentity",
    "ScryptRecipient",
    "Stanza",
    "X25519Identity",
    "X25519Recipient",
    "decrypt",
    "decrypt_bytes",
    "decrypt_reader",
    "encrypt",
    "encrypt_bytes",
    "encrypt_writer",
    "parse_identities_file",
    "parse_identity",
    "parse_recipient",
    "parse_recipients_file",
    "rewrap_header",
]
