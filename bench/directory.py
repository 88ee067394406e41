"""Key directory and device SDK latency, in process on moto.

    python -m bench.directory [--users N] [--rounds R] [--profile test|owasp] [--json]

Devices (``client_sim.Device``) talk to the Chalice app through
``ChaliceTransport`` on moto, so every number includes the whole path:
the SDK, JSON, the access-token check, the service, the DynamoDB adapter
and moto.  Reported:

* ``register``: ``Device.register`` end to end (account, login, access
  token, own-card check, key generation, card publication), per device;
* ``find``: one identity and 50 identities, *cold* (the card cache is empty,
  the access token is warm) against *cached* (no request at all);
* ``encrypt3``: ``Device.encrypt`` of 1 KiB and 1 MiB to three recipients
  whose cards are cached (signing, age to four recipients incl. the sender);
* ``dynamodb_requests_per_50_lookup``: requests the backend sends to DynamoDB
  for one ``GET /v1/cards`` of 50 identities, counted with a botocore event
  hook on the backend's client (the design says one BatchGetItem for the
  cards and the transparency log's head, and one for the proofs' tiles).

The password KDF on the devices is ``PASSWORD_KDF_SIMULATION`` (the device
side of a real registration adds one Argon2id at 64 MiB; bench.login
measures the server side).  Absolute times are this machine's; compare the
cold/cached ratio and the request count.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._env import in_process_aws


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] * 1000, 3),
    }


def _timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run(users: int, rounds: int, profile: str) -> dict[str, Any]:
    in_process_aws()
    from chalice.test import Client
    from moto import mock_aws

    from app import app
    from chalicelib import wiring
    from chalicelib.config import Settings
    from chalicelib.storage.appkeys import ensure_app_key
    from chalicelib.storage.ktlog import ensure_log_key
    from client_sim.device import Device
    from client_sim.passwords import PASSWORD_KDF_SIMULATION
    from client_sim.transport import ChaliceTransport
    from sealbox_tools.local_stack import PROJECT_DIR, stage_environment
    from sealbox_tools.provisioning import provision

    # After importing the app, which sets its own level: one access-log
    # line per request would drown the report.
    logging.getLogger("sealbox.api").setLevel(logging.WARNING)

    env = {**stage_environment("test"), "SEALBOX_ARGON2_PROFILE": profile}
    out: dict[str, Any] = {"users": users, "rounds": rounds, "server_argon2": profile}
    with mock_aws(), tempfile.TemporaryDirectory() as tmp:
        import boto3

        def clients(service: str) -> Any:
            return boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]

        provision(clients, stage="test")
        ensure_app_key(clients("secretsmanager"), env["SEALBOX_APP_KEY_SECRET_ID"], time.time())
        ensure_log_key(
            clients("secretsmanager"), env["SEALBOX_KT_LOG_KEY_SECRET_ID"], env["SEALBOX_KT_ORIGIN"]
        )
        container = wiring.Container(Settings.from_env(env))
        wiring.install(container)
        with Client(app, stage_name="test", project_dir=str(PROJECT_DIR)) as client:
            transport = ChaliceTransport(client)

            def device(name: str) -> Device:
                return Device(Path(tmp) / name, transport, kdf=PASSWORD_KDF_SIMULATION)

            password = "a benchmark password, long enough"
            names = [f"user-{i:03d}" for i in range(users)]
            phones: dict[str, Device] = {}
            register: list[float] = []
            for name in names:
                phones[name] = device(name)
                register.append(_timed(lambda n=name: phones[n].register(n, password)))
            out["register"] = _ms(register)

            reader = phones[names[0]]
            reader.find_users([names[0]])  # a warm access token; the rest is the lookup
            fifty = names[:50]
            cold_one: list[float] = []
            cached_one: list[float] = []
            cold_fifty: list[float] = []
            cached_fifty: list[float] = []
            for i in range(rounds):
                fresh = device(f"reader-{i}")
                fresh._home.mkdir(parents=True)
                # Reuse the reader's session: only the card cache is cold.
                fresh._store.save(reader._store.load())  # type: ignore[arg-type]
                fresh._session._access = reader._session._access
                cold_one.append(_timed(lambda d=fresh: d.find_users([names[1]])))
                cached_one.append(_timed(lambda d=fresh: d.find_users([names[1]])))
                cold_fifty.append(_timed(lambda d=fresh: d.find_users(fifty, refresh=True)))
                cached_fifty.append(_timed(lambda d=fresh: d.find_users(fifty)))
            out["find_1"] = {"cold": _ms(cold_one), "cached": _ms(cached_one)}
            out["find_50"] = {"cold": _ms(cold_fifty), "cached": _ms(cached_fifty)}
            out["find_cold_over_cached_p50"] = round(
                statistics.median(cold_one) / statistics.median(cached_one), 1
            )

            sender = phones[names[0]]
            recipients = names[1:4]
            sender.find_users(recipients)
            for size, label in ((1024, "1KiB"), (1024 * 1024, "1MiB")):
                data = os.urandom(size)
                samples = [
                    _timed(lambda d=data: sender.encrypt(d, to=recipients))
                    for _ in range(rounds if size < 65536 else max(3, rounds // 4))
                ]
                out[f"encrypt3_{label}"] = _ms(samples)

            calls: list[str] = []

            def count(model: Any, **_: Any) -> None:
                calls.append(model.name)

            ddb = container.dynamodb
            ddb.meta.events.register("before-call.dynamodb", count)
            reader.find_users(fifty, refresh=True)
            ddb.meta.events.unregister("before-call.dynamodb", count)
            out["dynamodb_requests_per_50_lookup"] = len(calls)
            out["dynamodb_operations"] = sorted(set(calls))
        wiring.reset()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.directory", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--users", type=int, default=60, help="devices to register (>= 51)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--profile", default="test", choices=("test", "owasp"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.users < 51:
        parser.error("--users must be at least 51 (a 50-identity lookup plus the reader)")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    r = run(args.users, args.rounds, args.profile)
    if args.json:
        print(json.dumps(r, indent=2))
        return

    def row(name: str, stats: dict[str, float]) -> str:
        return f"  {name:<28} p50 {stats['p50_ms']:9.3f} ms   p90 {stats['p90_ms']:9.3f} ms"

    print(
        f"key directory + device SDK, in process on moto "
        f"({r['users']} devices, server Argon2id profile {r['server_argon2']!r})"
    )
    print(row("register (per device)", r["register"]))
    print(row("find 1 identity, cold", r["find_1"]["cold"]))
    print(row("find 1 identity, cached", r["find_1"]["cached"]))
    print(row("find 50 identities, cold", r["find_50"]["cold"]))
    print(row("find 50 identities, cached", r["find_50"]["cached"]))
    print(row("encrypt 1 KiB to 3", r["encrypt3_1KiB"]))
    print(row("encrypt 1 MiB to 3", r["encrypt3_1MiB"]))
    print(f"  find 1 cold/cached p50 ratio: {r['find_cold_over_cached_p50']}")
    print(
        f"  DynamoDB requests per 50-identity lookup: {r['dynamodb_requests_per_50_lookup']} "
        f"({', '.join(r['dynamodb_operations'])})"
    )


if __name__ == "__main__":
    main()
