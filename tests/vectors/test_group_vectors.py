"""tests/vectors/data/sealbox/groups.json against the library (docs/spec/groups.md).

Whether the file is what the generator produces is checked with the other
Sealbox files (test_sealbox_vectors.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.wire.cards import card_from_json, card_id_from_str
from chalicelib.wire.group_delta import decode_delta, expand_delta
from chalicelib.wire.group_history import decode_share, verify_share_signature
from chalicelib.wire.group_wraps import split_wraps
from chalicelib.wire.groups import (
    EpochChainError,
    InvalidGroupObject,
    check_successor,
    decode_epoch,
    decode_roster,
    verify_epoch_signature,
)
from client_sim.errors import DecryptionFailed
from client_sim.group_history import open_share
from client_sim.group_keys import open_wrap
from tests.vectors.gen_sealbox import OUT, make_bundle

DOC: dict[str, Any] = json.loads((OUT / "groups.json").read_text(encoding="utf-8"))
CARDS = {name: card_from_json(card) for name, card in DOC["cards"].items()}


def _ids(section: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(v, id=v["comment"]) for v in section]


def _follow(vector: dict[str, Any]) -> None:
    """Everything a device does with a served epoch: decode, signature, chain."""
    previous = None
    if vector["previous"] is not None:
        previous = decode_epoch(bytes.fromhex(vector["previous"]))
    roster = () if vector["roster"] is None else decode_roster(bytes.fromhex(vector["roster"]))
    epoch = decode_epoch(bytes.fromhex(vector["epoch"]))
    signer = CARDS[vector["signer"]]
    if card_id_from_str(signer.card_id) != epoch.signer_card_id:
        raise EpochChainError("bad_signature", "not the named signer")
    verify_epoch_signature(epoch, signer.ed25519_public_key)
    check_successor(previous, roster, epoch)


@pytest.mark.parametrize("vector", _ids(DOC["tests"]))
def test_epoch_vectors(vector: dict[str, Any]) -> None:
    if vector["result"] == "valid":
        _follow(vector)
        return
    expected = InvalidGroupObject if vector["stage"] == "decode" else EpochChainError
    with pytest.raises(expected) as caught:
        _follow(vector)
    assert getattr(caught.value, "code", None) == vector["code"]


@pytest.mark.parametrize("vector", _ids(DOC["wraps"]))
def test_wrap_vectors(vector: dict[str, Any]) -> None:
    opener = make_bundle(vector["opener"])
    args = {"group_id": bytes.fromhex(vector["group_id"]), "number": vector["epoch"]}
    body = bytes.fromhex(vector["body"])
    if vector["result"] == "valid":
        secret = open_wrap(body, opener, epoch_kind=1, **args)
        assert secret.to_bytes().hex() == vector["secret"]
        return
    with pytest.raises(DecryptionFailed):
        open_wrap(body, opener, epoch_kind=1, **args)


@pytest.mark.parametrize("vector", _ids(DOC["wraps_objects"]))
def test_wraps_object_vectors(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["data"])
    if vector["result"] == "valid":
        index, bodies = split_wraps(data)
        assert len(bodies) == vector["entries"] == len(index.entries)
        return
    with pytest.raises(InvalidGroupObject) as caught:
        split_wraps(data)
    assert caught.value.code == vector["code"]


def _rebuild(vector: dict[str, Any]) -> bytes:
    """What a following member does with a delta: rebuild, then check as any epoch."""
    previous = decode_epoch(bytes.fromhex(vector["previous"]))
    roster = decode_roster(bytes.fromhex(vector["roster"]))
    delta = decode_delta(bytes.fromhex(vector["delta"]), roster)
    epoch = expand_delta(delta, previous, roster, bytes.fromhex(vector["key_id"]))
    signer = next(c for c in CARDS.values() if card_id_from_str(c.card_id) == epoch.signer_card_id)
    verify_epoch_signature(epoch, signer.ed25519_public_key)
    check_successor(previous, roster, epoch)
    return epoch.encoded


@pytest.mark.parametrize("vector", _ids(DOC["deltas"]))
def test_delta_vectors(vector: dict[str, Any]) -> None:
    if vector["result"] == "valid":
        assert _rebuild(vector).hex() == vector["epoch"]
        return
    decoding = vector["stage"] in ("decode", "rebuild")
    expected = InvalidGroupObject if decoding else EpochChainError
    with pytest.raises(expected) as caught:
        _rebuild(vector)
    assert getattr(caught.value, "code", None) == vector["code"]


def _take(vector: dict[str, Any]) -> list[str]:
    """What a member does with a served share's bytes: decode, signature, open."""
    share = decode_share(bytes.fromhex(vector["share"]))
    verify_share_signature(share, CARDS[vector["signer"]].ed25519_public_key)
    return [s.hex() for s in open_share(share, make_bundle(vector["opener"]))]


@pytest.mark.parametrize("vector", _ids(DOC["shares"]))
def test_share_vectors(vector: dict[str, Any]) -> None:
    if vector["result"] == "valid":
        assert _take(vector) == vector["secrets"]
        return
    expected = InvalidGroupObject if vector["stage"] == "decode" else EpochChainError
    with pytest.raises(expected) as caught:
        _take(vector)
    assert getattr(caught.value, "code", None) == vector["code"]


def test_group_vectors_are_mostly_failures() -> None:
    sections = ("tests", "wraps", "wraps_objects", "deltas", "shares")
    for section in (DOC[name] for name in sections):
        results = [v["result"] for v in section]
        assert results.count("invalid") > results.count("valid")
