"""The delta form of an epoch: what a following member downloads to move on.

A member that already holds epoch ``n - 1`` and the roster after it can
recompute most of epoch ``n``: the group id, the number, the previous hash,
the roster hash and member count (its changes applied to the roster), and
the epoch key id (from the secret in its own wrap).  The server therefore
also keeps, for every epoch after the first, its **delta**: only the fields
the member can't recompute, with a removal (or the signer) named by its
position in the previous roster instead of by identity and card::

    delta   = u8(1) || u64(created_at_ms) || u16(signer's index in the previous roster)
              || wraps digest (32) || u8(kind) || u16(c) || c x change || signature (64)
    change  = u8(1 = set) || lp8(identity) || card id (32) || u8(flags)
            | u8(2 = remove) || u16(index in the previous roster)

The device rebuilds the full epoch (:func:`expand_delta`) and checks it
exactly as a full one: the signature covers the full content, so a delta
that doesn't rebuild the signed epoch (a wrong index, a wrong secret and so
key id, another previous epoch) fails ``bad_signature`` or a chain rule.  A
removal of one member costs 113 bytes whatever the group's size
(docs/spec/groups.md, "Delta").

Pure: no chalice, no boto3, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from chalicelib.wire.binary import Reader, Truncated, u8, u16, u64
from chalicelib.wire.groups import (
    ADMIN_FLAG,
    HASH_SIZE,
    OP_REMOVE,
    OP_SET,
    SIGNATURE_SIZE,
    Change,
    Epoch,
    InvalidGroupObject,
    Member,
    apply_changes,
    read_entry,
    roster_hash,
)

__all__ = ["DELTA_VERSION", "EpochDelta", "decode_delta", "encode_delta", "expand_delta"]

DELTA_VERSION: Final = 1


@dataclass(frozen=True)
class EpochDelta:
    """A parsed delta, its positions resolved against the previous roster."""

    created_at_ms: int
    signer_card_id: bytes
    wraps_digest: bytes
    kind: int
    changes: tuple[Change, ...]
    signature: bytes

    def roster_after(self, roster: Sequence[Member]) -> tuple[Member, ...]:
        """The roster after the delta's changes.

        Raises:
            InvalidGroupObject: the changes don't apply.
        """
        return apply_changes(roster, self.changes)


def encode_delta(epoch: Epoch, roster: Sequence[Member]) -> bytes:
    """The delta of ``epoch`` (signed, not the first) against ``roster``, the roster before it.

    Raises:
        InvalidGroupObject: the signer or a removed member is not in ``roster``
            (code ``not_a_member``), or the epoch is not signed.
    """
    position = {m.card_id: i for i, m in enumerate(roster)}
    signer = position.get(epoch.signer_card_id)
    if signer is None:
        raise InvalidGroupObject("the signer is not in the previous roster", "not_a_member")
    changes = bytearray()
    for change in epoch.changes:
        if change.op == OP_REMOVE:
            index = position.get(change.card_id)
            if index is None or roster[index].identity != change.identity:
                raise InvalidGroupObject("removes someone who is not a member", "not_a_member")
            changes += u8(OP_REMOVE) + u16(index)
        else:
            name = change.identity.encode("ascii")
            changes += u8(OP_SET) + u8(len(name)) + name + change.card_id
            changes += u8(ADMIN_FLAG * change.admin)
    if len(epoch.signature) != SIGNATURE_SIZE:
        raise InvalidGroupObject("the epoch is not signed", "truncated")
    return (
        u8(DELTA_VERSION)
        + u64(epoch.created_at_ms)
        + u16(signer)
        + epoch.wraps_digest
        + u8(epoch.kind)
        + u16(len(epoch.changes))
        + bytes(changes)
        + epoch.signature
    )


def decode_delta(data: bytes, roster: Sequence[Member]) -> EpochDelta:
    """Parse a delta, resolving positions against ``roster`` (the previous roster).

    Raises:
        InvalidGroupObject: codes ``unsupported_version``, ``truncated``,
            ``trailing_data``, ``unknown_op``, ``reserved_flag``,
            ``invalid_identity``, ``not_a_member`` (a position past the roster).
    """
    reader = Reader(bytes(data))

    def member_at(index: int) -> Member:
        if index >= len(roster):
            raise InvalidGroupObject("a position past the roster", "not_a_member")
        return roster[index]

    try:
        if reader.u8() != DELTA_VERSION:
            raise InvalidGroupObject("unsupported delta version", "unsupported_version")
        created_at_ms = reader.u64()
        signer = member_at(reader.u16()).card_id
        digest = reader.take(HASH_SIZE)
        kind = reader.u8()
        changes = []
        for _ in range(reader.u16()):
            op = reader.u8()
            if op == OP_REMOVE:
                gone = member_at(reader.u16())
                changes.append(Change(gone.identity, OP_REMOVE, gone.card_id))
                continue
            if op != OP_SET:
                raise InvalidGroupObject("unknown change operation", "unknown_op")
            identity, card_id, admin = read_entry(reader)
            changes.append(Change(identity, OP_SET, card_id, admin))
        signature = reader.take(SIGNATURE_SIZE)
        if reader.remaining:
            raise InvalidGroupObject("bytes after the signature", "trailing_data")
    except Truncated as exc:
        raise InvalidGroupObject("the delta is truncated", "truncated") from exc
    return EpochDelta(created_at_ms, signer, digest, kind, tuple(changes), signature)


def expand_delta(
    delta: EpochDelta, previous: Epoch, roster: Sequence[Member], key_id: bytes
) -> Epoch:
    """The full epoch after ``previous`` (whose roster is ``roster``) that ``delta``
    stands for, with ``key_id`` recomputed from the secret in the member's wrap.

    Nothing here is trusted: the caller checks the result as any epoch
    (:func:`~chalicelib.wire.groups.check_successor` and the signature).

    Raises:
        InvalidGroupObject: the changes don't apply, or a field breaks the format.
    """
    after = delta.roster_after(roster)
    return Epoch(
        group_id=previous.group_id,
        number=previous.number + 1,
        previous_hash=previous.hash,
        created_at_ms=delta.created_at_ms,
        signer_card_id=delta.signer_card_id,
        wraps_digest=delta.wraps_digest,
        kind=delta.kind,
        key_id=key_id,
        roster_hash=roster_hash(previous.group_id, after),
        member_count=len(after),
        changes=delta.changes,
        signature=delta.signature,
    )
