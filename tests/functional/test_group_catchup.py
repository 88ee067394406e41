"""The catch-up frame end to end: one binary reply moves a following member on.

The attacks are a hostile server's answers (a frame cut short, of another
version, carrying another member's wrap, a delta that doesn't chain, a
roster check that doesn't match), an operator editing the stored roster,
and outsiders asking: each is refused by the device with nothing of the
frame kept, or answered 404 like a group that doesn't exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from chalicelib.wire.b64 import b64url_encode
from chalicelib.wire.cards import card_id_from_str
from chalicelib.wire.group_catchup import (
    NONCE_SIZE,
    CatchUpEntry,
    decode_catchup,
    encode_catchup,
)
from client_sim.api import ApiClient
from client_sim.device import Device
from client_sim.errors import GroupVerificationFailed, NotAMember, ServerError
from client_sim.transport import ChaliceTransport, HttpReply, Transport
from tests.functional.test_groups import People
from tests.support.objects import MotoObjects

pytestmark = pytest.mark.functional

OCTETS = "application/octet-stream"


@pytest.fixture
def people(tmp_path: Path, transport: ChaliceTransport) -> People:
    crowd = People(tmp_path, transport)
    for name in ("alice", "bob", "carol"):
        crowd[name]  # registered before the group that names them
    return crowd


class Hostile:
    """The API transport of one device, with the catch-up replies rewritten."""

    def __init__(self, inner: Transport) -> None:
        self._inner = inner
        self.rewrite: Callable[[bytes], bytes] | None = None
        self.frames: list[bytes] = []

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        reply = self._inner.request(method, path, body=body, headers=headers)
        if "/catchup?" not in path or reply.status != 200:
            return reply
        self.frames.append(reply.body)
        if self.rewrite is None:
            return reply
        return HttpReply(reply.status, reply.headers, self.rewrite(reply.body))


def follower(people: People, transport: ChaliceTransport) -> Device:
    return people.device("follower", Hostile(transport))


def hostile(device: Device) -> Hostile:
    transport = device._api.transport
    assert isinstance(transport, Hostile)
    return transport


def test_one_frame_of_1297_bytes_moves_a_member_on_after_a_removal(
    people: People, transport: ChaliceTransport, tmp_path: Path
) -> None:
    from bench.group_transfer import Counted, CountingObjects, CountingTransport

    counted = Counted()
    member = people.device(
        "counted", CountingTransport(transport, counted), CountingObjects(counted)
    )
    group = people["alice"].create_group(["bob", "carol", "counted"])
    member.group(group.group_id).info()
    group.remove_members(["carol"])
    counted.reset()
    info = member.group(group.group_id).info()
    assert (info.epoch, info.members) == (1, ("alice", "bob", "counted"))
    moved = counted.summary()
    assert moved["requests"] == ["GET /v1/groups/{id}/catchup?after=0&card_id=…&nonce=…"]
    # version, count, status, roster check (8), two lengths, the delta of one
    # removal (113) and a post-quantum wrap (1169): the whole reply body.
    assert moved["reply_bodies"] == 3 + 8 + 4 + 113 + 1169 <= 1300
    counted.reset()
    member.group(group.group_id).info()  # nothing new: the poll is 11 bytes
    assert counted.summary()["reply_bodies"] == 3 + 8


def test_a_member_offline_for_several_epochs_moves_on_in_one_frame(
    people: People, transport: ChaliceTransport, tmp_path: Path
) -> None:
    device = follower(people, transport)
    alice = people["alice"]
    people["dave"]
    group = alice.create_group(["bob", "carol", "follower"])
    device.group(group.group_id).info()
    group.remove_members(["carol"])
    group.add_members(["dave"])
    group.rekey()
    sealed = alice.group(group.group_id).encrypt(b"after three epochs", context="c")
    hostile(device).frames.clear()
    assert device.group(group.group_id).decrypt(sealed, context="c").plaintext == (
        b"after three epochs"
    )
    [frame] = hostile(device).frames
    parsed = decode_catchup(frame)
    assert (len(parsed.entries), parsed.at_head) == (3, True)


def test_the_frame_carries_the_callers_own_wrap_and_stops_where_it_has_none(
    people: People, transport: ChaliceTransport
) -> None:
    alice, bob = people["alice"], people["bob"]
    group = alice.create_group(["bob", "carol"])
    bob.group(group.group_id).info()
    group.remove_members(["carol"])
    api = ApiClient(transport)
    _, bob_keys = bob._keys()
    _, alice_keys = alice._keys()
    token = bob._session.access_token()
    nonce = bytes(range(NONCE_SIZE))
    frame = decode_catchup(api.group_catchup(token, group.group_id, 0, bob_keys.card_id, nonce))
    reply = api.get_group_epoch(token, group.group_id, 1, bob_keys.card_id)
    assert frame.at_head
    assert len(frame.entries) == 1
    assert (
        frame.entries[0].wrap
        == MotoObjects().get(reply["wrap"]["url"], headers=reply["wrap"]["headers"]).read()
    )
    # Another member's card: no wrap to carry, so no entry (the head is further).
    other = decode_catchup(api.group_catchup(token, group.group_id, 0, alice_keys.card_id, nonce))
    assert (other.entries, other.at_head, other.roster_check) == ((), False, None)


def test_outsiders_and_removed_members_get_the_404_of_a_group_that_does_not_exist(
    people: People, transport: ChaliceTransport
) -> None:
    alice, carol, dave = people["alice"], people["carol"], people["dave"]
    group = alice.create_group(["bob", "carol"])
    carol.group(group.group_id).info()
    group.remove_members(["carol"])
    api = ApiClient(transport)
    nonce = bytes(NONCE_SIZE)
    answers = []
    for device, gid in (
        (dave, group.group_id),
        (carol, group.group_id),
        (dave, b64url_encode(bytes(16))),
    ):
        _, keys = device._keys()
        with pytest.raises(ServerError) as caught:
            api.group_catchup(device._session.access_token(), gid, 0, keys.card_id, nonce)
        answers.append((caught.value.status, caught.value.code))
    assert answers == [(404, "not_found")] * 3
    with pytest.raises(NotAMember):
        carol.group(group.group_id).info()


def test_a_request_that_does_not_accept_octets_is_refused(
    people: People, transport: ChaliceTransport
) -> None:
    alice = people["alice"]
    group = alice.create_group(["bob"])
    _, keys = alice._keys()
    query = f"after=0&card_id={keys.card_id}&nonce={b64url_encode(bytes(NONCE_SIZE))}"
    token = alice._session.access_token()
    path = f"/v1/groups/{group.group_id}/catchup?{query}"
    reply = transport.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    assert (reply.status, reply.json()["error"]["code"]) == (406, "not_acceptable")
    # API Gateway decodes the body only when the *first* Accept type is binary.
    for accept, status in (("*/*, application/octet-stream", 406), (f"{OCTETS}, */*", 200)):
        headers = {"Authorization": f"Bearer {token}", "Accept": accept}
        assert transport.request("GET", path, headers=headers).status == status, accept
    for bad in ("nonce=AAAA", "after=x", "card_id=nope"):
        name = bad.split("=")[0]
        kept = "&".join(p for p in query.split("&") if not p.startswith(name + "="))
        reply = transport.request(
            "GET",
            f"/v1/groups/{group.group_id}/catchup?{kept}&{bad}",
            headers={"Authorization": f"Bearer {token}", "Accept": OCTETS},
        )
        assert (reply.status, reply.json()["error"]["code"]) == (400, "invalid_request"), bad


def _other_members_wrap(alice: Device, bob: Device, gid: str, number: int) -> bytes:
    _, bob_keys = bob._keys()
    api = alice._api
    reply = bob._session.authed(lambda t: api.get_group_epoch(t, gid, number, bob_keys.card_id))
    target = reply["wrap"]
    return bytes(MotoObjects().get(target["url"], headers=target["headers"]).read())


@pytest.mark.parametrize(
    ("attack", "code"),
    [
        ("truncated", "truncated"),
        ("trailing", "trailing_data"),
        ("version", "unsupported_version"),
        ("status", "unknown_status"),
        ("roster_check", "roster_mismatch"),
        ("other_wrap", "bad_wrap"),
        ("skipped_epoch", "bad_signature"),
    ],
)
def test_a_hostile_frame_is_refused_and_the_member_stays_where_it_was(
    people: People, transport: ChaliceTransport, tmp_path: Path, attack: str, code: str
) -> None:
    alice, bob = people["alice"], people["bob"]
    device = follower(people, transport)
    group = alice.create_group(["bob", "carol", "follower"])
    device.group(group.group_id).info()
    group.remove_members(["carol"])
    bobs = _other_members_wrap(alice, bob, group.group_id, 1)
    if attack == "skipped_epoch":
        group.rekey()
    server = hostile(device)
    honest: dict[str, bytes] = {}

    def rewrite(frame: bytes) -> bytes:
        parsed = decode_catchup(frame)
        honest["frame"] = frame
        if attack == "truncated":
            return frame[:-1]
        if attack == "trailing":
            return frame + b"\x00"
        if attack == "version":
            return b"\x02" + frame[1:]
        if attack == "status":
            return frame[:2] + b"\x02" + frame[3:]
        if attack == "roster_check":
            return frame[:3] + bytes([frame[3] ^ 1]) + frame[4:]
        if attack == "other_wrap":
            # Bob's wrap of the same epoch: a real wrap, but not this card's.
            first = parsed.entries[0]
            return encode_catchup(
                [CatchUpEntry(first.delta, bobs), *parsed.entries[1:]], parsed.roster_check
            )
        # skipped_epoch: epoch 2's delta served as epoch 1, with the wrap of
        # epoch 1 (which opens): the rebuilt epoch's signature doesn't verify.
        one, two = parsed.entries
        return encode_catchup([CatchUpEntry(two.delta, one.wrap)], parsed.roster_check)

    server.rewrite = rewrite
    with pytest.raises(GroupVerificationFailed) as caught:
        device.group(group.group_id).info()
    assert caught.value.code == code
    assert "frame" in honest  # the attack was really served
    server.rewrite = None
    # Nothing of the refused frame was kept: the honest frame moves it on.
    info = device.group(group.group_id).info()
    assert info.epoch == (2 if attack == "skipped_epoch" else 1)
    assert "carol" not in info.members
    assert card_id_from_str(device._keys()[1].card_id)  # still the same device


def test_an_operator_adding_a_reader_to_the_stored_roster_fails_the_roster_check(
    people: People, transport: ChaliceTransport, tmp_path: Path
) -> None:
    from chalicelib.wire.groups import Member, decode_roster, encode_roster
    from tests.functional.conftest import STAGE_ENV, aws_client

    alice, dave = people["alice"], people["dave"]
    device = follower(people, transport)
    group = alice.create_group(["bob", "follower"])
    device.group(group.group_id).info()
    ddb = aws_client("dynamodb")
    table = STAGE_ENV["SEALBOX_GROUPS_TABLE"]
    key = {"pk": {"S": group.group_id}, "sk": {"S": "head"}}
    item = ddb.get_item(TableName=table, Key=key)["Item"]
    roster = decode_roster(bytes(item["roster"]["B"]))
    _, dave_keys = dave._keys()
    forged = (*roster, Member("dave", card_id_from_str(dave_keys.card_id), False))
    item["roster"] = {"B": encode_roster(tuple(sorted(forged)))}
    ddb.put_item(TableName=table, Item=item)
    # Nothing new, so the frame carries no epoch: only the check catches it.
    with pytest.raises(GroupVerificationFailed) as caught:
        device.group(group.group_id).info()
    assert caught.value.code == "roster_mismatch"
    assert len(decode_catchup(hostile(device).frames[-1]).entries) == 0
