"""STREAM payload rules, on hand-built payloads (c2sp.org/age "Payload")."""

from __future__ import annotations

import io

import pytest

from client_sim import _hazmat, age
from client_sim.age._format import serialize_header_without_mac, serialize_mac_line
from client_sim.age._stream import CHUNK_SIZE, StreamEncryptor

KEY = age.X25519Identity._from_secret(bytes(range(32)))
FILE_KEY = bytes(range(16))
NONCE = b"N" * 16


def _file(chunks: list[tuple[bytes, int, bool]], trailing: bytes = b"") -> bytes:
    """An age file whose payload chunks are sealed exactly as listed:
    (plaintext, counter, last flag)."""
    stanzas, _ = KEY.recipient()._wrap_with_labels(FILE_KEY, lambda n: b"\x07" * n)
    header = serialize_header_without_mac(stanzas)
    mac_key = _hazmat.hkdf_sha256(FILE_KEY, salt=b"", info=b"header")
    out = header + serialize_mac_line(_hazmat.hmac_sha256(mac_key, header)) + NONCE
    key = _hazmat.hkdf_sha256(FILE_KEY, salt=NONCE, info=b"payload")
    for plain, counter, last in chunks:
        nonce = counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
        out += _hazmat.chacha20poly1305_seal(key, nonce, plain)
    return out + trailing


def _released(blob: bytes, read: str = "read1") -> tuple[bytes, bool]:
    """(plaintext released before any error, whether the file was accepted),
    read a chunk at a time (``read1``) or opened into a buffer (``readinto``)."""
    reader = age.decrypt_reader(io.BytesIO(blob), [KEY])
    got = bytearray()
    buffer = bytearray(3 * CHUNK_SIZE + 5)
    try:
        if read == "readinto":
            while filled := reader.readinto(buffer):
                got += buffer[:filled]
        else:
            while chunk := reader.read1():
                got += chunk
    except age.DecryptionError:
        return bytes(got), False
    return bytes(got), True


A, B = b"a" * CHUNK_SIZE, b"b" * CHUNK_SIZE


@pytest.mark.parametrize("read", ["read1", "readinto"])
def test_builder_control_cases_decrypt(read: str) -> None:
    assert _released(_file([(A, 0, False), (b"end", 1, True)]), read) == (A + b"end", True)
    # A full final chunk, and an empty payload.
    assert _released(_file([(A, 0, False), (B, 1, True)]), read) == (A + B, True)
    assert _released(_file([(b"", 0, True)]), read) == (b"", True)


@pytest.mark.parametrize(
    ("chunks", "trailing", "released"),
    [
        ([(A, 0, False)], b"", A),  # truncated at a chunk boundary: no final chunk
        ([(A, 0, False), (B, 1, False)], b"", A + B),  # still no final chunk
        ([], b"", b""),  # nonce but no chunk at all
        ([(B, 1, False), (A, 0, False), (b"x", 2, True)], b"", b""),  # reordered
        ([(A, 0, False), (b"x", 2, True)], b"", A),  # a chunk skipped
        ([(A, 0, False), (b"", 1, True)], b"", A),  # empty final chunk after data
        ([(b"", 0, False), (b"x", 1, True)], b"", b""),  # empty non-final chunk
        ([(b"x", 0, True), (b"y", 1, True)], b"", b""),  # two final chunks
        ([(A, 0, True), (b"y", 1, True)], b"", A),  # full final chunk then more
        ([(b"x", 0, True)], b"\x00", b""),  # one trailing byte after a short final chunk
        ([(A, 0, False), (B, 1, True)], b"junk", A + B),  # trailing data after a full one
        ([(b"x", 1, True)], b"", b""),  # counter not starting at zero
    ],
)
@pytest.mark.parametrize("read", ["read1", "readinto"])
def test_payload_violations(
    chunks: list[tuple[bytes, int, bool]], trailing: bytes, released: bytes, read: str
) -> None:
    got, ok = _released(_file(chunks, trailing), read)
    assert not ok
    assert got == released  # only chunks authentic at their position


def test_missing_or_short_nonce() -> None:
    good = _file([(b"x", 0, True)])
    header_end = good.index(b"\n--- ") + 5 + 43 + 1
    for cut in (header_end, header_end + 15):
        with pytest.raises(age.DecryptionError):
            age.decrypt_reader(io.BytesIO(good[:cut]), [KEY])


def test_encryptor_refuses_misuse() -> None:
    enc = StreamEncryptor(bytes(32))
    with pytest.raises(ValueError, match="64 KiB"):
        enc.seal(b"short", last=False)
    enc.seal(A, last=False)
    with pytest.raises(ValueError, match="empty final chunk"):
        enc.seal(b"", last=True)
    enc.seal(b"x", last=True)
    with pytest.raises(ValueError, match="already sealed"):
        enc.seal(b"y", last=True)
