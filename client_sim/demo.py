"""The scripted device walk behind ``make demo``.

One simulated phone signs up and signs in against a running stack, and
checks every answer as it goes: register → login → access token → verify the
token against the published JWKS (on the device, with no shared secret) →
``/v1/me`` → logout → the refresh token no longer works.  Any deviation
raises :class:`DemoFailure`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import jwt

from client_sim.api import ApiClient, ApiError
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


def run_walk(api: ApiClient, *, audience: str, echo: Callable[[str], None]) -> None:
    """Run the walk; ``echo`` receives one human-readable line per step."""
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
        return "refresh token issued (stored server-side only as SHA-256)"

    def wrong_password() -> str:
        wrong = derive_password_keys(username, password + "!", PASSWORD_KDF_V1)
        try:
            api.login(username, wrong.login_key_b64)
        except ApiError as exc:
            if exc.code != "invalid_credentials":
                raise DemoFailure(f"wrong password answered {exc.code}") from exc
            return f"refused: {exc.status} {exc.code}"
        raise DemoFailure("a wrong password was accepted")

    def token() -> str:
        state["access"] = api.access_token(state["session"].refresh_token)
        return f"EdDSA JWT, expires in {state['access'].expires_in} s"

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
        api.logout(state["session"].refresh_token)
        try:
            api.access_token(state["session"].refresh_token)
        except ApiError as exc:
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
