"""``/v1/oprf``: the OPRF evaluation a device needs before it can derive its login key."""

from __future__ import annotations

from chalicelib import wiring
from chalicelib.http import ApiBlueprint, ApiRequest, ApiResponse, Auth

api = ApiBlueprint(__name__, wiring.authenticator)


@api.route("/v1/oprf", methods=["POST"], auth=Auth.NONE)
def evaluate_oprf(request: ApiRequest) -> ApiResponse:
    """Evaluate a blinded element under the account's OPRF keys (charged like a login)."""
    body = request.json(required=("username", "blinded_element"), optional=("device_cookie",))
    evaluations = wiring.container().oprf.evaluate(
        body["username"], body["blinded_element"], body.get("device_cookie")
    )
    return ApiResponse(200, {"evaluations": [e.to_json() for e in evaluations]})
