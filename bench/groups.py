"""Group epochs: the cost of a removal in a large group, and of a group message.

    python -m bench.groups [--members 1000] [--rounds 3] [--messages 200]
                           [--transport-members 100] [--json]

Measured in process, with real post-quantum cards (every member card has an
ML-KEM-768+X25519 key, so every wrap is the hybrid HPKE):

* ``remove_one``: an admin removes one member of ``--members``: a fresh
  epoch secret, one wrap per remaining card, the wraps object, the changes,
  the roster hash and the signature (``client_sim`` code, what
  ``Groups._propose`` does before it uploads); then what the server checks
  before it appends (decode, chain rules, wraps digest and index).  Goal:
  at most 2 s on this machine.
* ``member_download_bytes``: what a remaining member's device downloads to
  move to the new epoch, counted at its transports in an in-process run with
  real devices (:mod:`bench.group_transfer`, a group of
  ``--transport-members``): every reply body, by the catch-up frame the
  device uses (one reply: the delta, its own wrap and the roster check), by
  the JSON delta routes, and the baseline, the way devices moved on before
  deltas, counted the same way in the same run.  Goal: at most 1.3 KB of
  reply bodies, whatever the group size.
* ``message``: sealing 1 KiB for the group's epoch (one age recipient)
  against sealing it to one recipient card (the baseline); the ratio should
  be 1 +- 10 %, whatever ``--members``.

The HTTP and storage round trips are not included (they are the same few
requests whatever the group size).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from typing import Any

from bench import group_transfer
from chalicelib import crypto
from chalicelib.wire.cards import card_id_from_str
from chalicelib.wire.group_wraps import build_wraps, split_wraps
from chalicelib.wire.groups import (
    Epoch,
    Member,
    changes_between,
    check_successor,
    decode_epoch,
    roster_hash,
    sign_epoch,
    verify_epoch_signature,
)
from client_sim import sealed
from client_sim.group_chain import GroupChain, seal_for_epoch
from client_sim.group_keys import EpochSecret, epoch_kind_for, wrap_secret
from client_sim.identity import KeyBundle

GROUP_ID = bytes(range(16))


def _bundles(n: int) -> list[KeyBundle]:
    return [
        KeyBundle._from_seeds(
            f"user{i:05d}",
            ed25519_seed=crypto.sha256(b"e%d" % i),
            x25519_secret=crypto.sha256(b"x%d" % i),
            pq_seed=crypto.sha256(b"p%d" % i),
            created_at=1_700_000_000,
        )
        for i in range(n)
    ]


def _epoch(
    signer: KeyBundle,
    members: list[KeyBundle],
    previous: tuple[Epoch, tuple[Member, ...]] | None,
) -> tuple[Epoch, tuple[Member, ...], EpochSecret, bytes]:
    number = 0 if previous is None else previous[0].number + 1
    cards = [b.card for b in members]
    secret = EpochSecret.generate(group_id=GROUP_ID, number=number, kind=epoch_kind_for(cards))
    wraps = build_wraps(
        GROUP_ID, number, {card_id_from_str(c.card_id): wrap_secret(secret, c) for c in cards}
    )
    roster = tuple(
        sorted(Member(b.identity, card_id_from_str(b.card_id), b is signer) for b in members)
    )
    epoch = sign_epoch(
        Epoch(
            group_id=GROUP_ID,
            number=number,
            previous_hash=b"" if previous is None else previous[0].hash,
            created_at_ms=int(time.time() * 1000),
            signer_card_id=card_id_from_str(signer.card_id),
            wraps_digest=crypto.sha256(wraps),
            kind=secret.kind,
            key_id=secret.key_id(),
            roster_hash=roster_hash(GROUP_ID, roster),
            member_count=len(roster),
            changes=changes_between(() if previous is None else previous[1], roster),
        ),
        signer.sign,
    )
    return epoch, roster, secret, wraps


def _server_check(previous: Epoch, roster: tuple[Member, ...], epoch: Epoch, wraps: bytes,
                  signer: KeyBundle) -> None:  # fmt: skip
    parsed = decode_epoch(epoch.encoded)
    after = check_successor(previous, roster, parsed)
    verify_epoch_signature(parsed, signer.card.ed25519_public_key)
    assert crypto.sha256(wraps) == parsed.wraps_digest
    index, _ = split_wraps(wraps)
    assert set(index.entries) == {m.card_id for m in after}


def run(members: int, rounds: int, messages: int, transport_members: int) -> dict[str, Any]:
    people = _bundles(members)
    admin = people[0]
    e0, r0, s0, _ = _epoch(admin, people, None)
    device_times, server_times = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        e1, _, _, wraps = _epoch(admin, people[:-1], (e0, r0))
        device_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        _server_check(e0, r0, e1, wraps, admin)
        server_times.append(time.perf_counter() - start)

    # The admin's own view of epoch 0 (it made the secret).
    chain = GroupChain(head=e0, roster=r0)
    chain.secrets[0] = s0
    chain.key_ids[0] = s0.key_id()
    chain.readers[0] = frozenset(m.card_id for m in r0)
    plaintext = b"m" * 1024

    def group_message() -> None:
        seal_for_epoch(io.BytesIO(plaintext), io.BytesIO(), sender=admin, chain=chain)

    def one_recipient() -> None:
        sealed.seal(io.BytesIO(plaintext), io.BytesIO(), sender=admin, recipients=[people[1].card])

    group_t: list[float] = []
    single_t: list[float] = []
    for _ in range(messages):
        for fn, out in ((group_message, group_t), (one_recipient, single_t)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    group_ms = statistics.median(group_t) * 1000
    single_ms = statistics.median(single_t) * 1000
    return {
        "members": members,
        "member_download_bytes": group_transfer.run(transport_members),
        "remove_one": {
            "device_s_median": round(statistics.median(device_times), 3),
            "server_checks_s_median": round(statistics.median(server_times), 3),
            "goal_s": 2.0,
        },
        "whole_wraps_object_bytes": len(wraps),
        "message": {
            "group_ms_median": round(group_ms, 3),
            "one_recipient_ms_median": round(single_ms, 3),
            "ratio": round(group_ms / single_ms, 3),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--transport-members", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.members, args.rounds, args.messages, args.transport_members)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    remove, dl, msg = result["remove_one"], result["member_download_bytes"], result["message"]
    print(f"group of {args.members} members, post-quantum cards")
    print(
        f"remove one member: admin device {remove['device_s_median']} s "
        f"+ server checks {remove['server_checks_s_median']} s (goal <= 2 s)"
    )
    now, json_delta, before = dl["catchup"], dl["delta"], dl["full"]
    print(
        f"a remaining member of {dl['members']} moves on with {now['reply_bodies']} B of reply "
        f"bodies in {len(now['requests'])} reply (one catch-up frame, poll included; goal <= "
        f"1300 B); by the JSON delta routes {json_delta['reply_bodies']} B in "
        f"{len(json_delta['requests'])} replies; before deltas {before['reply_bodies']} B "
        f"(baseline); response headers (in process, a lower bound) {now['reply_headers']} B "
        f"vs {before['reply_headers']} B; the whole wraps object is "
        f"{result['whole_wraps_object_bytes']} B"
    )
    print(
        f"1 KiB message: group {msg['group_ms_median']} ms vs one recipient "
        f"{msg['one_recipient_ms_median']} ms (ratio {msg['ratio']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
