"""client_sim.group_chain and group_keys: a device following a group, and group content.

Most tests are attacks: a hostile server (reorders, swaps wraps, edits
rosters), a removed member, an equivocating admin.
"""

from __future__ import annotations

import dataclasses
import io
import pickle

import pytest

from chalicelib.wire.cards import Card, card_id_from_str, card_id_to_str
from chalicelib.wire.group_wraps import build_wraps, group_context, split_wraps
from chalicelib.wire.groups import (
    KIND_MLKEM768X25519,
    KIND_X25519,
    OP_SET,
    WRAP_SIZES,
    EpochChainError,
)
from client_sim import _hazmat, age, sealed
from client_sim.errors import DecryptionFailed
from client_sim.group_chain import EpochAddress, GroupChain, open_group_content, seal_for_epoch
from client_sim.group_keys import EpochSecret, open_wrap, wrap_info, wrap_secret
from client_sim.identity import KeyBundle
from tests.identities import bundle
from tests.support.groups import GROUP_ID, Made, make_epoch

ALICE, BOB, CAROL, DAVE = (bundle(n) for n in ("alice", "bob", "carol", "dave"))
BOB_ROTATED = bundle("bob", 1)
CARDS = {b.card_id: b.card for b in (ALICE, BOB, CAROL, DAVE, BOB_ROTATED)}


def _lookup(card_id: str) -> Card | None:
    return CARDS.get(card_id)


def _wrap_of(wraps: bytes, who: KeyBundle) -> bytes:
    return split_wraps(wraps)[1][card_id_from_str(who.card_id)]


def _seal_raw(sender: KeyBundle, made: Made, text: bytes, number: int | None = None) -> bytes:
    """Seal as a client that ignores the roster would (attacks use this)."""
    epoch = made.epoch
    out = io.BytesIO()
    sealed.seal(
        io.BytesIO(text),
        out,
        sender=sender,
        recipients=[EpochAddress(card_id_to_str(epoch.key_id))],
        context=group_context(epoch.group_id, epoch.number if number is None else number),
        age_recipients=[made.secret.age_identity().recipient()],
    )
    return out.getvalue()


def _seal(sender: KeyBundle, chain: GroupChain, text: bytes) -> bytes:
    out = io.BytesIO()
    seal_for_epoch(io.BytesIO(text), out, sender=sender, chain=chain)
    return out.getvalue()


def _open(chain: GroupChain, data: bytes) -> tuple[bytes, str]:
    out = io.BytesIO()
    verified = open_group_content(io.BytesIO(data), out, chain=chain, resolve_sender=_lookup)
    return out.getvalue(), verified.identity


@pytest.fixture
def history() -> list[Made]:
    e0 = make_epoch(ALICE, [ALICE, BOB, CAROL], admins=["alice"])
    e1 = make_epoch(ALICE, [ALICE, BOB], admins=["alice"], previous=e0)  # carol removed
    return [e0, e1]


def _follow(who: KeyBundle, history: list[Made]) -> GroupChain:
    first = history[0]
    chain = GroupChain.start(
        first.epoch, first.roster, ALICE.card, [who], _wrap_of(first.wraps, who)
    )
    for made in history[1:]:
        mine = any(m.identity == who.identity for m in made.roster)
        chain.advance(made.epoch, ALICE.card, [who], _wrap_of(made.wraps, who) if mine else None)
    return chain


def test_members_read_each_others_messages(history) -> None:
    bob = _follow(BOB, history)
    alice = _follow(ALICE, history)
    assert _open(bob, _seal(ALICE, alice, b"minutes")) == (b"minutes", "alice")
    assert _open(alice, _seal(BOB, bob, b"reply")) == (b"reply", "bob")
    # Everything a member reads is an ordinary sealed age file with one recipient.
    assert _seal(BOB, bob, b"x").count(b"\n-> ") == 1


def test_members_read_older_epochs_they_held(history) -> None:
    bob = _follow(BOB, history[:1])
    old = _seal(ALICE, _follow(ALICE, history[:1]), b"before")
    bob.advance(history[1].epoch, ALICE.card, [BOB], _wrap_of(history[1].wraps, BOB))
    assert _open(bob, old) == (b"before", "alice")


def test_removed_member_cannot_read_content_sealed_after_removal(history) -> None:
    carol = _follow(CAROL, history)
    assert sorted(carol.secrets) == [0]  # no secret for the epoch that removed her
    with pytest.raises(sealed.SealedError):
        _open(carol, _seal(ALICE, _follow(ALICE, history), b"after carol left"))
    # Even a server that hands her the new wraps object gives her nothing to open.
    with pytest.raises(DecryptionFailed):
        open_wrap(
            _wrap_of(history[1].wraps, BOB),
            CAROL,
            group_id=GROUP_ID,
            number=1,
            epoch_kind=history[1].epoch.kind,
        )


