"""Group epochs, rosters and wraps: one canonical encoding, shared by both sides.

A group is a sequence of *epochs*.  Each epoch is signed by a member's card
and names the hash of the epoch before it, the roster *changes* it makes
(adds, removals, card or admin changes), the hash of the whole roster after
them, the id of the epoch's age key and the digest of the *wraps object*
that carries the epoch secret, HPKE-wrapped once for every member card.  A
member moving to the next epoch downloads that epoch (its size grows with
the changes, not with the group) and its own wrap (a ranged read); a device
that joins downloads the full roster once and checks it against the signed
roster hash.  docs/spec/groups.md has the byte-by-byte layout and the
MUST-reject rules; this module is their only implementation.  It is pure
(no chalice, no boto3, no I/O) and reaches cryptography only through
:mod:`chalicelib.crypto` (SHA-256, Ed25519 verify): the backend checks
proposals with it, devices check what the backend serves.

::

    content   = "SBGEPOCH" || u8(1) || group id (16) || u64(epoch)
                || lp16(previous epoch hash, or empty for epoch 0)
                || u64(created_at_ms) || signer card id (32) || wraps digest (32)
                || u8(kind) || epoch key id (32) || roster hash (32) || u16(members)
                || u16(c) || c x (u8(op) || lp8(identity) || card id (32) || u8(flags))
    signature = Ed25519(lp16("sealbox/v1/group-epoch-signature") || content)
    epoch     = content || signature (64)
    hash      = SHA-256(lp16("sealbox/v1/group-epoch-hash") || epoch)
    roster    = u16(n) || n x (lp8(identity) || card id (32) || u8(flags)), ascending by identity
    roster hash = SHA-256(lp16("sealbox/v1/group-roster") || group id || roster)

Every parsing failure is an :class:`InvalidGroupObject` with a stable
``code``; a successor that does not follow its predecessor is an
:class:`EpochChainError`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from chalicelib import crypto
from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.binary import Reader, Truncated, lp16, u8, u16, u64
from chalicelib.wire.identity import is_identity

__all__ = [
    "ADMIN_FLAG",
    "EPOCH_HASH_LABEL",
    "EPOCH_KEY_ID_LABEL",
    "EPOCH_MAGIC",
    "EPOCH_SIGNATURE_LABEL",
    "EPOCH_VERSION",
    "GROUP_ADDRESS",
    "GROUP_CONTEXT_LABEL",
    "GROUP_ID_BYTES",
    "KIND_MLKEM768X25519",
    "KIND_X25519",
    "MAX_EPOCH",
    "MAX_GROUP_MEMBERS",
    "OP_REMOVE",
    "OP_SET",
    "PUBLIC_KEY_SIZES",
    "ROSTER_LABEL",
    "WRAP_SIZES",
    "Change",
    "Epoch",
    "EpochChainError",
    "InvalidGroupObject",
    "Member",
    "apply_changes",
    "changes_between",
    "check_successor",
    "decode_epoch",
    "decode_roster",
    "encode_content",
    "encode_roster",
    "epoch_key_id",
    "group_id_from_str",
    "group_id_to_str",
    "roster_hash",
    "sign_epoch",
    "verify_epoch_signature",
]

EPOCH_MAGIC: Final = b"SBGEPOCH"
EPOCH_SIGNATURE_LABEL: Final = b"sealbox/v1/group-epoch-signature"
EPOCH_HASH_LABEL: Final = b"sealbox/v1/group-epoch-hash"
EPOCH_KEY_ID_LABEL: Final = b"sealbox/v1/group-epoch-key-id"
ROSTER_LABEL: Final = b"sealbox/v1/group-roster"
GROUP_CONTEXT_LABEL: Final = b"sealbox/v1/group"
EPOCH_VERSION: Final = 1
GROUP_ID_BYTES: Final = 16
CARD_ID_SIZE: Final = 32
HASH_SIZE: Final = 32
SIGNATURE_SIZE: Final = 64
#: Largest roster (a full roster of this many members is at most ~400 KB).
MAX_GROUP_MEMBERS: Final = 4096
ADMIN_FLAG: Final = 0x01
#: Change operations: ``OP_SET`` gives an identity this card and flags (an
#: add, a re-wrap to a rotated card, an admin change); ``OP_REMOVE`` removes
#: it (the entry names the card it had, flags 0).
OP_SET: Final = 1
OP_REMOVE: Final = 2
#: The epoch's age key: X25519 when any member card lacks a post-quantum
#: key (a classical wrap would undo it anyway), else the hybrid.
KIND_X25519: Final = 0
KIND_MLKEM768X25519: Final = 1
PUBLIC_KEY_SIZES: Final = {KIND_X25519: 32, KIND_MLKEM768X25519: 1216}
#: A wrap body: u8(kind) || HPKE enc || HPKE ciphertext of the 32-byte secret.
WRAP_SIZES: Final = {KIND_X25519: 1 + 32 + 32 + 16, KIND_MLKEM768X25519: 1 + 1120 + 32 + 16}
#: The name a group epoch is addressed by in a sealed header (its "card id"
#: there is :func:`epoch_key_id`, a hash no card can have).
GROUP_ADDRESS: Final = "sealbox.group"
MAX_EPOCH: Final = (1 << 63) - 1
_GROUP_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{22}")


class InvalidGroupObject(ValueError):
    """An epoch, roster or wraps object that is malformed; ``code`` is stable."""

    code = "invalid_group_object"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class EpochChainError(ValueError):
    """An epoch that does not follow the one before it; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def group_id_to_str(raw: bytes) -> str:
    """A raw 16-byte group id as base64url (22 characters)."""
    if len(raw) != GROUP_ID_BYTES:
        raise ValueError("a group id is 16 bytes")
    return b64url_encode(raw)


