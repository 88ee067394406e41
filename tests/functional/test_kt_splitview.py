"""Split-view detection by gossip: checkpoints carried inside sealed messages.

Attack test: the operator forks the transparency log between two groups of
phones -- each group is served its own tree, both signed with the real log
key, and each tree is consistent with everything its own group saw, so no
device can tell from the server's answers alone.  The first sealed message
that crosses the fork carries the sender's checkpoint to a reader that holds
the other branch: the reader raises ``SplitView`` with both signed
checkpoints before releasing any plaintext.  Messages inside one branch, and
between devices with and without the log pinned, open as before.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.wire.checkpoint import open_log_checkpoint
from chalicelib.wire.note import parse_verifier_key
from client_sim.device import Device
from client_sim.errors import SplitView
from client_sim.passwords import PASSWORD_KDF_SIMULATION
from client_sim.sealed import SealedHeader
from client_sim.transport import ChaliceTransport
from tests.functional.conftest import STAGE_ENV, log_vkey
from tests.support.device_flows import PASSWORD
from tests.support.objects import moto_objects

CARDS_TABLE = STAGE_ENV["SEALBOX_CARDS_TABLE"]

Items = list[dict[str, Any]]


@pytest.fixture
def phone(tmp_path: Path, transport: ChaliceTransport) -> Callable[..., Device]:
    def make(name: str, *, kt: bool = True) -> Device:
        device = Device(
            tmp_path / name,
            transport,
            kdf=PASSWORD_KDF_SIMULATION,
            log_key=log_vkey() if kt else None,
            **moto_objects(),
        )
        device.register(name, PASSWORD)
        return device

    return make


def _log_items() -> Items:
    client = boto3.client("dynamodb")
    items: Items = []
    for page in client.get_paginator("scan").paginate(TableName=CARDS_TABLE):
        items += [item for item in page["Items"] if item["pk"]["S"].startswith("kt#")]
    return items


def _serve(items: Items) -> None:
    """Make the stored log exactly ``items`` (what the operator shows next)."""
    client = boto3.client("dynamodb")
    for item in _log_items():
        client.delete_item(TableName=CARDS_TABLE, Key={"pk": item["pk"]})
    for item in items:
        client.put_item(TableName=CARDS_TABLE, Item=item)


def _size(device: Device) -> int:
    latest = device._log.latest() if device._log is not None else None
    assert latest is not None
    return latest.size


@pytest.fixture
def forked(phone: Callable[..., Device]) -> dict[str, Any]:
    """alice and carol see branch A of the log, bob and dave branch B.

    Everyone first agrees on one log (four registrations, one lookup each).
    Then the operator appends erin's card on branch A and shows it to alice
    and carol, rolls the log back to the common prefix and appends frank's
    and grace's cards on branch B for bob and dave.  Each device's view is a
    valid, consistent log: nothing the server says to one group contradicts
    what that group saw before.
    """
    names = ("alice", "bob", "carol", "dave")
    devices = {name: phone(name) for name in names}
    for name, device in devices.items():
        device.find_users([n for n in names if n != name], refresh=True)
    group = devices["alice"].create_group(["bob", "carol", "dave"])
    for name in names[1:]:
        devices[name].group(group.group_id).info()
    common = _log_items()

    phone("erin")  # a publish only branch A's log holds
    for name in ("alice", "carol"):
        devices[name].find_users(["erin"], refresh=True)
    branch_a = _log_items()

    _serve(common)
    phone("frank")  # branch B: two publishes, so it is also longer than A
    phone("grace")
    for name in ("bob", "dave"):
        devices[name].find_users(["frank", "grace"], refresh=True)
    branch_b = _log_items()

    assert _size(devices["alice"]) == _size(devices["carol"]) == 5
    assert _size(devices["bob"]) == _size(devices["dave"]) == 6
    return {"devices": devices, "group": group.group_id, "a": branch_a, "b": branch_b}


def _notes(error: SplitView) -> tuple[int, int]:
    verifier = parse_verifier_key(log_vkey())
    ours = open_log_checkpoint(error.ours, verifier, origin=verifier.name)
    theirs = open_log_checkpoint(error.theirs, verifier, origin=verifier.name)
    return ours.size, theirs.size


def test_the_first_message_across_the_fork_is_a_split_view(forked: dict[str, Any]) -> None:
    alice, bob = forked["devices"]["alice"], forked["devices"]["bob"]
    _serve(forked["a"])
    letter = alice.encrypt(b"hi bob", to=["bob"], context="chat/1")
    _serve(forked["b"])
    with pytest.raises(SplitView) as info:
        bob.decrypt(letter)
    # Both signed checkpoints, as evidence anyone with the log key can check:
    # bob's own (branch B, size 6) and the one alice carried (branch A, 5).
    assert _notes(info.value) == (6, 5)
    reply = bob.encrypt(b"hi alice", to=["alice"])
    _serve(forked["a"])
    with pytest.raises(SplitView) as info:
        alice.decrypt_stream(io.BytesIO(reply), io.BytesIO())
    assert _notes(info.value) == (5, 6)


def test_a_fork_at_equal_sizes_needs_no_proof(forked: dict[str, Any], phone) -> None:
    devices = forked["devices"]
    # carol's branch catches up in size with another card: same size, other root.
    _serve(forked["a"])
    phone("heidi")
    devices["carol"].find_users(["heidi"], refresh=True)
    assert _size(devices["carol"]) == _size(devices["dave"]) == 6
    letter = devices["carol"].encrypt(b"x", to=["dave"])
    _serve(forked["b"])
    with pytest.raises(SplitView) as info:
        devices["dave"].decrypt(letter)
    assert _notes(info.value) == (6, 6)
    assert info.value.ours != info.value.theirs


def test_group_content_across_the_fork_is_a_split_view(forked: dict[str, Any]) -> None:
    devices, gid = forked["devices"], forked["group"]
    _serve(forked["a"])
    post = devices["alice"].group(gid).encrypt(b"to the group")
    assert devices["carol"].group(gid).decrypt(post).plaintext == b"to the group"
    _serve(forked["b"])
    with pytest.raises(SplitView):
        devices["dave"].group(gid).decrypt(post)


def test_no_false_alarm_inside_a_branch(forked: dict[str, Any]) -> None:
    devices = forked["devices"]
    for branch, (writer, reader) in (("a", ("alice", "carol")), ("b", ("bob", "dave"))):
        _serve(forked[branch])
        for a, b in ((writer, reader), (reader, writer)):
            sealed = devices[a].encrypt(f"{a} to {b}".encode(), to=[b])
            assert devices[b].decrypt(sealed).plaintext == f"{a} to {b}".encode()
        assert devices[writer].decrypt(devices[writer].encrypt(b"self", to=[])).plaintext


def test_devices_with_and_without_the_log_read_each_other(phone) -> None:
    pinned, plain = phone("alice"), phone("bob", kt=False)
    pinned.find_users(["bob"])
    seen: list[SealedHeader] = []
    to_plain = pinned.encrypt(b"from a pinned phone", to=["bob"])
    # The checkpoint rides along; a device without the log key ignores it.
    opened = plain._messages.open_bytes(
        to_plain, plain._require_keys()[0].bundles, None, check=seen.append
    )
    assert opened.plaintext == b"from a pinned phone"
    assert seen[0].checkpoint == pinned._log.latest().note  # type: ignore[union-attr]
    to_pinned = plain.encrypt(b"from a plain phone", to=["alice"])
    assert pinned.decrypt(to_pinned).plaintext == b"from a plain phone"


def test_a_newer_consistent_checkpoint_advances_the_reader(phone) -> None:
    alice, bob = phone("alice"), phone("bob")
    alice.find_users(["bob"])
    bob.find_users(["alice"])
    phone("carol")
    alice.find_users(["carol"], refresh=True)  # alice sees size 3, bob still 2
    assert (_size(alice), _size(bob)) == (3, 2)
    assert bob.decrypt(alice.encrypt(b"news", to=["bob"])).plaintext == b"news"
    assert _size(bob) == 3  # gossip spread alice's fresher view


def test_a_stored_file_across_the_fork_is_a_split_view(forked: dict[str, Any]) -> None:
    devices = forked["devices"]
    _serve(forked["b"])
    blob = devices["dave"].upload(io.BytesIO(b"a file from dave"), to=["carol", "bob"])
    assert devices["bob"].download(blob.blob_id, io.BytesIO()).identity == "dave"
    _serve(forked["a"])
    out = io.BytesIO()
    with pytest.raises(SplitView):
        devices["carol"].download(blob.blob_id, out)
    assert out.getvalue() == b""  # refused before the first plaintext byte
