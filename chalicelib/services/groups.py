"""Groups: an append-only chain of signed epochs, and who may read what.

The server never makes, opens or signs anything of a group: an admin's
device makes each epoch (roster changes, roster hash, epoch key id, the
digest of the wraps object) and signs it with its card; this service checks
the proposal with the same wire rules devices apply
(:mod:`chalicelib.wire.groups`), and appends it with one conditional write
on the previous epoch number, so two concurrent changes can't fork a group:
one wins, the other gets ``stale_epoch`` and re-bases.

Flow of a change (docs/api.md, docs/spec/groups.md):

1. ``reserve_wraps``: a presigned, write-once PUT for the epoch's wraps
   object, under a key the server picks;
2. the device uploads the wraps object;
3. ``append``: the signed epoch and the wraps id.  The server checks the
   chain (next number, previous hash, signer an admin of the previous roster
   or a member leaving), the signature under the signer's card (which must
   be the caller's), that the changes give the signed roster hash, and that
   the wraps object has the signed digest and one wrap per member card.

Reading: the current members of a group see its head, roster and epochs,
and get a presigned *ranged* GET for their own wrap of an epoch: one index
entry's bytes, O(1) per member per epoch.  Anyone else gets exactly what a
nonexistent group gets (404).  The server can withhold epochs (devices
notice nothing newer) but can't forge membership: devices verify every
epoch themselves.

No chalice, no boto3: stores, card lookups and the clock are injected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

from chalicelib import crypto
from chalicelib.errors import (
    InvalidEpoch,
    InvalidHistoryShare,
    InvalidRequest,
    MemberNotFound,
    NotAnAdmin,
    NotFound,
    SealboxError,
    StaleEpoch,
    WrapsMismatch,
    WrapsMissing,
)
from chalicelib.wire.b64 import b64url_decode
from chalicelib.wire.cards import Card, card_id_from_str, card_id_to_str
from chalicelib.wire.group_catchup import (
    MAX_CATCHUP_EPOCHS,
    MAX_CATCHUP_SIZE,
    MAX_PART,
    NONCE_SIZE,
    CatchUpEntry,
    encode_catchup,
    roster_check,
)
from chalicelib.wire.group_delta import encode_delta
from chalicelib.wire.group_history import (
    MAX_SHARE_SIZE,
    decode_share,
    share_id,
    verify_share_signature,
)
from chalicelib.wire.group_wraps import MAX_WRAPS_SIZE, split_wraps
from chalicelib.wire.groups import (
    MAX_GROUP_MEMBERS,
    Epoch,
    EpochChainError,
    InvalidGroupObject,
    Member,
    check_successor,
    decode_epoch,
    decode_roster,
    encode_roster,
    group_id_from_str,
    group_id_to_str,
    roster_hash,
    verify_epoch_signature,
)

__all__ = [
    "MAX_EPOCH_SIZE",
    "MAX_HISTORY_SHARES",
    "GroupHead",
    "GroupService",
    "GroupStore",
    "StoredEpoch",
    "WrapTarget",
    "WrapsStore",
]

_Obj = TypeVar("_Obj")

#: Largest encoded epoch: every member added (or removed) in one epoch.
MAX_EPOCH_SIZE: Final = 256 + 2 * MAX_GROUP_MEMBERS * (2 + 64 + 32 + 1) + 64
#: History shares kept per member per group, ever: a hostile or buggy admin
#: can't grow a member's list (and its GET) without limit.  One share covers
#: up to 1024 epochs, so this is room enough (docs/spec/groups.md, History).
MAX_HISTORY_SHARES: Final = 32
_WRAPS_ID_BYTES: Final = 16
_URL_TTL: Final = 300


@dataclass(frozen=True)
class GroupHead:
    """The latest epoch of a group and the roster after it."""

    group_id: str
    number: int
    epoch_hash: bytes
    roster: bytes  # encoded roster (chalicelib.wire.groups.encode_roster)
    updated_at: int

    def members(self) -> tuple[Member, ...]:
        return decode_roster(self.roster)


@dataclass(frozen=True)
class StoredEpoch:
    """One appended epoch: its bytes, where its wraps object is, and the wraps index."""

    group_id: str
    number: int
    epoch: bytes
    wraps_key: str
    index: dict[str, tuple[int, int]]  # card id (base64url) -> (offset, length)
    #: The delta form (chalicelib.wire.group_delta) against the previous
    #: roster; None for epoch 0 and for epochs stored before deltas existed.
    delta: bytes | None = None


@dataclass(frozen=True)
class WrapTarget:
    """A presigned GET of one byte range (``headers`` carries the Range)."""

    url: str
    headers: dict[str, str]
    expires_in: int
    length: int


class GroupStore(Protocol):
    """Persistence for group heads, epochs and the member index."""

    def head(self, group_id: str) -> GroupHead | None:
        """The group's head (a strongly consistent read), or None."""

    def epoch(self, group_id: str, number: int) -> StoredEpoch | None:
        """One appended epoch, or None."""

    def append(
        self,
        before: GroupHead | None,
        after: GroupHead,
        epoch: StoredEpoch,
        *,
        joined: Sequence[str],
        left: Sequence[str],
    ) -> bool:
        """Store ``epoch`` and move the head from ``before`` (None: create) to
        ``after`` in one conditional write; then add ``joined`` and drop
        ``left`` from the member index.  False, having changed nothing, when
        the head is no longer ``before``."""

    def groups_of(self, identity: str) -> list[str]:
        """Group ids the member index lists for ``identity`` (may be stale:
        the head's roster is what decides)."""

    def put_share(
        self, group_id: str, member: str, share_id: str, share: bytes, *, limit: int
    ) -> None:
        """Store a history share for ``member``, write-once (the same id again
        changes nothing: ids are content hashes), and count it, in one
        conditional write: a member holds at most ``limit`` shares per group.

        Raises:
            HistoryShareLimit: ``member`` already has ``limit`` shares (nothing stored).
        """

    def shares(self, group_id: str, member: str) -> list[tuple[str, bytes]]:
        """``(share id, share)`` of every history share stored for ``member``."""


