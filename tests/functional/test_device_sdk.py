"""The device SDK in process: ChaliceTransport over moto, one Device per home directory."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import boto3
import pytest

from client_sim.device import BACKUP_NAME, PENDING_BACKUP_NAME, Device
from client_sim.errors import (
    AlreadyRegistered,
    BackupNotFound,
    CardVerificationFailed,
    ConcurrentChange,
    ConnectionFailed,
    DeviceInUse,
    InvalidInput,
    KdfMismatch,
    NoPrivateKey,
    NotLoggedIn,
    UsernameTaken,
    UsersNotFound,
    WrongPassword,
)
from client_sim.passwords import PASSWORD_KDF_SIMULATION
from client_sim.transport import ChaliceTransport, HttpReply
from tests.functional.conftest import STAGE_ENV
from tests.support import device_flows
from tests.support.device_flows import NEW_PASSWORD, PASSWORD, MakeDevice, Recording
from tests.support.fakes import FakeClock
from tests.support.objects import MOTO_STORAGE_ORIGINS, MotoObjects, moto_objects


@pytest.fixture
def recording(transport: ChaliceTransport) -> Recording:
    return Recording(transport)


@pytest.fixture
def make(tmp_path: Path, recording: Recording) -> MakeDevice:
    def make_device(name: str) -> Device:
        return Device(
            tmp_path / name,
            recording,
            kdf=PASSWORD_KDF_SIMULATION,
            sleep=lambda _: None,
            objects=MotoObjects(),
            storage_origins=MOTO_STORAGE_ORIGINS,
        )

    return make_device


def test_two_users_exchange_files(make: MakeDevice, tmp_path: Path) -> None:
    device_flows.two_users_exchange_files(make, "f", tmp_path)


def test_files_through_blob_storage(make: MakeDevice, tmp_path: Path) -> None:
    device_flows.files_through_blob_storage(make, "f", tmp_path)


def test_new_phone_restores_from_backup(make: MakeDevice) -> None:
    device_flows.new_phone_restores_from_backup(make, "f")


def test_rotation_keeps_old_data_readable(make: MakeDevice) -> None:
    device_flows.rotation_keeps_old_data_readable(make, "f")


def test_password_change_then_new_phone(make: MakeDevice) -> None:
    device_flows.password_change_then_new_phone(make, "f")


def test_unregister_revokes_but_keeps_the_backup(make: MakeDevice) -> None:
    device_flows.unregister_revokes_but_keeps_the_backup(make, "f")


# --- sessions and caching -------------------------------------------------------------


def test_access_tokens_are_cached_renewed_before_expiry_and_once_on_401(
    clock, transport, tmp_path
) -> None:
    recording = Recording(transport)
    device_clock = FakeClock(clock.now)
    phone = Device(tmp_path / "phone", recording, kdf=PASSWORD_KDF_SIMULATION, clock=device_clock)
    phone.register("alice", PASSWORD)
    tokens = recording.count("POST", "/v1/tokens")
    for _ in range(3):
        phone.find_users(["alice"], refresh=True)
    assert recording.count("POST", "/v1/tokens") == tokens  # cached

    # 900 s tokens are renewed 60 s early by the device's own clock...
    device_clock.advance(900 - 60 - 1)
    phone.find_users(["alice"], refresh=True)
    assert recording.count("POST", "/v1/tokens") == tokens
    device_clock.advance(2)
    phone.find_users(["alice"], refresh=True)
    assert recording.count("POST", "/v1/tokens") == tokens + 1

    # ...and a token the server refuses (its clock ran ahead) is renewed once.
    clock.advance(900 + 120)
    before = len(recording.requests)
    phone.find_users(["alice"], refresh=True)
    assert recording.requests[before:] == [
        ("GET", "/v1/cards"),
        ("POST", "/v1/tokens"),
        ("GET", "/v1/cards"),
    ]


def test_an_ended_session_asks_for_a_login(make: MakeDevice) -> None:
    phone = make("phone")
    phone.register("alice", PASSWORD)
    phone.logout()
    assert not phone.whoami().logged_in
    assert phone.has_local_private_key()  # logging out keeps the keys
    with pytest.raises(NotLoggedIn):
        phone.find_users(["alice"], refresh=True)
    phone.login("alice", PASSWORD)
    assert phone.find_users(["alice"])


def test_cached_lookups_make_no_request(make: MakeDevice, recording: Recording) -> None:
    alice, bob = make("alice"), make("bob")
    alice.register("alice", PASSWORD)
    bob.register("bob", PASSWORD)
    bob.find_users(["alice"])
    before = len(recording.requests)
    for _ in range(5):
        bob.encrypt(b"x", to=["alice"])
    assert len(recording.requests) == before
    # The cache survives a restart of the app (it is re-verified on load).
    assert make("bob").find_users(["ALICE"])["alice"].identity == "alice"
    assert len(recording.requests) == before


def test_lookups_batch_fifty_identities_per_request(make: MakeDevice, recording: Recording) -> None:
    phone = make("phone")
    phone.register("alice", PASSWORD)
    before = recording.count("GET", "/v1/cards")
    with pytest.raises(UsersNotFound) as missing:
        phone.find_users([f"user-{i:03d}" for i in range(120)])
    assert len(missing.value.identities) == 120
    assert recording.count("GET", "/v1/cards") == before + 3


# --- a hostile or broken server ---------------------------------------------------------


class Rewriting(Recording):
    """Replaces the JSON body of replies to one route."""

    def __init__(self, inner, method: str, prefix: str, rewrite) -> None:  # type: ignore[no-untyped-def]
        super().__init__(inner)
        self._match = (method, prefix)
        self._rewrite = rewrite

    def request(self, method, path, *, body=None, headers=None):  # type: ignore[no-untyped-def]
        reply = super().request(method, path, body=body, headers=headers)
        if method == self._match[0] and path.split("?")[0].startswith(self._match[1]):
            new = json.dumps(self._rewrite(reply.json())).encode()
            return HttpReply(reply.status, reply.headers, new)
        return reply


def test_a_card_for_someone_else_is_refused(transport, tmp_path) -> None:
    honest = Device(tmp_path / "carol", transport, kdf=PASSWORD_KDF_SIMULATION)
    honest.register("carol", PASSWORD)
    mallory_card = honest.find_users(["carol"])["carol"].to_json()

    def swap(body):  # type: ignore[no-untyped-def]
        for entry in body.get("cards", []):
            entry["card"] = mallory_card
        return body

    bob = Device(
        tmp_path / "bob",
        Rewriting(transport, "GET", "/v1/cards", swap),
        kdf=PASSWORD_KDF_SIMULATION,
    )
    bob.register("bob", PASSWORD)
    Device(tmp_path / "alice", transport, kdf=PASSWORD_KDF_SIMULATION).register("alice", PASSWORD)
    with pytest.raises(CardVerificationFailed):
        bob.find_users(["alice"])


def test_a_tampered_card_is_refused(transport, tmp_path) -> None:
    Device(tmp_path / "alice", transport, kdf=PASSWORD_KDF_SIMULATION).register("alice", PASSWORD)

    def tamper(body):  # type: ignore[no-untyped-def]
        for entry in body.get("cards", []):
            entry["card"]["created_at"] += 1
        return body

    bob = Device(
        tmp_path / "bob",
        Rewriting(transport, "GET", "/v1/cards", tamper),
        kdf=PASSWORD_KDF_SIMULATION,
    )
    bob.register("bob", PASSWORD)
    with pytest.raises(CardVerificationFailed):
        bob.find_users(["alice"])


def test_a_sender_card_swapped_by_the_server_does_not_verify(transport, tmp_path) -> None:
    alice = Device(tmp_path / "alice", transport, kdf=PASSWORD_KDF_SIMULATION)
    alice.register("alice", PASSWORD)
    carol = Device(tmp_path / "carol", transport, kdf=PASSWORD_KDF_SIMULATION)
    carol.register("carol", PASSWORD)
    carol_entry = {"card": carol.find_users(["carol"])["carol"].to_json(), "status": "active"}
    bob = Device(
        tmp_path / "bob",
        Rewriting(transport, "GET", "/v1/cards/", lambda _: carol_entry),
        kdf=PASSWORD_KDF_SIMULATION,
    )
    bob.register("bob", PASSWORD)
    sealed = alice.encrypt(b"from alice", to=["bob"])
    with pytest.raises(CardVerificationFailed):
        bob.decrypt(sealed)


def test_a_hostile_backup_header_cannot_make_the_device_work_hard(make, recording) -> None:
    phone = make("phone")
    phone.register("alice", PASSWORD)
    phone.backup_private_key()
    table = boto3.client("dynamodb")
    key = {"identity": {"S": "alice"}, "name": {"S": BACKUP_NAME}}
    item = table.get_item(TableName=STAGE_ENV["SEALBOX_BACKUPS_TABLE"], Key=key)["Item"]
    blob = bytearray(item["ciphertext"]["B"])
    blob[10:14] = (4 * 1024 * 1024).to_bytes(4, "big")  # 4 GiB of Argon2id memory
    item["ciphertext"] = {"B": bytes(blob)}
    table.put_item(TableName=STAGE_ENV["SEALBOX_BACKUPS_TABLE"], Item=item)
    with pytest.raises(KdfMismatch):
        make("new-phone").login("alice", PASSWORD)


# --- races between devices ----------------------------------------------------------------


def test_racing_registrations_of_one_username(make: MakeDevice, recording: Recording) -> None:
    first, second = make("first"), make("second")

    def second_registers_first(method: str, path: str) -> None:
        if (method, path) == ("POST", "/v1/cards"):
            recording.before = None  # once
            second.register("alice", PASSWORD)

    recording.before = second_registers_first
    with pytest.raises(AlreadyRegistered):
        first.register("alice", PASSWORD)
    assert not first.has_local_private_key()
    assert second.has_local_private_key()
    with pytest.raises(UsernameTaken):
        make("third").register("alice", "someone else's password")


def test_racing_rotations_from_two_devices(make: MakeDevice, recording: Recording) -> None:
    phone, tablet, bob = make("phone"), make("tablet"), make("bob")
    phone.register("alice", PASSWORD)
    phone.backup_private_key()
    tablet.login("alice", PASSWORD)
    bob.register("bob", PASSWORD)
    original = phone.whoami().card_id
    winner: list[str] = []

    def tablet_rotates_first(method: str, path: str) -> None:
        if (method, path) == ("POST", "/v1/cards"):
            recording.before = None  # once
            winner.append(tablet.rotate_private_key().card_id)

    recording.before = tablet_rotates_first
    with pytest.raises(ConcurrentChange):
        phone.rotate_private_key()
    recording.before = None
    # The loser's keystore is as it was; the directory has the winner's card.
    assert (phone.whoami().card_id, phone.whoami().previous_cards) == (original, 0)
    assert bob.find_users(["alice"], refresh=True)["alice"].card_id == winner[0]
    # The winner updated the backup; the loser catches up from it.
    phone.restore_private_key(PASSWORD)
    assert phone.whoami().card_id == winner[0]
    assert (
        phone.decrypt(bob.encrypt(b"to the new card", to=["alice"])).plaintext == b"to the new card"
    )


def test_racing_password_changes_from_two_devices(make: MakeDevice, recording: Recording) -> None:
    phone, tablet = make("phone"), make("tablet")
    phone.register("alice", PASSWORD)
    phone.backup_private_key()
    tablet.login("alice", PASSWORD)
    secret = phone.encrypt(b"keep me readable", to=["alice"])
    tablet_result: list[BaseException | None] = []

    def tablet_changes_meanwhile(method: str, path: str) -> None:
        # The phone has staged its backup and is about to switch the login
        # key: the tablet tries its own change right now.
        if (method, path) == ("PUT", "/v1/users/me/login-key"):
            recording.before = None  # once
            try:
                tablet.change_password(PASSWORD, "the tablet's new password")
                tablet_result.append(None)
            except ConcurrentChange as exc:
                tablet_result.append(exc)

    recording.before = tablet_changes_meanwhile
    phone.change_password(PASSWORD, NEW_PASSWORD)
    assert isinstance(tablet_result[0], ConcurrentChange)

    # Exactly the phone's change happened, completely.
    for password in (PASSWORD, "the tablet's new password"):
        with pytest.raises(WrongPassword):
            make("probe").login("alice", password)
    fresh = make("fresh")
    fresh.login("alice", NEW_PASSWORD)
    assert fresh.decrypt(secret).plaintext == b"keep me readable"
    assert_backups(fresh, present={BACKUP_NAME})
    # The tablet, retrying later, is told its password is no longer valid.
    with pytest.raises((WrongPassword, NotLoggedIn)):
        tablet.change_password(PASSWORD, "the tablet's new password")


def test_the_same_password_change_on_two_devices_converges(make, recording) -> None:
    phone, tablet = make("phone"), make("tablet")
    phone.register("alice", PASSWORD)
    phone.backup_private_key()
    tablet.login("alice", PASSWORD)
    done: list[bool] = []

    def tablet_changes_first(method: str, path: str) -> None:
        if (method, path) == ("GET", "/v1/backups/primary"):
            recording.before = None  # once
            done.append(True)
            tablet.change_password(PASSWORD, NEW_PASSWORD)

    recording.before = tablet_changes_first
    phone.change_password(PASSWORD, NEW_PASSWORD)  # finds it already done
    assert done
    assert phone.whoami().logged_in
    assert phone.backup_private_key() >= 2
    make("fresh").login("alice", NEW_PASSWORD)


def test_a_password_change_interrupted_after_the_switch_is_finished_by_a_restore(
    make, transport, tmp_path
) -> None:
    class LoseThePromotion(Recording):
        def request(self, method, path, *, body=None, headers=None):  # type: ignore[no-untyped-def]
            if (method, path) == ("PUT", "/v1/backups/primary") and self.count(
                "PUT", "/v1/users/me/login-key"
            ):
                raise ConnectionFailed("the phone died")
            return super().request(method, path, body=body, headers=headers)

    phone = Device(tmp_path / "phone", LoseThePromotion(transport), kdf=PASSWORD_KDF_SIMULATION)
    phone.register("alice", PASSWORD)
    phone.backup_private_key()
    secret = phone.encrypt(b"still mine", to=["alice"])
    with pytest.raises(ConnectionFailed):
        phone.change_password(PASSWORD, NEW_PASSWORD)

    # The new password logs in and opens the staged backup; the old one is gone.
    with pytest.raises(WrongPassword):
        make("probe").login("alice", PASSWORD)
    fresh = make("fresh")
    fresh.login("alice", NEW_PASSWORD)
    assert fresh.decrypt(secret).plaintext == b"still mine"
    # The restore finished the change: the primary opens with the new password.
    assert_backups(fresh, present={BACKUP_NAME})
    assert fresh.backup_private_key() >= 2


def test_a_leftover_staged_backup_does_not_block_the_next_change(make, transport, tmp_path) -> None:
    lossy = LoseOne(transport, ("DELETE", "/v1/backups/primary.pending"), after=False)
    phone = Device(tmp_path / "phone", lossy, kdf=PASSWORD_KDF_SIMULATION, sleep=lambda _: None)
    phone.register("alice", PASSWORD)
    phone.backup_private_key()
    lossy.armed = True
    phone.change_password(PASSWORD, NEW_PASSWORD)  # the clean-up is lost, the change isn't
    assert_backups(phone, present={BACKUP_NAME, PENDING_BACKUP_NAME})
    newest = "the third password in a row"
    phone.change_password(NEW_PASSWORD, newest)
    assert_backups(phone, present={BACKUP_NAME})
    make("fresh").login("alice", newest)
    assert make("fresh").has_local_private_key()


# --- crashes around a card publication ---------------------------------------------------


class LoseOne(Recording):
    """Loses one request to ``route``: before it reaches the server, or its reply."""

    def __init__(self, inner, route: tuple[str, str], *, after: bool) -> None:  # type: ignore[no-untyped-def]
        super().__init__(inner)
        self.route, self.after, self.armed = route, after, False

    def request(self, method, path, *, body=None, headers=None):  # type: ignore[no-untyped-def]
        if self.armed and (method, path.split("?", 1)[0]) == self.route:
            self.armed = False
            if self.after:
                super().request(method, path, body=body, headers=headers)
            raise ConnectionFailed("connection reset")
        return super().request(method, path, body=body, headers=headers)


@pytest.mark.parametrize("after", [True, False], ids=["reply-lost", "request-lost"])
def test_a_lost_rotation_reply_never_loses_a_published_key(transport, tmp_path, after) -> None:
    lossy = LoseOne(transport, ("POST", "/v1/cards"), after=after)
    alice = Device(tmp_path / "alice", lossy, kdf=PASSWORD_KDF_SIMULATION)
    bob = Device(tmp_path / "bob", transport, kdf=PASSWORD_KDF_SIMULATION)
    alice.register("alice", PASSWORD)
    bob.register("bob", PASSWORD)
    first = alice.whoami().card_id
    lossy.armed = True
    with pytest.raises(ConnectionFailed):
        alice.rotate_private_key()
    # The next operation settles it with the directory.
    opened = bob.decrypt(alice.encrypt(b"after the crash", to=["bob"]), sender="alice")
    active = bob.find_users(["alice"], refresh=True)["alice"].card_id
    status = alice.whoami()
    assert opened.sender.card_id == status.card_id == active
    assert (active != first) is after
    assert status.previous_cards == (1 if after else 0)


# --- misc --------------------------------------------------------------------------------


def test_one_device_one_identity(make: MakeDevice) -> None:
    phone = make("phone")
    phone.register("alice", PASSWORD)
    with pytest.raises(DeviceInUse):
        phone.register("bob", PASSWORD)
    with pytest.raises(DeviceInUse):
        phone.login("bob", PASSWORD)
    phone.cleanup()
    phone.register("bob", PASSWORD)


@pytest.mark.parametrize(
    ("username", "password"), [("a", PASSWORD), ("al/ice", PASSWORD), ("alice", "short")]
)
def test_invalid_input_is_refused_before_any_request(make, recording, username, password) -> None:
    with pytest.raises(InvalidInput):
        make("phone").register(username, password)
    assert recording.requests == []


def test_login_without_a_backup_leaves_a_device_without_keys(make: MakeDevice) -> None:
    make("phone").register("alice", PASSWORD)
    tablet = make("tablet")
    tablet.login("alice", PASSWORD)
    assert tablet.whoami().logged_in
    assert not tablet.has_local_private_key()
    with pytest.raises(NoPrivateKey):
        tablet.encrypt(b"x", to=["alice"])
    with pytest.raises(BackupNotFound):
        tablet.restore_private_key(PASSWORD)


def test_reset_backup_deletes_it(make: MakeDevice) -> None:
    phone = make("phone")
    phone.register("alice", PASSWORD)
    phone.backup_private_key()
    phone.reset_private_key_backup()
    assert_backups(phone, present=set())
    assert phone.backup_private_key() == 3  # versions never repeat


def assert_backups(device: Device, *, present: set[str]) -> None:
    found = set()
    for name in (BACKUP_NAME, PENDING_BACKUP_NAME):
        if device._backups._fetch(name) is not None:
            found.add(name)
    assert found == present


def test_a_lone_string_is_not_a_list_of_identities(make: MakeDevice, recording) -> None:
    with pytest.raises(TypeError):
        make("phone").find_users("alice")
    with pytest.raises(TypeError):
        make("phone").encrypt(b"x", to="alice")
    assert recording.requests == []


def test_every_blob_call_renews_a_token_the_server_refuses(clock, transport, tmp_path) -> None:
    # A phone whose clock stood still while the server's ran on (it slept
    # through the token's lifetime) holds a token it believes valid.  Every
    # blob call must renew it once, like the other calls, instead of
    # reporting a lost session.
    recording = Recording(transport)
    device_clock = FakeClock(clock.now)
    alice = Device(
        tmp_path / "alice",
        recording,
        kdf=PASSWORD_KDF_SIMULATION,
        clock=device_clock,
        objects=MotoObjects(),
        storage_origins=MOTO_STORAGE_ORIGINS,
    )
    bob = Device(tmp_path / "bob", transport, kdf=PASSWORD_KDF_SIMULATION, **moto_objects())
    alice.register("alice", PASSWORD)
    bob.register("bob", PASSWORD)
    info = alice.upload(io.BytesIO(b"a note for bob"), to=["bob"])
    calls = [
        lambda: alice.list_blobs("outbox"),
        lambda: alice.blob(info.blob_id),
        lambda: alice.share(info.blob_id, ["bob"]),
        lambda: alice.delete_blob(info.blob_id),
    ]
    for call in calls:
        clock.advance(900 + 120)
        tokens = recording.count("POST", "/v1/tokens")
        call()
        assert recording.count("POST", "/v1/tokens") == tokens + 1


def test_a_share_repeated_with_its_key_makes_no_second_copy(transport, tmp_path) -> None:
    lossy = LossyContent(transport)

    def phone(name: str, via) -> Device:  # type: ignore[no-untyped-def]
        made = Device(tmp_path / name, via, kdf=PASSWORD_KDF_SIMULATION, **moto_objects())
        made.register(name, PASSWORD)
        return made

    alice, _, carol = phone("alice", lossy), phone("bob", transport), phone("carol", transport)
    original = alice.upload(io.BytesIO(b"for bob, then carol"), to=["bob"])
    lossy.armed = True  # the new copy is stored, but its answer is lost
    with pytest.raises(ConnectionFailed):
        alice.share(original.blob_id, ["bob", "carol"], idempotency_key="share_key_000001")
    again = alice.share(original.blob_id, ["bob", "carol"], idempotency_key="share_key_000001")
    outbox = [item.blob_id for item in alice.list_blobs("outbox").items]
    assert outbox == [again.blob_id]
    assert [item.blob_id for item in carol.list_blobs("inbox").items] == [again.blob_id]


class LossyContent(LoseOne):
    """Loses the reply of the next inline content upload, whatever its blob."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        super().__init__(inner, ("PUT", ""), after=True)

    def request(self, method, path, *, body=None, headers=None):  # type: ignore[no-untyped-def]
        if self.armed and method == "PUT" and path.endswith("/content"):
            self.armed = False
            Recording.request(self, method, path, body=body, headers=headers)
            raise ConnectionFailed("connection reset")
        return Recording.request(self, method, path, body=body, headers=headers)


