"""History shares end to end in process: an admin shares past epochs with one member.

The attacks: a non-admin shares (refused by the server; a forged one stored
by the operator refused by the device); a share for a removed member
(refused); the server serving one member's share to another member, or one
group's share in another group; a tampered share; an admin wrapping a
secret that isn't the epoch's.  And the point of it all: the member who got
history reads old messages, one who didn't can't.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chalicelib.wire.group_history import decode_share
from chalicelib.wire.groups import group_id_from_str
from client_sim.device import Device
from client_sim.errors import (
    DecryptionFailed,
    GroupVerificationFailed,
    MemberNotFound,
    NotAnAdmin,
    ServerError,
)
from client_sim.group_history import make_share
from client_sim.group_keys import EpochSecret
from client_sim.transport import ChaliceTransport
from tests.functional.conftest import STAGE_ENV, aws_client
from tests.functional.test_groups import People
from tests.support.device_flows import PASSWORD
from tests.support.objects import MOTO_STORAGE_ORIGINS, MotoObjects

GROUPS_TABLE = STAGE_ENV["SEALBOX_GROUPS_TABLE"]


@pytest.fixture
def people(tmp_path: Path, transport: ChaliceTransport) -> People:
    crowd = People(tmp_path, transport)
    for name in ("alice", "bob", "carol", "dave"):
        crowd[name]
    return crowd


def _history_items(group_id: str) -> list[dict[str, Any]]:
    out = aws_client("dynamodb").query(
        TableName=GROUPS_TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :h)",
        ExpressionAttributeValues={":pk": {"S": group_id}, ":h": {"S": "history#"}},
    )
    return list(out["Items"])


def _plant(group_id: str, member: str, data: bytes, share_id: str = "f" * 32) -> None:
    """What an operator with write access to DynamoDB can do: serve any bytes as a share."""
    aws_client("dynamodb").put_item(
        TableName=GROUPS_TABLE,
        Item={
            "pk": {"S": group_id},
            "sk": {"S": f"history#{member}#{share_id}"},
            "share": {"B": data},
        },
    )


def _post(device: Device, group_id: str, share: bytes) -> None:
    device._session.authed(lambda t: device._api.share_group_history(t, group_id, share))


def _group_with_history(people: People) -> tuple[Any, bytes, bytes]:
    """Alice's group: a message at epoch 0 and one at epoch 1, then Carol (2) and Dave (3)."""
    alice = people["alice"]
    group = alice.create_group(["bob"])
    first = group.encrypt(b"sealed at epoch 0", context="chat")
    group.add_members(["bob"], admin=True)  # epoch 1: Bob an admin too
    second = group.encrypt(b"sealed at epoch 1", context="chat")
    group.add_members(["carol"])
    group.add_members(["dave"])
    return group, first, second


def test_a_member_given_history_reads_old_messages_one_without_cannot(people: People) -> None:
    group, first, second = _group_with_history(people)
    carol = people["carol"].group(group.group_id)
    dave = people["dave"].group(group.group_id)
    # The default: no history.
    for reader in (carol, dave):
        for old in (first, second):
            with pytest.raises(DecryptionFailed):
                reader.decrypt(old, context="chat")
    assert group.share_history("carol", from_epoch=0) == (0, 2)
    # Carol's device takes the share by itself when old content doesn't open.
    assert carol.decrypt(first, context="chat").plaintext == b"sealed at epoch 0"
    assert carol.decrypt(second, context="chat").sender.identity == "alice"
    assert carol.receive_history() == []  # nothing new the second time
    # Dave got nothing: still closed to him.
    with pytest.raises(DecryptionFailed):
        dave.decrypt(first, context="chat")
    assert dave.receive_history() == []
    # A partial range: Dave gets epoch 1 only.
    group.share_history("dave", from_epoch=1, to_epoch=1)
    assert dave.decrypt(second, context="chat").plaintext == b"sealed at epoch 1"
    with pytest.raises(DecryptionFailed):
        dave.decrypt(first, context="chat")
    # Nothing secret is stored by the server: only wrapped shares.
    secret = people["alice"]._groups.sync(people["alice"]._keys()[0], group.group_id).secrets[0]
    for item in _history_items(group.group_id):
        assert secret.to_bytes() not in bytes(item["share"]["B"])


def test_a_non_admin_cannot_share_history(people: People) -> None:
    group, _first, _ = _group_with_history(people)
    carol = people["carol"]
    with pytest.raises(NotAnAdmin):
        carol.group(group.group_id).share_history("dave", from_epoch=2)
    # Carol skips her SDK's check and signs a share of epoch 2 for Dave herself.
    state, keys = carol._keys()
    chain = carol._groups.sync(state, group.group_id)
    dave_entry = chain.member("dave")
    assert dave_entry is not None
    dave_card = carol._groups._directory.card_by_id(people["dave"]._keys()[1].card_id)
    assert dave_card is not None
    forged = make_share(
        keys, dave_entry, dave_card, at=chain.head.number, secrets=[chain.secrets[2]]
    )
    with pytest.raises(ServerError) as refused:
        _post(carol, group.group_id, forged.encoded)
    assert (refused.value.status, refused.value.code) == (403, "not_an_admin")
    assert _history_items(group.group_id) == []
    # The operator stores it anyway: Dave's device refuses a share no admin signed.
    _plant(group.group_id, "dave", forged.encoded)
    with pytest.raises(GroupVerificationFailed) as caught:
        people["dave"].group(group.group_id).receive_history()
    assert caught.value.code == "not_an_admin"


