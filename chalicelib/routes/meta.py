"""``GET /openapi.json``: the API described, accurately enough to fuzz from."""

from __future__ import annotations

from chalicelib import openapi, wiring
from chalicelib.http import ApiBlueprint, ApiRequest, ApiResponse, Auth

api = ApiBlueprint(__name__, wiring.authenticator)


@api.route("/openapi.json", methods=["GET"], auth=Auth.NONE)
def openapi_document(request: ApiRequest) -> ApiResponse:
    """The OpenAPI 3.1 document of every route, extensions' included."""
    served = openapi.served_document(api.blueprint.current_app)
    return ApiResponse(200, served, headers={"Cache-Control": "public, max-age=300"})