def test_removed_member_cannot_post_into_a_later_epoch(history) -> None:
    bob = _follow(BOB, history)
    # Carol learned epoch 1's key somehow (a leak); her card is not in its roster.
    with pytest.raises(sealed.ContextMismatch) as caught:
        _open(bob, _seal_raw(CAROL, history[1], b"spoof"))
    assert caught.value.reason == "sender"
    with pytest.raises(ValueError, match="roster"):
        _seal(CAROL, bob, b"x")


def test_content_of_another_group_or_epoch_is_refused(history) -> None:
    bob = _follow(BOB, history)
    other = make_epoch(ALICE, [ALICE, BOB], admins=["alice"], group_id=bytes(16))
    with pytest.raises(sealed.SealedError):
        _open(bob, _seal_raw(ALICE, other, b"elsewhere"))
    # Context says epoch 1, addressed (and encrypted) to epoch 0's key.
    with pytest.raises(sealed.ContextMismatch) as caught:
        _open(bob, _seal_raw(ALICE, history[0], b"m", number=1))
    assert caught.value.reason == "group"


def test_server_swapping_wraps_between_members_is_caught(history) -> None:
    first = history[0]
    with pytest.raises(EpochChainError) as caught:
        GroupChain.start(first.epoch, first.roster, ALICE.card, [BOB], _wrap_of(first.wraps, CAROL))
    assert caught.value.code == "bad_wrap"


def test_server_replaying_an_old_wrap_is_caught(history) -> None:
    bob = _follow(BOB, history[:1])
    with pytest.raises(EpochChainError) as caught:
        bob.advance(history[1].epoch, ALICE.card, [BOB], _wrap_of(history[0].wraps, BOB))
    assert caught.value.code == "bad_wrap"
    assert bob.head.number == 0  # nothing changed
    assert bob.roster == history[0].roster


def test_admin_giving_a_member_another_secret_is_caught(history) -> None:
    # Alice signs epoch 1's key id but wraps a different secret for Bob.
    decoy = EpochSecret.generate(group_id=GROUP_ID, number=1, kind=history[1].epoch.kind)
    bob = _follow(BOB, history[:1])
    with pytest.raises(EpochChainError) as caught:
        bob.advance(history[1].epoch, ALICE.card, [BOB], wrap_secret(decoy, BOB.card))
    assert caught.value.code == "bad_wrap"


def test_server_forging_or_reordering_epochs_is_caught(history) -> None:
    e0, e1 = history[0].epoch, history[1].epoch
    bob = _follow(BOB, history[:1])
    # The operator drops the removal of Carol from the stored epoch.
    edited = dataclasses.replace(e1, changes=())
    with pytest.raises(EpochChainError) as caught:
        bob.advance(edited, ALICE.card, [BOB], _wrap_of(history[1].wraps, BOB))
    assert caught.value.code == "roster_mismatch"
    # A signer card other than the one the epoch names.
    with pytest.raises(EpochChainError) as caught:
        bob.advance(e1, BOB.card, [BOB], _wrap_of(history[1].wraps, BOB))
    assert caught.value.code == "bad_signature"
    # Epoch 0 served again as the next one.
    with pytest.raises(EpochChainError):
        bob.advance(e0, ALICE.card, [BOB], _wrap_of(history[0].wraps, BOB))
    assert bob.head == e0


def test_a_newcomer_checks_the_roster_it_is_given(history) -> None:
    dave = make_epoch(ALICE, [ALICE, BOB, DAVE], admins=["alice"], previous=history[1])
    chain = GroupChain.start(
        dave.epoch, dave.roster, ALICE.card, [DAVE], _wrap_of(dave.wraps, DAVE)
    )
    assert sorted(chain.secrets) == [2]  # no history by default
    padded = tuple(sorted((*dave.roster, history[0].roster[2])))  # carol slipped in
    with pytest.raises(EpochChainError) as caught:
        GroupChain.start(dave.epoch, padded, ALICE.card, [DAVE], _wrap_of(dave.wraps, DAVE))
    assert caught.value.code == "roster_mismatch"
    # An epoch signed by a non-admin is not a place to join from.
    by_bob = make_epoch(BOB, [ALICE, BOB, DAVE], admins=["alice"], previous=history[1])
    with pytest.raises(EpochChainError) as caught:
        GroupChain.start(
            by_bob.epoch, by_bob.roster, BOB.card, [DAVE], _wrap_of(by_bob.wraps, DAVE)
        )
    assert caught.value.code == "not_an_admin"


def test_a_rotated_member_is_rewrapped_at_the_next_epoch(history) -> None:
    e2 = make_epoch(ALICE, [ALICE, BOB_ROTATED], admins=["alice"], previous=history[1])
    assert [(c.identity, c.op) for c in e2.epoch.changes] == [("bob", OP_SET)]
    bob = _follow(BOB, history)
    # Bob's device now holds his new keys and the previous ones.
    bob.advance(e2.epoch, ALICE.card, [BOB_ROTATED, BOB], _wrap_of(e2.wraps, BOB_ROTATED))
    assert sorted(bob.secrets) == [0, 1, 2]
    assert _open(bob, _seal(BOB_ROTATED, bob, b"new card")) == (b"new card", "bob")
    # Content his old card signs for epoch 2 is refused: that card is not in the roster.
    with pytest.raises(ValueError, match="roster"):
        _seal(BOB, bob, b"old card")
    with pytest.raises(sealed.ContextMismatch):
        _open(bob, _seal_raw(BOB, e2, b"old card"))