def test_a_removed_member_gets_no_share(people: People) -> None:
    group, _first, _ = _group_with_history(people)
    alice, carol = people["alice"], people["carol"]
    state, keys = alice._keys()
    chain = alice._groups.sync(state, group.group_id)
    carol_entry = chain.member("carol")
    assert carol_entry is not None
    carol_card = alice._groups._directory.card_by_id(carol._keys()[1].card_id)
    assert carol_card is not None
    group.remove_members(["carol"])
    with pytest.raises(MemberNotFound):
        group.share_history("carol", from_epoch=0)
    # Made by hand for her old entry at the current epoch: the server refuses it.
    chain = alice._groups.sync(state, group.group_id)
    share = make_share(
        keys, carol_entry, carol_card, at=chain.head.number, secrets=[chain.secrets[0]]
    )
    with pytest.raises(ServerError) as refused:
        _post(alice, group.group_id, share.encoded)
    assert (refused.value.status, refused.value.code) == (404, "member_not_found")
    assert _history_items(group.group_id) == []


def test_a_share_made_at_an_old_epoch_is_stale(people: People) -> None:
    group, _, _ = _group_with_history(people)
    alice = people["alice"]
    state, keys = alice._keys()
    chain = alice._groups.sync(state, group.group_id)
    entry = chain.member("carol")
    assert entry is not None
    card = alice._groups._directory.card_by_id(people["carol"]._keys()[1].card_id)
    assert card is not None
    share = make_share(keys, entry, card, at=chain.head.number - 1, secrets=[chain.secrets[0]])
    with pytest.raises(ServerError) as refused:
        _post(alice, group.group_id, share.encoded)
    assert (refused.value.status, refused.value.code) == (409, "stale_epoch")


def test_the_server_serving_carols_share_to_dave_is_caught(people: People) -> None:
    group, first, _ = _group_with_history(people)
    group.share_history("carol", from_epoch=0)
    [item] = _history_items(group.group_id)
    _plant(group.group_id, "dave", bytes(item["share"]["B"]))
    dave = people["dave"].group(group.group_id)
    with pytest.raises(GroupVerificationFailed) as caught:
        dave.receive_history()
    assert caught.value.code == "not_for_me"
    with pytest.raises(GroupVerificationFailed):
        dave.decrypt(first, context="chat")


def test_a_share_of_another_group_is_caught(people: People) -> None:
    group, _, _ = _group_with_history(people)
    other = people["alice"].create_group(["carol"])
    other.encrypt(b"x")
    other.add_members(["dave"])
    other.share_history("dave", from_epoch=0)
    [item] = _history_items(other.group_id)
    _plant(group.group_id, "dave", bytes(item["share"]["B"]))
    with pytest.raises(GroupVerificationFailed) as caught:
        people["dave"].group(group.group_id).receive_history()
    assert caught.value.code == "other_group"


@pytest.mark.parametrize(
    ("where", "code"),
    [
        ("range", "bad_signature"),
        ("count", "truncated"),
        ("wrap", "bad_signature"),
        ("member", "invalid_identity"),
    ],
)
def test_a_tampered_share_is_caught(people: People, where: str, code: str) -> None:
    group, first, second = _group_with_history(people)
    group.share_history("carol", from_epoch=1)
    [item] = _history_items(group.group_id)
    raw = bytearray(bytes(item["share"]["B"]))
    share = decode_share(bytes(raw))
    header = len(share.header)
    if where == "range":
        # epochs 1..2 relabelled 0..1: the same count, so only the signature tells.
        raw[header - 9] -= 1
        raw[header - 1] -= 1
    elif where == "count":
        raw[header - 9] -= 1  # one epoch more than the wrap holds secrets for
    elif where == "wrap":
        raw[header + 40] ^= 1
    else:
        raw[9 + 16 + 8 + 32 + 1] ^= 0x20  # the member identity's first letter
    _plant(group.group_id, "carol", bytes(raw))
    _plant(group.group_id, "carol", bytes(item["share"]["B"]), share_id=item["sk"]["S"][-32:])
    carol = people["carol"].group(group.group_id)
    with pytest.raises(GroupVerificationFailed) as caught:
        carol.receive_history()
    assert caught.value.code == code
    # The genuine share still counted: epoch 1 opens; epoch 0 was never
    # shared, and the tampered share is refused again, not taken.
    assert carol.decrypt(second, context="chat").plaintext == b"sealed at epoch 1"
    with pytest.raises(GroupVerificationFailed):
        carol.decrypt(first, context="chat")


