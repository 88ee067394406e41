"""Groups end to end in process: devices, /v1/groups on moto, and the attacks on them.

The attacks: an operator editing the stored roster, a non-admin proposing,
a removed member reading new content, two admins racing, a member fetching
another member's wrap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.cards import card_id_from_str
from chalicelib.wire.groups import Member, decode_epoch, decode_roster, encode_roster
from client_sim import age
from client_sim.device import Device
from client_sim.errors import (
    DecryptionFailed,
    GroupVerificationFailed,
    InvalidInput,
    MemberNotFound,
    NotAMember,
    NotAnAdmin,
    ServerError,
)
from client_sim.passwords import PASSWORD_KDF_SIMULATION
from client_sim.transport import ChaliceTransport
from tests.functional.conftest import STAGE_ENV, aws_client
from tests.support.device_flows import PASSWORD
from tests.support.objects import MOTO_STORAGE_ORIGINS, MotoObjects

GROUPS_TABLE = STAGE_ENV["SEALBOX_GROUPS_TABLE"]


class People(dict[str, Device]):
    """Registered devices by name, each registered on first use (registration is the slow part)."""

    def __init__(self, home: Path, transport: ChaliceTransport) -> None:
        super().__init__()
        self._home = home
        self._transport = transport

    def __missing__(self, name: str) -> Device:
        device = self.device(name)
        self[name] = device
        return device

    def device(self, name: str, transport: Any = None, objects: Any = None) -> Device:
        """A newly registered device for ``name`` (not kept here), reaching the
        API through ``transport`` (the shared one by default) and storage
        through ``objects`` (moto's by default)."""
        device = Device(
            self._home / name,
            transport if transport is not None else self._transport,
            kdf=PASSWORD_KDF_SIMULATION,
            sleep=lambda _: None,
            objects=objects if objects is not None else MotoObjects(),
            storage_origins=MOTO_STORAGE_ORIGINS,
        )
        device.register(name, PASSWORD)
        return device


@pytest.fixture
def people(tmp_path: Path, transport: ChaliceTransport) -> People:
    crowd = People(tmp_path, transport)
    for name in ("alice", "bob", "carol"):
        crowd[name]  # registered before the group that names them
    return crowd


def test_members_exchange_messages_and_roster_changes(people: People) -> None:
    alice, bob, carol, dave = (people[n] for n in ("alice", "bob", "carol", "dave"))
    group = alice.create_group(["bob", "carol"])
    info = group.info()
    assert info.epoch == 0
    assert info.members == ("alice", "bob", "carol")
    assert info.admins == ("alice",)
    sealed = bob.group(group.group_id).encrypt(b"hello team", context="chat-1")
    for reader in (alice, carol):
        opened = reader.group(group.group_id).decrypt(sealed, context="chat-1")
        assert opened.plaintext == b"hello team"
        assert opened.sender.identity == "bob"
    assert [g.group_id for g in carol.list_groups()] == [group.group_id]

    group.add_members(["dave"])
    assert dave.group(group.group_id).decrypt(alice.group(group.group_id).encrypt(b"hi dave")) \
        .plaintext == b"hi dave"  # fmt: skip
    # No history by default: what was sealed before Dave joined stays closed to him.
    with pytest.raises(DecryptionFailed):
        dave.group(group.group_id).decrypt(sealed)


def test_removed_member_cannot_read_new_content(people: People) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    group = alice.create_group(["bob", "carol"])
    before = alice.group(group.group_id).encrypt(b"before")
    assert carol.group(group.group_id).decrypt(before).plaintext == b"before"
    group.remove_members(["carol"])
    after = alice.group(group.group_id).encrypt(b"after carol left")
    assert bob.group(group.group_id).decrypt(after).plaintext == b"after carol left"
    with pytest.raises((DecryptionFailed, NotAMember)):
        carol.group(group.group_id).decrypt(after)
    # The server answers her as if the group didn't exist.
    with pytest.raises(NotAMember):
        carol.group(group.group_id).info()
    assert carol.list_groups() == []
    # What she held before her removal still opens on her device.
    assert carol.group(group.group_id).decrypt(before).plaintext == b"before"


def test_non_admin_cannot_change_the_roster(people: People) -> None:
    alice, bob = people["alice"], people["bob"]
    group = alice.create_group(["bob", "carol"])
    with pytest.raises(NotAnAdmin):
        bob.group(group.group_id).remove_members(["carol"])
    with pytest.raises(NotAnAdmin):
        bob.group(group.group_id).add_members(["dave"])
    assert group.info().epoch == 0


def test_non_admin_proposal_is_refused_by_the_server(
    people: People, transport: ChaliceTransport
) -> None:
    # Bob skips his SDK's check and sends a signed removal of Carol himself.
    from chalicelib import crypto
    from chalicelib.wire.group_wraps import build_wraps
    from chalicelib.wire.groups import Epoch, changes_between, roster_hash, sign_epoch
    from client_sim.api import ApiClient

    alice, bob = people["alice"], people["bob"]
    group = alice.create_group(["bob", "carol"])
    chain = bob._groups.sync(bob._keys()[0], group.group_id)
    _, bob_keys = bob._keys()
    roster = tuple(m for m in chain.roster if m.identity != "carol")
    wraps = build_wraps(chain.head.group_id, 1, {m.card_id: b"\x00" * 81 for m in roster})
    epoch = sign_epoch(
        Epoch(
            group_id=chain.head.group_id,
            number=1,
            previous_hash=chain.head.hash,
            created_at_ms=0,
            signer_card_id=card_id_from_str(bob_keys.card_id),
            wraps_digest=crypto.sha256(wraps),
            kind=0,
            key_id=bytes(32),
            roster_hash=roster_hash(chain.head.group_id, roster),
            member_count=len(roster),
            changes=changes_between(chain.roster, roster),
        ),
        bob_keys.sign,
    )
    api = ApiClient(transport)
    token = bob._session.access_token()
    reservation = api.reserve_group_wraps(token, group.group_id, 1, len(wraps))
    MotoObjects().put(
        reservation["upload"]["url"],
        __import__("io").BytesIO(wraps),
        length=len(wraps),
        headers=reservation["upload"]["headers"],
    )
    with pytest.raises(ServerError) as caught:
        api.append_group_epoch(token, group.group_id, epoch.encoded, reservation["wraps_id"])
    assert (caught.value.status, caught.value.code) == (403, "not_an_admin")
    assert group.info().epoch == 0
    # The refused proposal's wraps object is not left behind either... (it is
    # the caller's own upload; only a lost race deletes it).


def test_operator_editing_the_stored_roster_is_caught(people: People) -> None:
    alice, bob, dave = people["alice"], people["bob"], people["dave"]
    group = alice.create_group(["bob"])
    bob.group(group.group_id).info()  # Bob follows epoch 0
    group.add_members(["carol"])
    # The operator adds Dave as an admin to the head's roster in DynamoDB.
    ddb = aws_client("dynamodb")
    key = {"pk": {"S": group.group_id}, "sk": {"S": "head"}}
    item = ddb.get_item(TableName=GROUPS_TABLE, Key=key)["Item"]
    roster = decode_roster(bytes(item["roster"]["B"]))
    _, dave_keys = dave._keys()
    forged = tuple(sorted((*roster, Member("dave", card_id_from_str(dave_keys.card_id), True))))
    item["roster"] = {"B": encode_roster(forged)}
    ddb.put_item(TableName=GROUPS_TABLE, Item=item)
    # Bob moves from epoch 0 by the signed changes, which never add Dave: the
    # roster the server now shows is refused.
    with pytest.raises(GroupVerificationFailed) as seen:
        bob.group(group.group_id).info()
    assert seen.value.code == "roster_mismatch"
    # A device joining now follows the signed epochs from the creation: the
    # forged roster the server serves is not the one they lead to.
    with pytest.raises(GroupVerificationFailed) as caught:
        dave.group(group.group_id).info()
    assert caught.value.code == "roster_mismatch"


@pytest.mark.parametrize(("attribute", "offset"), [("epoch", -70), ("delta", 12)])
def test_operator_editing_a_stored_epoch_is_caught(
    people: People, attribute: str, offset: int
) -> None:
    # Members move by an epoch's delta and their own wrap; devices not in the
    # roster yet (Dave, catching up from the creation) read the full epoch.
    # Either form edited is refused by the device that reads it.
    alice, bob, dave = people["alice"], people["bob"], people["dave"]
    group = alice.create_group(["bob", "carol"])
    bob.group(group.group_id).info()
    group.remove_members(["carol"])
    if attribute == "epoch":
        group.add_members(["dave"])
    ddb = aws_client("dynamodb")
    key = {"pk": {"S": group.group_id}, "sk": {"S": "epoch#00000000000000000001"}}
    item = ddb.get_item(TableName=GROUPS_TABLE, Key=key)["Item"]
    raw = bytearray(item[attribute]["B"])
    raw[offset] ^= 0x01  # the changes of the full epoch; the wraps digest of the delta
    item[attribute] = {"B": bytes(raw)}
    ddb.put_item(TableName=GROUPS_TABLE, Item=item)
    reader = dave if attribute == "epoch" else bob
    with pytest.raises(GroupVerificationFailed):
        reader.group(group.group_id).info()


def test_racing_admins_do_not_fork_the_group(people: People) -> None:
    alice, bob = people["alice"], people["bob"]
    people["dave"]  # registered
    group = alice.create_group(["bob", "carol"], admins=["bob"])
    bob_group = bob.group(group.group_id)
    bob_group.info()  # Bob follows epoch 0 ...
    group.add_members(["dave"])  # ... then Alice moves the group on.
    # Bob's change is made against epoch 0 first, refused as stale, re-based and applied.
    bob_group.remove_members(["carol"])
    info = group.info()
    assert info.epoch == 2
    assert info.members == ("alice", "bob", "dave")


def test_server_refuses_a_stale_epoch(people: People, transport: ChaliceTransport) -> None:
    from client_sim.api import ApiClient

    alice = people["alice"]
    group = alice.create_group(["bob"])
    api = ApiClient(transport)
    token = alice._session.access_token()
    with pytest.raises(ServerError) as caught:
        api.reserve_group_wraps(token, group.group_id, 0, 100)
    assert (caught.value.status, caught.value.code) == (409, "stale_epoch")
    reply = api.get_group(token, group.group_id)
    head = b64url_decode(reply["head"])
    reservation = api.reserve_group_wraps(token, group.group_id, 1, 100)
    with pytest.raises(ServerError) as caught:
        # Epoch 0 again, as if it were the next one.
        api.append_group_epoch(token, group.group_id, head, reservation["wraps_id"])
    assert (caught.value.status, caught.value.code) == (409, "stale_epoch")


def test_members_fetch_only_their_own_wrap(people: People, transport: ChaliceTransport) -> None:
    from client_sim.api import ApiClient

    alice, bob = people["alice"], people["bob"]
    group = alice.create_group(["bob", "carol"])
    api = ApiClient(transport)
    token = bob._session.access_token()
    _, alice_keys = alice._keys()
    _, bob_keys = bob._keys()
    own = api.get_group_epoch(token, group.group_id, 0, bob_keys.card_id)
    assert own["wrap"]["length"] == 1169  # one post-quantum wrap, whatever the group size
    assert own["wrap"]["headers"]["Range"].startswith("bytes=")
    assert api.get_group_epoch(token, group.group_id, 0, alice_keys.card_id)["wrap"] is None
    outsider = people["dave"]._session.access_token()
    for call in (
        lambda: api.get_group(outsider, group.group_id),
        lambda: api.get_group_epoch(outsider, group.group_id, 0, None),
        lambda: api.get_group(outsider, b64url_encode(bytes(16))),
    ):
        with pytest.raises(ServerError) as caught:
            call()
        assert caught.value.status == 404


def test_a_rotated_member_is_rewrapped(people: People) -> None:
    alice, bob = people["alice"], people["bob"]
    group = alice.create_group(["bob"])
    old = bob.group(group.group_id).encrypt(b"before rotation")
    bob.rotate_private_key()
    info = group.rekey()
    assert info.epoch == 1
    chain = alice._groups.sync(alice._keys()[0], group.group_id)
    _, bob_keys = bob._keys()
    member = chain.member("bob")
    assert member is not None
    assert member.card_id == card_id_from_str(bob_keys.card_id)
    fresh = alice.group(group.group_id).encrypt(b"after rotation")
    assert bob.group(group.group_id).decrypt(fresh).plaintext == b"after rotation"
    assert bob.group(group.group_id).decrypt(old).plaintext == b"before rotation"


def test_an_admin_who_rotated_can_still_change_the_group(people: People) -> None:
    # Found by the state machine: the sole admin rotates its card; the roster
    # still names the old one, so it signs with that (its device keeps it)
    # and the same epoch moves it to the new card.
    alice, bob = people["alice"], people["bob"]
    group = alice.create_group(["bob", "carol"])
    alice.rotate_private_key()
    assert group.remove_members(["carol"]).epoch == 1
    _, alice_keys = alice._keys()
    chain = bob._groups.sync(bob._keys()[0], group.group_id)
    member = chain.member("alice")
    assert member is not None
    assert member.card_id == card_id_from_str(alice_keys.card_id)
    assert group.add_members(["carol"]).epoch == 2  # now signed with the new card
    assert bob.group(group.group_id).decrypt(alice.group(group.group_id).encrypt(b"x")).sender \
        .identity == "alice"  # fmt: skip


def test_leaving(people: People) -> None:
    alice, bob = people["alice"], people["bob"]
    group = alice.create_group(["bob", "carol"])
    bob.group(group.group_id).leave()
    assert group.info().members == ("alice", "carol")
    with pytest.raises(InvalidInput):
        group.leave()  # the last admin can't leave its group without an admin
    with pytest.raises(MemberNotFound):
        group.remove_members(["bob"])


def test_group_content_is_plain_age_for_the_exported_identity(people: People) -> None:
    alice = people["alice"]
    group = alice.create_group(["bob"])
    data = alice.group(group.group_id).encrypt(b"for age tools")
    identity = age.parse_identity(group.export_epoch_identity())
    assert b"for age tools" in age.decrypt_bytes(data, [identity])
    assert data.count(b"\n-> mlkem768x25519 ") == 1  # one post-quantum recipient


def test_nothing_secret_reaches_the_server(people: People) -> None:
    alice = people["alice"]
    group = alice.create_group(["bob", "carol"])
    data = alice.group(group.group_id).encrypt(b"canary-group-plaintext")
    secret = alice._groups.sync(alice._keys()[0], group.group_id).current_secret
    assert secret is not None
    items: list[Any] = aws_client("dynamodb").scan(TableName=GROUPS_TABLE)["Items"]
    stored = repr(items).encode()
    s3 = aws_client("s3")
    bucket = STAGE_ENV["SEALBOX_BLOBS_BUCKET"]
    for version in s3.list_object_versions(Bucket=bucket).get("Versions", []):
        stored += s3.get_object(Bucket=bucket, Key=version["Key"])["Body"].read()
    for needle in (secret.to_bytes(), b"canary-group-plaintext", secret.export_identity().encode()):
        assert needle not in stored
    assert data  # the content itself never went to the server in this test
    assert decode_epoch(bytes(items[0].get("epoch", {"B": b""})["B"])) if "epoch" in items[0] \
        else True  # fmt: skip


def test_group_verbs_of_the_device_cli(
    transport: ChaliceTransport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from client_sim import device as device_module
    from sealbox_tools.cli import main

    def connect(home: Any, url: str, **options: Any) -> Device:
        options["storage_origins"] = MOTO_STORAGE_ORIGINS
        return Device(home, transport, sleep=lambda _: None, objects=MotoObjects(), **options)

    monkeypatch.setattr(device_module.Device, "connect", staticmethod(connect))
    monkeypatch.setenv("SEALBOX_PASSWORD", PASSWORD)

    def run(home: str, *args: str) -> str:
        argv = ["device", "--home", str(tmp_path / home), "--url", "http://x.invalid"]
        result = CliRunner().invoke(main, [*argv, "--kdf", "simulation", *args])
        assert result.exit_code == 0, (result.output, result.exception)
        return result.output

    for name in ("alice", "bob", "carol"):
        run(name, "register", name)
    group_id = run("alice", "group", "create", "--member", "bob").strip()
    assert "members: alice bob" in run("bob", "group", "show", group_id)
    (tmp_path / "note.txt").write_bytes(b"minutes of the meeting")
    run("alice", "group", "encrypt", group_id, str(tmp_path / "note.txt"), str(tmp_path / "n.age"))
    out = run("bob", "group", "decrypt", group_id, str(tmp_path / "n.age"), str(tmp_path / "n.txt"))
    assert "verified sender: alice" in out
    assert (tmp_path / "n.txt").read_bytes() == b"minutes of the meeting"
    assert "members: alice bob carol" in run("alice", "group", "add", group_id, "carol")
    assert run("carol", "group", "ls").startswith(group_id)
    assert "members: alice carol" in run("alice", "group", "remove", group_id, "bob")
    identity = run("alice", "group", "export-identity", group_id).strip()
    assert identity.startswith("AGE-SECRET-KEY-PQ-1")
    result = CliRunner().invoke(
        main,
        ["device", "--home", str(tmp_path / "bob"), "--url", "http://x.invalid", "--kdf",
         "simulation", "group", "show", group_id],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "not a member" in result.output


def test_two_admins_racing_on_the_same_head_one_wins_nothing_forks(people: People) -> None:
    # Both proposals pass every check against epoch 0; they meet at the
    # conditional write, where exactly one commits.
    import threading

    from chalicelib import wiring
    from chalicelib.wire.groups import decode_epoch, decode_roster
    from tests.support.groups import Made, make_epoch

    alice, bob = people["alice"], people["bob"]
    group = alice.create_group(["bob", "carol"], admins=["bob"])
    service = wiring.container().groups
    head, stored = service.head("alice", group.group_id)
    base = Made(decode_epoch(stored.epoch), decode_roster(head.roster), None, b"")  # type: ignore[arg-type]
    _, alice_keys = alice._keys()
    _, bob_keys = bob._keys()
    _, carol_keys = people["carol"]._keys()
    proposals = {
        "alice": make_epoch(alice_keys, [alice_keys, bob_keys], admins=["alice", "bob"],
                            previous=base, group_id=base.epoch.group_id),
        "bob": make_epoch(bob_keys, [alice_keys, bob_keys, carol_keys], admins=["bob"],
                          previous=base, group_id=base.epoch.group_id),
    }  # fmt: skip
    s3 = aws_client("s3")
    bucket = STAGE_ENV["SEALBOX_BLOBS_BUCKET"]
    wraps_ids = {}
    for name, made in proposals.items():
        wraps_id, _, _, _ = service.reserve_wraps(name, group.group_id, 1, len(made.wraps))
        s3.put_object(Bucket=bucket, Key=f"groups/{group.group_id}/1/{wraps_id}", Body=made.wraps)
        wraps_ids[name] = wraps_id
    store = service._store
    real_append = store.append
    barrier = threading.Barrier(2, timeout=30)

    def append_together(*args: Any, **kwargs: Any) -> bool:
        barrier.wait()  # both proposals were checked against epoch 0
        return real_append(*args, **kwargs)

    store.append = append_together  # type: ignore[method-assign]
    outcomes: dict[str, str] = {}

    def propose(name: str) -> None:
        try:
            service.append(
                name, group.group_id, b64url_encode(proposals[name].epoch.encoded), wraps_ids[name]
            )
            outcomes[name] = "won"
        except Exception as exc:  # the loser's error is the point
            outcomes[name] = getattr(exc, "code", repr(exc))

    threads = [threading.Thread(target=propose, args=(name,)) for name in proposals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    store.append = real_append  # type: ignore[method-assign]
    assert sorted(outcomes.values()) == ["stale_epoch", "won"]
    winner = next(name for name, outcome in outcomes.items() if outcome == "won")
    loser = next(name for name in proposals if name != winner)
    head, stored = service.head("alice" if winner == "alice" else "bob", group.group_id)
    assert head.number == 1
    assert stored.epoch == proposals[winner].epoch.encoded
    # The loser's wraps object is gone; its epoch was never stored.
    keys = [v["Key"] for v in s3.list_object_versions(Bucket=bucket).get("Versions", [])]
    markers = [m["Key"] for m in s3.list_object_versions(Bucket=bucket).get("DeleteMarkers", [])]
    assert f"groups/{group.group_id}/1/{wraps_ids[loser]}" in markers
    assert f"groups/{group.group_id}/1/{wraps_ids[winner]}" in keys
    # Every device follows the one chain.
    assert bob.group(group.group_id).info().epoch == 1


def test_group_blobs_are_readable_by_current_members_only(
    people: People, transport: ChaliceTransport
) -> None:
    from client_sim.api import ApiClient

    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    group = alice.create_group(["bob", "carol"])
    stored = bob.group(group.group_id).upload(b"the shared minutes")
    assert stored.group == group.group_id
    assert stored.recipients == ()
    opened = carol.group(group.group_id).download(stored.blob_id)
    assert opened.plaintext == b"the shared minutes"
    assert opened.sender.identity == "bob"
    group.remove_members(["carol"])
    # Carol is no longer a member: the blob is a 404 to her, like any blob she can't read.
    with pytest.raises(ServerError) as caught:
        carol.group(group.group_id).download(stored.blob_id)
    assert caught.value.status == 404
    api = ApiClient(transport)
    outsider = people["dave"]._session.access_token()
    with pytest.raises(ServerError) as caught:
        api.get_blob(outsider, stored.blob_id)
    assert caught.value.status == 404
    # Nobody reserves a blob for a group they are not in, nor mixes in recipients.
    with pytest.raises(ServerError) as caught:
        api.reserve_blob(outsider, 100, [], group=group.group_id)
    assert caught.value.status == 404
    token = alice._session.access_token()
    with pytest.raises(ServerError) as caught:
        api.reserve_blob(token, 100, ["bob"], group=group.group_id)
    assert (caught.value.status, caught.value.code) == (400, "invalid_request")
    # A group blob read as another group's is refused before decryption.
    other = alice.create_group(["bob"])
    with pytest.raises(DecryptionFailed):
        bob.group(other.group_id).download(stored.blob_id)


def test_a_member_that_never_synced_reads_what_was_sealed_in_epochs_it_missed(
    people: People,
) -> None:
    # Bob is a member from the creation but his phone first looks at the
    # group two epochs later: it must catch up through every epoch he was in,
    # not start at the head (which held only the newest epoch's key).
    alice, bob = people["alice"], people["bob"]
    group = alice.create_group(["bob"])
    group.add_members(["carol"])
    blob = group.upload(b"sealed at epoch 1")
    message = group.encrypt(b"epoch 1 message")
    group.remove_members(["carol"])
    mine = bob.group(group.group_id)
    assert mine.download(blob.blob_id).plaintext == b"sealed at epoch 1"
    assert mine.decrypt(message).plaintext == b"epoch 1 message"


def test_a_newcomer_catching_up_from_the_creation_still_reads_no_history(
    people: People,
) -> None:
    alice, carol = people["alice"], people["carol"]
    group = alice.create_group(["bob"])
    before = group.encrypt(b"before carol")
    group.add_members(["carol"])
    after = group.encrypt(b"after carol")
    mine = carol.group(group.group_id)
    assert mine.decrypt(after).plaintext == b"after carol"
    with pytest.raises(DecryptionFailed):
        mine.decrypt(before)


def test_a_following_member_moves_on_with_the_delta_and_its_own_wrap(
    people: People, transport: ChaliceTransport, tmp_path: Path
) -> None:
    # Counted where the replies arrive (the bench's counting transports): a
    # member that follows the group by the JSON routes (the device's default
    # is the catch-up frame, tests/functional/test_group_catchup.py) polls the
    # head without the roster, gets the epoch's delta with its wrap's ranged
    # GET, and the wrap.
    from bench.group_transfer import Counted, CountingObjects, CountingTransport

    counted = Counted()
    follower = people.device(
        "follower", CountingTransport(transport, counted), CountingObjects(counted)
    )
    follower._groups.compact = False
    group = people["alice"].create_group(["bob", "carol", "follower"])
    follower.group(group.group_id).info()
    group.remove_members(["carol"])
    counted.reset()
    info = follower.group(group.group_id).info()
    assert info.members == ("alice", "bob", "follower")
    moved = counted.summary()
    assert moved["requests"] == [
        "GET /v1/groups/{id}?roster=false",
        "GET /v1/groups/{id}/epochs/1?card_id=…&form=delta",
        "GET <presigned wrap range>",
    ]
    assert moved["epoch_and_wrap"] == 113 + 1169  # the delta of one removal, a PQ wrap
    assert moved["head_poll"] == 32


def test_an_epoch_stored_before_deltas_is_followed_in_full(people: People) -> None:
    # Epoch items written before deltas existed have none: the server serves
    # the full epoch and the member moves on as it did then.
    alice, bob = people["alice"], people["bob"]
    group = alice.create_group(["bob", "carol"])
    bob.group(group.group_id).info()
    group.remove_members(["carol"])
    ddb = aws_client("dynamodb")
    key = {"pk": {"S": group.group_id}, "sk": {"S": "epoch#00000000000000000001"}}
    item = ddb.get_item(TableName=GROUPS_TABLE, Key=key)["Item"]
    assert "delta" in item
    del item["delta"]
    ddb.put_item(TableName=GROUPS_TABLE, Item=item)
    after = alice.group(group.group_id).encrypt(b"after carol left")
    mine = bob.group(group.group_id)
    assert mine.info().members == ("alice", "bob")
    assert mine.decrypt(after).plaintext == b"after carol left"