class WrapsStore(Protocol):
    """Write-once wraps objects in object storage."""

    def presign_put(self, key: str, size: int, ttl: int) -> tuple[str, dict[str, str]]:
        """A presigned write-once PUT of exactly ``size`` bytes: ``(url, headers)``."""

    def read(self, key: str, max_size: int) -> bytes | None:
        """The whole object (None if absent).  Raises InvalidRequest if larger."""

    def presign_range(self, key: str, offset: int, length: int, ttl: int) -> WrapTarget:
        """A presigned GET of ``length`` bytes from ``offset``."""

    def read_range(self, key: str, offset: int, length: int) -> bytes | None:
        """Exactly ``length`` bytes from ``offset`` (None if the object is absent).
        Raises InternalError if the object is shorter."""

    def delete(self, key: str) -> None:
        """Delete the object (absent is fine)."""


def _wraps_key(group_id: str, number: int, wraps_id: str) -> str:
    return f"groups/{group_id}/{number}/{wraps_id}"


def _chain_error(exc: EpochChainError) -> SealboxError:
    if exc.code in ("stale_epoch", "broken_chain"):
        return StaleEpoch()
    if exc.code == "not_an_admin":
        return NotAnAdmin()
    return InvalidEpoch(f"The epoch does not follow the group's head ({exc.code}).")


