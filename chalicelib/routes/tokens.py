"""Access tokens, the public keys that verify them, and ``/v1/me``."""

from __future__ import annotations

from chalicelib import wiring
from chalicelib.http import ApiBlueprint, ApiRequest, ApiResponse, Auth

api = ApiBlueprint(__name__, wiring.authenticator)


@api.route("/v1/tokens", methods=["POST"], auth=Auth.REFRESH)
def create_token(request: ApiRequest) -> ApiResponse:
    """Exchange a refresh token for a short-lived access token and the next refresh token.

    The access token is signed first: if signing is unavailable (503) the
    refresh token is not spent.  The presented refresh token stops working.
    """
    assert request.principal is not None  # guaranteed by Auth.REFRESH
    container = wiring.container()
    issued = container.tokens.issue(request.identity)
    session = container.accounts.rotate_refresh(request.principal.credential)
    return ApiResponse(
        200,
        {
            "access_token": issued.access_token,
            "token_type": issued.token_type,
            "expires_in": issued.expires_in,
            "refresh_token": session.refresh_token,
            "refresh_token_expires_at": session.expires_at,
        },
    )


@api.route("/.well-known/jwks.json", methods=["GET"], auth=Auth.NONE)
def jwks(request: ApiRequest) -> ApiResponse:
    """Public halves of the current and previous app keys (RFC 7517)."""
    container = wiring.container()
    document = container.tokens.jwks()
    # Public data: caches may keep it, but not longer than our own key cache,
    # so a rotation shows up within one TTL.
    max_age = container.settings.app_key_cache_ttl
    return ApiResponse(200, document, headers={"Cache-Control": f"public, max-age={max_age}"})


@api.route("/v1/me", methods=["GET"], auth=Auth.ACCESS)
def me(request: ApiRequest) -> ApiResponse:
    """The smallest route behind the access-token check."""
    assert request.principal is not None  # guaranteed by Auth.ACCESS
    return ApiResponse(
        200,
        {"identity": request.principal.identity, "token_expires_at": request.principal.expires_at},
    )
