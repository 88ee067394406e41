"""The public API: contracts, argument errors, streaming objects, secrets."""

from __future__ import annotations

import gc
import hashlib
import io
import pickle
from collections.abc import Sequence

import pytest

from client_sim import _hazmat, age
from client_sim.age._core import _encrypt_writer

KEY = age.X25519Identity._from_secret(bytes(range(32)))
CHUNK = 64 * 1024


def counter_rand(seed: bytes = b"seed"):
    """A deterministic ``rand`` for the private seam."""
    state = {"n": 0}

    def rand(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(seed + state["n"].to_bytes(8, "big")).digest()
            state["n"] += 1
        return out[:n]

    return rand


def test_round_trip_sizes_and_chunk_layout() -> None:
    for size in (0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK):
        data = bytes(size)
        blob = age.encrypt_bytes(data, [KEY.recipient()])
        assert age.decrypt_bytes(blob, [KEY]) == data
        header_len = blob.index(b"\n--- ") + len(b"\n--- ") + 43 + 1
        payload = len(blob) - header_len - 16
        chunks = max(1, -(-size // CHUNK))
        assert payload == size + 16 * chunks


def test_deterministic_seam_reproduces_files() -> None:
    def make() -> bytes:
        out = io.BytesIO()
        with _encrypt_writer(out, [KEY.recipient()], armor=False, rand=counter_rand()) as w:
            w.write(b"reproducible")
        return out.getvalue()

    assert make() == make()
    assert age.decrypt_bytes(make(), [KEY]) == b"reproducible"
    # The public entry point uses the CSPRNG: two files always differ.
    a = age.encrypt_bytes(b"x", [KEY.recipient()])
    assert a != age.encrypt_bytes(b"x", [KEY.recipient()])


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match="no recipients"):
        age.encrypt_bytes(b"", [])
    with pytest.raises(TypeError):
        age.encrypt_bytes(b"", [object()])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        age.encrypt_bytes(b"", KEY.recipient())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no identities"):
        age.decrypt_bytes(b"", [])
    with pytest.raises(TypeError):
        age.decrypt_bytes(b"", [KEY.recipient()])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="max_scrypt_work_factor"):
        age.decrypt_bytes(b"", [KEY], max_scrypt_work_factor=31)
    with pytest.raises(ValueError, match="work_factor"):
        age.ScryptRecipient("pw", work_factor=0)
    with pytest.raises(ValueError, match="empty"):
        age.ScryptRecipient("")
    with pytest.raises(ValueError, match="16 bytes"):
        KEY.recipient().wrap(b"short")


def test_incompatible_recipients() -> None:
    scrypt = age.ScryptRecipient("pw", work_factor=1)
    pq = age.HybridIdentity.generate().recipient()
    with pytest.raises(ValueError, match="passphrase"):
        age.encrypt_bytes(b"", [scrypt, KEY.recipient()])
    with pytest.raises(ValueError, match="passphrase"):
        age.encrypt_bytes(b"", [scrypt, age.ScryptRecipient("pw", work_factor=1)])
    with pytest.raises(ValueError, match="post-quantum"):
        age.encrypt_bytes(b"", [pq, KEY.recipient()])
    # Several hybrid recipients together are fine.
    other = age.HybridIdentity.generate()
    blob = age.encrypt_bytes(b"pq", [pq, other.recipient()])
    assert age.decrypt_bytes(blob, [other]) == b"pq"


class ForeignRecipient:
    """A third-party recipient type: only the one-method protocol."""

    def wrap(self, file_key: bytes) -> list[age.Stanza]:
        return [age.Stanza("example.com/plain", ("v1",), file_key)]


class ForeignIdentity:
    def unwrap(self, stanzas: Sequence[age.Stanza]) -> bytes:
        for s in stanzas:
            if s.type == "example.com/plain":
                return s.body
        raise age.NoIdentityMatch


def test_custom_recipient_and_identity_types() -> None:
    blob = age.encrypt_bytes(b"custom", [ForeignRecipient(), KEY.recipient()])
    assert age.decrypt_bytes(blob, [ForeignIdentity()]) == b"custom"
    assert age.decrypt_bytes(blob, [KEY]) == b"custom"
    with pytest.raises(ValueError, match="passphrase"):
        age.encrypt_bytes(b"", [ForeignRecipient(), age.ScryptRecipient("pw", work_factor=1)])


def test_no_match_and_opaque_errors() -> None:
    blob = age.encrypt_bytes(b"secret", [KEY.recipient()])
    with pytest.raises(age.NoIdentityMatch, match="no identity matched"):
        age.decrypt_bytes(blob, [age.X25519Identity.generate()])
    messages = set()
    for damaged in (blob[:-1], blob[:10], blob.replace(b"X25519", b"X25519 extra"), b"junk"):
        with pytest.raises(age.DecryptionError) as info:
            age.decrypt_bytes(damaged, [KEY])
        assert type(info.value) is age.DecryptionError
        assert info.value.__cause__ is None
        messages.add(str(info.value))
    assert len(messages) == 1  # one generic text, whatever failed


def test_scrypt_work_factor_ceiling() -> None:
    blob = age.encrypt_bytes(b"pw file", [age.ScryptRecipient("pw", work_factor=12)])
    assert age.decrypt_bytes(blob, [age.ScryptIdentity("pw")]) == b"pw file"
    # Above the caller's ceiling the file is refused before scrypt runs.
    with pytest.raises(age.DecryptionError) as info:
        age.decrypt_bytes(blob, [age.ScryptIdentity("pw")], max_scrypt_work_factor=11)
    assert not isinstance(info.value, age.NoIdentityMatch)
    with pytest.raises(age.DecryptionError):
        age.decrypt_bytes(blob, [age.ScryptIdentity("pw", max_work_factor=11)])
    with pytest.raises(age.NoIdentityMatch):
        age.decrypt_bytes(blob, [age.ScryptIdentity("wrong")])


def test_writer_is_a_file_like_object() -> None:
    out = io.BytesIO()
    writer = age.encrypt_writer(out, [KEY.recipient()])
    assert writer.writable()
    for piece in (b"a", bytearray(b"b" * CHUNK), memoryview(b"c" * 3)):
        writer.write(piece)
    writer.close()
    writer.close()  # idempotent
    assert writer.closed
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"more")
    assert out.closed is False  # the destination is never closed
    assert age.decrypt_bytes(out.getvalue(), [KEY]) == b"a" + b"b" * CHUNK + b"ccc"


