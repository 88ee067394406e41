"""History shares: the wire format (chalicelib.wire.group_history) and the device's checks
(client_sim.group_history: the wrap, the chain walk, what a member accepts)."""

from __future__ import annotations

import dataclasses

import pytest

from chalicelib.wire.cards import card_id_from_str
from chalicelib.wire.group_history import (
    MAX_SHARE_SIZE,
    MAX_SHARED_EPOCHS,
    HistoryShare,
    decode_share,
    encode_share_content,
    share_id,
    verify_share_signature,
)
from chalicelib.wire.groups import EpochChainError, InvalidGroupObject, Member
from client_sim.group_chain import GroupChain
from client_sim.group_history import accept_share, make_share, open_share, walk_chain
from client_sim.group_keys import EpochSecret
from tests.identities import bundle
from tests.support.groups import GROUP_ID, Made, make_epoch

ALICE, BOB, CAROL, DAVE = (bundle(n) for n in ("alice", "bob", "carol", "dave"))


def _entry(who: object) -> Member:
    return Member(who.identity, card_id_from_str(who.card_id))  # type: ignore[attr-defined]


def _chain() -> list[Made]:
    """Epochs 0 (alice admin, bob), 1 (+carol), 2 (+dave)."""
    e0 = make_epoch(ALICE, [ALICE, BOB], admins=["alice"])
    e1 = make_epoch(ALICE, [ALICE, BOB, CAROL], admins=["alice"], previous=e0)
    e2 = make_epoch(ALICE, [ALICE, BOB, CAROL, DAVE], admins=["alice"], previous=e1)
    return [e0, e1, e2]


def _share(made: list[Made], *, signer=ALICE, member=DAVE, first=0, last=1, at=2) -> HistoryShare:  # type: ignore[no-untyped-def]
    return make_share(
        signer,
        _entry(member),
        member.card,
        at=at,
        secrets=[made[n].secret for n in range(first, last + 1)],
    )


def _follower(made: list[Made]) -> GroupChain:
    """Dave's device: at the head, holding epoch 2 only."""
    chain = GroupChain(head=made[-1].epoch, roster=made[-1].roster)
    chain.secrets[2] = made[2].secret
    chain.key_ids[2] = made[2].epoch.key_id
    chain.readers[2] = frozenset(m.card_id for m in made[2].roster)
    return chain


def _facts(made: list[Made], wanted: set[int]):  # type: ignore[no-untyped-def]
    cards = {b.card_id: b.card for b in (ALICE, BOB, CAROL, DAVE)}
    return walk_chain(
        made[-1].epoch,
        lambda n: made[n].epoch,
        lambda e: cards[next(k for k in cards if card_id_from_str(k) == e.signer_card_id)],
        wanted,
    )


def test_a_share_round_trips_and_opens_for_its_member_only() -> None:
    made = _chain()
    share = _share(made)
    assert decode_share(share.encoded) == share
    assert len(share.encoded) <= MAX_SHARE_SIZE
    assert len(share.ct) == 2 * 32 + 16
    assert len(share.enc) == 1120
    verify_share_signature(share, ALICE.card.ed25519_public_key)
    assert open_share(share, DAVE) == [made[0].secret.to_bytes(), made[1].secret.to_bytes()]
    with pytest.raises(EpochChainError) as caught:
        open_share(share, CAROL)
    assert caught.value.code == "bad_share"
    assert share_id(share.encoded) == share_id(bytes(share.encoded))
    assert len(share_id(share.encoded)) == 32


