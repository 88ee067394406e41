"""The device's view of the key-transparency log: checkpoints, proofs, self-monitoring.

One job: decide whether what the directory says is what the log says.

* The log's verifier key is **pinned** in the SDK configuration
  (``Device(..., log_key=...)``), never fetched; its key name is the log's
  origin.
* Every checkpoint the device accepts is signed by that key and consistent
  with the last one it accepted (an RFC 9162 consistency proof from the
  server); if the two can't be connected the device raises
  :class:`~client_sim.errors.SplitView` carrying both signed checkpoints.
* A checkpoint older than ``max_age`` seconds is refreshed before use.  Age
  is judged against the device's estimate of the log's time (see
  :meth:`LogMonitor.log_now`), so a phone whose clock is slow or stood still
  while it slept doesn't refuse the log's current checkpoints as "from the
  future", and still can't be held on an old view once its clock moves.
* Every card the device is about to use comes with an inclusion proof of its
  publish leaf (:func:`chalicelib.wire.ktverify.verify_card_in_log`).
* :meth:`LogMonitor.monitor` downloads the log entries added since the last
  run, rebuilds the tree from the stored frontier to check they are the
  signed log, and reports every entry for the device's own identity that
  names a card it did not publish (:class:`~client_sim.errors.UnexpectedKeyEvent`).

State (last checkpoint, how far the device monitored, the frontier there)
lives in the sealed side file ``keystore/kt.sbs`` (label
``sealbox/v1/kt-state``), like the card cache; a file that fails
authentication reads as absent.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from chalicelib.wire import merkle
from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.cards import Card
from chalicelib.wire.checkpoint import Checkpoint, CheckpointError, open_log_checkpoint
from chalicelib.wire.ktleaf import InvalidLeaf, LeafKind, decode_leaf
from chalicelib.wire.ktverify import CardNotInLog, verify_card_in_log
from chalicelib.wire.note import NoteError, NoteVerifier, parse_verifier_key
from client_sim.api import ApiClient
from client_sim.errors import (
    InvalidInput,
    LogVerificationFailed,
    ServerError,
    SplitView,
    UnexpectedKeyEvent,
)
from client_sim.keystore import Keystore, KeystoreCorrupted

__all__ = [
    "DEFAULT_MAX_CHECKPOINT_AGE",
    "DEFAULT_MONITOR_INTERVAL",
    "KT_STATE_FILE",
    "KT_STATE_LABEL",
    "KT_STATE_MAGIC",
    "MAX_CHECKPOINT_AHEAD",
    "LogMonitor",
]

KT_STATE_FILE: Final = "kt.sbs"
KT_STATE_MAGIC: Final = b"SBKTSTAT"
KT_STATE_LABEL: Final = b"sealbox/v1/kt-state"
KT_STATE_VERSION: Final = 2
# Version 1 lacked the log-time fields; it is read with them unset.
_READABLE_VERSIONS: Final = frozenset({1, 2})
MAX_KT_STATE_SIZE: Final = 256 * 1024
#: How old (seconds, against the device's estimate of the log's time) a
#: checkpoint may be before the device asks for a fresh one.
DEFAULT_MAX_CHECKPOINT_AGE: Final = 600
#: How often (seconds of the device's estimate of the log's time) a device
#: checks its own identity's log entries when it looks cards up, besides at
#: every login.
DEFAULT_MONITOR_INTERVAL: Final = 3600
#: How far (seconds) a checkpoint may be dated ahead of both the device's
#: clock and its estimate of the log's time.  Generous on purpose: a phone
#: whose clock is slow, or stood still while it slept, sees honest
#: checkpoints "from the future"; the bound only limits how far a checkpoint
#: signed with a future date (which takes the log key) can push the device's
#: estimate ahead and so make honest checkpoints look stale for a while.
MAX_CHECKPOINT_AHEAD: Final = 24 * 3600


@dataclass
class _State:
    checkpoint: str = ""
    monitored: int = 0
    frontier: list[bytes] = field(default_factory=list)
    # The newest checkpoint time accepted (the log's clock, seconds) and the
    # device clock's reading when it was accepted; 0 when unknown.
    log_time: float = 0.0
    log_time_seen_at: float = 0.0
    # For each contact the device watches: the newest log entry it has seen
    # for that identity while monitoring (index, card id, kind).
    newest: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    # The estimate of the log's time at the last monitoring that passed.
    monitored_at: float = 0.0


def _newer(new: Checkpoint, old: Checkpoint) -> bool:
    """``new`` is a larger tree than ``old``, or the same size signed later."""
    return new.size > old.size or (
        new.size == old.size and (new.timestamp or 0) > (old.timestamp or 0)
    )


class LogMonitor:
    """Checks checkpoints, card proofs and this identity's log entries for one device.

    Args:
        api: the HTTP client (the ``/v1/kt`` routes are public).
        keystore: where the sealed state file lives.
        log_key: the log's pinned verifier key (``name+id+key``).
        max_age: checkpoints older than this many seconds are refreshed.

    Raises (from the constructor):
        InvalidInput: the pinned key is malformed.
    """

    def __init__(
        self,
        api: ApiClient,
        keystore: Keystore,
        log_key: str,
        *,
        max_age: float = DEFAULT_MAX_CHECKPOINT_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            self._verifier: NoteVerifier = parse_verifier_key(log_key)
        except NoteError as exc:
            raise InvalidInput("the pinned transparency log key is malformed") from exc
        self._api = api
        self._keystore = keystore
        self._max_age = max_age
        self._clock = clock
        self._state: _State | None = None
        # (size, root) of peers' checkpoints proven to be prefixes of this
        # device's view (see compare): never asked about again.
        self._proven: set[tuple[int, bytes]] = set()

    @property
    def origin(self) -> str:
        return self._verifier.name

    # --- checkpoints --------------------------------------------------------------

    def latest(self) -> Checkpoint | None:
        """The last checkpoint this device accepted (None before the first)."""
        state = self._load()
        return self._open(state.checkpoint) if state.checkpoint else None

    def accept(self, note: str) -> Checkpoint:
        """Verify ``note`` and make it the device's checkpoint if it is newer.

        Raises:
            LogVerificationFailed: not signed by the pinned key, another
                log's, or too far in the future.
            SplitView: it is not consistent with the stored checkpoint.
        """
        new = self._open(note)
        now = self._clock()
        state = self._load()
        if self._too_far_ahead(state, new, now):
            raise LogVerificationFailed("the log's checkpoint is dated too far in the future")
        changed = self._saw_time(state, new, now)
        if state.checkpoint:
            old = self._open(state.checkpoint)
            self._check_consistent(old, new)
            if not _newer(new, old):
                if changed:
                    self._save(state)
                return new
        state.checkpoint = note
        self._save(state)
        return new

    def log_now(self) -> float:
        """The device's estimate of the log's current time (seconds).

        The later of the device's clock and the newest checkpoint time it
        accepted plus the device-clock time elapsed since.  A correct clock
        gives the clock itself, so an old checkpoint is refused exactly as by
        the clock; a clock that is slow, or stood still while the phone
        slept, is carried forward by what the log has already shown, so honest
        checkpoints are not refused as "from the future"; and once the clock
        moves again, a view the server holds still goes stale.  A clock
        running fast by more than ``max_age`` makes every checkpoint look
        stale: that phone can't use the log until its clock is corrected.
        """
        now = self._clock()
        return max(now, self._estimate(self._load(), now))

    def _too_far_ahead(self, state: _State, checkpoint: Checkpoint, now: float) -> bool:
        return checkpoint.timestamp is not None and checkpoint.timestamp > (
            max(now, self._estimate(state, now)) + MAX_CHECKPOINT_AHEAD
        )

    @staticmethod
    def _saw_time(state: _State, checkpoint: Checkpoint, now: float) -> bool:
        """Record the log's signed time if it is the newest seen; True if so."""
        if checkpoint.timestamp is None or checkpoint.timestamp <= state.log_time:
            return False
        state.log_time, state.log_time_seen_at = float(checkpoint.timestamp), now
        return True

    @staticmethod
    def _estimate(state: _State, now: float) -> float:
        if not state.log_time:
            return now
        # A clock set back (the user corrected it) counts as no time passed.
        return state.log_time + max(0.0, now - state.log_time_seen_at)

    def fresh(self) -> Checkpoint:
        """A checkpoint no older than ``max_age``, asking the log when needed."""
        current = self.latest()
        if current is not None and self._young(current):
            return current
        accepted = self.accept(self._api.kt_checkpoint())
        if not self._young(accepted):
            raise LogVerificationFailed("the log serves only stale checkpoints")
        return accepted

    def compare(self, note: str) -> Checkpoint | None:
        """Check a peer's checkpoint (carried in a sealed message) against ours.

        This is split-view detection by gossip (docs/spec/transparency.md):
        the log signed ``note`` for someone else's device; if it can't be
        connected to what it signed for this one, the log forked.  The note
        authenticates itself (the log's signature), so it does not matter
        who carried it.  A consistent note that is newer than ours becomes
        ours, so gossip spreads freshness too -- unless it is dated too far
        ahead (:data:`MAX_CHECKPOINT_AHEAD`, the bound of :meth:`accept`),
        which leaves ours as it is.  A note already proven to be a prefix of
        our view is not asked about again.

        Returns:
            The peer's checkpoint, or None for a note of another log (another
            origin: nothing to compare, e.g. across a log key rotation).

        Raises:
            LogVerificationFailed: it names this log's origin but is not
                validly signed by the pinned key (a broken or hostile sender:
                nobody else could have made it).
            SplitView: the two can't be connected: the log showed us
                different trees.  ``ours`` is this device's checkpoint,
                ``theirs`` the peer's.
            ServerError / ConnectionFailed: the consistency proof could not
                be fetched (nothing is decided, nothing stored).
        """
        if note.split("\n", 1)[0] != self.origin:
            return None
        theirs = self._open(note)
        ours = self.latest()
        if ours is not None and (theirs.size, theirs.root) not in self._proven:
            self._check_consistent(ours, theirs)
        if ours is None or _newer(theirs, ours):
            now = self._clock()
            state = self._load()
            if self._too_far_ahead(state, theirs, now):
                return theirs  # consistent, but not adopted: see accept()
            state.checkpoint = note
            self._saw_time(state, theirs, now)  # the log's signed time, whoever carried it
            self._save(state)
        if len(self._proven) >= 1024:
            self._proven.clear()
        self._proven.add((theirs.size, theirs.root))
        return theirs

    def _young(self, checkpoint: Checkpoint) -> bool:
        return checkpoint.timestamp is not None and (
            self.log_now() - checkpoint.timestamp <= self._max_age
        )

    def _open(self, note: str) -> Checkpoint:
        try:
            return open_log_checkpoint(note, self._verifier, origin=self._verifier.name)
        except (NoteError, CheckpointError) as exc:
            raise LogVerificationFailed("the log's checkpoint does not verify") from exc

    def _check_consistent(self, a: Checkpoint, b: Checkpoint) -> None:
        old, new = (a, b) if a.size <= b.size else (b, a)
        try:
            if old.size == new.size:
                proof: list[bytes] = []
            else:
                proof = [
                    b64url_decode(h, max_len=merkle.HASH_SIZE)
                    for h in self._api.kt_consistency(old.size, new.size)
                ]
            merkle.verify_consistency(old.size, new.size, old.root, new.root, proof)
        except ValueError as exc:
            raise SplitView(a.note, b.note) from exc
        except ServerError as exc:
            if exc.status == 404:
                # The log denies ever having been as large as a checkpoint it
                # signed: it was rolled back or forked.
                raise SplitView(a.note, b.note) from exc
            raise

    # --- cards --------------------------------------------------------------------

    def verify_cards(self, entries: Sequence[tuple[Card, Mapping[str, Any]]], note: str) -> None:
        """Check that every card answer is in the log, under the answer's checkpoint.

        Raises:
            LogVerificationFailed: a card without a valid inclusion proof, or
                a checkpoint that does not verify or is stale.
            SplitView: the answer's checkpoint contradicts the stored one.
        """
        checkpoint = self.accept(note)
        if not self._young(checkpoint):
            raise LogVerificationFailed("the card answer's checkpoint is too old")
        newest = self._load().newest
        for card, entry in entries:
            try:
                index = verify_card_in_log(card, entry, checkpoint)
            except CardNotInLog as exc:
                raise LogVerificationFailed(
                    f"card {card.card_id} of {card.identity} is not in the transparency log"
                ) from exc
            seen = newest.get(card.identity)
            if entry.get("status") == "active" and seen is not None and seen[0] > index:
                # The log moved this identity on (a rotation, a reset, a
                # revocation) after this card: the directory hides it.
                raise LogVerificationFailed(
                    f"the directory answered card {card.card_id} of {card.identity} as "
                    f"active, but the log holds a later {seen[2]} (card {seen[1]}, "
                    f"entry {seen[0]})"
                )

    # --- self-monitoring ------------------------------------------------------------

    def monitoring_due(self, interval: float) -> bool:
        """True when the last monitoring that passed is ``interval`` seconds
        old or more (by :meth:`log_now`), or there was none."""
        return self.log_now() - self._load().monitored_at >= interval

    def monitor(
        self,
        identity: str,
        own_card_ids: Collection[str],
        *,
        active_card_id: str | None = None,
        watch: Collection[str] = (),
    ) -> int:
        """Read the log entries added since the last run and check this identity's.

        Returns how many entries were checked.

        Raises:
            UnexpectedKeyEvent: an entry publishes or rotates to a card of
                ``identity`` that is not in ``own_card_ids``, or revokes
                ``active_card_id`` (the card this device still uses: it
                didn't revoke it, since revoking wipes the device) — the state
                is not advanced, so it is reported again until resolved.

        For every identity in ``watch`` (the contacts this device pinned) it
        remembers the newest entry it read; a later directory answer that
        gives one of them an older card as active is refused by
        :meth:`verify_cards` (a rotation, reset or revocation hidden from
        this device).
            LogVerificationFailed / SplitView: the entries are not the
                signed log.
        """
        # Always the log's latest: monitoring against a cached checkpoint
        # would miss what was logged since.
        checkpoint = self.accept(self._api.kt_checkpoint())
        if not self._young(checkpoint):
            raise LogVerificationFailed("the log serves only stale checkpoints")
        state = self._load()
        frontier, size = list(state.frontier), state.monitored
        if size > checkpoint.size:
            raise SplitView(state.checkpoint, checkpoint.note)
        unexpected: list[tuple[int, str, str]] = []
        watched = set(watch)
        newest = dict(state.newest)
        while size < checkpoint.size:
            page, _ = self._api.kt_entries(size, min(100, checkpoint.size - size))
            if not page:
                raise LogVerificationFailed("the log stopped serving entries")
            for index, raw in page:
                if index != size:
                    raise LogVerificationFailed("the log served entries out of order")
                leaf = b64url_decode(raw)
                frontier = merkle.frontier_append(frontier, size, merkle.leaf_hash(leaf))
                size += 1
                try:
                    event = decode_leaf(leaf)
                except InvalidLeaf as exc:
                    raise LogVerificationFailed("the log holds a malformed entry") from exc
                if event.identity == identity and (
                    (event.kind is LeafKind.REVOKE and event.card_id == active_card_id)
                    or (event.kind is not LeafKind.REVOKE and event.card_id not in own_card_ids)
                ):
                    unexpected.append((index, event.kind.name.lower(), event.card_id))
                if event.identity in watched:
                    newest[event.identity] = (index, event.card_id, event.kind.name.lower())
                if size == checkpoint.size:
                    break
        if merkle.frontier_root(frontier) != checkpoint.root:
            raise SplitView(state.checkpoint or checkpoint.note, checkpoint.note)
        if unexpected:
            # A foreign card outranks a revocation: it is what someone could
            # be encrypting to right now.
            index, kind, card_id = min(unexpected, key=lambda u: (u[1] == "revoke", u[0]))
            raise UnexpectedKeyEvent(identity, card_id, kind, index, checkpoint.note)
        checked = size - state.monitored
        state.monitored, state.frontier = size, frontier
        state.newest = {k: v for k, v in newest.items() if k in watched}
        state.monitored_at = self.log_now()
        self._save(state)
        return checked

    # --- sealed state -----------------------------------------------------------------

    def _load(self) -> _State:
        if self._state is not None:
            return self._state
        self._state = _State()
        try:
            body = self._keystore.read_sealed(
                KT_STATE_FILE, KT_STATE_MAGIC, KT_STATE_LABEL, MAX_KT_STATE_SIZE
            )
        except KeystoreCorrupted:
            return self._state
        if body is None:
            return self._state
        try:
            doc = json.loads(body)
            if doc.get("version") not in _READABLE_VERSIONS:
                return self._state
            state = _State(
                str(doc["checkpoint"]),
                int(doc["monitored"]),
                [b64url_decode(h, max_len=merkle.HASH_SIZE) for h in doc["frontier"]],
                float(doc.get("log_time", 0.0)),
                float(doc.get("log_time_seen_at", 0.0)),
                {
                    str(who): (int(i), str(card), str(kind))
                    for who, (i, card, kind) in doc.get("newest", {}).items()
                },
                float(doc.get("monitored_at", 0.0)),
            )
            if len(state.frontier) != state.monitored.bit_count() or not (
                math.isfinite(state.log_time)
                and math.isfinite(state.log_time_seen_at)
                and math.isfinite(state.monitored_at)
            ):
                return self._state
        except (ValueError, KeyError, TypeError, AttributeError):
            return self._state
        self._state = state
        return state

    def _save(self, state: _State) -> None:
        self._state = state
        body = json.dumps(
            {
                "version": KT_STATE_VERSION,
                "checkpoint": state.checkpoint,
                "monitored": state.monitored,
                "frontier": [b64url_encode(h) for h in state.frontier],
                "log_time": state.log_time,
                "log_time_seen_at": state.log_time_seen_at,
                "newest": {who: list(v) for who, v in sorted(state.newest.items())},
                "monitored_at": state.monitored_at,
            },
            sort_keys=True,
        ).encode("utf-8")
        self._keystore.write_sealed(KT_STATE_FILE, KT_STATE_MAGIC, KT_STATE_LABEL, body)
