"""A hypothesis state machine over group changes: add, remove, rotate, concurrent admins.

The model: a "server" that accepts an epoch only when the wire rules
(``check_successor`` and the signature) accept it against its head, exactly
as the backend does before its conditional write; admins' devices that make
epochs, sometimes two at once on the same head (the loser re-bases and tries
again); and member devices that follow the chain with ``GroupChain``.  After
every step:

* the accepted epochs are numbered 0..n with no gap and each chains to the
  one before (no fork, no lost epoch);
* every device that syncs reaches the server's head and the roster the head
  signs;
* content sealed for the head epoch opens for every current member and for
  nobody who was removed (their chain holds no secret of the head epoch).
"""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from chalicelib.wire.cards import Card, card_id_from_str
from chalicelib.wire.group_wraps import split_wraps
from chalicelib.wire.groups import Epoch, EpochChainError, check_successor, verify_epoch_signature
from client_sim import sealed
from client_sim.errors import DecryptionFailed
from client_sim.group_chain import GroupChain, open_group_content, seal_for_epoch
from client_sim.identity import KeyBundle
from tests.identities import bundle
from tests.support.groups import Made, make_epoch

NAMES = ("alice", "bob", "carol", "dave", "erin", "frank")
pytestmark = pytest.mark.slow


class GroupMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.generation = dict.fromkeys(NAMES, 0)
        self.cards: dict[str, Card] = {}
        for name in NAMES:
            self._remember(bundle(name))
        first = make_epoch(self.keys("alice"), [self.keys("alice"), self.keys("bob")],
                           admins=["alice"])  # fmt: skip
        check_successor(None, (), first.epoch)
        self.accepted: list[Made] = [first]
        self.devices: dict[str, GroupChain | None] = dict.fromkeys(NAMES)
        self.removed_at: dict[str, int] = {}

    # --- helpers ---------------------------------------------------------------------

    def keys(self, name: str) -> KeyBundle:
        return bundle(name, self.generation[name])

    def key_history(self, name: str) -> list[KeyBundle]:
        return [bundle(name, g) for g in range(self.generation[name], -1, -1)]

    def _remember(self, keys: KeyBundle) -> None:
        self.cards[keys.card_id] = keys.card

    @property
    def head(self) -> Made:
        return self.accepted[-1]

    def members(self) -> list[str]:
        return [m.identity for m in self.head.roster]

    def admins(self) -> list[str]:
        return [m.identity for m in self.head.roster if m.admin]

    def propose(self, signer: str, base: Made, names: list[str], admins: list[str]) -> Made:
        # As the SDK does: sign with the card the base roster names for the
        # signer (its previous card, right after a rotation).
        named = {m.card_id for m in base.roster if m.identity == signer}
        keys = next(
            (b for b in self.key_history(signer) if card_id_from_str(b.card_id) in named),
            self.keys(signer),
        )
        return make_epoch(keys, [self.keys(n) for n in names], admins=admins, previous=base)

    def server_accepts(self, made: Made) -> bool:
        """The backend's checks, then its conditional write on the head."""
        head = self.head
        try:
            after = check_successor(head.epoch, head.roster, made.epoch)
            signer = self.cards_by_raw(made.epoch)
            verify_epoch_signature(made.epoch, signer.ed25519_public_key)
        except EpochChainError:
            return False
        assert after == made.roster
        self.accepted.append(made)
        return True

    def cards_by_raw(self, epoch: Epoch) -> Card:
        return next(
            c for c in self.cards.values() if card_id_from_str(c.card_id) == epoch.signer_card_id
        )

    def sync(self, name: str) -> GroupChain | None:
        chain = self.devices[name]
        mine = {card_id_from_str(b.card_id): b for b in self.key_history(name)}
        if chain is None:
            head = self.head
            entry = next((m for m in head.roster if m.card_id in mine), None)
            if entry is None:
                return None
            first = split_wraps(head.wraps)[1][entry.card_id]
            chain = GroupChain.start(
                head.epoch,
                head.roster,
                self.cards_by_raw(head.epoch),
                self.key_history(name),
                first,
            )
        for made in self.accepted[chain.head.number + 1 :]:
            entry = next((m for m in made.roster if m.card_id in mine), None)
            wrap = None if entry is None else split_wraps(made.wraps)[1][entry.card_id]
            chain.advance(made.epoch, self.cards_by_raw(made.epoch), self.key_history(name), wrap)
        self.devices[name] = chain
        return chain

    # --- rules -----------------------------------------------------------------------

    @rule(name=st.sampled_from(NAMES), admin=st.booleans())
    def add(self, name: str, admin: bool) -> None:
        if name in self.members():
            return
        signer = self.admins()[0]
        admins = self.admins() + ([name] if admin else [])
        assert self.server_accepts(self.propose(signer, self.head, [*self.members(), name], admins))
        self.removed_at.pop(name, None)
        self.devices[name] = None  # joins from the head: no history

    @precondition(lambda self: len(self.members()) > 1)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        signer = self.admins()[0]
        candidates = [n for n in self.members() if n != signer]
        name = data.draw(st.sampled_from(candidates))
        admins = [a for a in self.admins() if a != name]
        left = [n for n in self.members() if n != name]
        assert self.server_accepts(self.propose(signer, self.head, left, admins))
        self.removed_at[name] = self.head.epoch.number

    @rule(name=st.sampled_from(NAMES))
    def rotate_and_rewrap(self, name: str) -> None:
        if name not in self.members():
            return
        self.sync(name)  # the device follows the group before it rotates
        self.generation[name] += 1
        self._remember(self.keys(name))
        signer = self.admins()[0]
        assert self.server_accepts(self.propose(signer, self.head, self.members(), self.admins()))

    @precondition(lambda self: len(self.members()) >= 2)
    @rule(first=st.booleans())
    def concurrent_admins(self, first: bool) -> None:
        # Two admins change the same head; the server accepts one, the other re-bases.
        members = self.members()
        other = members[1] if members[0] == self.admins()[0] else members[0]
        base = self.head
        promote = self.propose(self.admins()[0], base, members, sorted({*self.admins(), other}))
        assert self.server_accepts(promote)
        # The second proposal was made on the old head: refused, nothing forks.
        second = self.propose(other, base, members, self.admins())
        assert not self.server_accepts(second)
        if first:
            # Re-based on the new head by the (now) admin, it goes through.
            rebased = self.propose(other, self.head, members, self.admins())
            assert self.server_accepts(rebased)

    # --- invariants -------------------------------------------------------------------

    @invariant()
    def chain_has_no_gap_or_fork(self) -> None:
        for number, made in enumerate(self.accepted):
            assert made.epoch.number == number
            if number:
                assert made.epoch.previous_hash == self.accepted[number - 1].epoch.hash

    @invariant()
    def members_follow_and_read_removed_members_do_not(self) -> None:
        head = self.head
        admin = self.admins()[0]
        writer = self.sync(admin)
        assert writer is not None
        assert writer.current_secret is not None
        out = io.BytesIO()
        seal_for_epoch(io.BytesIO(b"news"), out, sender=self.keys(admin), chain=writer)
        for name in NAMES:
            chain = self.sync(name) if name in self.members() or self.devices[name] else None
            if chain is None:
                continue
            assert chain.head == head.epoch
            assert chain.roster == head.roster
            opened = io.BytesIO()
            if name in self.members():
                open_group_content(
                    io.BytesIO(out.getvalue()), opened, chain=chain, resolve_sender=self.cards.get
                )
                assert opened.getvalue() == b"news"
            else:
                assert head.epoch.number not in chain.secrets
                with pytest.raises((sealed.SealedError, DecryptionFailed)):
                    open_group_content(
                        io.BytesIO(out.getvalue()),
                        opened,
                        chain=chain,
                        resolve_sender=self.cards.get,
                    )


TestGroupMachine = GroupMachine.TestCase
TestGroupMachine.settings = settings(
    max_examples=30,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
