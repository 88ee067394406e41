"""History shares: an admin hands a member the secrets of past epochs.

By default a member added at epoch ``n`` holds no secret of an epoch before
``n``.  An admin may choose otherwise for one member: its device makes a
*history share* holding the secrets of a range of past epochs, HPKE-wrapped
to the member's current card and signed by the admin's card, and the server
keeps it (write-once) for that member alone (docs/spec/groups.md,
"History")::

    header    = "SBGSHARE" || u8(1) || group id (16) || u64(at epoch)
                || signer card id (32) || lp8(member identity) || member card id (32)
                || u64(first) || u64(last)
    info      = lp16("sealbox/v1/group-history-wrap") || SHA-256(header)
    body      = u8(kind) || enc || ct       HPKE SealBase(member card, info, aad = "",
                                            secret(first) || ... || secret(last))
    content   = header || body
    signature = Ed25519(signer card, lp16("sealbox/v1/group-history-signature") || content)
    share     = content || signature (64)

``at`` is the group's epoch when the share was made: the signer must be an
admin, and the member a member with that card, of the roster after epoch
``at``; ``first ≤ last ≤ at``.  The wrap kinds and HPKE suites are the
epoch wraps' (:data:`~chalicelib.wire.groups.KIND_X25519`,
:data:`~chalicelib.wire.groups.KIND_MLKEM768X25519`).  The device that
receives a share checks each secret against the key id its epoch signs, so
neither a lying admin nor the server can hand it a wrong secret silently.

Pure (no chalice, no boto3, no I/O): the backend parses and checks the
signature of shares it stores; devices parse what the backend serves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from chalicelib import crypto
from chalicelib.wire.binary import Reader, Truncated, lp16, u8, u64
from chalicelib.wire.groups import (
    CARD_ID_SIZE,
    GROUP_ID_BYTES,
    KIND_MLKEM768X25519,
    KIND_X25519,
    MAX_EPOCH,
    SIGNATURE_SIZE,
    EpochChainError,
    InvalidGroupObject,
)
from chalicelib.wire.identity import is_identity

__all__ = [
    "HISTORY_SIGNATURE_LABEL",
    "HISTORY_WRAP_LABEL",
    "MAX_SHARED_EPOCHS",
    "MAX_SHARE_SIZE",
    "SHARE_MAGIC",
    "SHARE_VERSION",
    "HistoryShare",
    "decode_share",
    "encode_share_content",
    "share_header",
    "share_id",
    "share_wrap_info",
    "sign_share",
    "verify_share_signature",
]

SHARE_MAGIC: Final = b"SBGSHARE"
SHARE_VERSION: Final = 1
HISTORY_WRAP_LABEL: Final = b"sealbox/v1/group-history-wrap"
HISTORY_SIGNATURE_LABEL: Final = b"sealbox/v1/group-history-signature"
#: Most epochs one share carries (32 KiB of secrets); more take several shares.
MAX_SHARED_EPOCHS: Final = 1024
SECRET_SIZE: Final = 32
_TAG_SIZE: Final = 16
_ENC_SIZES: Final = {KIND_X25519: 32, KIND_MLKEM768X25519: 1120}
#: The largest encoded share (a 255-byte identity, the largest range, a PQ wrap).
MAX_SHARE_SIZE: Final = (
    len(SHARE_MAGIC) + 1 + GROUP_ID_BYTES + 8 + CARD_ID_SIZE + 1 + 255 + CARD_ID_SIZE + 16
    + 1 + max(_ENC_SIZES.values()) + SECRET_SIZE * MAX_SHARED_EPOCHS + _TAG_SIZE
    + SIGNATURE_SIZE
)  # fmt: skip


@dataclass(frozen=True)
class HistoryShare:
    """A parsed (or about to be signed) history share; ``signature`` is empty before signing."""

    group_id: bytes
    at: int
    signer_card_id: bytes
    member: str
    member_card_id: bytes
    first: int
    last: int
    kind: int
    enc: bytes
    ct: bytes
    signature: bytes = b""

    @property
    def count(self) -> int:
        """How many epochs' secrets the share carries."""
        return self.last - self.first + 1

    @property
    def header(self) -> bytes:
        """The bytes the wrap's HPKE ``info`` binds (everything before the wrap)."""
        return share_header(self)

    @property
    def encoded(self) -> bytes:
        """The full encoding (content and signature)."""
        if len(self.signature) != SIGNATURE_SIZE:
            raise ValueError("the share is not signed")
        return encode_share_content(self) + self.signature


def _check(share: HistoryShare) -> None:
    if len(share.group_id) != GROUP_ID_BYTES:
        raise InvalidGroupObject("a group id is 16 bytes", "invalid_group_id")
    if len(share.signer_card_id) != CARD_ID_SIZE or len(share.member_card_id) != CARD_ID_SIZE:
        raise InvalidGroupObject("a card id is 32 bytes", "invalid_length")
    if not isinstance(share.member, str) or not is_identity(share.member):
        raise InvalidGroupObject("a member identity is not canonical", "invalid_identity")
    if not 0 <= share.first <= share.last <= share.at <= MAX_EPOCH:
        raise InvalidGroupObject("the range is not first <= last <= at", "invalid_range")
    if share.count > MAX_SHARED_EPOCHS:
        raise InvalidGroupObject(
            f"a share carries at most {MAX_SHARED_EPOCHS} epochs", "invalid_range"
        )
    if share.kind not in _ENC_SIZES:
        raise InvalidGroupObject("unknown wrap kind", "unknown_kind")
    if len(share.enc) != _ENC_SIZES[share.kind]:
        raise InvalidGroupObject("the wrap has the wrong size", "invalid_wrap")
    if len(share.ct) != SECRET_SIZE * share.count + _TAG_SIZE:
        raise InvalidGroupObject("the wrap does not hold one secret per epoch", "invalid_wrap")