def test_an_admin_wrapping_a_wrong_secret_is_caught(people: People) -> None:
    group, first, _ = _group_with_history(people)
    alice = people["alice"]
    state, keys = alice._keys()
    chain = alice._groups.sync(state, group.group_id)
    entry = chain.member("carol")
    assert entry is not None
    card = alice._groups._directory.card_by_id(people["carol"]._keys()[1].card_id)
    assert card is not None
    bogus = EpochSecret.generate(
        group_id=group_id_from_str(group.group_id), number=0, kind=chain.secrets[0].kind
    )
    share = make_share(keys, entry, card, at=chain.head.number, secrets=[bogus])
    _post(alice, group.group_id, share.encoded)  # the server can't tell
    carol = people["carol"].group(group.group_id)
    with pytest.raises(GroupVerificationFailed) as caught:
        carol.receive_history()
    assert caught.value.code == "bad_share"
    with pytest.raises(GroupVerificationFailed):
        carol.decrypt(first, context="chat")


def test_share_history_verb_of_the_device_cli(
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

    def run(home: str, *args: str, code: int = 0) -> str:
        argv = ["device", "--home", str(tmp_path / home), "--url", "http://x.invalid"]
        result = CliRunner().invoke(main, [*argv, "--kdf", "simulation", *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result.output

    for name in ("alice", "bob"):
        run(name, "register", name)
    group_id = run("alice", "group", "create").strip()
    (tmp_path / "old.txt").write_bytes(b"before bob")
    run("alice", "group", "encrypt", group_id, str(tmp_path / "old.txt"), str(tmp_path / "o.age"))
    run("alice", "group", "add", group_id, "bob")
    decrypt = ("group", "decrypt", group_id, str(tmp_path / "o.age"), str(tmp_path / "o.txt"))
    run("bob", *decrypt, code=1)
    assert "shared epochs 0 to 0 with bob" in run(
        "alice", "group", "share-history", group_id, "bob", "--from", "0"
    )
    assert "verified sender: alice" in run("bob", *decrypt)
    assert (tmp_path / "o.txt").read_bytes() == b"before bob"
    assert (
        "only an admin"
        in run("bob", "group", "share-history", group_id, "alice", "--from", "0", code=1).lower()
    )


def test_the_server_refuses_malformed_shares_and_outsiders(
    people: People, transport: ChaliceTransport
) -> None:
    group, _, _ = _group_with_history(people)
    alice = people["alice"]
    share = group.share_history("carol", from_epoch=0, to_epoch=0)
    assert share == (0, 0)
    [item] = _history_items(group.group_id)
    genuine = bytes(item["share"]["B"])
    for body, code in (
        (b"not a share", "invalid_history_share"),
        (genuine[:-1], "invalid_history_share"),
        (genuine[:-1] + bytes([genuine[-1] ^ 1]), "invalid_history_share"),  # signature
    ):
        with pytest.raises(ServerError) as refused:
            _post(alice, group.group_id, body)
        assert (refused.value.status, refused.value.code) == (400, code)
    # Another group's share posted here: refused before anything else.
    other = alice.create_group(["carol"])
    with pytest.raises(ServerError) as refused:
        _post(alice, other.group_id, genuine)
    assert refused.value.code == "invalid_history_share"
    # The same share again is the same write-once item.
    _post(alice, group.group_id, genuine)
    assert len(_history_items(group.group_id)) == 1
    # Someone outside the group sees neither route.
    eve = people["eve"]
    for call in (
        lambda t: eve._api.get_group_history(t, group.group_id),
        lambda t: eve._api.share_group_history(t, group.group_id, genuine),
    ):
        with pytest.raises(ServerError) as hidden:
            eve._session.authed(call)
        assert hidden.value.status == 404
    # Bob, a member, is served only his own shares (none).
    bob = people["bob"]
    assert bob._session.authed(lambda t: bob._api.get_group_history(t, group.group_id)) == []


def test_an_admin_cannot_grow_a_members_share_list_without_limit(people: People) -> None:
    """A hostile or buggy admin posting share after share: the server keeps
    at most MAX_HISTORY_SHARES per member per group (a conditional count),
    refuses the next with 409 history_share_limit and stores nothing of it;
    the same share again is still the same id (write-once, not counted)."""
    from chalicelib.services.groups import MAX_HISTORY_SHARES

    alice, dave = people["alice"], people["dave"]
    group = alice.create_group(["bob"])
    group.add_members(["carol"])
    group.add_members(["dave"])
    for _ in range(MAX_HISTORY_SHARES):
        group.share_history("carol", from_epoch=0, to_epoch=0)
    stored = _history_items(group.group_id)
    assert len(stored) == MAX_HISTORY_SHARES
    _post(alice, group.group_id, bytes(stored[0]["share"]["B"]))  # idempotent, not counted
    with pytest.raises(ServerError) as refused:
        group.share_history("carol", from_epoch=0, to_epoch=0)
    assert (refused.value.status, refused.value.code) == (409, "history_share_limit")
    assert len(_history_items(group.group_id)) == MAX_HISTORY_SHARES
    # Another member's list is its own.
    group.share_history("dave", from_epoch=0, to_epoch=1)
    assert dave.group(group.group_id).receive_history() == [0, 1]