class LoseCommit(Recording):
    """The next commit never reaches the server (its upload did)."""

    armed = False

    def request(self, method, path, *, body=None, headers=None):  # type: ignore[no-untyped-def]
        if self.armed and method == "POST" and path.endswith("/commit"):
            self.armed = False
            raise ConnectionFailed("connection reset")
        return super().request(method, path, body=body, headers=headers)


def test_an_upload_repeated_after_a_lost_commit_commits_the_stored_object(
    transport, tmp_path
) -> None:
    # S3 refuses the repeated write-once PUT (412): the object an earlier
    # attempt stored is committed instead of the upload failing forever.
    lossy = LoseCommit(transport)
    objects = MotoObjects()
    alice = Device(
        tmp_path / "alice",
        lossy,
        kdf=PASSWORD_KDF_SIMULATION,
        objects=objects,
        storage_origins=MOTO_STORAGE_ORIGINS,
    )
    bob = Device(tmp_path / "bob", transport, kdf=PASSWORD_KDF_SIMULATION, **moto_objects())
    alice.register("alice", PASSWORD)
    bob.register("bob", PASSWORD)
    content = os.urandom(100_000)  # over the inline limit: a presigned PUT
    lossy.armed = True
    with pytest.raises(ConnectionFailed):
        alice.upload(io.BytesIO(content), to=["bob"], idempotency_key="upload_key_00001")
    info = alice.upload(io.BytesIO(content), to=["bob"], idempotency_key="upload_key_00001")
    assert info.state == "ready"
    assert objects.puts == 2  # the second PUT was refused
    out = io.BytesIO()
    assert bob.download(info.blob_id, out, sender="alice").identity == "alice"
    assert out.getvalue() == content


def test_a_download_asks_for_the_blob_once(make: MakeDevice, recording: Recording) -> None:
    alice, bob = make("alice"), make("bob")
    alice.register("alice", PASSWORD)
    bob.register("bob", PASSWORD)
    info = alice.upload(io.BytesIO(b"one metadata request is enough"), to=["bob"])
    bob.find_users(["alice"])
    before = list(recording.requests)
    out = io.BytesIO()
    bob.download(info.blob_id, out, sender="alice")
    asked = recording.requests[len(before) :]
    assert asked.count(("GET", f"/v1/blobs/{info.blob_id}")) == 1
    assert out.getvalue() == b"one metadata request is enough"