def group_id_from_str(text: object) -> bytes:
    """The raw group id of its base64url form.

    Raises:
        InvalidGroupObject: not 22 base64url characters of a 16-byte value.
    """
    if not isinstance(text, str) or not _GROUP_ID_RE.fullmatch(text):
        raise InvalidGroupObject("not a group id", "invalid_group_id")
    try:
        raw = b64url_decode(text)
    except ValueError as exc:
        raise InvalidGroupObject("not a group id", "invalid_group_id") from exc
    if len(raw) != GROUP_ID_BYTES or b64url_encode(raw) != text:
        raise InvalidGroupObject("not a group id", "invalid_group_id")
    return raw


@dataclass(frozen=True, order=True)
class Member:
    """One roster entry: an identity, the card its epoch secrets are wrapped to, admin or not."""

    identity: str
    card_id: bytes
    admin: bool = False


@dataclass(frozen=True, order=True)
class Change:
    """One roster change of an epoch (see :data:`OP_SET`, :data:`OP_REMOVE`)."""

    identity: str
    op: int
    card_id: bytes
    admin: bool = False


def _check_member(identity: object, card_id: bytes) -> None:
    if not isinstance(identity, str) or not is_identity(identity):
        raise InvalidGroupObject("a member identity is not canonical", "invalid_identity")
    if len(card_id) != CARD_ID_SIZE:
        raise InvalidGroupObject("a card id is 32 bytes", "invalid_length")


def _check_roster(members: Sequence[Member]) -> None:
    if not 1 <= len(members) <= MAX_GROUP_MEMBERS:
        raise InvalidGroupObject(
            f"a roster has 1 to {MAX_GROUP_MEMBERS} members", "invalid_roster_size"
        )
    previous = ""
    cards: set[bytes] = set()
    for member in members:
        _check_member(member.identity, member.card_id)
        if member.identity <= previous:
            raise InvalidGroupObject(
                "members are strictly ascending by identity", "roster_not_sorted"
            )
        previous = member.identity
        if member.card_id in cards:
            raise InvalidGroupObject("a card appears twice in the roster", "duplicate_card")
        cards.add(member.card_id)
    if not any(member.admin for member in members):
        raise InvalidGroupObject("a roster has at least one admin", "no_admin")


def _entry(identity: str, card_id: bytes, admin: bool) -> bytes:
    return u8(len(identity)) + identity.encode("ascii") + card_id + u8(ADMIN_FLAG * admin)


def read_entry(reader: Reader) -> tuple[str, bytes, bool]:
    """One roster entry (identity, card id, admin flag); the delta format reads them too.

    Raises:
        InvalidGroupObject: a reserved flag, or an identity that is not ASCII.
    """
    raw = reader.take(reader.u8())
    card_id = reader.take(CARD_ID_SIZE)
    flags = reader.u8()
    if flags & ~ADMIN_FLAG:
        raise InvalidGroupObject("reserved member flag set", "reserved_flag")
    try:
        identity = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise InvalidGroupObject("a member identity is not ASCII", "invalid_identity") from exc
    return identity, card_id, bool(flags & ADMIN_FLAG)


