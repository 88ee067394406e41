"""No secret-holding type prints key material (or plaintext) in repr or str.

Each object is printed with repr(), str() and inside a container, and the
output is searched for every secret it holds in raw, hex, base64 and
base64url form (and as a Python bytes literal).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest

from client_sim.backup import KdfParams, open_backup, seal_backup
from client_sim.keystore import DeviceKey, Keystore, KeystoreState
from client_sim.sealed import Opened, SealedWriter, unframe
from tests.identities import bundle, seed

ALICE = bundle("alice")
SECRETS = [
    seed("alice", 0, "ed25519"),
    seed("alice", 0, "x25519"),
    seed("alice", 0, "pq"),
]
DEVICE_SECRET = seed("device")
PLAINTEXT = b"top secret plaintext: 0123456789abcdef"


def forms(secret: bytes) -> list[str]:
    out = [
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode().rstrip("="),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        repr(secret)[2:-1],
        secret.decode("latin-1"),
    ]
    # Also any 8-byte window of the hex form, in case part of a key is shown.
    hexed = secret.hex()
    out += [hexed[i : i + 16] for i in range(0, len(hexed) - 16, 8)]
    return out


def printed(obj: object) -> str:
    return "\n".join((repr(obj), str(obj), repr([obj]), str({"k": obj}), f"{obj!r}"))


def assert_hides(obj: object, secrets: list[bytes]) -> None:
    text = printed(obj)
    for secret in secrets:
        for form in forms(secret):
            assert form not in text, (type(obj).__name__, form)


def test_key_bundle() -> None:
    assert_hides(ALICE, SECRETS)


def test_device_key() -> None:
    assert_hides(DeviceKey(DEVICE_SECRET), [DEVICE_SECRET])


def test_keystore_state_and_keystore(tmp_path: Path) -> None:
    state = KeystoreState("alice", (ALICE,), {"server": "http://127.0.0.1:1"})
    assert_hides(state, SECRETS)
    store = Keystore(tmp_path, device_key=DeviceKey(DEVICE_SECRET))
    store.save(state)
    assert_hides(store, [*SECRETS, DEVICE_SECRET])
    assert_hides(store.load(), SECRETS)


def test_backup_contents() -> None:
    key = seed("backup")
    params = KdfParams(memory_kib=19456, iterations=2, lanes=1, salt=bytes(16))
    contents = open_backup(seal_backup([ALICE], key, params), key)
    assert_hides(contents, [*SECRETS, key])


def test_sealed_writer_and_opened() -> None:
    out = io.BytesIO()
    writer = SealedWriter(out, sender=ALICE, recipients=[ALICE])
    assert_hides(writer, SECRETS)
    writer.write(PLAINTEXT)
    writer.close()
    plain = io.BytesIO()
    sender = unframe(
        io.BytesIO(out.getvalue()),
        plain,
        sender_cards=[ALICE.card],
        opener_card_ids=[ALICE.card_id],
    )
    opened = Opened(plaintext=plain.getvalue(), sender=sender)
    assert_hides(opened, [*SECRETS, PLAINTEXT])
    assert_hides(sender, SECRETS)


@pytest.mark.parametrize("secret", SECRETS)
def test_the_check_itself_can_fail(secret: bytes) -> None:
    class Leaky:
        def __repr__(self) -> str:
            return f"Leaky({secret.hex()})"

    with pytest.raises(AssertionError):
        assert_hides(Leaky(), [secret])


def test_device_sdk_results_and_records(tmp_path: Path) -> None:
    from chalicelib.services.backups import BackupRecord
    from client_sim.backup_sync import BackupKey, StoredBackup
    from client_sim.device import Device
    from client_sim.messages import Decrypted, Sender
    from client_sim.transport import HttpTransport

    sender = Sender(identity="alice", card_id=ALICE.card_id)
    assert_hides(Decrypted(plaintext=PLAINTEXT, sender=sender), [PLAINTEXT])
    backup_key = seed("backup-key")
    assert_hides(BackupKey("alice", backup_key, None), [backup_key])  # type: ignore[arg-type]
    blob = ALICE.to_bytes()
    assert_hides(StoredBackup(1, blob, 0), SECRETS)
    assert_hides(BackupRecord(name="primary", version=1, updated_at=0, ciphertext=blob), SECRETS)
    phone = Device(tmp_path, HttpTransport("http://127.0.0.1:1"))
    phone._store.save(KeystoreState("alice", (ALICE,), {"backup.key": backup_key.hex()}))
    assert_hides(phone, [*SECRETS, backup_key])


def test_presigned_urls_never_print() -> None:
    # Presigned URLs are bearer credentials (DESIGN invariant 3).
    from chalicelib.services.blobs import BlobView, UploadTarget
    from client_sim import api as blobs

    url = "https://bucket.s3.amazonaws.com/blobs/x?X-Amz-Signature=" + "ab12" * 16
    signature = url.rsplit("=", 1)[1]
    objects: list[object] = [
        UploadTarget(url=url, headers={"Content-Length": "1"}),
        blobs.UploadTarget(url=url, headers={"Content-Length": "1"}),
        blobs.Download(url=url, expires_in=300),
        blobs.Reservation(
            blob_id="b",
            state="reserved",
            size=1,
            version=1,
            targets=(blobs.UploadTarget(url=url, headers={}),),
        ),
        blobs.BlobInfo(
            blob_id="b",
            owner="alice",
            recipients=(),
            size=1,
            created_at=0,
            state="ready",
            version=2,
            download=blobs.Download(url=url, expires_in=300),
        ),
    ]
    for obj in objects:
        text = printed(obj)
        assert url not in text
        assert signature not in text
    record_view = BlobView(record=None, download_url=url)  # type: ignore[arg-type]
    assert signature not in printed(record_view)


def test_password_hardening_objects(tmp_path: Path) -> None:
    # The OPRF key (the secret invariant 9 rests on) and everything derived
    # from a password with it (docs/spec/oprf.md).
    from chalicelib.wire.oprf_keys import OprfKey, OprfKeys
    from client_sim.api import ApiClient
    from client_sim.hardening import PasswordHardening
    from client_sim.passwords import PASSWORD_KDF_SIMULATION, stretch_password
    from client_sim.transport import HttpTransport

    key = OprfKey(version=1, oprf_seed=seed("oprf"), root_seed=seed("root"))
    account_secret, _ = key.account_key("alice")
    key_secrets = [seed("oprf"), seed("root"), account_secret]
    assert_hides(key, key_secrets)
    assert_hides(OprfKeys(current=key, previous=None), key_secrets)
    stretched = stretch_password("alice", "correct horse battery staple", PASSWORD_KDF_SIMULATION)
    output = key.output("alice", stretched.oprf_input)
    hardened = stretched.hardened(output, 1)
    keys = hardened.__class__(
        identity=hardened.identity,
        params=hardened.params,
        login_key=hardened.login_key,
        backup_key=hardened.backup_key,
        oprf_version=1,
        others=(stretched.version1(),),
    )
    derived = [
        stretched.master,
        output,
        hardened.login_key,
        hardened.backup_key,
        stretched.version1().login_key,
        stretched.version1().backup_key,
    ]
    assert_hides(stretched, derived)
    assert_hides(keys, derived)
    roots = {1: key.root_public}
    assert_hides(
        PasswordHardening(
            ApiClient(HttpTransport("http://127.0.0.1:1")), roots, PASSWORD_KDF_SIMULATION
        ),
        key_secrets,
    )


def test_group_secrets_never_print() -> None:
    from client_sim.group_chain import GroupChain
    from tests.support.groups import make_epoch

    made = make_epoch(ALICE, [ALICE], admins=["alice"])
    raw = made.secret.to_bytes()
    seed_of_identity = made.secret.age_identity()  # cached inside the secret now
    chain = GroupChain(head=made.epoch, roster=made.roster, secrets={0: made.secret})
    for obj in (made.secret, chain, seed_of_identity):
        assert_hides(obj, [*SECRETS, raw])
        assert "AGE-SECRET-KEY" not in printed(obj)


def test_transparency_log_signer_and_key_source() -> None:
    from chalicelib.storage.ktlog import LogKeySource
    from chalicelib.wire.note import NoteSigner

    log_seed = seed("kt-log")
    signer = NoteSigner.from_seed("sealbox.test/kt", log_seed)
    assert_hides(signer, [log_seed])
    # The signer key string itself: PRIVATE+KEY+name+id+base64(0x01 || seed).
    assert "PRIVATE" not in printed(signer)
    assert_hides(LogKeySource(None, "sealbox-test-kt-log-key", origin="o"), [log_seed])  # type: ignore[arg-type]
