"""``make demo``: the whole system, end to end, in a few minutes.

:func:`run_demo` starts the local stack (a moto server, ``chalice local``
and the blob-event poller, all on loopback) and then:

1. walks one phone through sign-up and sign-in with production password
   hashing, checking every answer (:func:`run_walk`): register → a wrong
   password is refused → login → access token → the token verifies against
   the published JWKS on the device, with no shared secret → ``/v1/me`` →
   logout → the refresh token no longer works;
2. runs a fleet of simulated phones over HTTP through a scenario
   (:mod:`sealbox_tools.fleet`): every phone signs up, backs up its keys,
   sends sealed messages and files to its contacts and reads its inbox,
   and some lose their phone, reinstall, rotate keys or leave; every
   delivery is decrypted and checked against what was sent;
3. runs the privacy audit over everything the stack holds -- every S3
   object version, DynamoDB item and secret but the app key, and the API's
   log -- for every planted canary, private key, password and derived key;
4. writes the report, the chart, the needles file and the server log under
   the reports directory, and stops every process it started.

Any deviation makes the demo fail (exit code 1).
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import jwt

from client_sim.api import ApiClient
from client_sim.errors import ServerError
from client_sim.passwords import PASSWORD_KDF_V1, derive_password_keys


class DemoFailure(RuntimeError):
    """A step of the walk did not behave as the contract says."""


def verify_access_token(token: str, jwks: dict[str, Any], *, audience: str) -> dict[str, Any]:
    """Verify an access token with only the public JWKS document.

    Raises:
        DemoFailure: the token does not verify or its header is unexpected.
    """
    try:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != "at+jwt" or header.get("alg") != "EdDSA":
            raise DemoFailure("unexpected token header")
        key = jwt.PyJWKSet.from_dict(jwks)[str(header["kid"])]
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key.key,
            algorithms=["EdDSA"],
            audience=audience,
            options={"require": ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"]},
        )
    except (jwt.PyJWTError, KeyError) as exc:
        raise DemoFailure(f"access token does not verify against the JWKS: {exc}") from exc
    return claims


def run_walk(
    api: ApiClient, *, audience: str, echo: Callable[[str], None]
) -> list[tuple[str, bytes]]:
    """Run the walk; ``echo`` receives one human-readable line per step.

    Returns:
        (label, secret) of the walk's password and derived keys, for the
        privacy audit.
    """
    username = f"demo-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(18)

    def step(name: str, action: Callable[[], str]) -> None:
        started = time.perf_counter()
        detail = action()
        echo(f"  ok  {name:<28} {(time.perf_counter() - started) * 1000:7.1f} ms  {detail}")

    state: dict[str, Any] = {}

    def derive() -> str:
        state["keys"] = derive_password_keys(username, password, PASSWORD_KDF_V1)
        p = PASSWORD_KDF_V1
        return f"Argon2id m={p.memory_kib} KiB t={p.iterations} p={p.lanes}, then HKDF split"

    def register() -> str:
        identity = api.register(username, state["keys"].login_key_b64)
        return f"identity {identity}"

    def login() -> str:
        state["session"] = api.login(username, state["keys"].login_key_b64)
        state["refresh"] = state["session"].refresh_token
        return "refresh token issued (stored server-side only as SHA-256)"

    def wrong_password() -> str:
        wrong = derive_password_keys(username, password + "!", PASSWORD_KDF_V1)
        try:
            api.login(username, wrong.login_key_b64)
        except ServerError as exc:
            if exc.code != "invalid_credentials":
                raise DemoFailure(f"wrong password answered {exc.code}") from exc
            return f"refused: {exc.status} {exc.code}"
        raise DemoFailure("a wrong password was accepted")

    def token() -> str:
        state["access"] = api.access_token(state["refresh"])
        # The refresh token rotates on every use: keep the new one.
        state["refresh"] = state["access"].refresh_token
        return f"EdDSA JWT, expires in {state['access'].expires_in} s (refresh token rotated)"

    def verify() -> str:
        jwks = api.jwks()
        claims = verify_access_token(state["access"].access_token, jwks, audience=audience)
        if claims["sub"] != state["session"].identity:
            raise DemoFailure("token subject is not the logged-in identity")
        kid = str(jwt.get_unverified_header(state["access"].access_token)["kid"])
        return f"signature ok (kid {kid[:12]}...), sub={claims['sub']}"

    def me() -> str:
        out = api.me(state["access"].access_token)
        if out.get("identity") != state["session"].identity:
            raise DemoFailure("/v1/me answered another identity")
        return f"identity {out['identity']}"

    def logout() -> str:
        api.logout(state["refresh"])
        try:
            api.access_token(state["refresh"])
        except ServerError as exc:
            if exc.status != 401:
                raise DemoFailure(f"revoked refresh token answered {exc.status}") from exc
            return "refresh token revoked: /v1/tokens now answers 401"
        raise DemoFailure("a revoked refresh token still works")

    step("derive keys on device", derive)
    step("register", register)
    step("login with wrong password", wrong_password)
    step("login", login)
    step("get access token", token)
    step("verify token against JWKS", verify)
    step("GET /v1/me", me)
    step("logout", logout)
    keys = state["keys"]
    return [
        (f"{username} password", password.encode("utf-8")),
        (f"{username} login key", keys.login_key),
        (f"{username} backup key", keys.backup_key),
    ]


# --- the whole demo ------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoOptions:
    """What ``sealbox demo`` runs (its command-line options)."""

    port: int = 0
    devices: int = 50
    scenario: str = "standard"
    seed: int = 1
    concurrency: int = 16
    reports: Path = Path("reports")


def run_demo(options: DemoOptions, *, echo: Callable[[str], None], progress: IO[str]) -> bool:
    """Run the demo; True when everything passed.  The stack is always stopped."""
    from client_sim.api import ApiClient
    from client_sim.errors import ConnectionFailed
    from client_sim.transport import HttpTransport
    from sealbox_tools.fleet.backends import HttpBackend, aws_clients
    from sealbox_tools.fleet.cli import needles_path_for, write_outputs
    from sealbox_tools.fleet.report import summary_text
    from sealbox_tools.fleet.runner import FleetConfig, run_fleet
    from sealbox_tools.local_stack import LocalStack, StackError, stage_environment

    started = time.perf_counter()
    reports = options.reports
    reports.mkdir(parents=True, exist_ok=True)
    server_log = reports / "demo-server.log"
    report_path = reports / "demo-report.json"
    echo("Sealbox demo: starting the local stack (moto + chalice local) ...")
    try:
        with (
            server_log.open("w", encoding="utf-8") as log,
            open(os.devnull, "w") as aws_log,
            LocalStack(port=options.port, log=log, aws_log=aws_log) as stack,
        ):
            echo(f"aws endpoint {stack.aws_endpoint}")
            echo(f"listening on {stack.url}")
            echo("")
            echo("1. One phone signs up and signs in; every answer is checked:")
            audience = stage_environment(stack.stage)["SEALBOX_TOKEN_AUDIENCE"]
            walk_secrets = run_walk(
                ApiClient(HttpTransport(stack.url)), audience=audience, echo=echo
            )
            echo("")
            echo(
                f"2. A fleet of {options.devices} phones over HTTP, scenario "
                f"{options.scenario!r}: sign up, back up keys, send sealed messages and "
                "files to contacts, read and verify every one; some lose their phone, "
                "reinstall, rotate keys or leave.  Then the privacy audit reads "
                "everything the server side holds."
            )
            backend = HttpBackend(
                stack.url,
                aws=aws_clients(stack.aws_endpoint, stack.region),
                stage=stack.stage,
                server_logs=(server_log,),
                server_pids=stack.pids,
                # The devices pin what the app's SDK configuration would
                # (stack.sdk_config()): the OPRF roots and the log key.
                storage_origins=(stack.aws_endpoint,),
                oprf_roots=stack.oprf_roots,
                log_key=stack.log_key,
            )
            config = FleetConfig(
                devices=options.devices,
                scenario=options.scenario,
                seed=options.seed,
                concurrency=options.concurrency,
            )
            with tempfile.TemporaryDirectory(prefix="sealbox-demo-") as work:
                result = run_fleet(
                    config,
                    backend,
                    work_dir=Path(work),
                    progress=progress,
                    extra_secrets=walk_secrets,
                )
    except (StackError, DemoFailure, ServerError, ConnectionFailed) as exc:
        echo(f"sealbox: demo failed: {exc}")
        return False
    echo("")
    echo(summary_text(result.report))
    for line in write_outputs(
        result,
        report=report_path,
        chart=reports / "demo-chart.html",
        needles=needles_path_for(report_path),
    ):
        echo(line)
    echo(f"server log: {server_log}")
    elapsed = time.perf_counter() - started
    if not result.passed:
        reasons = "; ".join(result.report["verdict"]["reasons"])
        echo(f"Demo FAILED after {elapsed:.1f} s ({reasons}); the stack is stopped.")
        return False
    echo(f"Demo passed in {elapsed:.1f} s; the stack is stopped.")
    return True