def encode_roster(members: Sequence[Member]) -> bytes:
    """The canonical encoding of a roster.

    Raises:
        InvalidGroupObject: it breaks a roster rule (size, order, duplicates, no admin).
    """
    _check_roster(members)
    return u16(len(members)) + b"".join(_entry(m.identity, m.card_id, m.admin) for m in members)


def decode_roster(data: bytes) -> tuple[Member, ...]:
    """Parse an encoded roster.

    Raises:
        InvalidGroupObject: anything but a canonical roster.
    """
    reader = Reader(bytes(data))
    try:
        members = tuple(Member(*read_entry(reader)) for _ in range(reader.u16()))
    except Truncated as exc:
        raise InvalidGroupObject("the roster is truncated", "truncated") from exc
    if reader.remaining:
        raise InvalidGroupObject("bytes after the roster", "trailing_data")
    _check_roster(members)
    return members


def roster_hash(group_id: bytes, members: Sequence[Member]) -> bytes:
    """What an epoch signs as the roster after its changes."""
    return crypto.sha256(lp16(ROSTER_LABEL) + group_id + encode_roster(members))


def apply_changes(members: Sequence[Member], changes: Sequence[Change]) -> tuple[Member, ...]:
    """The roster after ``changes``.

    Raises:
        InvalidGroupObject: codes ``changes_not_sorted``, ``not_a_member``
            (removing someone absent, or naming another card than theirs),
            ``no_change`` (setting an entry to what it is), and the roster rules.
    """
    roster = {m.identity: m for m in members}
    for change in changes:
        current = roster.get(change.identity)
        if change.op == OP_REMOVE:
            if current is None or current.card_id != change.card_id:
                raise InvalidGroupObject("removes someone who is not a member", "not_a_member")
            del roster[change.identity]
            continue
        wanted = Member(change.identity, change.card_id, change.admin)
        if current == wanted:
            raise InvalidGroupObject("a change that changes nothing", "no_change")
        roster[change.identity] = wanted
    result = tuple(sorted(roster.values()))
    _check_roster(result)
    return result


def changes_between(before: Sequence[Member], after: Sequence[Member]) -> tuple[Change, ...]:
    """The changes that turn roster ``before`` into ``after`` (ascending by identity)."""
    old = {m.identity: m for m in before}
    new = {m.identity: m for m in after}
    changes = []
    for identity in sorted(set(old) | set(new)):
        if identity not in new:
            changes.append(Change(identity, OP_REMOVE, old[identity].card_id))
        elif old.get(identity) != new[identity]:
            member = new[identity]
            changes.append(Change(identity, OP_SET, member.card_id, member.admin))
    return tuple(changes)


@dataclass(frozen=True)
class Epoch:
    """A parsed (or about to be signed) epoch.  ``signature`` is empty before signing."""

    group_id: bytes
    number: int
    previous_hash: bytes
    created_at_ms: int
    signer_card_id: bytes
    wraps_digest: bytes
    kind: int
    key_id: bytes
    roster_hash: bytes
    member_count: int
    changes: tuple[Change, ...]
    signature: bytes = b""

    @property
    def content(self) -> bytes:
        """The signed bytes."""
        return encode_content(self)

    @property
    def encoded(self) -> bytes:
        """The full encoding (content and signature)."""
        if len(self.signature) != SIGNATURE_SIZE:
            raise ValueError("the epoch is not signed")
        return self.content + self.signature

    @property
    def hash(self) -> bytes:
        """What the next epoch names as its ``previous_hash``."""
        return crypto.sha256(lp16(EPOCH_HASH_LABEL) + self.encoded)


def epoch_key_id(group_id: bytes, number: int, public_key: bytes) -> bytes:
    """The 32-byte id of an epoch's age key (signed in the epoch; a sealed
    header addresses group content with it)."""
    return crypto.sha256(lp16(EPOCH_KEY_ID_LABEL) + group_id + u64(number) + lp16(public_key))


