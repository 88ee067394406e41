"""A device's verified view of one group: the epoch chain, and sealing for an epoch.

:class:`GroupChain` is an explicit state: the last epoch the device
verified, the roster after it, and the epoch secrets it could open.  Its
one transition, :meth:`GroupChain.advance`, accepts the next epoch only if

* it follows the head (same group, next number, the head's hash),
* its changes apply to the roster and give exactly the roster hash and
  size it signs,
* its signer was an admin of the head's roster (or a member removing only
  itself), and its signature verifies under the signer's card,
* when this device is in the new roster, its wrap opens for the card the
  roster names and derives exactly the key id the signer signed (so an
  admin can't give members different secrets without being caught).

A server that serves epochs can therefore withhold them, but can't forge or
reorder membership.  The first epoch a device sees (creation, or the one it
was added in) is taken on trust of its signer's card, like a first contact
card (docs/spec/groups.md, "Joining").

Group content (:func:`seal_for_epoch`, :func:`open_group_content`) is an
ordinary sealed age file: the signed header addresses the epoch (key id and
:data:`~chalicelib.wire.groups.GROUP_ADDRESS`) with the group context, and
the age layer has one recipient, the epoch's age key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.wire.cards import Card, card_id_from_str, card_id_to_str
from chalicelib.wire.group_wraps import group_context, parse_group_context
from chalicelib.wire.groups import (
    GROUP_ADDRESS,
    Epoch,
    EpochChainError,
    Member,
    check_successor,
    group_id_to_str,
    roster_hash,
    verify_epoch_signature,
)
from client_sim import sealed
from client_sim.errors import DecryptionFailed
from client_sim.group_keys import EpochSecret, open_wrap
from client_sim.identity import KeyBundle
from client_sim.sealed import HeaderCheck, SealedHeader, VerifiedSender

__all__ = [
    "EpochAddress",
    "GroupChain",
    "GroupInfo",
    "open_group_content",
    "seal_for_epoch",
]


@dataclass(frozen=True)
class EpochAddress:
    """How a sealed header names an epoch: its key id, and the group address."""

    card_id: str
    identity: str = GROUP_ADDRESS


@dataclass
class GroupChain:
    """The verified head of one group's chain, its roster, and the secrets this device holds.

    ``readers[n]`` is the set of card ids of epoch ``n``'s roster for every
    epoch whose secret is held: content sealed for epoch ``n`` must be
    signed by one of them.
    """

    head: Epoch
    roster: tuple[Member, ...]
    secrets: dict[int, EpochSecret] = field(default_factory=dict)
    readers: dict[int, frozenset[bytes]] = field(default_factory=dict)
    key_ids: dict[int, bytes] = field(default_factory=dict)
    #: Ids of the history shares already taken (docs/spec/groups.md, "History").
    shares: set[str] = field(default_factory=set)

    @classmethod
    def start(
        cls,
        epoch: Epoch,
        roster: Sequence[Member],
        signer: Card,
        bundles: Sequence[KeyBundle],
        wrap: bytes | None,
    ) -> GroupChain:
        """The chain from the first epoch this device sees: the creation, or the
        epoch that added it, with the full roster the server sent.

        The roster must be the one the epoch signs; the signer card's
        identity must be an admin in it (the roster before is not shown to a
        newcomer: its first epoch is trusted on its signer's card, like a
        first contact card).

        Raises:
            EpochChainError: ``roster_mismatch``, ``bad_signature``,
                ``not_an_admin``, ``bad_wrap``.
        """
        members = tuple(roster)
        if len(members) != epoch.member_count or roster_hash(epoch.group_id, members) != (
            epoch.roster_hash
        ):
            raise EpochChainError("roster_mismatch", "the roster is not the one the epoch signs")
        if epoch.number == 0:
            check_successor(None, (), epoch)
        _check_signer(epoch, signer)
        # The signer's identity (from its self-signed card) must be an admin
        # here; its card may be the one this epoch replaced (an admin that
        # rotated signs with the card the previous roster named).
        entry = next((m for m in members if m.identity == signer.identity), None)
        if entry is None or not entry.admin:
            raise EpochChainError("not_an_admin", "the signer is not an admin of the group")
        chain = cls(head=epoch, roster=members)
        chain._take_secret(epoch, members, bundles, wrap)
        return chain

    def advance(
        self, epoch: Epoch, signer: Card, bundles: Sequence[KeyBundle], wrap: bytes | None
    ) -> None:
        """Move to ``epoch``, the head's successor; nothing changes if it is refused.

        ``wrap`` is this device's wrap body (None when it is not in the new
        roster, e.g. it was removed).

        Raises:
            EpochChainError: see :func:`~chalicelib.wire.groups.check_successor`;
                ``bad_signature``; ``bad_wrap``.
        """
        after = check_successor(self.head, self.roster, epoch)
        _check_signer(epoch, signer)
        self._take_secret(epoch, after, bundles, wrap)
        self.head = epoch
        self.roster = after

    def _take_secret(
        self,
        epoch: Epoch,
        roster: tuple[Member, ...],
        bundles: Sequence[KeyBundle],
        wrap: bytes | None,
    ) -> None:
        mine = {card_id_from_str(bundle.card_id): bundle for bundle in bundles}
        entry = next((m for m in roster if m.card_id in mine), None)
        if entry is None:
            return
        if wrap is None:
            raise EpochChainError("bad_wrap", "no wrap for this device's card")
        try:
            secret = open_wrap(
                wrap,
                mine[entry.card_id],
                group_id=epoch.group_id,
                number=epoch.number,
                epoch_kind=epoch.kind,
            )
        except DecryptionFailed as exc:
            raise EpochChainError("bad_wrap", "the wrap does not open") from exc
        if secret.key_id() != epoch.key_id:
            # Someone wrapped another secret than the one whose key was signed.
            raise EpochChainError("bad_wrap", "the wrap does not give the signed epoch key")
        self.secrets[epoch.number] = secret
        self.readers[epoch.number] = frozenset(m.card_id for m in roster)
        self.key_ids[epoch.number] = epoch.key_id

    def member(self, identity: str) -> Member | None:
        """``identity``'s entry in the current roster, if any."""
        return next((m for m in self.roster if m.identity == identity), None)

    @property
    def current_secret(self) -> EpochSecret | None:
        """The secret of the head epoch, if this device holds it."""
        return self.secrets.get(self.head.number)