def share_header(share: HistoryShare) -> bytes:
    """The header of ``share`` (see the module docstring).

    Raises:
        InvalidGroupObject: a field breaks the format's rules (not the wrap's).
    """
    return (
        SHARE_MAGIC
        + u8(SHARE_VERSION)
        + share.group_id
        + u64(share.at)
        + share.signer_card_id
        + u8(len(share.member))
        + share.member.encode("ascii")
        + share.member_card_id
        + u64(share.first)
        + u64(share.last)
    )


def share_wrap_info(header: bytes) -> bytes:
    """The HPKE ``info`` of a share's wrap: its label and the header's hash."""
    return lp16(HISTORY_WRAP_LABEL) + crypto.sha256(header)


def encode_share_content(share: HistoryShare) -> bytes:
    """The signed bytes of ``share``.

    Raises:
        InvalidGroupObject: a field breaks the format's rules.
    """
    _check(share)
    return share_header(share) + u8(share.kind) + share.enc + share.ct


def _signed_message(content: bytes) -> bytes:
    return lp16(HISTORY_SIGNATURE_LABEL) + content


def sign_share(share: HistoryShare, sign: Callable[[bytes], bytes]) -> HistoryShare:
    """``share`` signed with ``sign`` (the admin card's Ed25519 key)."""
    signature = sign(_signed_message(encode_share_content(share)))
    if len(signature) != SIGNATURE_SIZE:
        raise ValueError("an Ed25519 signature is 64 bytes")
    return dataclasses.replace(share, signature=signature)


def decode_share(data: bytes) -> HistoryShare:
    """Parse an encoded share (its signature is *not* verified here).

    Raises:
        InvalidGroupObject: anything but the one canonical encoding (codes
            ``bad_magic``, ``unsupported_version``, ``truncated``,
            ``trailing_data``, ``invalid_range``, ``invalid_wrap``, ...).
    """
    if not isinstance(data, bytes | bytearray):
        raise TypeError("a share is bytes")
    reader = Reader(bytes(data))
    try:
        if reader.take(len(SHARE_MAGIC)) != SHARE_MAGIC:
            raise InvalidGroupObject("not a history share", "bad_magic")
        if reader.u8() != SHARE_VERSION:
            raise InvalidGroupObject("unsupported share version", "unsupported_version")
        group_id = reader.take(GROUP_ID_BYTES)
        at = reader.u64()
        signer = reader.take(CARD_ID_SIZE)
        raw_member = reader.take(reader.u8())
        member_card = reader.take(CARD_ID_SIZE)
        first = reader.u64()
        last = reader.u64()
        kind = reader.u8()
        if kind not in _ENC_SIZES:
            raise InvalidGroupObject("unknown wrap kind", "unknown_kind")
        if not first <= last or last - first >= MAX_SHARED_EPOCHS:
            raise InvalidGroupObject("the range is not first <= last", "invalid_range")
        enc = reader.take(_ENC_SIZES[kind])
        ct = reader.take(SECRET_SIZE * (last - first + 1) + _TAG_SIZE)
        signature = reader.take(SIGNATURE_SIZE)
        if reader.remaining:
            raise InvalidGroupObject("bytes after the signature", "trailing_data")
    except Truncated as exc:
        raise InvalidGroupObject("the share is truncated", "truncated") from exc
    try:
        member = raw_member.decode("ascii")
    except UnicodeDecodeError as exc:
        raise InvalidGroupObject("a member identity is not ASCII", "invalid_identity") from exc
    share = HistoryShare(
        group_id=group_id,
        at=at,
        signer_card_id=signer,
        member=member,
        member_card_id=member_card,
        first=first,
        last=last,
        kind=kind,
        enc=enc,
        ct=ct,
        signature=signature,
    )
    _check(share)
    return share


def verify_share_signature(share: HistoryShare, ed25519_public_key: bytes) -> None:
    """Check ``share``'s signature under the signer card's Ed25519 key (strict RFC 8032).

    Raises:
        EpochChainError: code ``bad_signature``.
    """
    try:
        crypto.ed25519_verify(
            crypto.ed25519_public_from_raw(ed25519_public_key),
            share.signature,
            _signed_message(encode_share_content(share)),
        )
    except (crypto.InvalidSignature, ValueError) as exc:
        raise EpochChainError("bad_signature", "the share signature does not verify") from exc


def share_id(encoded: bytes) -> str:
    """The id a stored share is known by: the first 16 bytes of its SHA-256, in hex."""
    return crypto.sha256(encoded)[:16].hex()
