"""A typed client for the Sealbox HTTP API (DESIGN §3).

Each method is one route.  Failures become :class:`ApiError` with the
server's stable error code; nothing here retries or caches -- the device
layer above decides that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

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
            raise api_error(reply)
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

    def change_login_key(
        self, access_token: str, current_login_key_b64: str, new_login_key_b64: str
    ) -> RefreshSession:
        """Replace the login key; every other session ends and a new one is returned."""
        out = self._call(
            "PUT",
            "/v1/users/me/login-key",
            payload={
                "current_login_key": current_login_key_b64,
                "new_login_key": new_login_key_b64,
            },
            bearer=access_token,
        )
        return RefreshSession(
            identity=str(out["identity"]),
            expires_at=int(out["expires_at"]),
            refresh_token=str(out["refresh_token"]),
        )

    # key directory: cards ------------------------------------------------------

    def publish_card(self, access_token: str, card: Mapping[str, Any]) -> dict[str, Any]:
        """Publish a card; the reply is ``{card, status, published_at}``."""
        out: dict[str, Any] = self._call(
            "POST", "/v1/cards", payload={"card": card}, bearer=access_token, expect=201
        )
        return out

    def find_cards(self, access_token: str, identities: Sequence[str]) -> list[dict[str, Any]]:
        """Active card entries of up to 50 identities (absent ones are left out)."""
        query = urlencode([("identity", identity) for identity in identities])
        out = self._call("GET", f"/v1/cards?{query}", bearer=access_token)
        return list(out["cards"])

    def get_card(self, access_token: str, card_id: str) -> dict[str, Any]:
        """One card entry by id, whatever its status."""
        out: dict[str, Any] = self._call(
            "GET", f"/v1/cards/{quote(card_id, safe='')}", bearer=access_token
        )
        return out

    def revoke_card(self, access_token: str, card_id: str) -> None:
        self._call(
            "POST", f"/v1/cards/{quote(card_id, safe='')}/revoke", bearer=access_token, expect=204
        )

    # key directory: backups ----------------------------------------------------

    def put_backup(
        self, access_token: str, name: str, ciphertext_b64: str, version: int | None = None
    ) -> dict[str, Any]:
        """Create (``version=None``) or compare-and-swap replace a backup.

        Returns ``{name, version, updated_at}``.
        """
        payload: dict[str, Any] = {"ciphertext": ciphertext_b64}
        if version is not None:
            payload["version"] = version
        reply = self.transport.request(
            "PUT",
            f"/v1/backups/{quote(name, safe='')}",
            body=json.dumps(payload).encode("utf-8"),
            headers={"Authorization": f"Bearer {access_token}"},
        )
        # 201 for a creation, 200 for a replacement.
        if reply.status not in (200, 201):
            raise api_error(reply)
        out: dict[str, Any] = reply.json()
        return out

    def get_backup(self, access_token: str, name: str) -> dict[str, Any]:
        """``{name, ciphertext, version, updated_at}``; ApiError 404 when absent."""
        out: dict[str, Any] = self._call(
            "GET", f"/v1/backups/{quote(name, safe='')}", bearer=access_token
        )
        return out

    def delete_backup(self, access_token: str, name: str, version: int | None = None) -> None:
        path = f"/v1/backups/{quote(name, safe='')}"
        if version is not None:
            path += f"?version={version}"
        self._call("DELETE", path, bearer=access_token, expect=204)


def api_error(reply: HttpReply) -> ApiError:
    """The :class:`ApiError` for a reply that isn't the expected success."""
    retry_after: int | None = None
    raw_retry = reply.headers.get("retry-after")
    if raw_retry and raw_retry.isdigit():
        retry_after = int(raw_retry)
    try:
        err = reply.json()["error"]
        return ApiError(reply.status, str(err["code"]), str(err["message"]), retry_after)
    except (ValueError, KeyError, TypeError):
        return ApiError(reply.status, f"http_{reply.status}", "unexpected response", retry_after)
