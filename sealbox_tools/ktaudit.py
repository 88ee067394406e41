"""An independent audit of a Sealbox key-transparency log: ``sealbox kt audit``.

Needs nothing but the API's URL and the log's verifier key.  It downloads
every entry, rebuilds the RFC 9162 tree, and checks:

* the latest checkpoint is signed by the log key and its root is the root of
  the downloaded entries;
* every checkpoint it is given (saved by earlier audits, or collected from
  devices) is signed by the log key and is the root of the same entries'
  prefix of its size: the log never rewrote what it had signed;
* every entry decodes (cards self-signed, fields matching the kind);
* each identity's card chain is valid: a first card only when the identity has
  none active, a rotation only from the identity's active card and signed by
  that card's key, a revocation only of the active card, and no card id twice.

Problems are collected, not raised: the report lists each with its entry
index.  Only an unreadable or unsigned log stops the audit (:class:`AuditFailed`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from chalicelib.wire import merkle
from chalicelib.wire.b64 import b64url_decode
from chalicelib.wire.cards import Card, InvalidCard, verify_rotation
from chalicelib.wire.checkpoint import Checkpoint, CheckpointError, open_log_checkpoint
from chalicelib.wire.ktleaf import InvalidLeaf, LeafKind, decode_leaf
from chalicelib.wire.note import NoteError, parse_verifier_key
from client_sim.api import ApiClient

__all__ = ["AuditFailed", "LogAuditReport", "audit_log"]


class AuditFailed(Exception):
    """The log could not be audited at all (unsigned checkpoint, unreadable entries)."""


@dataclass
class LogAuditReport:
    """What the audit found.  ``ok`` iff ``problems`` is empty."""

    size: int
    root: bytes
    checkpoint: str
    identities: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def audit_log(api: ApiClient, log_key: str, *, checkpoints: Iterable[str] = ()) -> LogAuditReport:
    """Audit the log behind ``api`` with only its verifier key ``log_key``.

    Raises:
        AuditFailed: the key is malformed, the latest checkpoint does not
            verify, or the entries can't be downloaded in order.
    """
    try:
        verifier = parse_verifier_key(log_key)
    except NoteError as exc:
        raise AuditFailed("the log key is malformed") from exc

    def opened(note: str) -> Checkpoint:
        try:
            return open_log_checkpoint(note, verifier, origin=verifier.name)
        except (NoteError, CheckpointError) as exc:
            raise AuditFailed(f"a checkpoint does not verify: {exc}") from exc

    latest = opened(api.kt_checkpoint())
    known = [opened(note) for note in checkpoints]
    report = LogAuditReport(latest.size, latest.root, latest.note)
    # Roots of every prefix a known checkpoint names, seen while folding.
    wanted = {cp.size for cp in known}
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT} if 0 in wanted else {}
    frontier: list[bytes] = []
    chains = _Chains(report.problems)
    size = 0
    while size < latest.size:
        page, _ = api.kt_entries(size, min(100, latest.size - size))
        if not page:
            raise AuditFailed(f"the log stopped serving entries at {size}")
        for index, raw in page:
            if index != size:
                raise AuditFailed("the log served entries out of order")
            leaf = b64url_decode(raw)
            frontier = merkle.frontier_append(frontier, size, merkle.leaf_hash(leaf))
            size += 1
            if size in wanted:
                roots[size] = merkle.frontier_root(frontier)
            chains.apply(index, leaf)
            if size == latest.size:
                break
    if merkle.frontier_root(frontier) != latest.root:
        report.problems.append("the entries do not hash to the latest checkpoint's root")
    for cp in known:
        if cp.size > latest.size:
            report.problems.append(
                f"a signed checkpoint of size {cp.size} is larger than the log now "
                f"({latest.size}): the log was rolled back"
            )
        elif roots.get(cp.size) != cp.root:
            report.problems.append(
                f"the signed checkpoint of size {cp.size} is not a prefix of the log: "
                "the log was rewritten or forked"
            )
    report.identities = len(chains.seen)
    return report


class _Chains:
    """Each identity's card chain, replayed entry by entry."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        self.active: dict[str, Card] = {}
        self.seen: set[str] = set()
        self.card_ids: set[str] = set()

    def apply(self, index: int, raw: bytes) -> None:
        try:
            event = decode_leaf(raw)
        except InvalidLeaf as exc:
            self.problems.append(f"entry {index}: malformed ({exc})")
            return
        self.seen.add(event.identity)
        active = self.active.get(event.identity)
        if event.kind is LeafKind.REVOKE:
            if active is None or active.card_id != event.card_id:
                self.problems.append(f"entry {index}: revokes a card that is not active")
            else:
                del self.active[event.identity]
            return
        card = event.card
        assert card is not None  # decode_leaf guarantees it for publish/rotate
        if event.card_id in self.card_ids:
            self.problems.append(f"entry {index}: card {event.card_id} published twice")
        self.card_ids.add(event.card_id)
        if event.kind is LeafKind.PUBLISH and active is not None:
            self.problems.append(
                f"entry {index}: a first card for {event.identity} while it has an active one"
            )
        elif event.kind is LeafKind.ROTATE:
            if active is None or active.card_id != event.previous_card_id:
                self.problems.append(
                    f"entry {index}: a rotation of {event.identity} from a card that is not active"
                )
            else:
                try:
                    verify_rotation(active, card, event.rotation_signature)
                except InvalidCard:
                    self.problems.append(
                        f"entry {index}: rotation of {event.identity} "
                        "not signed by the previous key"
                    )
        self.active[event.identity] = card
