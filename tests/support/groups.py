"""Building signed group epochs and their wraps in tests, the way an admin's device does."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from chalicelib import crypto
from chalicelib.wire.cards import card_id_from_str
from chalicelib.wire.group_wraps import build_wraps
from chalicelib.wire.groups import (
    Epoch,
    Member,
    changes_between,
    roster_hash,
    sign_epoch,
)
from client_sim.group_keys import EpochSecret, epoch_kind_for, wrap_secret
from client_sim.identity import KeyBundle

GROUP_ID = bytes(range(16))


def roster(bundles: Iterable[KeyBundle], admins: Iterable[str] = ()) -> tuple[Member, ...]:
    wanted = set(admins)
    return tuple(
        sorted(
            Member(b.identity, card_id_from_str(b.card_id), b.identity in wanted) for b in bundles
        )
    )


class Made:
    """One epoch as made by an admin: the epoch, its roster, secret and wraps object."""

    def __init__(
        self, epoch: Epoch, members: tuple[Member, ...], secret: EpochSecret, wraps: bytes
    ) -> None:
        self.epoch = epoch
        self.roster = members
        self.secret = secret
        self.wraps = wraps

    def __iter__(self):  # epoch, secret, wraps: the common unpacking in tests
        return iter((self.epoch, self.secret, self.wraps))


def make_epoch(
    signer: KeyBundle,
    members: Sequence[KeyBundle],
    *,
    admins: Iterable[str] = (),
    previous: Made | None = None,
    group_id: bytes = GROUP_ID,
    kind: int | None = None,
    created_at_ms: int = 1_700_000_000_000,
) -> Made:
    """A signed epoch after ``previous`` (or a creation), its secret and its wraps object."""
    number = 0 if previous is None else previous.epoch.number + 1
    chosen = epoch_kind_for(b.card for b in members) if kind is None else kind
    secret = EpochSecret.generate(group_id=group_id, number=number, kind=chosen)
    wraps = build_wraps(
        group_id,
        number,
        {card_id_from_str(b.card_id): wrap_secret(secret, b.card) for b in members},
    )
    after = roster(members, admins)
    before = () if previous is None else previous.roster
    epoch = Epoch(
        group_id=group_id,
        number=number,
        previous_hash=b"" if previous is None else previous.epoch.hash,
        created_at_ms=created_at_ms,
        signer_card_id=card_id_from_str(signer.card_id),
        wraps_digest=crypto.sha256(wraps),
        kind=chosen,
        key_id=secret.key_id(),
        roster_hash=roster_hash(group_id, after),
        member_count=len(after),
        changes=changes_between(before, after),
    )
    return Made(sign_epoch(epoch, signer.sign), after, secret, wraps)