class GroupService:
    """Append and read group epochs for authenticated identities."""

    def __init__(
        self,
        store: GroupStore,
        wraps: WrapsStore,
        card: Callable[[str], Card | None],
        *,
        clock: Callable[[], float],
        url_ttl: int = _URL_TTL,
    ) -> None:
        self._store = store
        self._wraps = wraps
        self._card = card
        self._clock = clock
        self._ttl = url_ttl

    # --- checks ------------------------------------------------------------------

    @staticmethod
    def _group_id(value: object) -> str:
        try:
            return group_id_to_str(group_id_from_str(value))
        except InvalidGroupObject as exc:
            raise InvalidRequest("Invalid group id.") from exc

    @staticmethod
    def _number(value: object) -> int:
        if isinstance(value, str):
            if not value.isdigit() or len(value) > 19 or (value != "0" and value[0] == "0"):
                raise InvalidRequest("Invalid epoch number.")
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 63:
            raise InvalidRequest("Invalid epoch number.")
        return value

    def _member_head(self, identity: str, group_id: str) -> tuple[GroupHead, Member]:
        """The head of a group ``identity`` is a current member of; 404 otherwise."""
        head = self._store.head(group_id)
        member = None
        if head is not None:
            member = next((m for m in head.members() if m.identity == identity), None)
        if head is None or member is None:
            raise NotFound("No such group.")
        return head, member

    # --- changes -------------------------------------------------------------------

    def reserve_wraps(
        self, identity: str, group_id: object, number: object, size: object
    ) -> tuple[str, str, dict[str, str], int]:
        """A write-once upload for the wraps object of epoch ``number``.

        Returns ``(wraps_id, url, headers, expires_in)``.

        Raises:
            InvalidRequest: bad id, number or size.
            NotFound: the group exists and the caller is not a member.
            StaleEpoch: ``number`` is not the group's next epoch.
        """
        gid, n = self._group_id(group_id), self._number(number)
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_WRAPS_SIZE:
            raise InvalidRequest(f"size must be 1 to {MAX_WRAPS_SIZE} bytes.")
        head = self._store.head(gid)
        if head is None:
            if n != 0:
                raise NotFound("No such group.")
        else:
            self._member_head(identity, gid)
            if n != head.number + 1:
                raise StaleEpoch()
        wraps_id = crypto.random_bytes(_WRAPS_ID_BYTES).hex()
        url, headers = self._wraps.presign_put(_wraps_key(gid, n, wraps_id), size, self._ttl)
        return wraps_id, url, headers, self._ttl

    def append(
        self, identity: str, group_id: object, epoch_b64: object, wraps_id: object
    ) -> GroupHead:
        """Check the signed epoch ``epoch_b64`` against the group's head and append it.

        Nothing is stored unless every check passes; a lost race stores
        nothing and deletes the proposal's wraps object.

        Raises:
            InvalidRequest: malformed input.
            InvalidEpoch: the epoch doesn't parse, verify or apply.
            NotFound: the caller is not a member of the group, or the group
                doesn't exist and the epoch is not a creation.
            StaleEpoch: not the group's next epoch, or another change won.
            NotAnAdmin: the signer isn't allowed to make the change, or is
                not the caller.
            WrapsMissing, WrapsMismatch: the wraps object.
        """
        gid = self._group_id(group_id)
        if not isinstance(wraps_id, str) or len(wraps_id) != 2 * _WRAPS_ID_BYTES:
            raise InvalidRequest("Invalid wraps id.")
        try:
            bytes.fromhex(wraps_id)
        except ValueError as exc:
            raise InvalidRequest("Invalid wraps id.") from exc
        if wraps_id != wraps_id.lower():
            raise InvalidRequest("Invalid wraps id.")
        raw, epoch = _decoded(
            epoch_b64, ("epoch", "epoch", "epoch"), MAX_EPOCH_SIZE, decode_epoch, InvalidEpoch
        )
        if group_id_to_str(epoch.group_id) != gid:
            raise InvalidEpoch("The epoch belongs to another group.")

        before = self._store.head(gid)
        previous: Epoch | None = None
        roster: tuple[Member, ...] = ()
        if before is not None:
            self._member_head(identity, gid)
            if epoch.number != before.number + 1:
                raise StaleEpoch()
            stored = self._store.epoch(gid, before.number)
            if stored is None:
                raise StaleEpoch()
            previous = decode_epoch(stored.epoch)
            roster = before.members()
        elif epoch.number != 0:
            raise NotFound("No such group.")
        try:
            after = check_successor(previous, roster, epoch)
        except EpochChainError as exc:
            raise _chain_error(exc) from exc
        signer = self._card(card_id_to_str(epoch.signer_card_id))
        if signer is None or signer.identity != identity:
            # The caller proposes with its own card; a replayed proposal of
            # someone else's is refused even if it verifies.
            raise NotAnAdmin("The epoch must be signed by the caller's card.")
        try:
            verify_epoch_signature(epoch, signer.ed25519_public_key)
        except EpochChainError as exc:
            raise InvalidEpoch("The epoch signature does not verify.") from exc

        key = _wraps_key(gid, epoch.number, wraps_id)
        index = self._check_wraps(key, epoch, after)
        now = int(self._clock())
        head = GroupHead(gid, epoch.number, epoch.hash, encode_roster(after), now)
        delta = None if previous is None else encode_delta(epoch, roster)
        record = StoredEpoch(gid, epoch.number, raw, key, index, delta)
        names_before = {m.identity for m in roster}
        names_after = {m.identity for m in after}
        if not self._store.append(
            before,
            head,
            record,
            joined=sorted(names_after - names_before),
            left=sorted(names_before - names_after),
        ):
            self._wraps.delete(key)
            raise StaleEpoch()
        return head

    def _check_wraps(
        self, key: str, epoch: Epoch, after: Sequence[Member]
    ) -> dict[str, tuple[int, int]]:
        data = self._wraps.read(key, MAX_WRAPS_SIZE)
        if data is None:
            raise WrapsMissing()
        if not crypto.timing_safe_equal(crypto.sha256(data), epoch.wraps_digest):
            raise WrapsMismatch("The wraps object is not the one the epoch signs.")
        try:
            index, _ = split_wraps(data)
        except InvalidGroupObject as exc:
            raise WrapsMismatch(f"The wraps object is malformed ({exc.code}).") from exc
        if (
            index.group_id != epoch.group_id
            or index.number != epoch.number
            or set(index.entries) != {m.card_id for m in after}
        ):
            raise WrapsMismatch("The wraps object must hold one wrap per member card.")
        return {card_id_to_str(c): entry for c, entry in index.entries.items()}

    # --- reading --------------------------------------------------------------------

    def roster_hash(self, head: GroupHead) -> bytes:
        """The hash of the roster the server holds for ``head`` (what a device
        compares with the roster hash its verified chain signs)."""
        return roster_hash(group_id_from_str(head.group_id), head.members())

    def head(self, identity: str, group_id: object) -> tuple[GroupHead, StoredEpoch]:
        """The head of a group the caller is a member of, with its epoch.

        Raises:
            NotFound: no such group, or the caller is not a current member.
        """
        gid = self._group_id(group_id)
        head, _ = self._member_head(identity, gid)
        stored = self._store.epoch(gid, head.number)
        if stored is None:
            raise NotFound("No such group.")
        return head, stored

    def epoch(
        self, identity: str, group_id: object, number: object, card_id: object
    ) -> tuple[StoredEpoch, WrapTarget | None]:
        """Epoch ``number`` and, when it has one, a ranged GET of the wrap for
        ``card_id``, one of the caller's own cards (any status).

        Raises:
            InvalidRequest: bad id or number.
            NotFound: not a current member, or no such epoch yet.
        """
        gid, n = self._group_id(group_id), self._number(number)
        head, _ = self._member_head(identity, gid)
        stored = self._store.epoch(gid, n) if n <= head.number else None
        if stored is None:
            raise NotFound("No such epoch.")
        if card_id is None:
            return stored, None
        try:
            wanted = card_id_to_str(card_id_from_str(card_id))
        except ValueError as exc:
            raise InvalidRequest("Invalid card id.") from exc
        entry = stored.index.get(wanted)
        if entry is None:
            return stored, None
        card = self._card(wanted)
        if card is None or card.identity != identity:
            # Wraps are per card; nobody fetches another member's.
            return stored, None
        offset, length = entry
        return stored, self._wraps.presign_range(stored.wraps_key, offset, length, self._ttl)

    def catch_up(
        self, identity: str, group_id: object, after: object, card_id: object, nonce: object
    ) -> bytes:
        """The catch-up frame (chalicelib.wire.group_catchup) for a member that
        holds epoch ``after``: the deltas of the epochs after it, each with the
        caller's wrap for ``card_id`` read from the epoch's write-once wraps
        object, up to the head or to the first epoch that has no delta or no
        wrap for that card, or a delta too long for a frame (the device
        takes that one in full), at most
        :data:`MAX_CATCHUP_EPOCHS` epochs and about :data:`MAX_CATCHUP_SIZE`
        bytes.  When the frame reaches the head it carries the roster check of
        the roster the server holds under the device's ``nonce``.

        Raises:
            InvalidRequest: bad id, number, card id or nonce.
            NotFound: not a current member (the same answer as a group that
                doesn't exist), or ``after`` is past the head.
        """
        gid, n = self._group_id(group_id), self._number(after)
        try:
            wanted = card_id_to_str(card_id_from_str(card_id))
        except ValueError as exc:
            raise InvalidRequest("Invalid card id.") from exc
        try:
            salt = b64url_decode(nonce, max_len=NONCE_SIZE) if isinstance(nonce, str) else b""
        except ValueError:
            salt = b""
        if len(salt) != NONCE_SIZE:
            raise InvalidRequest(f"nonce must be {NONCE_SIZE} bytes, base64url.")
        head, _ = self._member_head(identity, gid)
        if n > head.number:
            raise NotFound("No such epoch.")
        card = self._card(wanted)
        # Wraps are per card; nobody reads another member's.
        mine = card is not None and card.identity == identity
        entries: list[CatchUpEntry] = []
        size = 0
        number = n + 1
        while mine and number <= head.number and len(entries) < MAX_CATCHUP_EPOCHS:
            if size >= MAX_CATCHUP_SIZE:
                break
            stored = self._store.epoch(gid, number)
            entry = None if stored is None else stored.index.get(wanted)
            if stored is None or stored.delta is None or entry is None:
                break
            if len(stored.delta) > MAX_PART or entry[1] > MAX_PART:
                break  # e.g. hundreds of members added at once: taken in full
            wrap = self._wraps.read_range(stored.wraps_key, *entry)
            if wrap is None:
                break
            entries.append(CatchUpEntry(stored.delta, wrap))
            size += len(stored.delta) + len(wrap) + 4
            number += 1
        at_head = n + len(entries) == head.number
        check = roster_check(salt, self.roster_hash(head)) if at_head else None
        return encode_catchup(entries, check)

    # --- history shares -----------------------------------------------------------------

    def share_history(self, identity: str, group_id: object, share_b64: object) -> str:
        """Store a history share an admin's device signed for a current member; its id.

        The server checks what it can without any secret: the share parses and
        is this group's; the caller is a current admin and signed it with the
        card the current roster names for it; the share was made at the
        current epoch; the member it names is a current member with that card.
        The member's device checks the rest (docs/spec/groups.md, "History").

        Raises:
            InvalidRequest: bad group id or a share that is not a string.
            InvalidHistoryShare: it doesn't parse, is another group's, or its
                signature does not verify.
            NotFound: the caller is not a current member.
            NotAnAdmin: the caller is not an admin, or not the signer.
            StaleEpoch: the share was not made at the group's current epoch.
            MemberNotFound: the member is not a current member with that card.
            HistoryShareLimit: the member already has :data:`MAX_HISTORY_SHARES`
                shares in this group.
        """
        gid = self._group_id(group_id)
        raw, share = _decoded(
            share_b64,
            ("share", "history share", "share"),
            MAX_SHARE_SIZE,
            decode_share,
            InvalidHistoryShare,
        )
        if group_id_to_str(share.group_id) != gid:
            raise InvalidHistoryShare("The history share belongs to another group.")
        head, me = self._member_head(identity, gid)
        if not me.admin:
            raise NotAnAdmin("Only an admin of the group can share its history.")
        if share.at != head.number:
            raise StaleEpoch()
        signer = self._card(card_id_to_str(share.signer_card_id))
        if share.signer_card_id != me.card_id or signer is None or signer.identity != identity:
            raise NotAnAdmin("The share must be signed by the caller's card in the roster.")
        try:
            verify_share_signature(share, signer.ed25519_public_key)
        except EpochChainError as exc:
            raise InvalidHistoryShare("The history share signature does not verify.") from exc
        member = next((m for m in head.members() if m.identity == share.member), None)
        if member is None or member.card_id != share.member_card_id:
            # A removed member, or a card the roster no longer names, gets nothing.
            raise MemberNotFound()
        sid = share_id(raw)
        self._store.put_share(gid, share.member, sid, raw, limit=MAX_HISTORY_SHARES)
        return sid

    def history(self, identity: str, group_id: object) -> list[tuple[str, bytes]]:
        """The history shares stored for the caller in a group it is a current member of.

        Raises:
            InvalidRequest: bad group id.
            NotFound: not a current member.
        """
        gid = self._group_id(group_id)
        self._member_head(identity, gid)
        return self._store.shares(gid, identity)

    def groups(self, identity: str) -> list[GroupHead]:
        """The groups ``identity`` is a current member of (checked against each head)."""
        heads = []
        for gid in self._store.groups_of(identity):
            head = self._store.head(gid)
            if head is not None and any(m.identity == identity for m in head.members()):
                heads.append(head)
        return heads

    def is_member(self, group_id: str, identity: str) -> bool:
        """Whether ``identity`` is in the group's current roster (group blobs ask this)."""
        head = self._store.head(group_id)
        return head is not None and any(m.identity == identity for m in head.members())


def _decoded(
    value: object,
    names: tuple[str, str, str],
    max_size: int,
    decode: Callable[[bytes], _Obj],
    invalid: type[SealboxError],
) -> tuple[bytes, _Obj]:
    """A signed group object sent as base64url: its bytes and what they decode to.

    ``names``: the field's name, and the object's name in the "malformed"
    and the "not base64url" messages.

    Raises:
        InvalidRequest: not a string.
        ``invalid``: not base64url, too large, or malformed.
    """
    field, malformed, encoded = names
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a base64url string.")
    try:
        raw = b64url_decode(value, max_len=max_size)
        return raw, decode(raw)
    except InvalidGroupObject as exc:
        raise invalid(f"The {malformed} is malformed ({exc.code}).") from exc
    except ValueError as exc:
        raise invalid(f"The {encoded} is not base64url or too large.") from exc
