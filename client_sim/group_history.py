"""History shares on the device: an admin shares past epochs with one member.

A member added at epoch ``n`` holds no secret of an earlier epoch: that is
the default and stays so unless an admin decides otherwise for that member.
:meth:`GroupHistory.share` is that decision: the admin's device puts the
secrets of epochs ``first..last`` it holds into one HPKE wrap to the
member's current card (post-quantum when the card has a PQ key), binds it
to the group, the member's identity and card, the range and the current
epoch, signs it with its card and hands it to the server, which keeps it
for that member only (:mod:`chalicelib.wire.group_history`).

:meth:`GroupHistory.receive` is the member's side.  A share is taken only if

* it is for this group, this identity and one of this device's cards;
* its signer was an admin, and the member a member with that card, of the
  roster after the epoch the share names, by the signed chain the device
  re-verifies from epoch 0 up to the head it already verified (the same
  chain: the hashes must meet);
* its signature verifies, its wrap opens for this card, and every secret in
  it derives exactly the key id its epoch signs.

So neither a lying admin nor the server can hand a member a wrong secret, a
share meant for someone else, or one an ex-admin made.  A refused share is
reported (:class:`~client_sim.errors.GroupVerificationFailed`) and nothing
of it is kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from chalicelib.wire.cards import Card, card_id_from_str, card_id_to_str
from chalicelib.wire.group_history import (
    MAX_SHARED_EPOCHS,
    SECRET_SIZE,
    HistoryShare,
    decode_share,
    share_header,
    share_wrap_info,
    sign_share,
    verify_share_signature,
)
from chalicelib.wire.groups import (
    KIND_MLKEM768X25519,
    KIND_X25519,
    Epoch,
    EpochChainError,
    InvalidGroupObject,
    Member,
    check_successor,
    group_id_to_str,
    verify_epoch_signature,
)
from client_sim import _hazmat
from client_sim.api import ApiClient
from client_sim.directory import CardDirectory
from client_sim.errors import (
    GroupVerificationFailed,
    InvalidInput,
    MemberNotFound,
    NotAMember,
    NotAnAdmin,
    ServerError,
    StaleEpoch,
)
from client_sim.group_chain import GroupChain
from client_sim.group_keys import EpochSecret
from client_sim.group_state import GroupState
from client_sim.identity import KeyBundle
from client_sim.keystore import KeystoreState
from client_sim.messages import canonical_identity
from client_sim.session import Session

#: How often a share is made anew when the group moved on before the server took it.
SHARE_ATTEMPTS: Final = 5

__all__ = ["GroupHistory", "PastEpoch", "accept_share", "make_share", "open_share", "walk_chain"]


@dataclass(frozen=True)
class PastEpoch:
    """What a re-verified chain says of one epoch: its key, readers and admins."""

    number: int
    kind: int
    key_id: bytes
    readers: frozenset[bytes]
    admins: frozenset[bytes]


def make_share(
    signer: KeyBundle,
    member: Member,
    member_card: Card,
    *,
    at: int,
    secrets: Sequence[EpochSecret],
) -> HistoryShare:
    """A signed share of ``secrets`` (consecutive epochs) for ``member``'s card.

    Raises:
        ValueError: the secrets are not consecutive epochs of one group, or
            the card is not the one the roster names.
    """
    if not secrets:
        raise ValueError("a share carries at least one epoch")
    first = secrets[0].number
    if [s.number for s in secrets] != list(range(first, first + len(secrets))):
        raise ValueError("the shared epochs must be consecutive")
    if card_id_from_str(member_card.card_id) != member.card_id:
        raise ValueError("the card is not the member's")
    group_id = secrets[0].group_id
    kind = KIND_MLKEM768X25519 if member_card.pq_public_key is not None else KIND_X25519
    draft = HistoryShare(
        group_id=group_id,
        at=at,
        signer_card_id=card_id_from_str(signer.card_id),
        member=member.identity,
        member_card_id=member.card_id,
        first=first,
        last=secrets[-1].number,
        kind=kind,
        enc=b"",
        ct=b"",
    )
    info = share_wrap_info(share_header(draft))
    plaintext = b"".join(secret.to_bytes() for secret in secrets)
    if member_card.pq_public_key is not None:
        enc, ct = _hazmat.mlkem768x25519_seal(member_card.pq_public_key, plaintext, info=info)
    else:
        enc, ct = _hazmat.x25519_hpke_seal(member_card.x25519_public_key, plaintext, info=info)
    return sign_share(dataclasses.replace(draft, enc=enc, ct=ct), signer.sign)


def open_share(share: HistoryShare, bundle: KeyBundle) -> list[bytes]:
    """The secrets in ``share``'s wrap, for ``bundle``'s card.

    Raises:
        EpochChainError: ``bad_share`` (not for this card, altered: one opaque error).
    """
    try:
        plaintext = bundle.hpke_open(
            share.kind, share.enc, share.ct, info=share_wrap_info(share_header(share))
        )
    except (_hazmat.InvalidTag, _hazmat.LowOrderPoint, ValueError) as exc:
        raise EpochChainError("bad_share", "the share's wrap does not open") from exc
    if len(plaintext) != SECRET_SIZE * share.count:
        raise EpochChainError("bad_share", "the share's wrap does not open")
    return [plaintext[i : i + SECRET_SIZE] for i in range(0, len(plaintext), SECRET_SIZE)]


def walk_chain(
    head: Epoch,
    fetch: Callable[[int], Epoch],
    signer_of: Callable[[Epoch], Card],
    wanted: set[int],
) -> dict[int, PastEpoch]:
    """Re-verify a group's chain from epoch 0 to ``head`` (already verified);
    what it says of each epoch in ``wanted``.

    Every epoch is checked as when following (check_successor and its
    signature), and the last one's hash must be ``head``'s: the walk is
    then the chain the device holds, not one the server made up.

    Raises:
        EpochChainError: an epoch does not verify, or the chain is not ``head``'s.
    """
    previous: Epoch | None = None
    roster: tuple[Member, ...] = ()
    facts: dict[int, PastEpoch] = {}
    for number in range(head.number + 1):
        epoch = fetch(number)
        if epoch.number != number or epoch.group_id != head.group_id:
            raise EpochChainError("stale_epoch", "the server sent another epoch")
        roster = check_successor(previous, roster, epoch)
        signer = signer_of(epoch)
        if card_id_from_str(signer.card_id) != epoch.signer_card_id:
            raise EpochChainError("bad_signature", "the signer card is not the one named")
        verify_epoch_signature(epoch, signer.ed25519_public_key)
        if number in wanted:
            facts[number] = PastEpoch(
                number=number,
                kind=epoch.kind,
                key_id=epoch.key_id,
                readers=frozenset(m.card_id for m in roster),
                admins=frozenset(m.card_id for m in roster if m.admin),
            )
        previous = epoch
    if previous is None or previous.hash != head.hash:
        raise EpochChainError("broken_chain", "the epochs do not lead to the verified head")
    return facts


def accept_share(
    share: HistoryShare,
    chain: GroupChain,
    bundles: Sequence[KeyBundle],
    facts: dict[int, PastEpoch],
    signer: Card | None,
) -> list[int]:
    """Check ``share`` against the re-verified ``facts`` and add its secrets to
    ``chain``; the epochs whose secrets this device did not hold before.

    Raises:
        EpochChainError: codes ``other_group``, ``not_for_me``, ``stale_epoch``,
            ``not_an_admin``, ``bad_signature``, ``bad_share``.
    """
    if share.group_id != chain.head.group_id:
        raise EpochChainError("other_group", "the share belongs to another group")
    mine = next((b for b in bundles if card_id_from_str(b.card_id) == share.member_card_id), None)
    if mine is None or mine.identity != share.member:
        raise EpochChainError("not_for_me", "the share is for another member or card")
    at = facts.get(share.at)
    if at is None:
        raise EpochChainError("stale_epoch", "the share names an epoch this device hasn't seen")
    if share.signer_card_id not in at.admins:
        raise EpochChainError("not_an_admin", "the share's signer was not an admin then")
    if share.member_card_id not in at.readers:
        raise EpochChainError("not_for_me", "the member had another card then")
    if signer is None or card_id_from_str(signer.card_id) != share.signer_card_id:
        raise EpochChainError("bad_signature", "the share's signer card is unknown")
    verify_share_signature(share, signer.ed25519_public_key)
    opened = open_share(share, mine)
    secrets = []
    for number, raw in zip(range(share.first, share.last + 1), opened, strict=True):
        past = facts[number]
        secret = EpochSecret(raw, group_id=share.group_id, number=number, kind=past.kind)
        if secret.key_id() != past.key_id:
            # A secret that isn't the one the epoch signed: refuse the whole share.
            raise EpochChainError("bad_share", "a shared secret is not its epoch's")
        secrets.append((past, secret))
    gained = []
    for past, secret in secrets:
        if past.number in chain.secrets:
            continue
        chain.secrets[past.number] = secret
        chain.key_ids[past.number] = past.key_id
        chain.readers[past.number] = past.readers
        gained.append(past.number)
    return gained


class GroupHistory:
    """Sharing past epochs (admins) and taking shares (members), for one device.

    Args:
        api, session: the HTTP client and the token.
        directory: verified cards (``card_by_id``).
        state: the sealed group state.
        sync: moves a group's verified chain to the server's head.
        fetch_epoch: one epoch of a group as the server serves it (parsed).
    """

    def __init__(
        self,
        api: ApiClient,
        session: Session,
        directory: CardDirectory,
        state: GroupState,
        *,
        sync: Callable[[KeystoreState, str], GroupChain],
        fetch_epoch: Callable[[str, int], Epoch],
    ) -> None:
        self._api = api
        self._session = session
        self._directory = directory
        self._state = state
        self._sync = sync
        self._fetch_epoch = fetch_epoch

    def _card(self, card_id: bytes) -> Card | None:
        return self._directory.card_by_id(card_id_to_str(card_id))

    def share(
        self,
        state: KeystoreState,
        current: KeyBundle,
        group_id: str,
        member: str,
        *,
        first: int,
        last: int | None = None,
    ) -> tuple[int, int]:
        """Share epochs ``first..last`` (default: up to the one before the
        current epoch) with ``member``; the range shared.

        Raises:
            NotAMember, NotAnAdmin: this identity may not share.
            MemberNotFound: ``member`` is not a current member.
            InvalidInput: a bad range, or an epoch whose secret this device lacks.
            StaleEpoch: the group kept changing.
        """
        name = canonical_identity(member)
        for _ in range(SHARE_ATTEMPTS):
            chain = self._sync(state, group_id)
            me = chain.member(current.identity)
            if me is None:
                raise NotAMember("this identity is not a member of the group")
            if not me.admin:
                raise NotAnAdmin("only an admin of the group can share its history")
            target = chain.member(name)
            if target is None:
                raise MemberNotFound(f"not a member: {name}")
            end = chain.head.number - 1 if last is None else last
            if not 0 <= first <= end <= chain.head.number or end - first >= MAX_SHARED_EPOCHS:
                raise InvalidInput(f"share 1 to {MAX_SHARED_EPOCHS} epochs, up to the current one")
            missing = [n for n in range(first, end + 1) if n not in chain.secrets]
            if missing:
                raise InvalidInput(f"this device holds no secret of epoch {missing[0]}")
            card = self._card(target.card_id)
            if card is None:
                raise GroupVerificationFailed("unknown_card", f"no card for member {name}")
            signer = next(
                (b for b in state.bundles if card_id_from_str(b.card_id) == me.card_id), None
            )
            if signer is None:
                raise NotAnAdmin("this device has no key of the admin card the roster names")
            share = make_share(
                signer,
                target,
                card,
                at=chain.head.number,
                secrets=[chain.secrets[n] for n in range(first, end + 1)],
            )
            if self._post(group_id_to_str(chain.head.group_id), share.encoded, name):
                return first, end
            # The group moved on between the sync and the post: share anew.
        raise StaleEpoch("the group kept changing; try again")

    def _post(self, gid: str, share: bytes, member: str) -> bool:
        """Hand ``share`` to the server; False when it was made at a stale epoch."""
        try:
            self._session.authed(lambda token: self._api.share_group_history(token, gid, share))
        except ServerError as exc:
            if exc.code == "stale_epoch":
                return False
            if exc.code == "not_an_admin":
                raise NotAnAdmin("only an admin of the group can share its history") from exc
            if exc.code == "member_not_found":
                raise MemberNotFound(f"not a member: {member}") from exc
            if exc.status == 404:
                raise NotAMember("this identity is not a member of the group") from exc
            raise
        return True

    def receive(self, state: KeystoreState, group_id: str) -> list[int]:
        """Fetch and check the history shares the server holds for this identity;
        the epochs whose secrets they add.

        Raises:
            NotAMember: not a member.
            GroupVerificationFailed: a share, or the chain it is checked
                against, does not verify (nothing of that share is kept).
        """
        chain = self._sync(state, group_id)
        gid = group_id_to_str(chain.head.group_id)
        try:
            items = self._session.authed(lambda token: self._api.get_group_history(token, gid))
        except ServerError as exc:
            if exc.status == 404:
                raise NotAMember("this identity is not a member of the group") from exc
            raise
        fresh = [(sid, data) for sid, data in items if sid not in chain.shares]
        if not fresh:
            return []
        refused: EpochChainError | InvalidGroupObject | None = None
        shares: list[tuple[str, HistoryShare]] = []
        for sid, data in fresh:
            try:
                shares.append((sid, decode_share(data)))
            except InvalidGroupObject as exc:
                refused = exc
        wanted: set[int] = set()
        for _, share in shares:
            wanted.add(share.at)
            wanted.update(range(share.first, share.last + 1))
        try:
            facts = walk_chain(
                chain.head,
                lambda n: self._fetch_epoch(gid, n),
                self._signer,
                {n for n in wanted if n <= chain.head.number},
            )
        except (EpochChainError, InvalidGroupObject) as exc:
            message = f"the group chain does not verify ({exc.code})"
            raise GroupVerificationFailed(exc.code, message) from exc
        gained: list[int] = []
        for sid, share in shares:
            try:
                gained += accept_share(
                    share, chain, state.bundles, facts, self._card(share.signer_card_id)
                )
            except EpochChainError as exc:
                refused = exc  # nothing of this share is kept; the others still count
                continue
            chain.shares.add(sid)
        chains = self._state.load()
        chains[gid] = chain
        self._state.save(chains)
        if refused is not None:
            raise GroupVerificationFailed(
                refused.code, f"a history share does not verify ({refused.code})"
            )
        return sorted(gained)

    def _signer(self, epoch: Epoch) -> Card:
        card = self._card(epoch.signer_card_id)
        if card is None:
            raise EpochChainError("bad_signature", "the epoch's signer card is unknown")
        return card
