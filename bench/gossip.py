"""Split-view gossip: what carrying and checking a log checkpoint costs a sealed message.

    python -m bench.gossip [--leaves N] [--rounds R] [--json]

* ``header_bytes``: the checkpoint field's size in a sealed header (the note
  of a log named like a deployed stage's, and the largest a Sealbox log signs);
* ``unframe_1k``: reading a 1 KiB sealed inner stream (framing and sender
  signature, no age) with the checkpoint field against the same stream
  without it, as a time ratio (the reader's shape check of the note);
* ``compare``: the device's check of a carried checkpoint
  (``LogMonitor.compare``) in a log of ``--leaves`` leaves, in ms: a note
  already proven (memory), one of the same size and root as the device's (log
  signature only), and a newer one (log signature, a consistency proof from
  an in-memory log, verified, and the sealed state file rewritten).  The
  proof request itself is a network round trip that a real device adds.

Absolute times are this machine's; the ratio is what to compare.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, cast


def _ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 4)


def _frame(data: bytes, sender: Any, recipients: list[Any], checkpoint: str | None) -> bytes:
    from client_sim.sealed import SealedWriter

    out = io.BytesIO()
    with SealedWriter(out, sender=sender, recipients=recipients, checkpoint=checkpoint) as writer:
        writer.write(data)
    return out.getvalue()


def run(leaves: int, rounds: int) -> dict[str, Any]:
    from chalicelib.wire import merkle
    from chalicelib.wire.b64 import b64url_encode
    from chalicelib.wire.checkpoint import sign_checkpoint
    from chalicelib.wire.note import NoteSigner
    from client_sim.api import ApiClient
    from client_sim.identity import KeyBundle
    from client_sim.keystore import DeviceKey, Keystore
    from client_sim.sealed import unframe
    from client_sim.transparency import LogMonitor

    now = int(time.time())
    signer = NoteSigner.from_seed("sealbox.example/prod/kt", hashlib.sha256(b"bench").digest())
    biggest = NoteSigner.from_seed("o" * 256, hashlib.sha256(b"bench big").digest())
    hashes = [os.urandom(32) for _ in range(leaves)]
    old_size = leaves - 1000
    old_note = sign_checkpoint(
        signer.name, old_size, merkle.root_of(hashes[:old_size]), now, signer
    )
    new_note = sign_checkpoint(signer.name, leaves, merkle.root_of(hashes), now, signer)
    proof = [b64url_encode(h) for h in merkle.consistency_proof(old_size, hashes)]
    out: dict[str, Any] = {
        "header_bytes": {
            "stage_log": 2 + len(new_note.encode()),
            "largest": 2
            + len(sign_checkpoint(biggest.name, 2**63, bytes(32), 2**63 - 1, biggest).encode()),
        }
    }

    data = os.urandom(1024)
    alice = KeyBundle.generate("alice", created_at=now)
    bob = KeyBundle.generate("bob", created_at=now)
    plain = _frame(data, alice, [alice, bob], None)
    carried = _frame(data, alice, [alice, bob], new_note)

    def read(stream: bytes) -> float:
        start = time.perf_counter()
        unframe(
            io.BytesIO(stream),
            io.BytesIO(),
            sender_cards=[alice.card],
            opener_card_ids=[bob.card_id],
        )
        return time.perf_counter() - start

    base, with_cp = [], []
    for _ in range(rounds):
        base.append(read(plain))
        with_cp.append(read(carried))
    out["unframe_1k"] = {
        "without_ms": _ms(base),
        "with_checkpoint_ms": _ms(with_cp),
        "ratio": round(statistics.median(with_cp) / statistics.median(base), 3),
    }

    class Log:
        def kt_consistency(self, old: int, new: int) -> list[str]:
            assert (old, new) == (old_size, leaves)
            return proof

    timings: dict[str, list[float]] = {"proven": [], "same_tree": [], "newer_with_proof": []}
    with tempfile.TemporaryDirectory() as home:
        key = DeviceKey(hashlib.sha256(b"bench device").digest())
        for i in range(rounds):
            keystore = Keystore(Path(home) / str(i), device_key=key)
            monitor = LogMonitor(
                cast(ApiClient, Log()), keystore, signer.verifier.vkey, clock=lambda: now
            )
            monitor.accept(old_note)
            start = time.perf_counter()
            monitor.compare(old_note)
            timings["same_tree"].append(time.perf_counter() - start)
            start = time.perf_counter()
            monitor.compare(new_note)
            timings["newer_with_proof"].append(time.perf_counter() - start)
            start = time.perf_counter()
            monitor.compare(old_note)
            timings["proven"].append(time.perf_counter() - start)
    out["compare"] = {"leaves": leaves, **{k: _ms(v) for k, v in timings.items()}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1 << 20)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print(json.dumps(run(args.leaves, args.rounds), indent=None if args.json else 2))


if __name__ == "__main__":
    main()
