"""``/v1/groups``: signed epoch chains and per-member wraps.

Parse, call the group service, render.

The server checks and stores what admins' devices sign; it never makes or
opens an epoch secret (docs/spec/groups.md, docs/api.md).
"""

from __future__ import annotations

from typing import Any

from chalicelib import wiring
from chalicelib.errors import InvalidRequest
from chalicelib.http import ApiBlueprint, ApiRequest, ApiResponse, Auth, require_binary_accept
from chalicelib.services.groups import MAX_EPOCH_SIZE, GroupHead, StoredEpoch
from chalicelib.wire.b64 import b64url_encode
from chalicelib.wire.group_history import MAX_SHARE_SIZE

api = ApiBlueprint(__name__, wiring.authenticator)

# The base64url epoch, the wraps id and the JSON around them.
_EPOCH_MAX_BODY = MAX_EPOCH_SIZE * 4 // 3 + 1024
# The base64url history share and the JSON around it.
_SHARE_MAX_BODY = MAX_SHARE_SIZE * 4 // 3 + 1024


@api.route("/v1/groups", methods=["GET"], auth=Auth.ACCESS)
def list_groups(request: ApiRequest) -> ApiResponse:
    """The groups the caller is a current member of."""
    request.query(allowed=())
    heads = wiring.container().groups.groups(request.identity)
    return ApiResponse(200, {"items": [head_summary(head) for head in heads]})


@api.route("/v1/groups/{group_id}", methods=["GET"], auth=Auth.ACCESS)
def get_group(request: ApiRequest, group_id: str) -> ApiResponse:
    """The head epoch and full roster of a group the caller is a member of
    (``?roster=false``: only the head's number and the roster's hash)."""
    query = request.query(allowed=("roster",))
    full = _flag(query.get("roster"), "roster", default=True)
    groups = wiring.container().groups
    head, stored = groups.head(request.identity, group_id)
    if not full:
        # A member that follows the group polls this: its size must not
        # grow with the group (the roster is what a joining device needs).
        return ApiResponse(
            200, {**head_summary(head), "roster_hash": b64url_encode(groups.roster_hash(head))}
        )
    return ApiResponse(
        200,
        {
            **head_summary(head),
            "head": b64url_encode(stored.epoch),
            "roster": b64url_encode(head.roster),
        },
    )


@api.route("/v1/groups/{group_id}/epochs/{epoch}/wraps", methods=["POST"], auth=Auth.ACCESS)
def reserve_wraps(request: ApiRequest, group_id: str, epoch: str) -> ApiResponse:
    """A write-once upload for the wraps object of the group's next epoch."""
    body = request.json(required=("size",))
    wraps_id, url, headers, expires_in = wiring.container().groups.reserve_wraps(
        request.identity, group_id, epoch, body["size"]
    )
    return ApiResponse(
        201,
        {
            "wraps_id": wraps_id,
            "upload": {"method": "PUT", "url": url, "headers": headers},
            "expires_in": expires_in,
        },
    )


@api.route(
    "/v1/groups/{group_id}/epochs", methods=["POST"], auth=Auth.ACCESS, max_body=_EPOCH_MAX_BODY
)
def append_epoch(request: ApiRequest, group_id: str) -> ApiResponse:
    """Append a signed epoch (creating the group at epoch 0)."""
    body = request.json(required=("epoch", "wraps_id"))
    head = wiring.container().groups.append(
        request.identity, group_id, body["epoch"], body["wraps_id"]
    )
    return ApiResponse(201, head_summary(head))


@api.route("/v1/groups/{group_id}/epochs/{epoch}", methods=["GET"], auth=Auth.ACCESS)
def get_epoch(request: ApiRequest, group_id: str, epoch: str) -> ApiResponse:
    """One epoch, and a ranged GET of the caller's own wrap (``?card_id=``);
    with ``?form=delta`` the epoch's delta when the wrap is given and the
    epoch has one (``form`` in the answer says which)."""
    query = request.query(allowed=("card_id", "form"))
    form = query.get("form", "full")
    if form not in ("full", "delta"):
        raise InvalidRequest("form must be full or delta.")
    stored, wrap = wiring.container().groups.epoch(
        request.identity, group_id, epoch, query.get("card_id")
    )
    # The delta is only of use with the member's own wrap (its secret gives
    # the key id the delta leaves out).
    delta = stored.delta if form == "delta" and wrap is not None else None
    return ApiResponse(200, epoch_body(stored, wrap, delta))


@api.route("/v1/groups/{group_id}/catchup", methods=["GET"], auth=Auth.ACCESS)
def catch_up(request: ApiRequest, group_id: str) -> ApiResponse:
    """The catch-up frame (``application/octet-stream``) for a member that
    holds epoch ``after``: the next epochs' deltas with the caller's wraps
    inline, and a check of the server's roster under the caller's ``nonce``
    (docs/spec/groups.md, "Catch-up")."""
    query = request.query(allowed=("after", "card_id", "nonce"))
    require_binary_accept(request)
    missing = [name for name in ("after", "card_id", "nonce") if name not in query]
    if missing:
        raise InvalidRequest(f"{missing[0]} is required.")
    frame = wiring.container().groups.catch_up(
        request.identity, group_id, query["after"], query["card_id"], query["nonce"]
    )
    return ApiResponse(200, data=frame)


@api.route(
    "/v1/groups/{group_id}/history", methods=["POST"], auth=Auth.ACCESS, max_body=_SHARE_MAX_BODY
)
def share_history(request: ApiRequest, group_id: str) -> ApiResponse:
    """Store a history share an admin signed for a current member."""
    body = request.json(required=("share",))
    share_id = wiring.container().groups.share_history(request.identity, group_id, body["share"])
    return ApiResponse(201, {"share_id": share_id})


@api.route("/v1/groups/{group_id}/history", methods=["GET"], auth=Auth.ACCESS)
def get_history(request: ApiRequest, group_id: str) -> ApiResponse:
    """The history shares stored for the caller."""
    request.query(allowed=())
    shares = wiring.container().groups.history(request.identity, group_id)
    items = [{"share_id": sid, "data": b64url_encode(data)} for sid, data in shares]
    return ApiResponse(200, {"items": items})


# --- rendering ----------------------------------------------------------------------


def head_summary(head: GroupHead) -> dict[str, Any]:
    return {"group_id": head.group_id, "epoch": head.number, "updated_at": head.updated_at}


def _flag(value: str | None, name: str, *, default: bool) -> bool:
    if value is None:
        return default
    if value not in ("true", "false"):
        raise InvalidRequest(f"{name} must be true or false.")
    return value == "true"


def epoch_body(stored: StoredEpoch, wrap: Any, delta: bytes | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "group_id": stored.group_id,
        "epoch": stored.number,
        "form": "full" if delta is None else "delta",
        "data": b64url_encode(stored.epoch if delta is None else delta),
        "wrap": None,
    }
    if wrap is not None:
        body["wrap"] = {
            "method": "GET",
            "url": wrap.url,
            "headers": dict(wrap.headers),
            "length": wrap.length,
            "expires_in": wrap.expires_in,
        }
    return body
