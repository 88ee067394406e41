"""LogMonitor.compare: a peer's checkpoint (carried in a sealed message) against ours.

Attack tests: a log that signed two trees for two people (same size, or a
longer tree that does not extend ours) is a SplitView with both notes; a
sender that carries a note for this log with a bad signature is refused; a
note of another log is no evidence of anything and is ignored.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import cast

import pytest

from chalicelib.wire import merkle
from chalicelib.wire.b64 import b64url_encode
from chalicelib.wire.checkpoint import sign_checkpoint
from chalicelib.wire.note import NoteSigner
from client_sim.api import ApiClient
from client_sim.errors import LogVerificationFailed, ServerError, SplitView
from client_sim.keystore import DeviceKey, Keystore
from client_sim.transparency import MAX_CHECKPOINT_AHEAD, LogMonitor

pytestmark = pytest.mark.unit

NOW = 1_764_000_000
LOG = NoteSigner.from_seed("log.example/kt", hashlib.sha256(b"gossip log").digest())
OTHER = NoteSigner.from_seed("other.example/kt", hashlib.sha256(b"gossip other").digest())


def leaves(tag: str, n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"{tag}/{i}".encode()) for i in range(n)]


HONEST = leaves("a", 8)
FORK = HONEST[:3] + leaves("b", 5)  # agrees on 3 leaves, then differs


def note(tree: list[bytes], size: int, *, at: int = NOW, signer: NoteSigner = LOG) -> str:
    return sign_checkpoint(signer.name, size, merkle.root_of(tree[:size]), at, signer)


class FakeLog:
    """The /v1/kt routes of a log serving ``tree`` (the server's current view)."""

    def __init__(self, tree: list[bytes]) -> None:
        self.tree = tree
        self.proofs: list[tuple[int, int]] = []
        self.down = False

    def kt_consistency(self, old: int, new: int) -> list[str]:
        if self.down:
            raise ServerError(503, "unavailable", "try later")
        self.proofs.append((old, new))
        if new > len(self.tree):
            raise ServerError(404, "not_found", "no such tree size")
        return [b64url_encode(h) for h in merkle.consistency_proof(old, self.tree[:new])]


def monitor(tmp_path: Path, log: FakeLog, ours: str | None) -> LogMonitor:
    keystore = Keystore(tmp_path, device_key=DeviceKey(hashlib.sha256(b"device").digest()))
    mon = LogMonitor(cast(ApiClient, log), keystore, LOG.verifier.vkey, clock=lambda: NOW)
    if ours is not None:
        mon.accept(ours)
    return mon


def test_a_consistent_older_checkpoint_is_proven_once(tmp_path: Path) -> None:
    log = FakeLog(HONEST)
    mon = monitor(tmp_path, log, note(HONEST, 6))
    assert mon.compare(note(HONEST, 4)) is not None
    assert mon.compare(note(HONEST, 4, at=NOW - 30)) is not None  # same tree, another signing
    assert log.proofs == [(4, 6)]
    assert mon.latest().size == 6  # type: ignore[union-attr]


def test_a_consistent_newer_checkpoint_advances_our_view(tmp_path: Path) -> None:
    log = FakeLog(HONEST)
    mon = monitor(tmp_path, log, note(HONEST, 4))
    newer = note(HONEST, 7)
    mon.compare(newer)
    assert mon.latest().note == newer  # type: ignore[union-attr]
    # Kept in the sealed state: a new monitor on the same keystore has it.
    assert monitor(tmp_path, log, None).latest().note == newer  # type: ignore[union-attr]


def test_a_newer_checkpoint_dated_in_the_future_does_not_advance(tmp_path: Path) -> None:
    log = FakeLog(HONEST)
    ours = note(HONEST, 4)
    mon = monitor(tmp_path, log, ours)
    # Further ahead than accept() would take (MAX_CHECKPOINT_AHEAD).
    mon.compare(note(HONEST, 7, at=NOW + MAX_CHECKPOINT_AHEAD + 3600))  # consistent: no alarm
    assert mon.latest().note == ours  # type: ignore[union-attr]
    # Within it (a phone whose clock is an hour slow): adopted.
    ahead = note(HONEST, 7, at=NOW + 3600)
    mon.compare(ahead)
    assert mon.latest().note == ahead  # type: ignore[union-attr]


@pytest.mark.parametrize(("our_size", "their_size"), [(5, 5), (4, 6), (6, 4)])
def test_a_forked_checkpoint_is_a_split_view_with_both_notes(
    tmp_path: Path, our_size: int, their_size: int
) -> None:
    # The server answers from our branch; the peer's note is from the fork.
    log = FakeLog(HONEST)
    ours, theirs = note(HONEST, our_size), note(FORK, their_size)
    mon = monitor(tmp_path, log, ours)
    with pytest.raises(SplitView) as info:
        mon.compare(theirs)
    assert (info.value.ours, info.value.theirs) == (ours, theirs)
    assert mon.latest().note == ours  # type: ignore[union-attr]
    if our_size == their_size:
        assert log.proofs == []  # two roots for one size: no proof needed


def test_a_checkpoint_beyond_what_the_log_admits_is_a_split_view(tmp_path: Path) -> None:
    log = FakeLog(HONEST[:5])  # the server shows us 5 leaves and denies more
    mon = monitor(tmp_path, log, note(HONEST, 5))
    with pytest.raises(SplitView):
        mon.compare(note(FORK, 7))


def test_a_bad_signature_for_this_log_is_refused(tmp_path: Path) -> None:
    log = FakeLog(HONEST)
    mon = monitor(tmp_path, log, note(HONEST, 4))
    impostor = NoteSigner.from_seed(LOG.name, hashlib.sha256(b"not the log").digest())
    with pytest.raises(LogVerificationFailed):
        mon.compare(note(FORK, 4, signer=impostor))
    good = note(HONEST, 4)
    tampered = good.replace("\n4\n", "\n5\n")
    with pytest.raises(LogVerificationFailed):
        mon.compare(tampered)


def test_another_logs_checkpoint_is_ignored(tmp_path: Path) -> None:
    log = FakeLog(HONEST)
    ours = note(HONEST, 4)
    mon = monitor(tmp_path, log, ours)
    assert mon.compare(note(FORK, 4, signer=OTHER)) is None
    assert log.proofs == []
    assert mon.latest().note == ours  # type: ignore[union-attr]


def test_a_first_checkpoint_from_a_peer_is_taken(tmp_path: Path) -> None:
    log = FakeLog(HONEST)
    mon = monitor(tmp_path, log, None)
    first = note(HONEST, 3)
    mon.compare(first)
    assert mon.latest().note == first  # type: ignore[union-attr]
    assert log.proofs == []


def test_a_failed_proof_request_decides_nothing(tmp_path: Path) -> None:
    log = FakeLog(HONEST)
    log.down = True
    ours = note(HONEST, 4)
    mon = monitor(tmp_path, log, ours)
    with pytest.raises(ServerError):
        mon.compare(note(HONEST, 6))
    assert mon.latest().note == ours  # type: ignore[union-attr]
    # Not remembered as proven: asked again next time.
    log.down = False
    mon.compare(note(HONEST, 6))
    assert log.proofs == [(4, 6)]
