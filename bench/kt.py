"""Key transparency: proof size, device verification time, publish cost, publish -> checkpoint.

    python -m bench.kt [--leaves N] [--publishes P] [--rounds R] [--json]

* ``proof_bytes``: the longest inclusion proof at 4 M leaves (and at ``--leaves``),
  against the goal 32 * ceil(log2 n) bytes (704 at 4 M);
* ``verify_50``: one device check of a 50-card lookup answer (checkpoint
  signature once, then for each card: rebuild the leaf from the card, verify
  the inclusion proof), in a tree of ``--leaves`` leaves; goal <= 5 ms;
* ``publish``: ``CardService.publish`` on moto in process (with the fleet's
  moto patches, which stop moto copying whole tables per transaction), ``P``
  first cards with the log on against the same with the log off (a stage
  without ``SEALBOX_KT_LOG_KEY_SECRET_ID``), as a throughput ratio (goal >= 0.8).
  Steady state: each container publishes one card untimed first, so neither
  side's one-time costs (botocore clients and their models, the log key's
  secret, the first read of the log head) are counted as throughput.  Both
  containers share one moto account per round and publish in alternating
  chunks of 10, so a shared machine's changing load falls on both alike
  (the garbage collector runs between chunks, as in ``timeit``); the ratio
  is the median over ``--rounds`` fresh accounts, in wall time and in CPU
  time (the work is all in this process).  The default 300 publishes
  include the rare appends that store a leaf bundle (every 8th) and a
  level-0 tile (the 256th);
* ``publish_to_checkpoint``: time from the start of a publish until
  ``GET /v1/kt/checkpoint``'s signed checkpoint includes the card (p50, p95).

Absolute times are this machine's and moto's; the ratio is what to compare.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import statistics
import time
from typing import Any

from bench._env import in_process_aws


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


def pure(leaves: int) -> dict[str, Any]:
    from chalicelib.wire import merkle
    from chalicelib.wire.b64 import b64url_encode
    from chalicelib.wire.checkpoint import open_log_checkpoint, sign_checkpoint
    from chalicelib.wire.ktleaf import LogLeaf
    from chalicelib.wire.ktverify import verify_card_in_log
    from chalicelib.wire.note import generate_signer
    from client_sim.identity import KeyBundle

    out: dict[str, Any] = {}
    for n in (4 * 1024 * 1024, leaves):
        longest = max(len(merkle.inclusion_ranges(i, n)) for i in (0, n // 3, n - 1)) * 32
        out[f"proof_bytes_at_{n}"] = {"max": longest, "goal": 32 * (n - 1).bit_length()}

    bundles = [KeyBundle.generate(f"user-{i:02d}", created_at=1_700_000_000) for i in range(50)]
    logged = [
        LogLeaf.publish(b.card, time=1_700_000_000, rotation_signature=None).encode()
        for b in bundles
    ]
    hashes = [os.urandom(32) for _ in range(leaves - 50)]
    positions = sorted(int(i * (leaves - 1) / 49) for i in range(50))
    for pos, leaf in zip(positions, logged, strict=True):
        hashes.insert(pos, merkle.leaf_hash(leaf))
    hashes = hashes[:leaves]
    root = merkle.root_of(hashes)
    signer = generate_signer("bench.invalid/kt")
    note = sign_checkpoint(signer.name, leaves, root, int(time.time()), signer)
    entries = []
    for b, pos in zip(bundles, positions, strict=True):
        entry = b.card.to_json()
        entries.append(
            (
                b.card,
                {
                    "card": entry,
                    "published_at": 1_700_000_000,
                    "log_index": pos,
                    "log_proof": [b64url_encode(h) for h in merkle.inclusion_proof(pos, hashes)],
                },
            )
        )
    samples, cpu = [], []
    for _ in range(30):
        started, cpu_started = time.perf_counter(), time.process_time()
        cp = open_log_checkpoint(note, signer.verifier, origin=signer.name)
        for card, entry in entries:
            verify_card_in_log(card, entry, cp)
        samples.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    # CPU time too: on a shared, loaded machine wall time mostly measures
    # the other processes.
    out["verify_50"] = {
        "leaves": leaves,
        "p50_ms": _pct(samples, 0.5),
        "p95_ms": _pct(samples, 0.95),
        "cpu_p50_ms": _pct(cpu, 0.5),
        "goal_ms": 5,
    }
    return out


def on_moto(publishes: int, rounds: int = 3, chunk: int = 10) -> dict[str, Any]:
    in_process_aws()
    from moto import mock_aws

    from chalicelib import wiring
    from chalicelib.config import Settings
    from chalicelib.storage.ktlog import ensure_log_key
    from chalicelib.wire.checkpoint import open_log_checkpoint
    from chalicelib.wire.note import parse_verifier_key
    from client_sim.identity import KeyBundle
    from sealbox_tools.fleet._moto import scaled_moto
    from sealbox_tools.local_stack import stage_environment
    from sealbox_tools.provisioning import provision

    logging.getLogger("sealbox.api").setLevel(logging.WARNING)
    env = stage_environment("test")
    out: dict[str, Any] = {"publishes": publishes, "rounds": rounds}
    modes = ("off", "on")
    wall: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    latencies: list[float] = []
    # Each round on a fresh moto account, with the fleet's moto patches
    # (sealbox_tools.fleet._moto): stock moto deep-copies every table a
    # transaction touches, so its cost grows with what is stored and the
    # log's extra items would be measured as moto's copying, not our work.
    for _ in range(rounds):
        with mock_aws(), scaled_moto():
            import boto3

            def clients(service: str) -> Any:
                return boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]

            provision(clients, stage="test")
            vkey = ensure_log_key(
                clients("secretsmanager"),
                env["SEALBOX_KT_LOG_KEY_SECRET_ID"],
                env["SEALBOX_KT_ORIGIN"],
            )
            verifier = parse_verifier_key(vkey)
            # Two containers on the same tables: "off" is a stage without
            # the log's secret, "on" the same stage with it.
            off_env = dict(env)
            off_env.pop("SEALBOX_KT_LOG_KEY_SECRET_ID")
            containers = {
                "off": wiring.Container(Settings.from_env(off_env)),
                "on": wiring.Container(Settings.from_env(env)),
            }
            now = int(time.time())
            queues: dict[str, list[Any]] = {}
            for mode, container in containers.items():
                warm, *queues[mode] = [
                    KeyBundle.generate(f"{mode}-{i:04d}", created_at=now)
                    for i in range(publishes + 1)
                ]
                container.cards.publish(warm.identity, warm.card.to_json())
            spent = {m: [0.0, 0.0] for m in modes}
            # Chunks of each mode in turn (which goes first alternates), so
            # the load of a shared machine falls on both alike.
            for turn, start in enumerate(range(0, publishes, chunk)):
                for mode in modes if turn % 2 == 0 else modes[::-1]:
                    cards = containers[mode].cards
                    # As timeit does: the collector runs between chunks, not
                    # in whichever chunk happens to cross its threshold.
                    gc.collect()
                    gc.disable()
                    t0, c0 = time.perf_counter(), time.process_time()
                    for b in queues[mode][start : start + chunk]:
                        cards.publish(b.identity, b.card.to_json())
                    spent[mode][0] += time.perf_counter() - t0
                    spent[mode][1] += time.process_time() - c0
                    gc.enable()
            for mode in modes:
                wall[mode].append(publishes / spent[mode][0])
                cpu[mode].append(publishes / spent[mode][1])
            # Publish -> a signed checkpoint that includes it, as a device reads it.
            on = containers["on"]
            assert on.transparency is not None
            for i in range(max(10, publishes // 3)):
                fresh = KeyBundle.generate(f"late-{i:04d}", created_at=now)
                t0 = time.perf_counter()
                on.cards.publish(fresh.identity, fresh.card.to_json())
                cp = open_log_checkpoint(
                    on.transparency.checkpoint(), verifier, origin=verifier.name
                )
                latencies.append(time.perf_counter() - t0)
                assert cp.size >= publishes + 1
    ratios = [on / off for on, off in zip(wall["on"], wall["off"], strict=True)]
    cpu_ratios = [on / off for on, off in zip(cpu["on"], cpu["off"], strict=True)]
    out["publish_per_s"] = {m: round(statistics.median(wall[m]), 1) for m in modes}
    out["publish_per_cpu_s"] = {m: round(statistics.median(cpu[m]), 1) for m in modes}
    out["publish_throughput_ratio_on_over_off"] = round(statistics.median(ratios), 3)
    out["publish_cpu_throughput_ratio_on_over_off"] = round(statistics.median(cpu_ratios), 3)
    out["publish_throughput_ratios_per_round"] = [round(r, 3) for r in ratios]
    out["publish_to_checkpoint"] = {
        "p50_ms": _pct(latencies, 0.5),
        "p95_ms": _pct(latencies, 0.95),
        "goal_p95_ms": 10_000,
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=100_000)
    parser.add_argument("--publishes", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="off/on alternations")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = {**pure(args.leaves), **on_moto(args.publishes, args.rounds)}
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
