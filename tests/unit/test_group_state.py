"""client_sim.group_state: the sealed side file of followed groups and epoch secrets."""

from __future__ import annotations

from pathlib import Path

from client_sim.group_chain import GroupChain
from client_sim.group_state import GROUP_STATE_FILE, GroupState
from client_sim.keystore import DeviceKey, Keystore
from tests.identities import bundle, seed
from tests.support.groups import make_epoch

ALICE, BOB = bundle("alice"), bundle("bob")


def _chain() -> GroupChain:
    made = make_epoch(ALICE, [ALICE, BOB], admins=["alice"])
    chain = GroupChain(head=made.epoch, roster=made.roster)
    chain.secrets[0] = made.secret
    chain.key_ids[0] = made.epoch.key_id
    chain.readers[0] = frozenset(m.card_id for m in made.roster)
    return chain


def test_round_trip_sealed_under_the_device_key(tmp_path: Path) -> None:
    state = GroupState(Keystore(tmp_path, device_key=DeviceKey(seed("device"))))
    chain = _chain()
    state.save({"g": chain})
    loaded = state.load()["g"]
    assert loaded.head == chain.head
    assert loaded.roster == chain.roster
    assert loaded.secrets[0].to_bytes() == chain.secrets[0].to_bytes()
    assert loaded.key_ids == chain.key_ids
    assert loaded.readers == chain.readers
    raw = (tmp_path / "keystore" / GROUP_STATE_FILE).read_bytes()
    assert chain.secrets[0].to_bytes() not in raw
    assert chain.secrets[0].export_identity().encode() not in raw


def test_a_tampered_or_foreign_file_reads_as_empty(tmp_path: Path) -> None:
    keystore = Keystore(tmp_path, device_key=DeviceKey(seed("device")))
    GroupState(keystore).save({"g": _chain()})
    path = tmp_path / "keystore" / GROUP_STATE_FILE
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    assert GroupState(keystore).load() == {}
    GroupState(keystore).save({"g": _chain()})
    other = Keystore(tmp_path, device_key=DeviceKey(seed("another device")))
    assert GroupState(other).load() == {}
    GroupState(keystore).clear()
    assert not path.exists()
