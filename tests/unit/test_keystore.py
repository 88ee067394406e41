"""client_sim.keystore: encryption at rest, atomic writes, permissions, tampering.

The file tests touch only pytest's tmp_path (the simulator's stand-in for a
phone's private storage).
"""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

import pytest

from client_sim import _hazmat
from client_sim import keystore as ks
from client_sim.keystore import (
    DeviceKey,
    Keystore,
    KeystoreCorrupted,
    KeystoreNotFound,
    KeystorePermissionError,
    KeystoreState,
    KeystoreTampered,
    decode_keystore,
    encode_keystore,
)
from tests.identities import bundle, seed

KEY = DeviceKey(seed("device key"))
ALICE0, ALICE1 = bundle("alice"), bundle("alice", 1)


def state(*bundles, **settings) -> KeystoreState:
    return KeystoreState("alice", bundles or (ALICE0,), settings)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- state ------------------------------------------------------------------------


def test_state_views_and_rotation() -> None:
    s = state(ALICE0).with_current(ALICE1)
    assert s.current == ALICE1
    assert s.current_card_id == ALICE1.card_id
    assert s.previous == (ALICE0,)
    assert s.card_ids == (ALICE1.card_id, ALICE0.card_id)
    assert s.bundle_for(ALICE0.card_id) == ALICE0
    assert s.bundle_for("missing") is None
    empty = KeystoreState("alice")
    assert empty.current is None
    assert empty.current_card_id is None


