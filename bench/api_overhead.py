"""API overhead: our routes next to a bare Chalice route making the same DynamoDB calls.

    python -m bench.api_overhead [--requests N] [--json]

In process on moto (``mock_aws`` + ``chalice.test.Client``), for two routes:

* ``POST /v1/tokens`` (a refresh token for an access token and the next
  refresh token);
* ``GET /v1/cards`` with 50 identities (one batch read of their cards).

Each real request is followed by one to a *bare* Chalice app whose only
route replays, through the same boto3 DynamoDB client, exactly the DynamoDB
requests the real one just made (captured with botocore's
``provide-client-params`` event; a replayed conditional write fails its
condition, which still costs its round trip).  So the bare route is the
floor: HTTP in and out of Chalice plus the same storage work, and the
ratio of the two p50s is what our auth, validation, services, signing and
JSON add.  The goal (issue 17) is at most 3x for both.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._env import in_process_aws
from bench.results import ratio, record


def _p50_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def run(requests: int) -> dict[str, Any]:
    in_process_aws()
    import boto3
    from botocore import xform_name
    from botocore.exceptions import ClientError
    from chalice.app import Chalice, Response
    from chalice.test import Client
    from moto import mock_aws

    from app import app
    from chalicelib import wiring
    from chalicelib.config import Settings
    from chalicelib.storage.appkeys import ensure_app_key
    from chalicelib.wire.b64 import b64url_encode
    from client_sim.api import ApiClient
    from client_sim.device import Device
    from client_sim.passwords import PASSWORD_KDF_SIMULATION
    from client_sim.transport import ChaliceTransport
    from sealbox_tools.local_stack import PROJECT_DIR, stage_environment
    from sealbox_tools.provisioning import provision

    logging.getLogger("sealbox.api").setLevel(logging.WARNING)
    env = stage_environment("test")
    out: dict[str, Any] = {"requests": requests}
    with mock_aws(), tempfile.TemporaryDirectory() as tmp:

        def clients(service: str) -> Any:
            return boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]

        provision(clients, stage="test")
        ensure_app_key(clients("secretsmanager"), env["SEALBOX_APP_KEY_SECRET_ID"], time.time())
        container = wiring.Container(Settings.from_env(env))
        wiring.install(container)
        ddb = container.dynamodb
        captured: list[tuple[str, dict[str, Any]]] = []

        def capture(params: dict[str, Any], model: Any, **_: Any) -> None:
            captured.append((model.name, dict(params)))

        bare = Chalice(app_name="bare")

        @bare.route("/bare", methods=["POST"])
        def replay() -> Response:
            # The same DynamoDB requests, nothing else: no auth, no
            # validation, no service code, a constant JSON answer.
            for operation, params in replaying:
                # A replayed conditional write fails: its round trip is what counts.
                with contextlib.suppress(ClientError):
                    getattr(ddb, xform_name(operation))(**params)
            return Response(body={"ok": True}, status_code=200)

        replaying: list[tuple[str, dict[str, Any]]] = []
        with (
            Client(app, stage_name="test", project_dir=str(PROJECT_DIR)) as client,
            Client(bare) as bare_client,
        ):
            transport = ChaliceTransport(client)
            # 51 identities with cards: a reader and the 50 it looks up.
            names = [f"user-{i:03d}" for i in range(51)]
            for name in names:
                Device(Path(tmp) / name, transport, kdf=PASSWORD_KDF_SIMULATION).register(
                    name, "a benchmark password, long enough"
                )
            api = ApiClient(transport)
            login_key = b64url_encode(hashlib.sha256(b"bench-overhead").digest())
            api.register("bench-overhead", login_key)
            refresh = api.login("bench-overhead", login_key).refresh_token
            access = api.access_token(refresh)
            refresh = access.refresh_token
            query = "&".join(f"identity={name}" for name in names[1:])

            def tokens() -> Any:
                nonlocal refresh
                reply = client.http.post(
                    "/v1/tokens", headers={"Authorization": f"Bearer {refresh}"}
                )
                refresh = json.loads(reply.body)["refresh_token"]
                return reply

            def cards() -> Any:
                return client.http.get(
                    f"/v1/cards?{query}",
                    headers={"Authorization": f"Bearer {access.access_token}"},
                )

            for route, call in (("tokens", tokens), ("cards_50", cards)):
                real: list[float] = []
                floor: list[float] = []
                calls_per_request: list[int] = []
                for i in range(requests + 5):
                    captured.clear()
                    ddb.meta.events.register("provide-client-params.dynamodb", capture)
                    started = time.perf_counter()
                    reply = call()
                    elapsed = time.perf_counter() - started
                    ddb.meta.events.unregister("provide-client-params.dynamodb", capture)
                    if reply.status_code != 200:
                        raise SystemExit(f"{route}: {reply.status_code} {reply.body[:200]!r}")
                    replaying[:] = captured
                    started = time.perf_counter()
                    bare_reply = bare_client.http.post("/bare")
                    bare_elapsed = time.perf_counter() - started
                    if bare_reply.status_code != 200:
                        raise SystemExit(f"bare route: {bare_reply.status_code}")
                    if i >= 5:  # the first few warm caches up
                        real.append(elapsed)
                        floor.append(bare_elapsed)
                        calls_per_request.append(len(captured))
                out[route] = {
                    "p50_ms": _p50_ms(real),
                    "bare_p50_ms": _p50_ms(floor),
                    "dynamodb_requests": sorted(set(calls_per_request)),
                    "operations": sorted({operation for operation, _ in captured}),
                }
        wiring.reset()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api_overhead", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--requests", type=int, default=200, help="measured requests per route")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    result = run(args.requests)
    labels = {"tokens": "POST /v1/tokens", "cards_50": "GET /v1/cards, 50 identities"}
    result["ratios"] = [
        ratio(
            f"api_overhead_{route}",
            f"{labels[route]}, p50 in process / bare route with the same DynamoDB calls",
            result[route]["p50_ms"] / result[route]["bare_p50_ms"],
            ours=f"{result[route]['p50_ms']:.2f} ms",
            baseline=f"bare Chalice route {result[route]['bare_p50_ms']:.2f} ms "
            f"({', '.join(result[route]['operations'])})",
            goal="<= 3.0",
        )
        for route in ("tokens", "cards_50")
    ]
    record("api_overhead", result)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"API overhead, in process on moto, p50 of {args.requests} requests each")
    for route in ("tokens", "cards_50"):
        r = result[route]
        print(
            f"  {labels[route]:32s} {r['p50_ms']:8.2f} ms   bare route {r['bare_p50_ms']:8.2f} ms"
            f"   DynamoDB requests {r['dynamodb_requests']} ({', '.join(r['operations'])})"
        )
    for entry in result["ratios"]:
        print(f"ratio {entry['key']}: {entry['value']} (goal {entry['goal']}, met {entry['met']})")


if __name__ == "__main__":
    main()
