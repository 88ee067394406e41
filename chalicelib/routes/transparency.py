"""``/v1/kt/…``: the key-transparency log, public (auditors hold no account).

Everything here is public by design: the log's leaves hold cards (public
keys, already served to any signed-in user) and card ids; a third-party
auditor needs nothing but the log's public key (docs/spec/transparency.md).
"""

from __future__ import annotations

from chalicelib import wiring
from chalicelib.errors import NotFound
from chalicelib.http import ApiBlueprint, ApiRequest, ApiResponse, Auth
from chalicelib.services.transparency import TransparencyService
from chalicelib.wire.b64 import b64url_encode

api = ApiBlueprint(__name__, wiring.authenticator)


def _log() -> TransparencyService:
    log = wiring.container().transparency
    if log is None:
        raise NotFound("This stage runs no transparency log.")
    return log


@api.route("/v1/kt/checkpoint", methods=["GET"], auth=Auth.NONE)
def latest_checkpoint(request: ApiRequest) -> ApiResponse:
    """The latest signed checkpoint (a C2SP signed note)."""
    request.query(allowed=())
    return ApiResponse(200, {"checkpoint": _log().checkpoint()})


@api.route("/v1/kt/consistency", methods=["GET"], auth=Auth.NONE)
def consistency_proof(request: ApiRequest) -> ApiResponse:
    """The RFC 9162 consistency proof from tree size ``from`` to ``to``."""
    query = request.query(allowed=("from", "to"))
    proof = _log().consistency(query.get("from"), query.get("to"))
    return ApiResponse(200, {"proof": [b64url_encode(h) for h in proof]})


@api.route("/v1/kt/entries", methods=["GET"], auth=Auth.NONE)
def log_entries(request: ApiRequest) -> ApiResponse:
    """Leaves from ``start`` (at most ``limit``, 100 by default), for auditors and monitors."""
    query = request.query(allowed=("start", "limit"))
    entries, next_start = _log().entries(query.get("start", "0"), query.get("limit"))
    body: dict[str, object] = {
        "entries": [{"index": i, "leaf": b64url_encode(leaf)} for i, leaf in entries]
    }
    if next_start is not None:
        body["next"] = next_start
    return ApiResponse(200, body)
