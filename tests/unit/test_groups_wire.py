"""chalicelib.wire.groups and group_wraps: epochs, rosters, the chain rules, wraps objects."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from chalicelib.wire.cards import card_id_from_str
from chalicelib.wire.group_wraps import (
    build_wraps,
    group_context,
    parse_group_context,
    parse_wraps_index,
    split_wraps,
)
from chalicelib.wire.groups import (
    KIND_X25519,
    MAX_GROUP_MEMBERS,
    OP_REMOVE,
    OP_SET,
    WRAP_SIZES,
    Change,
    Epoch,
    EpochChainError,
    InvalidGroupObject,
    Member,
    apply_changes,
    changes_between,
    check_successor,
    decode_epoch,
    decode_roster,
    encode_content,
    encode_roster,
    group_id_from_str,
    group_id_to_str,
    verify_epoch_signature,
)
from tests.identities import bundle
from tests.support.groups import GROUP_ID, Made, make_epoch

ALICE, BOB, CAROL, DAVE = (bundle(n) for n in ("alice", "bob", "carol", "dave"))


@pytest.fixture(scope="module")
def genesis() -> Made:
    return make_epoch(ALICE, [ALICE, BOB, CAROL], admins=["alice"])


def test_round_trip_and_hash_chain(genesis: Made) -> None:
    epoch = genesis.epoch
    assert decode_epoch(epoch.encoded) == epoch
    assert check_successor(None, (), epoch) == genesis.roster
    assert decode_roster(encode_roster(genesis.roster)) == genesis.roster
    successor = make_epoch(ALICE, [ALICE, BOB], admins=["alice"], previous=genesis)
    assert successor.epoch.previous_hash == epoch.hash
    assert check_successor(epoch, genesis.roster, successor.epoch) == successor.roster
    verify_epoch_signature(successor.epoch, ALICE.card.ed25519_public_key)
    # The removal of one member is one change, whatever the group's size.
    assert successor.epoch.changes == (Change("carol", OP_REMOVE, card_id_from_str(CAROL.card_id)),)


def test_an_epoch_grows_with_its_changes_not_with_the_group() -> None:
    everyone = [bundle(f"user{i:04d}") for i in range(40)]
    big = make_epoch(everyone[0], everyone, admins=["user0000"], kind=KIND_X25519)
    removal = make_epoch(everyone[0], everyone[:-1], admins=["user0000"], previous=big)
    assert len(removal.epoch.encoded) < 350
    assert len(big.epoch.encoded) > 40 * 40


def test_operator_editing_an_epoch_breaks_the_signature(genesis: Made) -> None:
    epoch = genesis.epoch
    extra = Change("dave", OP_SET, card_id_from_str(DAVE.card_id), True)
    forged = dataclasses.replace(epoch, changes=tuple(sorted((*epoch.changes, extra))))
    promoted = dataclasses.replace(
        epoch, changes=tuple(dataclasses.replace(c, admin=True) for c in epoch.changes)
    )
    for edited in (forged, promoted):
        again = decode_epoch(edited.encoded)  # still well-formed...
        with pytest.raises(EpochChainError) as caught:
            verify_epoch_signature(again, ALICE.card.ed25519_public_key)  # ...but unsigned
        assert caught.value.code == "bad_signature"


def test_operator_editing_the_roster_is_caught_by_the_roster_hash(genesis: Made) -> None:
    # The server keeps the full roster; it adds Dave as an admin to what it serves.
    successor = make_epoch(ALICE, [ALICE, BOB], admins=["alice"], previous=genesis)
    dave = Member("dave", card_id_from_str(DAVE.card_id), True)
    served = tuple(sorted((*genesis.roster, dave)))
    with pytest.raises(EpochChainError) as caught:
        check_successor(genesis.epoch, served, successor.epoch)
    assert caught.value.code == "roster_mismatch"


def test_every_byte_of_the_content_is_signed(genesis: Made) -> None:
    encoded = genesis.epoch.encoded
    for position in range(0, len(encoded) - 64, 5):
        flipped = bytearray(encoded)
        flipped[position] ^= 0x01
        try:
            parsed = decode_epoch(bytes(flipped))
        except InvalidGroupObject:
            continue
        with pytest.raises(EpochChainError):
            verify_epoch_signature(parsed, ALICE.card.ed25519_public_key)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: b[:-1], "truncated"),
        (lambda b: b + b"\x00", "trailing_data"),
        (lambda b: b"SBGEPOCX" + b[8:], "bad_magic"),
        (lambda b: b[:8] + b"\x02" + b[9:], "unsupported_version"),
    ],
)
def test_decode_refuses(genesis: Made, mutate: Any, code: str) -> None:
    with pytest.raises(InvalidGroupObject) as caught:
        decode_epoch(mutate(genesis.epoch.encoded))
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"previous_hash": bytes(32)}, "invalid_previous_hash"),
        ({"number": 3}, "invalid_previous_hash"),
        ({"kind": 7}, "unknown_kind"),
        ({"key_id": bytes(31)}, "invalid_length"),
        ({"member_count": 0}, "invalid_roster_size"),
        ({"member_count": MAX_GROUP_MEMBERS + 1}, "invalid_roster_size"),
        ({"group_id": bytes(15)}, "invalid_group_id"),
    ],
)
def test_fields_are_checked(genesis: Made, change: dict[str, Any], code: str) -> None:
    with pytest.raises(InvalidGroupObject) as caught:
        encode_content(dataclasses.replace(genesis.epoch, **change))
    assert caught.value.code == code


def _change(name: str, n: int, op: int = OP_SET, admin: bool = False) -> Change:
    return Change(name, op, bytes([n]) * 32, admin)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ((_change("bob", 1), _change("alice", 2)), "changes_not_sorted"),
        ((_change("alice", 1), _change("alice", 2)), "changes_not_sorted"),
        ((_change("Alice", 1),), "invalid_identity"),
        ((_change("al", 1),), "invalid_identity"),
        ((_change("alice", 1, op=3),), "unknown_op"),
        ((_change("alice", 1, op=OP_REMOVE, admin=True),), "reserved_flag"),
        ((_change("alice", 1, op=OP_REMOVE),), "not_a_member"),  # epoch 0 only adds
    ],
)
def test_change_rules(genesis: Made, changes: tuple[Change, ...], code: str) -> None:
    with pytest.raises(InvalidGroupObject) as caught:
        encode_content(dataclasses.replace(genesis.epoch, changes=changes))
    assert caught.value.code == code


def _members(*entries: tuple[str, int, bool]) -> tuple[Member, ...]:
    return tuple(Member(name, bytes([n]) * 32, admin) for name, n, admin in entries)


@pytest.mark.parametrize(
    ("members", "code"),
    [
        (_members(("bob", 1, True), ("alice", 2, False)), "roster_not_sorted"),
        (_members(("alice", 1, True), ("alice", 2, False)), "roster_not_sorted"),
        (_members(("alice", 1, True), ("bob", 1, False)), "duplicate_card"),
        (_members(("alice", 1, False), ("bob", 2, False)), "no_admin"),
        (
            _members(
                ("Alice", 1, True),
            ),
            "invalid_identity",
        ),
        ((), "invalid_roster_size"),
    ],
)
def test_roster_rules(members: tuple[Member, ...], code: str) -> None:
    with pytest.raises(InvalidGroupObject) as caught:
        encode_roster(members)
    assert caught.value.code == code


def test_roster_decoding_refuses(genesis: Made) -> None:
    encoded = encode_roster(genesis.roster)
    for data, code in (
        (encoded[:-1], "truncated"),
        (encoded + b"\x00", "trailing_data"),
        (encoded[:-1] + b"\x80", "reserved_flag"),
    ):
        with pytest.raises(InvalidGroupObject) as caught:
            decode_roster(data)
        assert caught.value.code == code


def test_roster_size_is_bounded() -> None:
    big = tuple(
        Member(f"user{i:05d}", i.to_bytes(32, "big"), i == 0) for i in range(MAX_GROUP_MEMBERS + 1)
    )
    with pytest.raises(InvalidGroupObject) as caught:
        encode_roster(big)
    assert caught.value.code == "invalid_roster_size"
    encode_roster(big[:MAX_GROUP_MEMBERS])


def test_applying_changes() -> None:
    before = _members(("alice", 1, True), ("bob", 2, False), ("carol", 3, False))
    after = _members(("alice", 1, True), ("bob", 4, True), ("dave", 5, False))
    changes = changes_between(before, after)
    assert [(c.identity, c.op) for c in changes] == [
        ("bob", OP_SET),
        ("carol", OP_REMOVE),
        ("dave", OP_SET),
    ]
    assert apply_changes(before, changes) == after
    for bad, code in (
        ((_change("zed", 9, op=OP_REMOVE),), "not_a_member"),
        ((Change("carol", OP_REMOVE, bytes([9]) * 32),), "not_a_member"),  # not her card
        ((Change("bob", OP_SET, bytes([2]) * 32),), "no_change"),
        ((Change("alice", OP_REMOVE, bytes([1]) * 32),), "no_admin"),
    ):
        with pytest.raises(InvalidGroupObject) as caught:
            apply_changes(before, bad)
        assert caught.value.code == code


# --- the chain ----------------------------------------------------------------------


def test_creation_must_be_by_an_admin_of_its_own_roster() -> None:
    by_member = make_epoch(BOB, [ALICE, BOB], admins=["alice"]).epoch
    with pytest.raises(EpochChainError) as caught:
        check_successor(None, (), by_member)
    assert caught.value.code == "not_an_admin"
    later = make_epoch(ALICE, [ALICE], admins=["alice"]).epoch
    with pytest.raises(EpochChainError) as caught:
        check_successor(None, (), dataclasses.replace(later, number=1, previous_hash=bytes(32)))
    assert caught.value.code == "not_genesis"


def test_non_admin_proposal_is_refused(genesis: Made) -> None:
    # Bob (a member, not an admin) removes Carol, or makes himself an admin.
    removal = make_epoch(BOB, [ALICE, BOB], admins=["alice"], previous=genesis)
    promotion = make_epoch(BOB, [ALICE, BOB, CAROL], admins=["alice", "bob"], previous=genesis)
    for made in (removal, promotion):
        with pytest.raises(EpochChainError) as caught:
            check_successor(genesis.epoch, genesis.roster, made.epoch)
        assert caught.value.code == "not_an_admin"


def test_a_member_may_sign_its_own_leaving(genesis: Made) -> None:
    leaving = make_epoch(BOB, [ALICE, CAROL], admins=["alice"], previous=genesis)
    assert check_successor(genesis.epoch, genesis.roster, leaving.epoch) == leaving.roster


def test_an_outsider_cannot_sign(genesis: Made) -> None:
    outsider = make_epoch(DAVE, [ALICE, BOB, CAROL, DAVE], admins=["alice"], previous=genesis)
    with pytest.raises(EpochChainError) as caught:
        check_successor(genesis.epoch, genesis.roster, outsider.epoch)
    assert caught.value.code == "not_an_admin"


def test_stale_and_forked_epochs_are_refused(genesis: Made) -> None:
    one = make_epoch(ALICE, [ALICE, BOB], admins=["alice"], previous=genesis)
    rival = make_epoch(ALICE, [ALICE, CAROL], admins=["alice"], previous=genesis)
    two = make_epoch(ALICE, [ALICE], admins=["alice"], previous=one)
    cases = [
        (genesis, two, "stale_epoch"),  # skips one
        (rival, two, "broken_chain"),  # built on the other branch
        (one, rival, "stale_epoch"),  # the same number again
    ]
    for before, after, code in cases:
        with pytest.raises(EpochChainError) as caught:
            check_successor(before.epoch, before.roster, after.epoch)
        assert caught.value.code == code
    other = make_epoch(ALICE, [ALICE], admins=["alice"], group_id=bytes(16), previous=genesis)
    with pytest.raises(EpochChainError) as caught:
        check_successor(genesis.epoch, genesis.roster, other.epoch)
    assert caught.value.code == "other_group"


def test_changes_that_do_not_apply_are_refused(genesis: Made) -> None:
    one = make_epoch(ALICE, [ALICE, BOB], admins=["alice"], previous=genesis)
    # Served with a roster that no longer holds Carol: her removal can't apply.
    with pytest.raises(EpochChainError) as caught:
        check_successor(genesis.epoch, one.roster, one.epoch)
    assert caught.value.code == "bad_changes"


# --- the wraps object -----------------------------------------------------------------


def test_wraps_index_round_trip() -> None:
    wraps = make_epoch(ALICE, [ALICE, BOB, CAROL], admins=["alice"]).wraps
    index, bodies = split_wraps(wraps)
    assert index.group_id == GROUP_ID
    assert index.number == 0
    assert set(bodies) == {card_id_from_str(b.card_id) for b in (ALICE, BOB, CAROL)}
    # The index head alone tells each member its range; ranges are back to back.
    head = parse_wraps_index(wraps[: index.header_size])
    for card_id, (offset, length) in head.entries.items():
        assert wraps[offset : offset + length] == bodies[card_id]


def test_wraps_refusals() -> None:
    wraps = make_epoch(ALICE, [ALICE, BOB], admins=["alice"]).wraps
    index = parse_wraps_index(wraps)
    first, second = 35, index.header_size - 38  # the two index entries
    swapped = bytearray(wraps)
    swapped[first : first + 32] = wraps[second : second + 32]
    swapped[second : second + 32] = wraps[first : first + 32]
    cases = {
        "bad_magic": b"SBGWRAPX" + wraps[8:],
        "unsupported_version": wraps[:8] + b"\x02" + wraps[9:],
        "truncated": wraps[:40],
        "index_not_sorted": bytes(swapped),
        "bad_offset": wraps + b"\x00",
    }
    for code, data in cases.items():
        with pytest.raises(InvalidGroupObject) as caught:
            split_wraps(data)
        assert caught.value.code == code, code
    with pytest.raises(InvalidGroupObject) as caught:
        build_wraps(GROUP_ID, 0, {bytes(32): b"\x00" * (WRAP_SIZES[KIND_X25519] - 1)})
    assert caught.value.code == "invalid_wrap"


# --- ids and contexts -------------------------------------------------------------------


def test_group_ids() -> None:
    text = group_id_to_str(GROUP_ID)
    assert group_id_from_str(text) == GROUP_ID
    for bad in ("", "A" * 21, "A" * 23, "A" * 21 + "B", "A" * 21 + "=", 7, "A" * 21 + "/"):
        with pytest.raises(InvalidGroupObject):
            group_id_from_str(bad)


def test_group_contexts() -> None:
    context = group_context(GROUP_ID, 12, b"/app/chat-1")
    assert parse_group_context(context) == (GROUP_ID, 12, b"/app/chat-1")
    assert parse_group_context(group_context(GROUP_ID, 0)) == (GROUP_ID, 0, b"")
    text = group_id_to_str(GROUP_ID).encode()
    for bad in (
        b"sealbox/v1/group/" + text + b"/01",
        b"sealbox/v1/group/" + text + b"/-1",
        b"sealbox/v1/group/short/1",
        b"sealbox/v1/blob-context/" + text,
        b"sealbox/v1/group/" + text + b"/99999999999999999999",
    ):
        assert parse_group_context(bad) is None


def test_epoch_is_frozen(genesis: Made) -> None:
    assert isinstance(genesis.epoch, Epoch)
    with pytest.raises(dataclasses.FrozenInstanceError):
        genesis.epoch.number = 5  # type: ignore[misc]