@dataclass(frozen=True)
class GroupInfo:
    """What a member sees of a group: its id, epoch, members and admins."""

    group_id: str
    epoch: int
    members: tuple[str, ...]
    admins: tuple[str, ...]

    @classmethod
    def of(cls, chain: GroupChain) -> GroupInfo:
        return cls(
            group_id=group_id_to_str(chain.head.group_id),
            epoch=chain.head.number,
            members=tuple(m.identity for m in chain.roster),
            admins=tuple(m.identity for m in chain.roster if m.admin),
        )


def _by_card(roster: Sequence[Member], card_id: bytes) -> Member | None:
    return next((m for m in roster if m.card_id == card_id), None)


def _check_signer(epoch: Epoch, signer: Card) -> None:
    if card_id_from_str(signer.card_id) != epoch.signer_card_id:
        raise EpochChainError("bad_signature", "the signer card is not the one the epoch names")
    verify_epoch_signature(epoch, signer.ed25519_public_key)


def seal_for_epoch(
    src: Any,
    dst: Any,
    *,
    sender: KeyBundle,
    chain: GroupChain,
    suffix: bytes = b"",
    sealed_at_ms: int | None = None,
    checkpoint: str | None = None,
) -> None:
    """Sign ``src`` as ``sender`` for the head epoch of ``chain`` and encrypt it
    to the epoch's one age key (with the sender's log ``checkpoint``, if any,
    in the signed header, as in any sealed message).

    Raises:
        ValueError: ``sender``'s card is not in the current roster, or this
            device does not hold the current epoch's secret.
    """
    epoch = chain.head
    if _by_card(chain.roster, card_id_from_str(sender.card_id)) is None:
        raise ValueError("the sender's card is not in the group's roster")
    secret = chain.current_secret
    if secret is None:
        raise ValueError("this device does not hold the current epoch secret")
    address = EpochAddress(card_id_to_str(epoch.key_id))
    sealed.seal(
        src,
        dst,
        sender=sender,
        recipients=[address],
        context=group_context(epoch.group_id, epoch.number, suffix),
        sealed_at_ms=sealed_at_ms,
        age_recipients=[secret.age_identity().recipient()],
        checkpoint=checkpoint,
    )


def open_group_content(
    src: Any,
    dst: Any,
    *,
    chain: GroupChain,
    resolve_sender: Callable[[str], Card | None],
    check: HeaderCheck | None = None,
) -> VerifiedSender:
    """Decrypt group content with the epoch secrets of ``chain`` and verify its sender.

    Before any plaintext is released, the header must carry this group's
    context for an epoch whose secret the device holds, address exactly that
    epoch, and be signed by a card that epoch's roster names (a removed
    member's card can't post into a later epoch).

    Raises:
        sealed.SealedError: as :func:`client_sim.sealed.open_sealed_as`;
            ``ContextMismatch`` (reason ``group``/``sender``) for the checks above.
    """
    identities = [secret.age_identity() for secret in chain.secrets.values()]
    key_ids = {card_id_to_str(key_id): n for n, key_id in chain.key_ids.items()}

    def key_id_of(number: int) -> str:
        return card_id_to_str(chain.key_ids[number])

    def in_group(header: SealedHeader) -> None:
        parsed = None if header.context is None else parse_group_context(header.context)
        if parsed is None or parsed[0] != chain.head.group_id:
            raise sealed.ContextMismatch("group", "the content was not sealed for this group")
        number = parsed[1]
        addressed = [card_id for card_id, _ in header.recipients]
        if number not in chain.secrets or addressed != [key_id_of(number)]:
            raise sealed.ContextMismatch("group", "the content does not address its epoch")
        if card_id_from_str(header.sender.card_id) not in chain.readers[number]:
            raise sealed.ContextMismatch("sender", "the sender was not a member of that epoch")
        if check is not None:
            check(header)

    if not identities:
        raise sealed.SealedDecryptionError("this device holds no secret of the group")
    return sealed.open_sealed_as(
        src,
        dst,
        identities=identities,
        opener_card_ids=list(key_ids),
        opener_identity=GROUP_ADDRESS,
        sender_cards=[],
        resolve_sender=resolve_sender,
        check=in_group,
    )
