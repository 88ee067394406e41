"""chalicelib.wire.group_delta: the delta form a following member moves on with."""

from __future__ import annotations

import pytest

from chalicelib.wire.cards import card_id_to_str
from chalicelib.wire.group_delta import decode_delta, encode_delta, expand_delta
from chalicelib.wire.groups import (
    WRAP_SIZES,
    EpochChainError,
    InvalidGroupObject,
    check_successor,
    verify_epoch_signature,
)
from tests.identities import bundle
from tests.support.groups import make_epoch

PEOPLE = [bundle(f"user{i:02d}") for i in range(12)]
ADMIN = PEOPLE[0]
CARDS = {p.card.card_id: p.card for p in PEOPLE}


def _accept(previous, roster, epoch) -> None:  # type: ignore[no-untyped-def]
    """What a device does with a rebuilt epoch: the chain rules, then the signature."""
    check_successor(previous, roster, epoch)
    verify_epoch_signature(epoch, CARDS[card_id_to_str(epoch.signer_card_id)].ed25519_public_key)


def _removal(removed: int = 5):  # type: ignore[no-untyped-def]
    e0 = make_epoch(ADMIN, PEOPLE, admins=[ADMIN.identity])
    e1 = make_epoch(
        ADMIN, [p for i, p in enumerate(PEOPLE) if i != removed], admins=[ADMIN.identity],
        previous=e0,
    )  # fmt: skip
    return e0, e1


def test_a_removal_delta_is_113_bytes_and_rebuilds_the_signed_epoch() -> None:
    e0, e1 = _removal()
    delta = encode_delta(e1.epoch, e0.roster)
    assert len(delta) == 113
    # With the wrap (1169 B for a post-quantum card) a member moves on in <= 1300 B.
    assert len(delta) + WRAP_SIZES[1] <= 1300
    parsed = decode_delta(delta, e0.roster)
    rebuilt = expand_delta(parsed, e0.epoch, e0.roster, e1.secret.key_id())
    assert rebuilt == e1.epoch
    assert check_successor(e0.epoch, e0.roster, rebuilt) == e1.roster
    verify_epoch_signature(rebuilt, ADMIN.card.ed25519_public_key)


def test_adds_carry_the_whole_entry() -> None:
    e0 = make_epoch(ADMIN, PEOPLE[:3], admins=[ADMIN.identity])
    e1 = make_epoch(ADMIN, PEOPLE[:5], admins=[ADMIN.identity, PEOPLE[4].identity], previous=e0)
    delta = encode_delta(e1.epoch, e0.roster)
    rebuilt = expand_delta(decode_delta(delta, e0.roster), e0.epoch, e0.roster, e1.epoch.key_id)
    assert rebuilt == e1.epoch


@pytest.mark.parametrize("where", ["signer index", "removed index", "digest", "key id"])
def test_a_delta_that_does_not_rebuild_the_signed_epoch_is_refused(where: str) -> None:
    e0, e1 = _removal()
    delta = bytearray(encode_delta(e1.epoch, e0.roster))
    key_id = e1.secret.key_id()
    if where == "signer index":
        delta[10] ^= 0x01  # now names user01, not the admin
    elif where == "removed index":
        delta[-65] ^= 0x01  # removes user04 instead of user05
    elif where == "digest":
        delta[20] ^= 0x01
    else:
        key_id = bytes(32)  # a wrap whose secret isn't the signed one's
    parsed = decode_delta(bytes(delta), e0.roster)
    rebuilt = expand_delta(parsed, e0.epoch, e0.roster, key_id)
    with pytest.raises(EpochChainError):
        _accept(e0.epoch, e0.roster, rebuilt)


def test_every_byte_of_a_delta_matters() -> None:
    e0, e1 = _removal()
    delta = encode_delta(e1.epoch, e0.roster)
    for position in range(len(delta)):
        tampered = bytearray(delta)
        tampered[position] ^= 0x01
        try:
            parsed = decode_delta(bytes(tampered), e0.roster)
            rebuilt = expand_delta(parsed, e0.epoch, e0.roster, e1.secret.key_id())
            _accept(e0.epoch, e0.roster, rebuilt)
        except (InvalidGroupObject, EpochChainError):
            continue
        pytest.fail(f"a delta with byte {position} flipped was accepted")


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda raw: b"\x02" + raw[1:], "unsupported_version"),
        (lambda raw: raw[:-1], "truncated"),
        (lambda raw: raw + b"\x00", "trailing_data"),
        (lambda raw: raw[:9] + b"\x00\x63" + raw[11:], "not_a_member"),
    ],
)
def test_decode_refuses_anything_but_the_canonical_encoding(mutate, code: str) -> None:  # type: ignore[no-untyped-def]
    e0, e1 = _removal()
    with pytest.raises(InvalidGroupObject) as caught:
        decode_delta(mutate(encode_delta(e1.epoch, e0.roster)), e0.roster)
    assert caught.value.code == code
