"""Device SDK scenarios shared by the functional (in-process) and e2e (HTTP) tiers.

Each scenario takes a ``make(name)`` factory returning a fresh :class:`Device`
with its own home directory, and a ``tag`` that keeps usernames unique when
several scenarios share one backend.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from client_sim.device import Device
from client_sim.errors import (
    DecryptionFailed,
    DeviceError,
    IdentityChanged,
    InvalidInput,
    NoPrivateKey,
    NotLoggedIn,
    SenderMismatch,
    UsersNotFound,
    WrongPassword,
)
from client_sim.transport import HttpReply, Transport

MakeDevice = Callable[[str], Device]
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "another horse, much longer"


@dataclass
class Recording:
    """A transport that records requests and can run a hook before each one."""

    inner: Transport
    requests: list[tuple[str, str]] = field(default_factory=list)
    before: Callable[[str, str], None] | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        route = path.split("?", 1)[0]
        self.requests.append((method, route))
        if self.before is not None:
            self.before(method, route)
        return self.inner.request(method, path, body=body, headers=headers)

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(prefix))


def two_users_exchange_files(make: MakeDevice, tag: str, tmp: Path) -> None:
    alice, bob, carol = make("alice"), make("bob"), make("carol")
    a, b, c = (f"{name}-{tag}" for name in ("alice", "bob", "carol"))
    alice.register(a, PASSWORD)
    bob.register(b.upper(), PASSWORD)  # usernames are normalised
    carol.register(c, PASSWORD)

    letter = b"Dear Bob, the canary sings at dawn. " * 100
    sealed = alice.encrypt(letter, to=[b])
    opened = bob.decrypt(sealed, sender=a)
    assert opened.plaintext == letter
    assert (opened.sender.identity, opened.sender.revoked) == (a, False)
    # The sender can read its own message; a third user can't.
    assert alice.decrypt(sealed).plaintext == letter
    with pytest.raises(DecryptionFailed):
        carol.decrypt(sealed)
    # A valid message from someone other than the expected sender is refused.
    with pytest.raises(SenderMismatch):
        bob.decrypt(sealed, sender=c)

    # Files: the reply goes through the file API and lands only when verified.
    (tmp / "reply.txt").write_bytes(b"Dear Alice, received.\n")
    bob.encrypt_file(tmp / "reply.txt", tmp / "reply.age", to=[a, c])
    sender = alice.decrypt_file(tmp / "reply.age", tmp / "reply.out", sender=b)
    assert sender.identity == b
    assert (tmp / "reply.out").read_bytes() == b"Dear Alice, received.\n"
    assert carol.decrypt_file(tmp / "reply.age", tmp / "carol.out").identity == b

    # Tampering anywhere is refused and leaves no output file behind.
    tampered = bytearray((tmp / "reply.age").read_bytes())
    tampered[-40] ^= 1
    (tmp / "tampered.age").write_bytes(bytes(tampered))
    with pytest.raises(DecryptionFailed):
        alice.decrypt_file(tmp / "tampered.age", tmp / "tampered.out")
    assert not (tmp / "tampered.out").exists()

    with pytest.raises(UsersNotFound) as missing:
        alice.encrypt(b"x", to=[b, f"nobody-{tag}"])
    assert missing.value.identities == (f"nobody-{tag}",)

    # Streams work in constant memory, both ways.
    src, dst, back = io.BytesIO(letter * 20), io.BytesIO(), io.BytesIO()
    alice.encrypt_stream(src, dst, to=[b])
    dst.seek(0)
    assert bob.decrypt_stream(dst, back).identity == a
    assert back.getvalue() == letter * 20


def new_phone_restores_from_backup(make: MakeDevice, tag: str) -> None:
    a, b = f"alice-{tag}", f"bob-{tag}"
    phone, bob = make("alice-phone"), make("bob")
    phone.register(a, PASSWORD)
    bob.register(b, PASSWORD)
    assert phone.backup_private_key() == 1
    to_alice = bob.encrypt(b"for alice's eyes", to=[a])
    from_alice = phone.encrypt(b"signed by alice", to=[b])

    phone.cleanup()  # the phone is lost
    assert not phone.has_local_private_key()
    with pytest.raises(NoPrivateKey):
        phone.decrypt(to_alice)

    new_phone = make("alice-new-phone")
    with pytest.raises(WrongPassword):
        new_phone.login(a, "not the right password at all")
    new_phone.login(a, PASSWORD)
    assert new_phone.has_local_private_key()
    opened = new_phone.decrypt(to_alice, sender=b)
    assert opened.plaintext == b"for alice's eyes"
    assert bob.decrypt(from_alice, sender=a).plaintext == b"signed by alice"
    # The restored device is a full device: it sends, and backs up again.
    assert bob.decrypt(new_phone.encrypt(b"hi again", to=[b])).sender.identity == a
    assert new_phone.backup_private_key() == 2


def rotation_keeps_old_data_readable(make: MakeDevice, tag: str) -> None:
    a, b = f"alice-{tag}", f"bob-{tag}"
    alice, bob = make("alice"), make("bob")
    alice.register(a, PASSWORD)
    bob.register(b, PASSWORD)
    alice.backup_private_key()
    old_card = bob.find_users([a])[a]
    to_alice_before = bob.encrypt(b"sealed to the old card", to=[a])
    signed_before = alice.encrypt(b"signed by the old card", to=[b])

    new_card = alice.rotate_private_key()
    assert new_card.previous_card_id == old_card.card_id
    assert alice.whoami().previous_cards == 1
    # Bob's cache still has the old card until he refreshes.
    assert bob.find_users([a], refresh=True)[a].card_id == new_card.card_id

    assert alice.decrypt(to_alice_before).plaintext == b"sealed to the old card"
    opened = bob.decrypt(signed_before, sender=a)
    assert (opened.plaintext, opened.sender.card_id) == (
        b"signed by the old card",
        old_card.card_id,
    )
    after = bob.decrypt(alice.encrypt(b"new card", to=[b]), sender=a)
    assert after.sender.card_id == new_card.card_id

    # The backup was updated by the rotation: a new phone reads both eras.
    phone = make("alice-phone")
    phone.login(a, PASSWORD)
    assert phone.whoami().card_id == new_card.card_id
    assert phone.decrypt(to_alice_before).plaintext == b"sealed to the old card"
    assert phone.decrypt(bob.encrypt(b"to the new card", to=[a])).plaintext == b"to the new card"


def password_change_then_new_phone(make: MakeDevice, tag: str) -> None:
    a = f"alice-{tag}"
    phone, other = make("alice-phone"), make("alice-tablet")
    phone.register(a, PASSWORD)
    phone.backup_private_key()
    secret = phone.encrypt(b"before the change", to=[a])
    other.login(a, PASSWORD)

    phone.change_password(PASSWORD, NEW_PASSWORD)
    assert phone.whoami().logged_in
    # The other device's session ended with the change: once its access token
    # is gone (here: the app restarts), it must log in again.
    with pytest.raises(NotLoggedIn):
        make("alice-tablet").find_users([a])
    assert not make("alice-tablet").whoami().logged_in
    with pytest.raises(WrongPassword):
        make("stranger").login(a, PASSWORD)

    new_phone = make("alice-new-phone")
    new_phone.login(a, NEW_PASSWORD)
    assert new_phone.decrypt(secret).plaintext == b"before the change"
    # And the phone that changed it keeps working with the new backup key.
    assert phone.backup_private_key() >= 2


def unregister_revokes_but_keeps_the_backup(make: MakeDevice, tag: str) -> None:
    a, b = f"alice-{tag}", f"bob-{tag}"
    alice, bob = make("alice"), make("bob")
    alice.register(a, PASSWORD)
    bob.register(b, PASSWORD)
    alice.backup_private_key()
    signed = alice.encrypt(b"before unregistering", to=[b])
    to_alice = bob.encrypt(b"to the old card", to=[a])

    alice.unregister()
    assert not alice.has_local_private_key()
    with pytest.raises(UsersNotFound):
        bob.find_users([a], refresh=True)
    opened = bob.decrypt(signed, sender=a)
    assert opened.plaintext == b"before unregistering"
    assert opened.sender.revoked

    # Registering again publishes a new card and keeps the old keys for old data.
    again = make("alice-again")
    again.register(a, PASSWORD)
    assert again.decrypt(to_alice).plaintext == b"to the old card"
    # A new first card is an identity reset: bob, who knew the old card, is
    # told (never switched silently) and accepts it explicitly.
    with pytest.raises(IdentityChanged) as reset:
        bob.find_users([a], refresh=True)
    assert reset.value.new_card_id == again.whoami().card_id
    assert bob.trust(a, reset.value.new_card_id).previous_card_id is None
    assert bob.find_users([a])[a].card_id == reset.value.new_card_id


def files_through_blob_storage(make: MakeDevice, tag: str, tmp: Path) -> None:
    """Signed, encrypted files stored on the server: upload, inbox, download,
    share (remove and add), delete."""
    alice, bob, carol = make("alice"), make("bob"), make("carol")
    a, b, c = (f"{name}-{tag}" for name in ("alice", "bob", "carol"))
    for device, name in ((alice, a), (bob, b), (carol, c)):
        device.register(name, PASSWORD)

    report = b"quarterly numbers, canary 7f3a\n" * 4000
    (tmp / "report.txt").write_bytes(report)
    info = alice.upload(tmp / "report.txt", to=[b])
    assert (info.owner, info.recipients, info.state) == (a, (b,), "ready")
    assert bob.list_blobs("inbox").items[0].blob_id == info.blob_id
    assert bob.download(info.blob_id, tmp / "bob.txt", sender=a).identity == a
    assert (tmp / "bob.txt").read_bytes() == report
    # The owner reads its own upload; a stranger doesn't even see it.
    into = io.BytesIO()
    assert alice.download(info.blob_id, into).identity == a
    assert into.getvalue() == report
    with pytest.raises(DeviceError):
        carol.download(info.blob_id, tmp / "carol.txt")
    assert not (tmp / "carol.txt").exists()

    # A stream of unknown length (a real pipe) is spooled, then sealed.
    read_end, write_end = os.pipe()
    os.write(write_end, b"from a pipe")
    os.close(write_end)
    with open(read_end, "rb") as pipe:
        piped = alice.upload(pipe, to=[b])
    out = io.BytesIO()
    bob.download(piped.blob_id, out)
    assert out.getvalue() == b"from a pipe"

    # Adding a reader re-seals the file (its signature names its readers).
    shared = alice.share(info.blob_id, [b, c])
    assert shared.blob_id != info.blob_id
    assert set(shared.recipients) == {b, c}
    assert carol.download(shared.blob_id, tmp / "carol.txt", sender=a).identity == a
    with pytest.raises(DeviceError):
        bob.download(info.blob_id, tmp / "gone.txt")  # the old blob is deleted
    # Removing a reader re-seals too: the signed readers are the blob's readers.
    narrowed = alice.share(shared.blob_id, [c])
    assert narrowed.blob_id != shared.blob_id
    assert narrowed.recipients == (c,)
    for gone in (shared.blob_id, narrowed.blob_id):
        with pytest.raises(DeviceError):
            bob.download(gone, tmp / "bob2.txt")
    assert carol.download(narrowed.blob_id, tmp / "carol3.txt", sender=a).recipients == (a, c)
    unchanged = alice.share(narrowed.blob_id, [c])  # the same readers: nothing to do
    assert (unchanged.blob_id, unchanged.recipients) == (narrowed.blob_id, (c,))
    with pytest.raises(InvalidInput):
        carol.share(narrowed.blob_id, [b])  # only the owner shares

    alice.delete_blob(narrowed.blob_id)
    with pytest.raises(DeviceError):
        carol.download(narrowed.blob_id, tmp / "carol2.txt")
