"""``/v1/users`` and ``/v1/sessions``: registration, login, logout."""

from __future__ import annotations

from chalicelib import wiring
from chalicelib.http import ApiBlueprint, ApiRequest, ApiResponse, Auth

api = ApiBlueprint(__name__, wiring.authenticator)


@api.route("/v1/users", methods=["POST"], auth=Auth.NONE)
def create_user(request: ApiRequest) -> ApiResponse:
    """Register ``username`` with the login key the device derived."""
    body = request.json(required=("username", "login_key"), optional=("oprf_key_version",))
    identity = wiring.container().accounts.register(
        body["username"], body["login_key"], body.get("oprf_key_version")
    )
    return ApiResponse(201, {"identity": identity})


@api.route("/v1/sessions", methods=["POST"], auth=Auth.NONE)
def create_session(request: ApiRequest) -> ApiResponse:
    """Log in: a refresh token and a device cookie, returned once and stored only as digests.

    A ``device_cookie`` from an earlier login on this device lets the login
    through a lockout that strangers caused (it is throttled on its own).
    """
    body = request.json(
        required=("username", "login_key"),
        optional=("device_cookie", "oprf_key_version", "legacy_login_keys"),
    )
    session = wiring.container().accounts.login(
        body["username"],
        body["login_key"],
        body.get("device_cookie"),
        oprf_key_version=body.get("oprf_key_version"),
        legacy_login_keys=body.get("legacy_login_keys"),
    )
    return ApiResponse(
        201,
        {
            "identity": session.identity,
            "refresh_token": session.refresh_token,
            "expires_at": session.expires_at,
            "device_cookie": session.device_cookie,
        },
    )


@api.route("/v1/sessions/current", methods=["DELETE"], auth=Auth.REFRESH)
def delete_session(request: ApiRequest) -> ApiResponse:
    """Log out: the refresh token stops working at once."""
    assert request.principal is not None  # guaranteed by Auth.REFRESH
    wiring.container().accounts.logout(request.principal.credential)
    return ApiResponse(204)


@api.route("/v1/users/me/login-key", methods=["PUT"], auth=Auth.ACCESS)
def change_login_key(request: ApiRequest) -> ApiResponse:
    """Replace the login key (password change); other sessions end, the caller gets a new one."""
    body = request.json(
        required=("current_login_key", "new_login_key"), optional=("oprf_key_version",)
    )
    session = wiring.container().accounts.change_login_key(
        request.identity,
        body["current_login_key"],
        body["new_login_key"],
        body.get("oprf_key_version"),
    )
    return ApiResponse(
        200,
        {
            "identity": session.identity,
            "refresh_token": session.refresh_token,
            "expires_at": session.expires_at,
        },
    )