def test_wraps_are_post_quantum_for_pq_cards_and_classical_otherwise() -> None:
    secret = EpochSecret.generate(group_id=GROUP_ID, number=4, kind=KIND_MLKEM768X25519)
    body = wrap_secret(secret, BOB.card)
    assert body[0] == KIND_MLKEM768X25519
    assert len(body) == WRAP_SIZES[KIND_MLKEM768X25519]
    opened = open_wrap(body, BOB, group_id=GROUP_ID, number=4, epoch_kind=KIND_MLKEM768X25519)
    assert opened.public_key() == secret.public_key()
    # A card without a PQ key gets a DHKEM(X25519) wrap.
    info = wrap_info(GROUP_ID, 4, card_id_from_str(BOB.card_id), KIND_X25519)
    enc, ct = _hazmat.x25519_hpke_seal(BOB.card.x25519_public_key, secret.to_bytes(), info=info)
    x_body = bytes([KIND_X25519]) + enc + ct
    assert len(x_body) == WRAP_SIZES[KIND_X25519]
    assert open_wrap(x_body, BOB, group_id=GROUP_ID, number=4, epoch_kind=1).to_bytes() == (
        secret.to_bytes()
    )


@pytest.mark.parametrize("where", ["group", "number", "card", "kind", "tamper", "size"])
def test_a_wrap_is_bound_to_group_epoch_card_and_kind(where: str) -> None:
    secret = EpochSecret.generate(group_id=GROUP_ID, number=4, kind=KIND_X25519)
    body = wrap_secret(secret, BOB.card)
    group, number, opener = GROUP_ID, 4, BOB
    if where == "group":
        group = bytes(16)
    elif where == "number":
        number = 5
    elif where == "card":
        opener = BOB_ROTATED
    elif where == "kind":
        body = bytes([KIND_X25519]) + body[1 : 1 + WRAP_SIZES[KIND_X25519] - 1]
    elif where == "tamper":
        body = body[:-1] + bytes([body[-1] ^ 1])
    else:
        body = body[:-1]
    with pytest.raises(DecryptionFailed):
        open_wrap(body, opener, group_id=group, number=number, epoch_kind=KIND_X25519)


def test_low_order_x25519_wrap_is_refused() -> None:
    body = bytes([KIND_X25519]) + bytes(32) + bytes(48)
    with pytest.raises(DecryptionFailed):
        open_wrap(body, BOB, group_id=GROUP_ID, number=0, epoch_kind=KIND_X25519)


@pytest.mark.parametrize("kind", [KIND_X25519, KIND_MLKEM768X25519])
def test_exported_identity_decrypts_group_content_with_plain_age(kind: int) -> None:
    made = make_epoch(ALICE, [ALICE, BOB], admins=["alice"], kind=kind)
    secret = made.secret
    data = _seal_raw(ALICE, made, b"plain age reads this")
    identity = age.parse_identity(secret.export_identity())
    inner = age.decrypt_bytes(data, [identity])
    assert b"plain age reads this" in inner
    assert inner.startswith(b"SBSEALED")
    prefix = "AGE-SECRET-KEY-1" if kind == KIND_X25519 else "AGE-SECRET-KEY-PQ-1"
    assert secret.export_identity().startswith(prefix)


def test_epoch_identities_differ_by_group_epoch_and_kind() -> None:
    raw = bytes(range(32))
    keys = {
        EpochSecret(raw, group_id=g, number=n, kind=k).public_key()
        for g in (GROUP_ID, bytes(16))
        for n in (0, 1)
        for k in (KIND_X25519, KIND_MLKEM768X25519)
    }
    assert len(keys) == 8


def test_epoch_secret_never_prints_or_pickles() -> None:
    secret = EpochSecret(bytes(range(32)), group_id=GROUP_ID, number=3, kind=KIND_X25519)
    text = repr(secret) + str(secret)
    assert bytes(range(32)).hex() not in text
    assert "AGE-SECRET" not in text
    assert "secret" in text
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_wraps_object_and_epoch_sign_the_same_digest(history) -> None:
    from chalicelib import crypto

    for made in history:
        assert made.epoch.wraps_digest == crypto.sha256(made.wraps)
    # A wraps object rebuilt with one wrap replaced no longer matches.
    made = history[1]
    bodies = split_wraps(made.wraps)[1]
    bodies[card_id_from_str(BOB.card_id)] = wrap_secret(made.secret, BOB.card)
    assert crypto.sha256(build_wraps(GROUP_ID, 1, bodies)) != made.epoch.wraps_digest
