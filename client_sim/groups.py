"""Groups for one device: create, change membership, follow, and seal or open group content.

Every membership change is an *epoch* this device makes and signs as an
admin (docs/spec/groups.md): a fresh epoch secret, HPKE-wrapped for every
member's current card into one wraps object that goes to storage through a
presigned write-once PUT, and the signed epoch appended with a conditional
write on the previous epoch number.  When another admin's change wins the
race (``stale_epoch``), the device fetches the new head, re-bases its change
on it and tries again.

Following a group, the device verifies every epoch it is served before it
uses it (:class:`~client_sim.group_chain.GroupChain`) and fetches only its
own wrap of each epoch (a ranged GET), so moving to the next epoch costs
O(1) bytes in the group's size.  The verified chain and the epoch secrets
are kept in a sealed side file (:mod:`client_sim.group_state`).

History: a member added at epoch ``n`` gets the secret of epoch ``n`` and
later ones only; what was sealed before stays unreadable to it.  That is the
default; an admin may share chosen past epochs with one member
(:class:`~client_sim.group_history.GroupHistory`, :attr:`Groups.history`).
"""

from __future__ import annotations

import io
import os
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any, Final

from chalicelib.wire.b64 import b64url_decode
from chalicelib.wire.blobids import derive_blob_id
from chalicelib.wire.cards import Card, card_id_from_str, card_id_to_str
from chalicelib.wire.group_wraps import build_wraps, parse_group_context
from chalicelib.wire.groups import (
    Epoch,
    EpochChainError,
    InvalidGroupObject,
    Member,
    changes_between,
    check_successor,
    decode_epoch,
    decode_roster,
    group_id_from_str,
    group_id_to_str,
    roster_hash,
    sign_epoch,
)
from client_sim import _hazmat, sealed
from client_sim.api import ApiClient, BlobInfo
from client_sim.blob_stream import spooled_ciphertext
from client_sim.blobs import BlobTransfer
from client_sim.directory import CardDirectory
from client_sim.errors import (
    ContextMismatch,
    DecryptionFailed,
    GroupVerificationFailed,
    InvalidInput,
    MemberNotFound,
    NotAMember,
    NotAnAdmin,
    ServerError,
    StaleEpoch,
    StorageTransferFailed,
    UsersNotFound,
)
from client_sim.group_catchup import CatchUp
from client_sim.group_chain import GroupChain, GroupInfo, seal_for_epoch
from client_sim.group_history import GroupHistory
from client_sim.group_keys import EpochSecret, epoch_kind_for, wrap_secret
from client_sim.group_state import GroupState
from client_sim.identity import KeyBundle
from client_sim.keystore import KeystoreState
from client_sim.messages import Decrypted, Messages, app_context, canonical_identity
from client_sim.origins import StorageOrigins
from client_sim.session import Session
from client_sim.transport import HttpObjectTransport, ObjectTransport

__all__ = ["MAX_CHANGE_ATTEMPTS", "GroupInfo", "Groups"]  # GroupInfo: from group_chain

#: How often a change is re-based and retried after another admin's won.
MAX_CHANGE_ATTEMPTS: Final = 5


def _verification(exc: EpochChainError | InvalidGroupObject) -> GroupVerificationFailed:
    return GroupVerificationFailed(exc.code, f"the group epoch does not verify ({exc.code})")