def _check_fields(epoch: Epoch) -> None:
    """Every rule on one epoch's own fields (not on its predecessor)."""
    if len(epoch.group_id) != GROUP_ID_BYTES:
        raise InvalidGroupObject("a group id is 16 bytes", "invalid_group_id")
    if not 0 <= epoch.number <= MAX_EPOCH:
        raise InvalidGroupObject("epoch number out of range", "invalid_epoch_number")
    if epoch.number == 0 and epoch.previous_hash:
        raise InvalidGroupObject("epoch 0 has no previous epoch", "invalid_previous_hash")
    if epoch.number > 0 and len(epoch.previous_hash) != HASH_SIZE:
        raise InvalidGroupObject("the previous epoch hash is 32 bytes", "invalid_previous_hash")
    if not 0 <= epoch.created_at_ms <= MAX_EPOCH:
        raise InvalidGroupObject("created_at out of range", "invalid_created_at")
    sized = (epoch.signer_card_id, epoch.wraps_digest, epoch.key_id, epoch.roster_hash)
    if any(len(value) != HASH_SIZE for value in sized):
        raise InvalidGroupObject("ids and digests are 32 bytes", "invalid_length")
    if epoch.kind not in PUBLIC_KEY_SIZES:
        raise InvalidGroupObject("unknown epoch key kind", "unknown_kind")
    if not 1 <= epoch.member_count <= MAX_GROUP_MEMBERS:
        raise InvalidGroupObject(
            f"a roster has 1 to {MAX_GROUP_MEMBERS} members", "invalid_roster_size"
        )
    if len(epoch.changes) > MAX_GROUP_MEMBERS * 2:
        raise InvalidGroupObject("too many changes", "invalid_roster_size")
    previous = ""
    for change in epoch.changes:
        _check_member(change.identity, change.card_id)
        if change.identity <= previous:
            raise InvalidGroupObject("changes are ascending by identity", "changes_not_sorted")
        previous = change.identity
        if change.op not in (OP_SET, OP_REMOVE):
            raise InvalidGroupObject("unknown change operation", "unknown_op")
        if change.op == OP_REMOVE and change.admin:
            raise InvalidGroupObject("a removal carries no flags", "reserved_flag")
        if epoch.number == 0 and change.op != OP_SET:
            raise InvalidGroupObject("epoch 0 only adds members", "not_a_member")


def encode_content(epoch: Epoch) -> bytes:
    """The canonical signed bytes of ``epoch``.

    Raises:
        InvalidGroupObject: a field breaks the format's rules.
    """
    _check_fields(epoch)
    changes = b"".join(u8(c.op) + _entry(c.identity, c.card_id, c.admin) for c in epoch.changes)
    return (
        EPOCH_MAGIC
        + u8(EPOCH_VERSION)
        + epoch.group_id
        + u64(epoch.number)
        + lp16(epoch.previous_hash)
        + u64(epoch.created_at_ms)
        + epoch.signer_card_id
        + epoch.wraps_digest
        + u8(epoch.kind)
        + epoch.key_id
        + epoch.roster_hash
        + u16(epoch.member_count)
        + u16(len(epoch.changes))
        + changes
    )


def _signed_message(content: bytes) -> bytes:
    return lp16(EPOCH_SIGNATURE_LABEL) + content


def sign_epoch(epoch: Epoch, sign: Callable[[bytes], bytes]) -> Epoch:
    """``epoch`` signed with ``sign`` (the signer card's Ed25519 key)."""
    signature = sign(_signed_message(encode_content(epoch)))
    if len(signature) != SIGNATURE_SIZE:
        raise ValueError("an Ed25519 signature is 64 bytes")
    return dataclasses.replace(epoch, signature=signature)