def test_a_secret_never_shows_in_a_share() -> None:
    made = _chain()
    share = _share(made)
    for n in (0, 1):
        assert made[n].secret.to_bytes() not in share.encoded
        assert made[n].secret.to_bytes().hex() not in repr(share)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda raw: b"SBGSHARX" + raw[8:], "bad_magic"),
        (lambda raw: raw[:8] + b"\x02" + raw[9:], "unsupported_version"),
        (lambda raw: raw[:-1], "truncated"),
        (lambda raw: raw + b"\x00", "trailing_data"),
    ],
)
def test_decode_refuses_anything_but_the_canonical_encoding(mutate, code: str) -> None:  # type: ignore[no-untyped-def]
    raw = _share(_chain()).encoded
    with pytest.raises(InvalidGroupObject) as caught:
        decode_share(mutate(raw))
    assert caught.value.code == code


def test_ranges_are_checked() -> None:
    share = _share(_chain())
    for first, last, at in ((2, 1, 2), (0, 3, 2), (0, MAX_SHARED_EPOCHS, 2000)):
        with pytest.raises(InvalidGroupObject) as caught:
            encode_share_content(dataclasses.replace(share, first=first, last=last, at=at))
        assert caught.value.code in ("invalid_range", "invalid_wrap")


def test_every_byte_is_signed() -> None:
    share = _share(_chain())
    raw = share.encoded
    content = len(raw) - 64
    for position in range(0, content, 97):
        tampered = bytearray(raw)
        tampered[position] ^= 0x01
        try:
            parsed = decode_share(bytes(tampered))
        except InvalidGroupObject:
            continue
        with pytest.raises(EpochChainError):
            verify_share_signature(parsed, ALICE.card.ed25519_public_key)


def test_a_member_takes_a_good_share_and_gains_the_epochs() -> None:
    made = _chain()
    share = _share(made)
    chain = _follower(made)
    facts = _facts(made, {0, 1, 2})
    assert accept_share(share, chain, [DAVE], facts, ALICE.card) == [0, 1]
    assert chain.secrets[0].key_id() == made[0].epoch.key_id
    assert chain.readers[0] == frozenset(m.card_id for m in made[0].roster)
    # Taking it again gains nothing.
    assert accept_share(share, chain, [DAVE], facts, ALICE.card) == []


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("other member", "not_for_me"),
        ("non-admin signer", "not_an_admin"),
        ("wrong secret", "bad_share"),
        ("wrong signer card", "bad_signature"),
        ("other group", "other_group"),
    ],
)
def test_a_member_refuses_a_bad_share(case: str, code: str) -> None:
    made = _chain()
    chain = _follower(made)
    facts = _facts(made, {0, 1, 2})
    signer_card = ALICE.card
    bundles = [DAVE]
    if case == "other member":
        share = _share(made, member=CAROL)
        bundles = [DAVE]
    elif case == "non-admin signer":
        share = _share(made, signer=BOB)
        signer_card = BOB.card
    elif case == "wrong secret":
        bogus = EpochSecret.generate(group_id=GROUP_ID, number=0, kind=made[0].secret.kind)
        share = make_share(ALICE, _entry(DAVE), DAVE.card, at=2, secrets=[bogus])
    elif case == "wrong signer card":
        share = _share(made)
        signer_card = BOB.card
        share = dataclasses.replace(share, signer_card_id=card_id_from_str(BOB.card_id))
        facts = {n: dataclasses.replace(f, admins=f.admins | {share.signer_card_id})
                 for n, f in facts.items()}  # fmt: skip
    else:
        share = dataclasses.replace(_share(made), group_id=bytes(16))
    before = dict(chain.secrets)
    with pytest.raises(EpochChainError) as caught:
        accept_share(share, chain, bundles, facts, signer_card)
    assert caught.value.code == code
    assert chain.secrets == before


def test_the_walk_must_lead_to_the_verified_head() -> None:
    made = _chain()
    other = _chain()  # another chain of the same group id: fresh secrets, other hashes
    with pytest.raises(EpochChainError) as caught:
        walk_chain(
            made[-1].epoch,
            lambda n: other[n].epoch,
            lambda e: ALICE.card,
            {0},
        )
    assert caught.value.code == "broken_chain"