class Groups:
    """Group epochs and group content, for one device.

    Args:
        api: the HTTP client.
        session: supplies and renews the access token.
        directory: verified cards (members' current cards, signers' cards).
        messages: sender checks for opened content.
        state: the sealed group state file.
        transfer: moves group blobs' ciphertext to and from storage.
        objects, origins: how presigned storage URLs are reached, and where
            they may point (for wraps objects).
        clock: for epoch timestamps.
        compact: follow by binary catch-up frames (the default); False
            follows by the JSON routes (a head poll, then each epoch's delta
            and a ranged GET of this device's wrap).
    """

    def __init__(
        self,
        api: ApiClient,
        session: Session,
        directory: CardDirectory,
        messages: Messages,
        state: GroupState,
        *,
        transfer: BlobTransfer,
        objects: ObjectTransport | None = None,
        origins: StorageOrigins,
        clock: Callable[[], float] = time.time,
        compact: bool = True,
    ) -> None:
        self._api = api
        self._session = session
        self._directory = directory
        self._messages = messages
        self._state = state
        self._transfer = transfer
        self._objects = objects if objects is not None else HttpObjectTransport()
        self._origins = origins
        self._clock = clock
        #: Follow by catch-up frames (see ``compact``).
        self.compact = compact
        self._catch_up = CatchUp(
            api, session, signer=self._signer, advance_full=self._advance_full, get=self._get
        )
        #: Sharing past epochs with a member, and taking such shares.
        self.history = GroupHistory(
            api, session, directory, state, sync=self.sync, fetch_epoch=self._fetch_epoch
        )

    # --- membership ------------------------------------------------------------------

    def create(
        self, state: KeystoreState, current: KeyBundle, members: Iterable[str],
        admins: Iterable[str] = (),
    ) -> GroupInfo:  # fmt: skip
        """A new group of this identity (an admin), ``members`` and ``admins``.

        Raises:
            InvalidInput, MemberNotFound: an invalid identity, or one without a card.
        """
        wanted = self._identities(members)
        admin_names = self._identities(admins) | {current.identity}
        if not admin_names <= wanted | {current.identity}:
            raise InvalidInput("every admin must be a member")
        cards = self._cards_of(sorted((wanted | {current.identity}) - {current.identity}))
        cards[current.identity] = current.card
        roster = tuple(
            sorted(
                Member(name, card_id_from_str(card.card_id), name in admin_names)
                for name, card in cards.items()
            )
        )
        group_id = _hazmat.random_bytes(16)
        chain = self._propose(state, current, group_id, None, roster, cards)
        return GroupInfo.of(chain)

    def add_members(
        self, state: KeystoreState, current: KeyBundle, group_id: str, identities: Iterable[str],
        *, admin: bool = False,
    ) -> GroupInfo:  # fmt: skip
        """Add ``identities`` (as admins with ``admin``); they read from the new epoch on."""
        wanted = self._identities(identities)

        def change(roster: Sequence[Member], cards: dict[str, Card]) -> list[Member]:
            fresh = self._cards_of(sorted(wanted))
            cards.update(fresh)
            kept = [m for m in roster if m.identity not in wanted]
            return kept + [
                Member(name, card_id_from_str(card.card_id), admin) for name, card in fresh.items()
            ]

        return self._change(state, current, group_id, change)

    def remove_members(
        self, state: KeystoreState, current: KeyBundle, group_id: str, identities: Iterable[str]
    ) -> GroupInfo:
        """Remove ``identities``: they can't open anything sealed from the new epoch on."""
        wanted = self._identities(identities)

        def change(roster: Sequence[Member], cards: dict[str, Card]) -> list[Member]:
            absent = wanted - {m.identity for m in roster}
            if absent:
                raise MemberNotFound(f"not members: {', '.join(sorted(absent))}")
            return [m for m in roster if m.identity not in wanted]

        return self._change(state, current, group_id, change)

    def set_admin(
        self, state: KeystoreState, current: KeyBundle, group_id: str, identity: str, admin: bool
    ) -> GroupInfo:
        """Make a member an admin, or not."""
        name = canonical_identity(identity)

        def change(roster: Sequence[Member], cards: dict[str, Card]) -> list[Member]:
            if name not in {m.identity for m in roster}:
                raise MemberNotFound(f"not a member: {name}")
            return [
                Member(m.identity, m.card_id, admin) if m.identity == name else m for m in roster
            ]

        return self._change(state, current, group_id, change)

    def rekey(self, state: KeystoreState, current: KeyBundle, group_id: str) -> GroupInfo:
        """A new epoch with the same members (re-wrapping rotated members' cards)."""
        return self._change(
            state, current, group_id, lambda roster, cards: list(roster), fresh=True
        )

    def leave(self, state: KeystoreState, current: KeyBundle, group_id: str) -> None:
        """Leave the group (any member may sign its own removal); the local state is dropped."""
        chain = self.sync(state, group_id)
        me = chain.member(current.identity)
        if me is None:
            raise NotAMember("this identity is not a member of the group")
        if me.admin:
            self.remove_members(state, current, group_id, [current.identity])
        else:
            self._leave_as_member(state, current, group_id)
        chains = self._state.load()
        chains.pop(group_id, None)
        self._state.save(chains)

    def _leave_as_member(self, state: KeystoreState, current: KeyBundle, group_id: str) -> None:
        for _ in range(MAX_CHANGE_ATTEMPTS):
            chain = self.sync(state, group_id)
            roster = [m for m in chain.roster if m.identity != current.identity]
            cards = self._member_cards(roster)
            try:
                self._propose(state, current, chain.head.group_id, chain, tuple(roster), cards)
                return
            except StaleEpoch:
                continue
        raise StaleEpoch("the group kept changing; try again")

    def _change(
        self,
        state: KeystoreState,
        current: KeyBundle,
        group_id: str,
        change: Callable[[Sequence[Member], dict[str, Card]], list[Member]],
        *,
        fresh: bool = False,
    ) -> GroupInfo:
        """Apply ``change`` to the verified roster as a new epoch; with ``fresh``
        always make one (a new secret) and look every member's card up anew."""
        for _ in range(MAX_CHANGE_ATTEMPTS):
            chain = self.sync(state, group_id)
            me = chain.member(current.identity)
            if me is None:
                raise NotAMember("this identity is not a member of the group")
            if not me.admin:
                raise NotAnAdmin("only an admin of the group can change it")
            cards: dict[str, Card] = {}
            roster = change(chain.roster, cards)
            remaining = [m for m in roster if m.identity not in cards]
            cards.update(self._member_cards(remaining, refresh=fresh))
            # Members whose card rotated are re-wrapped to their current card.
            updated = tuple(
                sorted(
                    Member(m.identity, card_id_from_str(cards[m.identity].card_id), m.admin)
                    for m in roster
                )
            )
            if updated == chain.roster and not fresh:
                return GroupInfo.of(chain)
            try:
                return GroupInfo.of(
                    self._propose(state, current, chain.head.group_id, chain, updated, cards)
                )
            except StaleEpoch:
                continue  # another admin's change won: re-base on it
        raise StaleEpoch("the group kept changing; try again")

    def _propose(
        self,
        state: KeystoreState,
        current: KeyBundle,
        group_id: bytes,
        chain: GroupChain | None,
        roster: tuple[Member, ...],
        cards: dict[str, Card],
    ) -> GroupChain:
        """Make, upload, sign and append the epoch that gives ``roster``; the new chain."""
        gid = group_id_to_str(group_id)
        number = 0 if chain is None else chain.head.number + 1
        try:
            new_hash = roster_hash(group_id, roster)
        except InvalidGroupObject as exc:
            # e.g. the last admin removing itself: a group keeps an admin.
            raise InvalidInput(f"not a valid roster ({exc.code})") from exc
        member_cards = [cards[m.identity] for m in roster]
        secret = EpochSecret.generate(
            group_id=group_id, number=number, kind=epoch_kind_for(member_cards)
        )
        bodies = {card_id_from_str(c.card_id): wrap_secret(secret, c) for c in member_cards}
        wraps = build_wraps(group_id, number, bodies)
        before: tuple[Member, ...] = () if chain is None else chain.roster
        # The signer is this identity's card the previous roster names: after
        # a rotation that is the previous card (still in the keystore), and
        # this very epoch moves the identity to its new card.
        named = {m.card_id for m in before if m.identity == current.identity}
        signer = next((b for b in state.bundles if card_id_from_str(b.card_id) in named), current)
        epoch = sign_epoch(
            Epoch(
                group_id=group_id,
                number=number,
                previous_hash=b"" if chain is None else chain.head.hash,
                created_at_ms=int(self._clock() * 1000),
                signer_card_id=card_id_from_str(signer.card_id),
                wraps_digest=_hazmat.sha256(wraps),
                kind=secret.kind,
                key_id=secret.key_id(),
                roster_hash=new_hash,
                member_count=len(roster),
                changes=changes_between(before, roster),
            ),
            signer.sign,
        )

        def send(token: str) -> None:
            reservation = self._api.reserve_group_wraps(token, gid, number, len(wraps))
            upload = reservation["upload"]
            self._put(str(upload["url"]), dict(upload["headers"]), wraps)
            self._api.append_group_epoch(token, gid, epoch.encoded, str(reservation["wraps_id"]))

        try:
            self._session.authed(send)
        except ServerError as exc:
            if exc.code == "stale_epoch":
                raise StaleEpoch("another member changed the group first") from exc
            if exc.code == "not_an_admin":
                raise NotAnAdmin("only an admin of the group can make this change") from exc
            if exc.status == 404:
                raise NotAMember("this identity is not a member of the group") from exc
            raise
        mine = next((bodies[m.card_id] for m in roster if m.identity == current.identity), None)
        if chain is None:
            chain = GroupChain.start(epoch, roster, signer.card, state.bundles, mine)
        else:
            chain.advance(epoch, signer.card, state.bundles, mine)
        chains = self._state.load()
        chains[gid] = chain
        self._state.save(chains)
        return chain

    # --- following ----------------------------------------------------------------------

    def sync(self, state: KeystoreState, group_id: str) -> GroupChain:
        """The group's verified chain, moved to the server's head.

        Raises:
            NotAMember: the server says this identity is not a member (404).
            GroupVerificationFailed: an epoch, roster or wrap doesn't verify,
                or the server's head is older than one already verified.
        """
        gid = self._group_id(group_id)
        chains = self._state.load()
        chain = chains.get(gid)
        if chain is not None and self.compact and self._follow_compact(state, chain, gid):
            chains[gid] = chain
            self._state.save(chains)
            return chain
        # A device that follows the group polls the head without the roster
        # (O(1) bytes); only a joining device needs the roster itself.
        joining = chain is None
        try:
            head = self._session.authed(
                lambda token: self._api.get_group(token, gid, roster=joining)
            )
        except ServerError as exc:
            if exc.status == 404:
                raise NotAMember("this identity is not a member of the group") from exc
            raise
        try:
            number = int(head["epoch"])
            if chain is None:
                chain = self._join(state, gid, head)
            elif number < chain.head.number:
                raise GroupVerificationFailed("rollback", "the server's head is older than ours")
            for n in range(chain.head.number + 1, number + 1):
                self._advance(state, chain, gid, n)
            # The roster the server holds (and authorizes reads by) must be
            # the one the signed chain leads to: an operator who edits it is
            # caught here, not trusted.
            if joining:
                served = decode_roster(b64url_decode(str(head["roster"])))
                mismatch = sorted(served) != sorted(chain.roster)
            else:
                served_hash = b64url_decode(str(head["roster_hash"]))
                mismatch = served_hash != chain.head.roster_hash
            if mismatch:
                raise GroupVerificationFailed(
                    "roster_mismatch", "the server's roster is not the one the epochs sign"
                )
        except (EpochChainError, InvalidGroupObject) as exc:
            raise _verification(exc) from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise ServerError.malformed("group") from exc
        chains[gid] = chain
        self._state.save(chains)
        return chain

    def _follow_compact(self, state: KeystoreState, chain: GroupChain, gid: str) -> bool:
        """Move ``chain`` on by catch-up frames (:mod:`client_sim.group_catchup`);
        False when this device holds no card of its roster (then the JSON
        routes decide)."""
        try:
            return self._catch_up.follow(state, chain, gid)
        except ServerError as exc:
            if exc.status == 404:
                raise NotAMember("this identity is not a member of the group") from exc
            raise
        except (EpochChainError, InvalidGroupObject) as exc:
            raise _verification(exc) from exc

    def _join(self, state: KeystoreState, gid: str, head: dict[str, Any]) -> GroupChain:
        """Start following a group at its creation (epoch 0); :meth:`sync` then
        advances through every later epoch.

        From the creation rather than the head: every epoch since is checked
        against the roster its predecessor left (no served roster is taken on
        trust), and a member that was added long ago but never synced still
        gets its wrap of each epoch it was in, so it reads what was sealed
        while it was away.  Epochs before this device's card joined carry no
        wrap for it: a newcomer still reads no history.
        """
        head_epoch = decode_epoch(b64url_decode(str(head["head"])))
        if group_id_to_str(head_epoch.group_id) != gid or head_epoch.number != int(head["epoch"]):
            raise GroupVerificationFailed("other_group", "the server sent another group's head")
        reply = self._session.authed(lambda token: self._api.get_group_epoch(token, gid, 0, None))
        epoch = decode_epoch(b64url_decode(str(reply["data"])))
        if group_id_to_str(epoch.group_id) != gid or epoch.number != 0:
            raise GroupVerificationFailed("other_group", "the server sent another group's creation")
        roster = check_successor(None, (), epoch)
        wrap = self._wrap(state, gid, 0, roster)
        return GroupChain.start(epoch, roster, self._signer(epoch), state.bundles, wrap)

    def _fetch_epoch(self, gid: str, number: int) -> Epoch:
        """Epoch ``number`` as the server serves it, parsed (not yet verified)."""
        reply = self._session.authed(
            lambda token: self._api.get_group_epoch(token, gid, number, None)
        )
        try:
            return decode_epoch(b64url_decode(str(reply["data"])))
        except (KeyError, TypeError) as exc:
            raise ServerError.malformed("group epoch") from exc

    def _advance(self, state: KeystoreState, chain: GroupChain, gid: str, number: int) -> None:
        if not self._catch_up.by_json_delta(state, chain, gid, number):
            self._advance_full(state, chain, gid, number)

    def _advance_full(self, state: KeystoreState, chain: GroupChain, gid: str, number: int) -> None:
        """Move to epoch ``number`` by its full form and this device's wrap."""
        epoch = self._fetch_epoch(gid, number)
        if epoch.number != number:
            raise GroupVerificationFailed("stale_epoch", "the server sent another epoch")
        after = check_successor(chain.head, chain.roster, epoch)
        wrap = self._wrap(state, gid, number, after)
        chain.advance(epoch, self._signer(epoch), state.bundles, wrap)

    def _wrap(
        self, state: KeystoreState, gid: str, number: int, roster: Sequence[Member]
    ) -> bytes | None:
        """This device's wrap of epoch ``number`` (None when it is not in ``roster``)."""
        mine = {card_id_from_str(b.card_id) for b in state.bundles}
        entry = next((m for m in roster if m.card_id in mine), None)
        if entry is None:
            return None
        card_id = card_id_to_str(entry.card_id)
        reply = self._session.authed(
            lambda token: self._api.get_group_epoch(token, gid, number, card_id)
        )
        target = reply.get("wrap")
        if target is None:
            return None
        return self._get(str(target["url"]), dict(target["headers"]), int(target["length"]))

    def _signer(self, epoch: Epoch) -> Card:
        card = self._directory.card_by_id(card_id_to_str(epoch.signer_card_id))
        if card is None:
            raise GroupVerificationFailed("bad_signature", "the epoch's signer card is unknown")
        return card

    def list(self) -> list[GroupInfo]:
        """The groups the server lists for this identity, as far as this device follows them."""
        items = self._session.authed(self._api.list_groups)
        chains = self._state.load()
        out = []
        for item in items:
            gid = str(item.get("group_id"))
            chain = chains.get(gid)
            if chain is not None:
                out.append(GroupInfo.of(chain))
            else:
                out.append(GroupInfo(gid, int(item.get("epoch", 0)), (), ()))
        return out

    # --- content ---------------------------------------------------------------------------

    def seal(
        self, state: KeystoreState, current: KeyBundle, group_id: str, src: Any, dst: Any,
        context: str | None, *, suffix: bytes | None = None,
    ) -> None:  # fmt: skip
        """Sign ``src`` and encrypt it for the group's current epoch (one age recipient),
        with an app's ``context`` (or the SDK's own ``suffix``, for a blob)."""
        chain = self.sync(state, group_id)
        if chain.member(current.identity) is None or chain.current_secret is None:
            raise NotAMember("this identity is not a member of the group")
        if suffix is None:
            suffix = b"" if context is None else b"/app/" + app_context(context)
        seal_for_epoch(
            src,
            dst,
            sender=current,
            chain=chain,
            suffix=suffix,
            checkpoint=self._messages.checkpoint(),
        )

    def open(
        self, state: KeystoreState, group_id: str, data: bytes, context: str | None
    ) -> Decrypted:
        """Decrypt and verify group content sealed by a member for an epoch this device holds.

        The held secrets are tried first; if none opens the data, the group
        is synced (a newer epoch) and it is tried once more.

        Raises:
            DecryptionFailed: not for an epoch this device holds, tampered,
                or signed by a card that wasn't a member of that epoch.
            ContextMismatch: sealed with another app context than ``context``.
            NotAMember: the device follows no such group and isn't a member.
        """
        expected = b"" if context is None else b"/app/" + app_context(context)

        def check(header: sealed.SealedHeader) -> None:
            parsed = parse_group_context(header.context or b"")
            if context is not None and (parsed is None or parsed[2] != expected):
                raise sealed.ContextMismatch("context", "the data was sealed for another context")

        return self._open(state, self._group_id(group_id), data, check)

    def _open(
        self, state: KeystoreState, gid: str, data: bytes, check: sealed.HeaderCheck
    ) -> Decrypted:
        def attempt(chain: GroupChain) -> Decrypted:
            out = io.BytesIO()
            sender = self._messages.open_group(io.BytesIO(data), out, chain, check=check)
            return Decrypted(plaintext=out.getvalue(), sender=sender)

        chain = self._state.load().get(gid)
        if chain is not None:
            try:
                return attempt(chain)
            except ContextMismatch:
                raise
            except DecryptionFailed:
                pass  # perhaps sealed for an epoch this device hasn't fetched yet
        try:
            return attempt(self.sync(state, gid))
        except DecryptionFailed:
            # Perhaps sealed before this member joined, and an admin has
            # since shared that epoch with it.
            if not self.history.receive(state, gid):
                raise
        return attempt(self._state.load()[gid])

    # --- group blobs -----------------------------------------------------------------------

    def upload(
        self, state: KeystoreState, current: KeyBundle, group_id: str,
        source: str | os.PathLike[str] | IO[bytes], idempotency_key: str | None,
    ) -> BlobInfo:  # fmt: skip
        """Seal ``source`` (a path or a binary stream) for the group's current
        epoch and store it as a group blob its current members may read, in
        constant memory (the ciphertext is spooled, to disk past a megabyte).

        The blob id is derived from the key before sealing and signed into
        the content (``/blob/<id>`` after the group context), as for any blob.

        Raises:
            SourceChanged: the file changed size while it was read (nothing stored).
        """
        gid = self._group_id(group_id)
        key = idempotency_key or secrets.token_urlsafe(18)
        blob_id = derive_blob_id(current.identity, key)
        suffix = b"/blob/" + blob_id.encode()

        def seal(stream: Any, out: Any) -> None:
            self.seal(state, current, gid, stream, out, None, suffix=suffix)

        with spooled_ciphertext(source, seal) as ciphertext:
            return self._session.authed(
                lambda token: self._transfer.upload(
                    token, *ciphertext(), [], key, blob_id=blob_id, group=gid
                )
            )

    def download(self, state: KeystoreState, group_id: str, blob_id: str) -> Decrypted:
        """Fetch a group blob, decrypt it and verify it was sealed for this blob
        of this group by its owner, a member of the epoch it names.

        Raises:
            ContextMismatch: the content was sealed for another blob or group,
                or by someone other than the blob's owner.
            DecryptionFailed, NotAMember, ServerError (404: not readable).
        """
        gid = self._group_id(group_id)
        info = self._session.authed(lambda token: self._api.get_blob(token, blob_id))
        if info.group != gid:
            raise ContextMismatch("group", "the blob is not one of this group's")
        suffix = b"/blob/" + info.blob_id.encode("ascii")

        def check(header: sealed.SealedHeader) -> None:
            parsed = parse_group_context(header.context or b"")
            if parsed is None or parsed[2] != suffix:
                raise sealed.ContextMismatch("context", "the content was sealed for another blob")
            if header.sender.identity != info.owner:
                raise sealed.ContextMismatch("sender", "the content was not sealed by the owner")

        with self._transfer.open(info) as response:
            data = response.read(info.size + 1)
        if len(data) != info.size:
            raise ServerError.malformed("blob content")
        return self._open(state, gid, data, check)

    # --- storage ---------------------------------------------------------------------------

    def _put(self, url: str, headers: dict[str, str], data: bytes) -> None:
        self._origins.check(url)
        reply = self._objects.put(url, io.BytesIO(data), length=len(data), headers=headers)
        if not 200 <= reply.status < 300:
            raise StorageTransferFailed("upload", reply.status, None)

    def _get(self, url: str, headers: dict[str, str], length: int) -> bytes:
        self._origins.check(url)
        with self._objects.get(url, headers=headers) as response:
            if response.status not in (200, 206):
                raise StorageTransferFailed("download", response.status, None)
            data = response.read(length + 1)
        if len(data) != length:
            raise ServerError.malformed("wrap")
        return data

    # --- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _group_id(group_id: object) -> str:
        try:
            return group_id_to_str(group_id_from_str(group_id))
        except InvalidGroupObject as exc:
            raise InvalidInput("not a group id") from exc

    @staticmethod
    def _identities(names: Iterable[str]) -> set[str]:
        if isinstance(names, str):
            raise TypeError("identities must be a collection of strings, not a string")
        return {canonical_identity(name) for name in names}

    def _cards_of(self, identities: Sequence[str]) -> dict[str, Card]:
        """Verified active cards of identities to add.

        Raises:
            MemberNotFound: some have no active card.
        """
        if not identities:
            return {}
        try:
            return self._directory.find(identities)
        except UsersNotFound as exc:
            raise MemberNotFound(f"no card for: {', '.join(exc.identities)}") from exc

    def _member_cards(self, roster: Sequence[Member], *, refresh: bool = False) -> dict[str, Card]:
        """Each remaining member's current card: its active one (re-wrapping a
        rotated member), or the roster's when it has none any more."""
        names = [m.identity for m in roster]
        try:
            found = self._directory.find(names, refresh=refresh)
        except UsersNotFound as exc:
            rest = [n for n in names if n not in set(exc.identities)]
            found = self._directory.find(rest) if rest else {}
        cards: dict[str, Card] = {}
        for member in roster:
            card = found.get(member.identity)
            if card is None:
                card = self._directory.card_by_id(card_id_to_str(member.card_id))
            if card is None:
                raise GroupVerificationFailed(
                    "unknown_card", f"no card for member {member.identity}"
                )
            cards[member.identity] = card
        return cards
