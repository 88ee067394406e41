"""Password hardening cost: the server's OPRF evaluation, and login/restore with vs without it.

    python -m bench.oprf [--evaluations N] [--rounds R] [--kdf v1|simulation] [--json]

Reports, on this machine:

* ``evaluate``: one server-side evaluation as ``POST /v1/oprf`` runs it
  (derive the account key, evaluate, DLEQ proof, certificate), p50/p95 over
  ``--evaluations``; next to it one Argon2id verification of a login key
  with the production (OWASP) profile, the server's other per-login cost,
  measured in the same run;
* ``login``: a new phone logging in and restoring its keys from the backup
  (``Device.login``), in process on moto through ``chalice.test.Client``,
  with hardening on and off, ``--rounds`` times each, alternating;
* ``restore``: ``Device.restore_private_key`` on a logged-in phone, on and off;
* the request count of each, from a recording transport.

The goal (issue #14): evaluation <= 2 ms; login and restore with hardening
<= 1.1 x without (Argon2id on the device dominates); one request more.
Ratios are the portable result: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._env import in_process_aws


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p95_ms": round(_percentile(samples, 0.95), 3),
    }


def bench_evaluate(evaluations: int) -> dict[str, Any]:
    from chalicelib import crypto
    from chalicelib.config import ARGON2_PROFILES
    from chalicelib.wire import oprf
    from chalicelib.wire.oprf_keys import OprfKey

    key = OprfKey.generate(1, created_at=0)
    _, blinded = oprf.blind(b"bench input", oprf.MODE_VOPRF)
    key.evaluate("warm-up", blinded)  # the lazy libsodium import
    samples = []
    for i in range(evaluations):
        started = time.perf_counter()
        key.evaluate(f"user-{i}", blinded)
        samples.append((time.perf_counter() - started) * 1000)
    memory, iterations, lanes = ARGON2_PROFILES["owasp"]
    phc = crypto.argon2id_hash(bytes(32), memory_kib=memory, iterations=iterations, lanes=lanes)
    argon = []
    for _ in range(max(5, evaluations // 50)):
        started = time.perf_counter()
        crypto.argon2id_verify(bytes(32), phc)
        argon.append((time.perf_counter() - started) * 1000)
    out: dict[str, Any] = {"evaluate": _ms(samples), "argon2id_verify_owasp": _ms(argon)}
    out["evaluate_over_argon2id_p50"] = round(
        out["evaluate"]["p50_ms"] / out["argon2id_verify_owasp"]["p50_ms"], 4
    )
    return out


class _Counting:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.count = 0

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        self.count += 1
        return self.inner.request(method, path, **kwargs)


def bench_flows(rounds: int, kdf_name: str) -> dict[str, Any]:
    in_process_aws()
    import logging

    from chalice.test import Client
    from moto import mock_aws

    from app import app
    from chalicelib import wiring
    from chalicelib.config import Settings
    from chalicelib.storage.appkeys import ensure_app_key
    from chalicelib.storage.oprfkeys import ensure_oprf_key
    from client_sim.device import Device
    from client_sim.passwords import PASSWORD_KDF_SIMULATION, PASSWORD_KDF_V1
    from client_sim.transport import ChaliceTransport, InProcessObjectTransport
    from sealbox_tools.local_stack import PROJECT_DIR, stage_environment
    from sealbox_tools.provisioning import provision

    # One access-log line per request would drown the report.
    logging.getLogger("sealbox.api").setLevel(logging.WARNING)
    kdf = PASSWORD_KDF_V1 if kdf_name == "v1" else PASSWORD_KDF_SIMULATION
    env = {**stage_environment("test"), "SEALBOX_ARGON2_PROFILE": "owasp"}
    password = "correct horse battery staple"
    times: dict[str, list[float]] = {
        "login_plain": [],
        "login_oprf": [],
        "restore_plain": [],
        "restore_oprf": [],
    }
    requests: dict[str, int] = {}
    with mock_aws(), tempfile.TemporaryDirectory() as tmp:
        import boto3

        def clients(service: str) -> Any:
            return boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]

        provision(clients, stage="test")
        sm = clients("secretsmanager")
        ensure_app_key(sm, env["SEALBOX_APP_KEY_SECRET_ID"], time.time())
        oprf_key = ensure_oprf_key(sm, env["SEALBOX_OPRF_KEY_SECRET_ID"], time.time())
        roots = {oprf_key.version: oprf_key.root_public}
        wiring.install(wiring.Container(Settings.from_env(env)))
        with Client(app, stage_name="test", project_dir=str(PROJECT_DIR)) as client:
            transport = _Counting(ChaliceTransport(client))

            def device(name: str, hardened: bool) -> Device:
                return Device(
                    Path(tmp) / name,
                    transport,  # type: ignore[arg-type]
                    kdf=kdf,
                    sleep=lambda _: None,
                    objects=InProcessObjectTransport(),
                    oprf_roots=roots if hardened else None,
                )

            for i in range(rounds):
                for mode, hardened in (("plain", False), ("oprf", True)):
                    user = f"{mode}-{i}"
                    first = device(f"{user}-a", hardened)
                    first.register(user, password)
                    first.backup_private_key()
                    phone = device(f"{user}-b", hardened)
                    transport.count = 0
                    started = time.perf_counter()
                    phone.login(user, password)
                    times[f"login_{mode}"].append(time.perf_counter() - started)
                    requests[f"login_{mode}"] = transport.count
                    transport.count = 0
                    started = time.perf_counter()
                    phone.restore_private_key(password)
                    times[f"restore_{mode}"].append(time.perf_counter() - started)
                    requests[f"restore_{mode}"] = transport.count
        wiring.reset()
    out: dict[str, Any] = {"kdf": kdf_name, "rounds": rounds, "requests": requests}
    for name, samples in times.items():
        out[name] = _ms([s * 1000 for s in samples])
    for flow in ("login", "restore"):
        out[f"{flow}_oprf_over_plain_p50"] = round(
            out[f"{flow}_oprf"]["p50_ms"] / out[f"{flow}_plain"]["p50_ms"], 3
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evaluations", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kdf", default="v1", choices=("v1", "simulation"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    summary = {
        "server": bench_evaluate(args.evaluations),
        "device": bench_flows(args.rounds, args.kdf),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    server, device = summary["server"], summary["device"]
    print("OPRF evaluation (server side, per request)")
    print(
        f"  evaluate          p50 {server['evaluate']['p50_ms']:8.3f} ms   "
        f"p95 {server['evaluate']['p95_ms']:8.3f} ms"
    )
    print(f"  Argon2id (owasp)  p50 {server['argon2id_verify_owasp']['p50_ms']:8.3f} ms")
    print(f"  evaluate / Argon2id verify: {server['evaluate_over_argon2id_p50']}")
    print(
        f"login + restore on a new phone, device KDF {device['kdf']!r}, {device['rounds']} rounds"
    )
    for flow in ("login", "restore"):
        plain, hard = device[f"{flow}_plain"], device[f"{flow}_oprf"]
        counts = device["requests"]
        print(
            f"  {flow:<8} plain p50 {plain['p50_ms']:9.1f} ms ({counts[flow + '_plain']} requests)"
            f"   oprf p50 {hard['p50_ms']:9.1f} ms ({counts[flow + '_oprf']} requests)"
            f"   ratio {device[flow + '_oprf_over_plain_p50']}"
        )


if __name__ == "__main__":
    main()
