"""Login latency with the production Argon2id profile, in process on moto.

    python -m bench.login [--logins N] [--profile owasp|test] [--json]

Drives ``POST /v1/sessions`` through ``chalice.test.Client`` against the
Chalice app on moto -- the whole server path (JSON parsing, the attempt CAS,
the users read, Argon2id, the session write) -- and reports percentiles for
three cases side by side:

* ``known``:   the right login key;
* ``wrong``:   a registered user, wrong key;
* ``unknown``: a username that doesn't exist (pays the dummy Argon2id).

``wrong`` and ``unknown`` should be indistinguishable: that is what keeps
login timing from revealing which accounts exist.  Each login uses its own
account so the lockout never triggers.  Ratios, not absolute times, are the
portable result: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from bench._env import in_process_aws
from chalicelib.wire.b64 import b64url_encode


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(logins: int, profile: str) -> dict[str, Any]:
    in_process_aws()
    import logging

    from chalice.test import Client
    from moto import mock_aws

    # One access-log line per request would drown the report.
    logging.getLogger("sealbox.api").setLevel(logging.WARNING)

    from app import app
    from chalicelib import wiring
    from chalicelib.config import Settings
    from chalicelib.storage.appkeys import ensure_app_key
    from sealbox_tools.local_stack import PROJECT_DIR, stage_environment
    from sealbox_tools.provisioning import provision

    env = {**stage_environment("test"), "SEALBOX_ARGON2_PROFILE": profile}
    results: dict[str, list[float]] = {"known": [], "wrong": [], "unknown": []}
    with mock_aws():
        import boto3

        def clients(service: str) -> Any:
            return boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]

        provision(clients, stage="test")
        ensure_app_key(clients("secretsmanager"), env["SEALBOX_APP_KEY_SECRET_ID"], time.time())
        wiring.install(wiring.Container(Settings.from_env(env)))
        key = b64url_encode(bytes(32))
        wrong = b64url_encode(bytes([1]) * 32)
        with Client(app, stage_name="test", project_dir=str(PROJECT_DIR)) as client:

            def post(path: str, body: dict[str, str]) -> int:
                reply = client.http.post(
                    path,
                    headers={"Content-Type": "application/json"},
                    body=json.dumps(body).encode(),
                )
                return int(reply.status_code)

            for i in range(logins):
                assert post("/v1/users", {"username": f"bench-{i}", "login_key": key}) == 201
            post("/v1/sessions", {"username": "bench-0", "login_key": key})  # warm up
            for i in range(1, logins):
                for case, name, login_key, expected in (
                    ("known", f"bench-{i}", key, 201),
                    ("wrong", f"bench-{i}", wrong, 401),
                    ("unknown", f"nobody-{i}", key, 401),
                ):
                    started = time.perf_counter()
                    status = post("/v1/sessions", {"username": name, "login_key": login_key})
                    results[case].append((time.perf_counter() - started) * 1000)
                    assert status == expected, (case, status)
        wiring.reset()
    summary: dict[str, Any] = {"profile": profile, "logins_per_case": logins - 1}
    for case, samples in results.items():
        summary[case] = {
            "p50_ms": round(statistics.median(samples), 2),
            "p95_ms": round(_percentile(samples, 0.95), 2),
        }
    summary["unknown_over_wrong_p50"] = round(
        summary["unknown"]["p50_ms"] / summary["wrong"]["p50_ms"], 3
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logins", type=int, default=60)
    parser.add_argument("--profile", default="owasp", choices=("owasp", "test"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    summary = run(args.logins, args.profile)
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"login latency, Argon2id profile {summary['profile']!r}, in process on moto")
    for case in ("known", "wrong", "unknown"):
        row = summary[case]
        print(f"  {case:<8} p50 {row['p50_ms']:7.2f} ms   p95 {row['p95_ms']:7.2f} ms")
    print(f"  unknown/wrong p50 ratio: {summary['unknown_over_wrong_p50']}")


if __name__ == "__main__":
    main()