def test_writer_aborts_on_exception_and_on_garbage_collection() -> None:
    out = io.BytesIO()

    def interrupted() -> None:
        with age.encrypt_writer(out, [KEY.recipient()]) as writer:
            writer.write(b"x" * (CHUNK + 5))
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        interrupted()
    with pytest.raises(age.DecryptionError):
        age.decrypt_bytes(out.getvalue(), [KEY])  # truncated, never "complete"

    out = io.BytesIO()
    writer = age.encrypt_writer(out, [KEY.recipient()])
    writer.write(b"forgotten")
    del writer
    gc.collect()
    with pytest.raises(age.DecryptionError):
        age.decrypt_bytes(out.getvalue(), [KEY])


def test_reader_is_a_file_like_object() -> None:
    data = bytes(range(256)) * 600  # 153,600 bytes: three chunks
    blob = age.encrypt_bytes(data, [KEY.recipient()])
    reader = age.decrypt_reader(io.BytesIO(blob), [KEY])
    assert reader.readable()
    assert reader.read(10) == data[:10]
    assert reader.read1(CHUNK) == data[10:CHUNK]  # rest of the first chunk
    buf = bytearray(100)
    assert reader.readinto(buf) == 100
    assert bytes(buf) == data[CHUNK : CHUNK + 100]
    assert reader.read() == data[CHUNK + 100 :]
    assert reader.read(5) == b""
    assert io.BufferedReader(age.decrypt_reader(io.BytesIO(blob), [KEY])).read() == data


def test_reader_error_is_sticky_and_releases_only_authentic_chunks() -> None:
    data = b"\x01" * CHUNK + b"\x02" * CHUNK + b"\x03"
    blob = bytearray(age.encrypt_bytes(data, [KEY.recipient()]))
    blob[-5] ^= 0x80  # damage the last chunk (1 byte + 16-byte tag)
    reader = age.decrypt_reader(io.BytesIO(bytes(blob)), [KEY])
    assert reader.read1() == b"\x01" * CHUNK
    assert reader.read1() == b"\x02" * CHUNK
    for _ in range(2):
        with pytest.raises(age.DecryptionError):
            reader.read1()


def test_armor_round_trip_and_detection() -> None:
    for size in (0, 1, 47, 48, 49, CHUNK + 1):
        data = bytes(size)
        armored = age.encrypt_bytes(data, [KEY.recipient()], armor=True)
        lines = armored.split(b"\n")
        assert lines[0] == b"-----BEGIN AGE ENCRYPTED FILE-----"
        assert lines[-2:] == [b"-----END AGE ENCRYPTED FILE-----", b""]
        assert all(len(line) == 64 for line in lines[1:-3])
        assert 0 < len(lines[-3]) <= 64
        assert age.decrypt_bytes(b"\r\n \t" + armored + b"\n\n", [KEY]) == data


@pytest.mark.parametrize(
    "identity_factory", [age.X25519Identity.generate, age.HybridIdentity.generate]
)
def test_identities_never_show_their_secret(identity_factory) -> None:
    identity = identity_factory()
    secret = identity.secret_string()
    body = secret.rsplit("1", 1)[1][:-6]
    for text in (repr(identity), str(identity), f"{identity}", repr([identity])):
        assert body.lower() not in text.lower()
        assert "fingerprint=" in text
    with pytest.raises(TypeError):
        pickle.dumps(identity)
    assert age.parse_identity(secret).secret_string() == secret
    assert str(identity.recipient()) in (repr(identity.recipient()), str(identity.recipient()))


def test_passphrase_objects_never_show_the_passphrase() -> None:
    for obj in (age.ScryptRecipient("tr0ub4dor&3"), age.ScryptIdentity("tr0ub4dor&3")):
        assert "tr0ub4dor" not in repr(obj)
        assert "tr0ub4dor" not in str(obj)
    with pytest.raises(TypeError):
        pickle.dumps(age.ScryptIdentity("tr0ub4dor&3"))


def test_hazmat_private_key_repr_is_opaque() -> None:
    private = _hazmat.mlkem768x25519_from_seed(bytes(32))
    assert repr(private) == "MLKEM768X25519Private(<secret>)"


def test_identity_constructors_are_private() -> None:
    with pytest.raises(TypeError):
        age.X25519Identity(b"\x00" * 32)
    with pytest.raises(TypeError):
        age.HybridIdentity(b"\x00" * 32)
