"""Access-token micro-benchmark, in process on moto.

    python -m bench.tokens [--tokens N] [--cache-ttl S] [--rate R] [--duration S] [--json]

Reports, for one warm container (one key ring, one token service):

* issue/s and verify/s over ``--tokens`` tokens (wall clock, this machine);
* the cold first issue (loading the key ring from Secrets Manager);
* GetSecretValue calls per 1,000 tokens in three regimes:
  - ``burst``: all tokens inside one cache TTL (the ring's own floor);
  - ``steady``: a simulated container issuing ``--rate`` tokens/s for
    ``--duration`` simulated seconds, with the cache TTL in force (the ring's
    clock is simulated, so this runs in a moment);
  - ``no-cache``: ``cache_ttl=0``, for comparison.

Calls are counted twice -- by the ring's own stats and by a botocore event
hook on the client -- and the two must agree.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench._env import in_process_aws
from chalicelib.services.tokens import TokenService
from chalicelib.storage.appkeys import SecretsManagerKeyRing, ensure_app_key

SECRET_ID = "sealbox/bench/app-signing-key"
ISSUER = "urn:sealbox:bench"
AUDIENCE = "urn:sealbox:bench:api"
REGION = "us-east-1"


class SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _count_calls(client: Any) -> list[int]:
    counter = [0]

    def before_call(**_: Any) -> None:
        counter[0] += 1

    client.meta.events.register("before-call.secrets-manager.GetSecretValue", before_call)
    return counter


def _service(
    client: Any, cache_ttl: float, clock: Any
) -> tuple[TokenService, SecretsManagerKeyRing]:
    ring = SecretsManagerKeyRing(client, SECRET_ID, cache_ttl=cache_ttl, clock=clock)
    return TokenService(ring, issuer=ISSUER, audience=AUDIENCE, ttl=900), ring


def run(tokens: int, cache_ttl: float, rate: float, duration: float) -> dict[str, Any]:
    import boto3

    client = boto3.client("secretsmanager", region_name=REGION)
    ensure_app_key(client, SECRET_ID, time.time())
    results: dict[str, Any] = {"tokens": tokens, "cache_ttl": cache_ttl}

    # Burst: cold start, then issue and verify `tokens` tokens in one TTL.
    counter = _count_calls(client)
    service, ring = _service(client, cache_ttl, time.monotonic)
    start = time.perf_counter()
    first = service.issue("bench-user")
    results["cold_first_issue_ms"] = round((time.perf_counter() - start) * 1000, 2)
    issued = [first.access_token]
    start = time.perf_counter()
    for _ in range(tokens - 1):
        issued.append(service.issue("bench-user").access_token)
    issue_s = time.perf_counter() - start
    start = time.perf_counter()
    for token in issued:
        service.verify(token)
    verify_s = time.perf_counter() - start
    results["issue_per_s"] = round((tokens - 1) / issue_s)
    results["verify_per_s"] = round(tokens / verify_s)
    results["token_chars"] = len(first.access_token)
    assert counter[0] == ring.stats.get_secret_value_calls
    results["burst_calls"] = counter[0]
    results["burst_calls_per_1000"] = round(counter[0] * 1000 / tokens, 3)

    # Steady: simulated time, `rate` tokens/s for `duration` seconds.
    counter = _count_calls(client)
    sim = SimClock()
    service, ring = _service(client, cache_ttl, sim)
    steady_tokens = int(rate * duration)
    for _ in range(steady_tokens):
        service.issue("bench-user")
        sim.now += 1 / rate
    assert counter[0] == ring.stats.get_secret_value_calls
    results["steady"] = {
        "rate_per_s": rate,
        "simulated_s": duration,
        "tokens": steady_tokens,
        "calls": counter[0],
        "calls_per_1000": round(counter[0] * 1000 / steady_tokens, 3),
    }

    # No cache, for comparison.
    counter = _count_calls(client)
    service, ring = _service(client, 0, time.monotonic)
    sample = min(tokens, 2000)
    start = time.perf_counter()
    for _ in range(sample):
        service.issue("bench-user")
    results["no_cache"] = {
        "issue_per_s": round(sample / (time.perf_counter() - start)),
        "calls_per_1000": round(counter[0] * 1000 / sample, 3),
    }
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tokens", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--cache-ttl", type=float, default=300.0)
    parser.add_argument("--rate", type=float, default=10.0, help="simulated tokens/s per container")
    parser.add_argument("--duration", type=float, default=3600.0, help="simulated seconds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.tokens < 2:
        parser.error("--tokens must be at least 2")

    # In-process moto with fake credentials; an endpoint override would
    # send the calls past moto (DESIGN §8).
    in_process_aws(REGION, credential="testing")
    from moto import mock_aws

    with mock_aws():
        results = run(args.tokens, args.cache_ttl, args.rate, args.duration)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    r, steady, nc = results, results["steady"], results["no_cache"]
    per_1000 = "GetSecretValue per 1,000 tokens"
    lines = [
        f"tokens: {r['tokens']}, cache_ttl: {r['cache_ttl']:g} s, size: {r['token_chars']} chars",
        f"cold first issue (loads the key ring): {r['cold_first_issue_ms']} ms",
        f"issue:  {r['issue_per_s']} tokens/s",
        f"verify: {r['verify_per_s']} tokens/s",
        f"{per_1000}, burst within one TTL: {r['burst_calls_per_1000']} ({r['burst_calls']} calls)",
        f"{per_1000}, steady {steady['rate_per_s']:g}/s for {steady['simulated_s']:g} simulated s: "
        f"{steady['calls_per_1000']} ({steady['calls']} calls / {steady['tokens']} tokens)",
        f"{per_1000}, cache_ttl=0: {nc['calls_per_1000']} ({nc['issue_per_s']} tokens/s)",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