def test_state_settings() -> None:
    s = state(server="http://127.0.0.1:8000").with_settings(backup_version="3", server=None)
    assert dict(s.settings) == {"backup_version": "3"}
    with pytest.raises(TypeError):
        s.settings["x"] = "y"  # type: ignore[index]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: KeystoreState("Alice"), "canonical"),
        (lambda: KeystoreState("a"), "not valid"),
        (lambda: KeystoreState("bob", (ALICE0,)), "belong"),
        (lambda: KeystoreState("alice", (ALICE0, ALICE0)), "twice"),
        (lambda: KeystoreState("alice", (), {"Bad Name": "x"}), "setting names"),
        (lambda: KeystoreState("alice", (), {"n": "x" * 1025}), "setting values"),
        (lambda: KeystoreState("alice", (), {f"k{i}": "" for i in range(65)}), "at most 64"),
    ],
)
def test_state_validation(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


# --- the encrypted format ------------------------------------------------------------


def test_encode_decode_round_trip() -> None:
    s = state(ALICE1, ALICE0, server="https://api.example", note="héllo")
    data = encode_keystore(s, KEY)
    assert data.startswith(b"SBKSTORE\x02\x00")
    assert decode_keystore(data, KEY) == s
    pinned = s.with_pin("bob", ALICE0.card_id).with_pin("carol", ALICE1.card_id)
    assert dict(decode_keystore(encode_keystore(pinned, KEY), KEY).pins) == dict(pinned.pins)


def test_a_version_1_keystore_is_read_without_pins_and_rewritten_as_version_2(
    tmp_path: Path,
) -> None:
    """Migration: files from before pins open, and the next save upgrades them."""
    old = encode_keystore(state(ALICE1, ALICE0, server="x"), KEY, version=1)
    assert old.startswith(b"SBKSTORE\x01\x00")
    read = decode_keystore(old, KEY)
    assert dict(read.pins) == {}
    assert read.card_ids == (ALICE1.card_id, ALICE0.card_id)
    store = Keystore(tmp_path, device_key=KEY)
    store.save(read)
    store.path.write_bytes(old)  # an old file on disk, as left by the previous release
    migrated = store.load()
    store.save(migrated.with_pin("bob", ALICE0.card_id))
    assert store.path.read_bytes().startswith(b"SBKSTORE\x02\x00")
    assert dict(store.load().pins) == {"bob": ALICE0.card_id}


@pytest.mark.parametrize(
    ("contact", "card_id"),
    [("alice", "A" * 43), ("Bob", "A" * 43), ("bob", "not a card id"), ("-x", "A" * 43)],
)
def test_pins_name_other_canonical_identities_and_card_ids(contact: str, card_id: str) -> None:
    with pytest.raises(ValueError, match="pin"):
        state().with_pin(contact, card_id)


def test_nonce_is_fresh_per_write() -> None:
    a, b = encode_keystore(state(), KEY), encode_keystore(state(), KEY)
    assert a[10:42] != b[10:42]
    assert a[42:] != b[42:]


def test_no_key_material_in_the_file() -> None:
    data = encode_keystore(state(ALICE1, ALICE0), KEY)
    for secret in (
        seed("alice", 0, "ed25519"),
        seed("alice", 0, "x25519"),
        seed("alice", 0, "pq"),
        KEY._key,
    ):
        assert secret not in data
    # Even the public card is not visible: the whole body is encrypted.
    assert ALICE0.card.ed25519_public_key not in data


def test_every_bit_flip_is_detected() -> None:
    data = encode_keystore(state(), KEY)
    for i in range(len(data)):
        for bit in (0, 7):
            mutated = bytearray(data)
            mutated[i] ^= 1 << bit
            with pytest.raises(KeystoreCorrupted):
                decode_keystore(bytes(mutated), KEY)


def test_header_and_ciphertext_changes_are_tampering() -> None:
    data = encode_keystore(state(), KEY)
    for offset in (10, 41, 42, len(data) - 1):
        mutated = bytearray(data)
        mutated[offset] ^= 0x40
        with pytest.raises(KeystoreTampered):
            decode_keystore(bytes(mutated), KEY)


def test_truncation_and_extension_are_detected() -> None:
    data = encode_keystore(state(), KEY)
    for cut in (0, 8, 41, 42, 57, len(data) - 1):
        with pytest.raises(KeystoreCorrupted):
            decode_keystore(data[:cut], KEY)
    with pytest.raises(KeystoreTampered):
        decode_keystore(data + b"\x00", KEY)


def test_wrong_device_key() -> None:
    data = encode_keystore(state(), KEY)
    with pytest.raises(KeystoreTampered):
        decode_keystore(data, DeviceKey(seed("another device")))


def test_unsupported_version_and_flags() -> None:
    data = bytearray(encode_keystore(state(), KEY))
    for version in (0, 3):
        data[8] = version
        with pytest.raises(KeystoreCorrupted, match="version"):
            decode_keystore(bytes(data), KEY)
    data[8], data[9] = 2, 1
    with pytest.raises(KeystoreCorrupted, match="flags"):
        decode_keystore(bytes(data), KEY)


def test_oversized_file_is_refused_before_decryption() -> None:
    with pytest.raises(KeystoreCorrupted, match="larger"):
        decode_keystore(b"SBKSTORE" + bytes(ks.MAX_KEYSTORE_SIZE), KEY)


def test_authenticated_but_malformed_body() -> None:
    nonce = seed("nonce")
    header = b"SBKSTORE\x01\x00" + nonce
    body = b"\x00\x05alice\x00\x00\x00\x01\x00\x03abc"  # one bundle that is not a bundle
    data = header + _hazmat.at_rest_seal(KEY._key, nonce, ks.KEYSTORE_LABEL, body, header)
    with pytest.raises(KeystoreCorrupted, match="contents"):
        decode_keystore(data, KEY)


# --- the device key -----------------------------------------------------------------


def test_device_key_file_form() -> None:
    data = KEY.to_file_bytes()
    assert data[:9] == b"SBDEVKEY\x01"
    assert DeviceKey.from_file_bytes(data)._key == KEY._key
    for bad in (data[:-1], data + b"\x00", b"SBDEVKEY\x02" + data[9:], b"X" + data[1:]):
        with pytest.raises(KeystoreCorrupted):
            DeviceKey.from_file_bytes(bad)
    with pytest.raises(ValueError, match="32 bytes"):
        DeviceKey(b"short")
    with pytest.raises(TypeError):
        pickle.dumps(KEY)


def test_device_key_generation_is_random() -> None:
    assert DeviceKey.generate()._key != DeviceKey.generate()._key
    assert DeviceKey.generate(lambda n: b"\x07" * n)._key == b"\x07" * 32


# --- files: permissions, atomicity --------------------------------------------------


def test_save_and_load(tmp_path: Path) -> None:
    store = Keystore(tmp_path / "home")
    assert not store.exists()
    with pytest.raises(KeystoreNotFound):
        store.load()
    s = state(ALICE1, ALICE0, server="http://127.0.0.1:9")
    store.save(s)
    assert store.exists()
    assert Keystore(tmp_path / "home").load() == s
    assert mode(store.directory) == 0o700
    assert mode(store.path) == 0o600
    assert mode(store.device_key_path) == 0o600
    assert sorted(p.name for p in store.directory.iterdir()) == [
        ".lock",
        "device.key",
        "keystore.sbk",
    ]


def test_permissions_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        store = Keystore(tmp_path)
        store.save(state())
    finally:
        os.umask(old)
    assert mode(store.directory) == 0o700
    assert mode(store.path) == 0o600
    assert mode(store.device_key_path) == 0o600


def test_injected_device_key_is_used_and_not_written(tmp_path: Path) -> None:
    store = Keystore(tmp_path, device_key=KEY)
    store.save(state())
    assert not store.device_key_path.exists()
    assert decode_keystore(store.path.read_bytes(), KEY) == state()
    with pytest.raises(KeystoreCorrupted, match="device key is missing"):
        Keystore(tmp_path).load()


def test_rotation_keeps_history_across_saves(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    store.save(state(ALICE0))
    loaded = store.load()
    store.save(loaded.with_current(ALICE1))
    final = Keystore(tmp_path).load()
    assert final.current == ALICE1
    assert final.previous == (ALICE0,)


@pytest.mark.parametrize("target", ["directory", "path", "device_key_path"])
def test_loose_permissions_are_refused(tmp_path: Path, target: str) -> None:
    store = Keystore(tmp_path)
    store.save(state())
    path = getattr(store, target)
    path.chmod(0o755 if target == "directory" else 0o640)
    with pytest.raises(KeystorePermissionError):
        Keystore(tmp_path).load()


def test_save_refuses_a_loose_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "keystore").mkdir(mode=0o777)
    (tmp_path / "keystore").chmod(0o777)
    with pytest.raises(KeystorePermissionError):
        Keystore(tmp_path).save(state())


def test_symlinked_keystore_file_is_refused(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    store.save(state())
    real = tmp_path / "elsewhere.sbk"
    store.path.rename(real)
    store.path.symlink_to(real)
    with pytest.raises(KeystorePermissionError):
        store.load()


def test_tampered_file_on_disk(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    store.save(state())
    data = bytearray(store.path.read_bytes())
    data[-5] ^= 0x10
    store.path.write_bytes(bytes(data))
    with pytest.raises(KeystoreTampered):
        store.load()


def test_failed_write_leaves_the_old_keystore_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Keystore(tmp_path)
    store.save(state(ALICE0))
    before = store.path.read_bytes()

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.save(state(ALICE1, ALICE0))
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    assert Keystore(tmp_path).load() == state(ALICE0)
    assert not [p for p in store.directory.iterdir() if p.name.endswith(".tmp")]


def test_writes_are_fsynced_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("dir-fsync" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file-fsync")
        real_fsync(fd)

    def replace(src: object, dst: object) -> None:
        events.append("rename")
        real_replace(src, dst)  # type: ignore[arg-type]

    store = Keystore(tmp_path, device_key=KEY)
    store.save(state())  # directory exists before we watch
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store.save(state(ALICE1, ALICE0))
    assert events == ["file-fsync", "rename", "dir-fsync"]


def test_a_leftover_temp_file_from_a_crash_is_ignored(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    store.save(state())
    (store.directory / ".keystore.sbk.deadbeef.tmp").write_bytes(b"half written")
    assert store.load() == state()


def test_destroy(tmp_path: Path) -> None:
    store = Keystore(tmp_path)
    store.save(state())
    store.destroy()
    assert not store.directory.exists()
    with pytest.raises(KeystoreNotFound):
        store.load()


# --- sealed side files (the card cache) --------------------------------------------


def test_side_files_are_sealed_under_the_device_key(tmp_path: Path) -> None:
    store = Keystore(tmp_path, device_key=KEY)
    store.save(state())
    magic, label = b"SBTESTSF", b"sealbox/v1/test-side"
    assert store.read_sealed("x.sbs", magic, label, 1024) is None
    store.write_sealed("x.sbs", magic, label, b"body")
    path = store.directory / "x.sbs"
    assert mode(path) == 0o600
    assert b"body" not in path.read_bytes()
    assert store.read_sealed("x.sbs", magic, label, 1024) == b"body"
    with pytest.raises(KeystoreTampered):
        store.read_sealed("x.sbs", magic, b"sealbox/v1/other", 1024)
    other = Keystore(tmp_path, device_key=DeviceKey(seed("other")))
    with pytest.raises(KeystoreTampered):
        other.read_sealed("x.sbs", magic, label, 1024)
    data = bytearray(path.read_bytes())
    data[20] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(KeystoreTampered):
        store.read_sealed("x.sbs", magic, label, 1024)
    with pytest.raises(KeystoreCorrupted):
        store.read_sealed("x.sbs", b"SBOTHERS", label, 1024)
    store.destroy()
    assert not path.exists()


@pytest.mark.parametrize(
    ("name", "magic"), [("../x.sbs", b"SBTESTSF"), ("x.json", b"SBTESTSF"), ("x.sbs", b"SBKSTORE")]
)
def test_side_file_names_and_magics_are_checked(tmp_path: Path, name: str, magic: bytes) -> None:
    with pytest.raises(ValueError, match="side file"):
        Keystore(tmp_path, device_key=KEY).write_sealed(name, magic, b"l", b"")
