"""The CCTV age vector format, shared by the CCTV suite and our own vectors.

A vector file is ``key: value`` lines, an empty line, then the age file
(zlib-compressed when ``compressed: zlib``).  See the cctv-age README.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, field

from client_sim import age

KNOWN_KEYS = {
    "expect",
    "payload",
    "identity",
    "passphrase",
    "armored",
    "compressed",
    "file key",
    "comment",
}


@dataclass
class Vector:
    name: str
    expect: str
    body: bytes
    payload: str | None = None
    identities: list[str] = field(default_factory=list)
    passphrases: list[str] = field(default_factory=list)
    armored: bool = False


def parse_vector(name: str, raw: bytes) -> Vector:
    head, _, body = raw.partition(b"\n\n")
    fields: list[tuple[str, str]] = []
    for line in head.decode().split("\n"):
        key, _, value = line.partition(": ")
        if key not in KNOWN_KEYS:
            raise ValueError(f"{name}: unknown vector key {key!r}")
        fields.append((key, value))
    compressed = ("compressed", "zlib") in fields
    vector = Vector(name, "", zlib.decompress(body) if compressed else body)
    for key, value in fields:
        if key == "expect":
            vector.expect = value
        elif key == "payload":
            vector.payload = value
        elif key == "identity":
            vector.identities.append(value)
        elif key == "passphrase":
            vector.passphrases.append(value)
        elif key == "armored":
            vector.armored = value == "yes"
    if not vector.expect:
        raise ValueError(f"{name}: no expect line")
    return vector


def run_vector(vector: Vector, *, read: str = "read1") -> tuple[str, bytes]:
    """Decrypt as an application would; returns (outcome, released plaintext).

    Outcomes: ``success``, ``no match``, ``open failure`` (decrypt_reader
    raised the opaque error) and ``payload failure`` (reading raised it).
    ``read`` is how the plaintext is taken: ``read1`` (a chunk at a time) or
    ``readinto`` (chunks opened straight into a 1 MiB buffer, what blob
    downloads use).
    """
    identities: list[age.Identity] = [age.parse_identity(i) for i in vector.identities]
    identities += [age.ScryptIdentity(p) for p in vector.passphrases]
    if not identities:
        # Vectors that fail before any key is needed name none; an unrelated
        # key keeps the call valid without being able to match anything.
        identities = [age.X25519Identity.generate()]
    released = bytearray()
    try:
        reader = age.decrypt_reader(io.BytesIO(vector.body), identities)
    except age.NoIdentityMatch:
        return "no match", b""
    except age.DecryptionError:
        return "open failure", b""
    buffer = bytearray(1024 * 1024)
    try:
        if read == "readinto":
            while filled := reader.readinto(buffer):
                released += buffer[:filled]
        else:
            while chunk := reader.read1():
                released += chunk
    except age.DecryptionError:
        return "payload failure", bytes(released)
    return "success", bytes(released)


#: Which of our outcomes satisfy each ``expect`` value.
ACCEPTED = {
    "success": {"success"},
    "no match": {"no match"},
    "header failure": {"open failure"},
    "HMAC failure": {"open failure"},
    "payload failure": {"payload failure"},
    "armor failure": {"open failure", "payload failure"},
}