def decode_epoch(data: bytes) -> Epoch:
    """Parse an encoded epoch (its signature is *not* verified here).

    Raises:
        InvalidGroupObject: anything but the one canonical encoding.
    """
    if not isinstance(data, bytes | bytearray):
        raise TypeError("an epoch is bytes")
    reader = Reader(bytes(data))
    try:
        if reader.take(len(EPOCH_MAGIC)) != EPOCH_MAGIC:
            raise InvalidGroupObject("not a group epoch", "bad_magic")
        if reader.u8() != EPOCH_VERSION:
            raise InvalidGroupObject("unsupported epoch version", "unsupported_version")
        group_id = reader.take(GROUP_ID_BYTES)
        number = reader.u64()
        previous_hash = reader.lp16()
        created_at_ms = reader.u64()
        signer = reader.take(CARD_ID_SIZE)
        digest = reader.take(HASH_SIZE)
        kind = reader.u8()
        key_id = reader.take(HASH_SIZE)
        members_hash = reader.take(HASH_SIZE)
        member_count = reader.u16()
        changes = []
        for _ in range(reader.u16()):
            op = reader.u8()
            changes.append(Change(*_reorder(op, read_entry(reader))))
        signature = reader.take(SIGNATURE_SIZE)
        if reader.remaining:
            raise InvalidGroupObject("bytes after the signature", "trailing_data")
    except Truncated as exc:
        raise InvalidGroupObject("the epoch is truncated", "truncated") from exc
    epoch = Epoch(
        group_id=group_id,
        number=number,
        previous_hash=previous_hash,
        created_at_ms=created_at_ms,
        signer_card_id=signer,
        wraps_digest=digest,
        kind=kind,
        key_id=key_id,
        roster_hash=members_hash,
        member_count=member_count,
        changes=tuple(changes),
        signature=signature,
    )
    _check_fields(epoch)
    return epoch


def _reorder(op: int, entry: tuple[str, bytes, bool]) -> tuple[str, int, bytes, bool]:
    identity, card_id, admin = entry
    return identity, op, card_id, admin


def verify_epoch_signature(epoch: Epoch, ed25519_public_key: bytes) -> None:
    """Check ``epoch``'s signature under the signer card's Ed25519 key (strict RFC 8032).

    Raises:
        EpochChainError: code ``bad_signature``.
    """
    try:
        crypto.ed25519_verify(
            crypto.ed25519_public_from_raw(ed25519_public_key),
            epoch.signature,
            _signed_message(encode_content(epoch)),
        )
    except (crypto.InvalidSignature, ValueError) as exc:
        raise EpochChainError("bad_signature", "the epoch signature does not verify") from exc


def check_successor(
    previous: Epoch | None, roster: Sequence[Member], epoch: Epoch
) -> tuple[Member, ...]:
    """Check that ``epoch`` may follow ``previous`` with ``roster`` (its roster);
    return the roster after ``epoch``.  ``previous`` None: ``epoch`` creates
    the group (``roster`` is then empty).

    The signer must be an admin of the *previous* roster, named there with
    this card (for epoch 0: an admin of the new roster); the one exception
    is a member leaving: any member may sign an epoch whose only change is
    its own removal.  The new roster must hash to the signed roster hash and
    have the signed size.  The signature itself is checked by
    :func:`verify_epoch_signature` with the signer's card, which the caller
    looks up by ``epoch.signer_card_id``.

    Raises:
        EpochChainError: codes ``not_genesis``, ``other_group``,
            ``stale_epoch`` (not the next number), ``broken_chain`` (previous
            hash), ``not_an_admin``, ``bad_changes`` (changes that don't
            apply), ``roster_mismatch`` (not the signed roster).
    """
    if previous is None:
        if epoch.number != 0:
            raise EpochChainError("not_genesis", "a group starts at epoch 0")
    else:
        if epoch.group_id != previous.group_id:
            raise EpochChainError("other_group", "the epoch belongs to another group")
        if epoch.number != previous.number + 1:
            raise EpochChainError("stale_epoch", "the epoch does not follow the current one")
        if not crypto.timing_safe_equal(epoch.previous_hash, previous.hash):
            raise EpochChainError("broken_chain", "the epoch names another previous epoch")
    try:
        after = apply_changes(roster, epoch.changes)
    except InvalidGroupObject as exc:
        raise EpochChainError("bad_changes", f"the changes do not apply: {exc}") from exc
    if len(after) != epoch.member_count or not crypto.timing_safe_equal(
        roster_hash(epoch.group_id, after), epoch.roster_hash
    ):
        raise EpochChainError("roster_mismatch", "the roster is not the one the epoch signs")
    deciding = after if previous is None else roster
    signer = next((m for m in deciding if m.card_id == epoch.signer_card_id), None)
    if signer is None:
        raise EpochChainError("not_an_admin", "the signer is not a member of the group")
    if signer.admin:
        return after
    leaving = (Change(signer.identity, OP_REMOVE, signer.card_id),)
    if previous is None or epoch.changes != leaving:
        raise EpochChainError("not_an_admin", "only an admin changes the roster")
    return after
