"""``/v1/backups/{name}``: the caller's device-sealed key backups."""

from __future__ import annotations

from chalicelib import wiring
from chalicelib.http import ApiBlueprint, ApiRequest, ApiResponse, Auth
from chalicelib.routes.stepup import require_step_up
from chalicelib.services.backups import MAX_BACKUP_BYTES, parse_version_param
from chalicelib.wire.b64 import b64url_encode

api = ApiBlueprint(__name__, wiring.authenticator)

# The base64url text of the largest backup, plus the JSON around it.
_MAX_PUT_BODY = (MAX_BACKUP_BYTES * 4 + 2) // 3 + 1024


@api.route("/v1/backups/{name}", methods=["PUT"], auth=Auth.ACCESS, max_body=_MAX_PUT_BODY)
def put_backup(request: ApiRequest, name: str) -> ApiResponse:
    """Create (no version) or replace (version N, compare-and-swap) a backup."""
    body = request.json(required=("ciphertext",), optional=("version",))
    # Replacing a backup can destroy the keys' only copy: a step-up proof,
    # spent once the input is valid.  Creating one (no version) can't: it
    # fails when one exists.
    version, updated_at, created = wiring.container().backups.put(
        request.identity,
        name,
        body["ciphertext"],
        body.get("version"),
        authorize_replace=lambda: require_step_up(request),
    )
    return ApiResponse(
        201 if created else 200, {"name": name, "version": version, "updated_at": updated_at}
    )


@api.route("/v1/backups/{name}", methods=["GET"], auth=Auth.ACCESS)
def get_backup(request: ApiRequest, name: str) -> ApiResponse:
    """The caller's backup: ``{name, ciphertext, version, updated_at}``."""
    record = wiring.container().backups.get(request.identity, name)
    return ApiResponse(
        200,
        {
            "name": record.name,
            "ciphertext": b64url_encode(record.ciphertext),
            "version": record.version,
            "updated_at": record.updated_at,
        },
    )


@api.route("/v1/backups/{name}", methods=["DELETE"], auth=Auth.ACCESS)
def delete_backup(request: ApiRequest, name: str) -> ApiResponse:
    """Reset the caller's backup, optionally only at ``?version=N``."""
    version = parse_version_param(request.query(allowed=("version",)).get("version"))
    wiring.container().backups.delete(
        request.identity, name, version, authorize=lambda: require_step_up(request)
    )
    return ApiResponse(204)
