"""A typed client for the Sealbox HTTP API (DESIGN §3).

Each method is one route.  Failures become :class:`ApiError` with the
server's stable error code; nothing here retries or caches -- the device
layer above decides that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from client_sim.transport import HttpReply, Transport


class ApiError(Exception):
    """The server answered with an error.

    ``code`` is the stable machine-readable code from the body (or
    ``http_<status>`` when the body is not a Sealbox error).
    """

    def __init__(
        self, status: int, code: str, message: str, retry_after: int | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class RefreshSession:
    identity: str
    expires_at: int
    refresh_token: str = field(repr=False)


@dataclass(frozen=True)
class AccessToken:
    expires_in: int
    access_token: str = field(repr=False)
    token_type: str = "Bearer"  # noqa: S105 - a scheme name


class ApiClient:
    """The HTTP contract as Python calls, over any :class:`Transport`."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def _call(
        self,
        method: str,
        path: str,
        *,
        payload: Mapping[str, Any] | None = None,
        bearer: str | None = None,
        expect: int = 200,
    ) -> Any:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        body = json.dumps(payload).encode("utf-8") if payload is not None else None
        reply = self.transport.request(method, path, body=body, headers=headers)
        if reply.status != expect:
            raise _error(reply)
        return reply.json()

    # accounts ---------------------------------------------------------------

    def register(self, username: str, login_key_b64: str) -> str:
        """Create the account; return the canonical identity."""
        out = self._call(
            "POST",
            "/v1/users",
            payload={"username": username, "login_key": login_key_b64},
            expect=201,
        )
        return str(out["identity"])

    def login(self, username: str, login_key_b64: str) -> RefreshSession:
        out = self._call(
            "POST",
            "/v1/sessions",
            payload={"username": username, "login_key": login_key_b64},
            expect=201,
        )
        return RefreshSession(
            identity=str(out["identity"]),
            expires_at=int(out["expires_at"]),
            refresh_token=str(out["refresh_token"]),
        )

    def logout(self, refresh_token: str) -> None:
        self._call("DELETE", "/v1/sessions/current", bearer=refresh_token, expect=204)

    # tokens -----------------------------------------------------------------

    def access_token(self, refresh_token: str) -> AccessToken:
        out = self._call("POST", "/v1/tokens", bearer=refresh_token)
        return AccessToken(
            access_token=str(out["access_token"]),
            token_type=str(out["token_type"]),
            expires_in=int(out["expires_in"]),
        )

    def me(self, access_token: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("GET", "/v1/me", bearer=access_token)
        return out

    def jwks(self) -> dict[str, Any]:
        out: dict[str, Any] = self._call("GET", "/.well-known/jwks.json")
        return out


def _error(reply: HttpReply) -> ApiError:
    retry_after: int | None = None
    raw_retry = reply.headers.get("retry-after")
    if raw_retry and raw_retry.isdigit():
        retry_after = int(raw_retry)
    try:
        err = reply.json()["error"]
        return ApiError(reply.status, str(err["code"]), str(err["message"]), retry_after)
    except (ValueError, KeyError, TypeError):
        return ApiError(reply.status, f"http_{reply.status}", "unexpected response", retry_after)
