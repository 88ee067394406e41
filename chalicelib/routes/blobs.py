"""``/v1/blobs``: encrypted blob storage.  Parse, call the blob service, render.

The bytes of a blob go from the device straight to S3 through presigned
URLs; only small ciphertexts (``PUT .../content``) pass through here.
"""

from __future__ import annotations

from typing import Any

from chalicelib import wiring
from chalicelib.http import ApiBlueprint, ApiRequest, ApiResponse, Auth
from chalicelib.services.blobs import (
    INLINE_MAX,
    BlobRecord,
    BlobState,
    BlobView,
    Reservation,
)

api = ApiBlueprint(__name__, wiring.authenticator)

# Recipients (32 identities of at most 256 raw characters) and the optional
# base64url header (at most 64 KiB) of a recipient change.
_RECIPIENTS_MAX_BODY = 128 * 1024


@api.route("/v1/blobs", methods=["POST"], auth=Auth.ACCESS)
def reserve_blob(request: ApiRequest) -> ApiResponse:
    """Reserve a blob; answer with presigned upload instructions."""
    body = request.json(required=("size", "recipients"), optional=("idempotency_key", "group"))
    reservation = wiring.container().blobs.reserve(
        request.identity,
        size=body["size"],
        recipients=body["recipients"],
        idempotency_key=body.get("idempotency_key"),
        group=body.get("group"),
    )
    return ApiResponse(201, reservation_body(reservation))


@api.route("/v1/blobs", methods=["GET"], auth=Auth.ACCESS)
def list_blobs(request: ApiRequest) -> ApiResponse:
    """A page of the caller's outbox (owned) or inbox (shared with it)."""
    query = request.query(allowed=("role", "limit", "cursor"))
    page = wiring.container().blobs.list_blobs(
        request.identity,
        role=query.get("role"),
        limit=query.get("limit"),
        cursor=query.get("cursor"),
    )
    return ApiResponse(
        200,
        {
            "items": [record_body(record, request.identity) for record in page.items],
            "next_cursor": page.next_cursor,
        },
    )


@api.route("/v1/blobs/{blob_id}", methods=["GET"], auth=Auth.ACCESS)
def get_blob(request: ApiRequest, blob_id: str) -> ApiResponse:
    """One blob, for its owner or a recipient; with a download URL when READY."""
    view = wiring.container().blobs.view(request.identity, blob_id)
    return ApiResponse(200, view_body(view, request.identity))


@api.route(
    "/v1/blobs/{blob_id}/content",
    methods=["PUT"],
    auth=Auth.ACCESS,
    max_body=INLINE_MAX,
    content_types=("application/octet-stream",),
)
def put_blob_content(request: ApiRequest, blob_id: str) -> ApiResponse:
    """Upload a small ciphertext inline; checked, stored and READY at once."""
    view = wiring.container().blobs.upload_inline(request.identity, blob_id, request.binary())
    return ApiResponse(200, view_body(view, request.identity))


@api.route("/v1/blobs/{blob_id}/commit", methods=["POST"], auth=Auth.ACCESS)
def commit_blob(request: ApiRequest, blob_id: str) -> ApiResponse:
    """Check the uploaded object; READY, or REJECTED (and its bytes deleted)."""
    view = wiring.container().blobs.commit(request.identity, blob_id)
    return ApiResponse(200, view_body(view, request.identity))


@api.route(
    "/v1/blobs/{blob_id}/recipients",
    methods=["PUT"],
    auth=Auth.ACCESS,
    max_body=_RECIPIENTS_MAX_BODY,
)
def put_blob_recipients(request: ApiRequest, blob_id: str) -> ApiResponse:
    """Change who may download; adding recipients needs a re-wrapped header."""
    body = request.json(required=("recipients", "version"), optional=("header",))
    view = wiring.container().blobs.set_recipients(
        request.identity,
        blob_id,
        recipients=body["recipients"],
        version=body["version"],
        header=body.get("header"),
    )
    return ApiResponse(200, view_body(view, request.identity))


@api.route("/v1/blobs/{blob_id}", methods=["DELETE"], auth=Auth.ACCESS)
def delete_blob(request: ApiRequest, blob_id: str) -> ApiResponse:
    """Delete every stored version and the metadata; release the quota."""
    wiring.container().blobs.delete(request.identity, blob_id)
    return ApiResponse(204)


# --- rendering ----------------------------------------------------------------------


def record_body(record: BlobRecord, caller: str) -> dict[str, Any]:
    """The JSON form of a blob as ``caller`` may see it."""
    body: dict[str, Any] = {
        "blob_id": record.blob_id,
        "owner": record.owner,
        "recipients": list(record.recipients),
        **({"group": record.group} if record.group else {}),
        "size": record.size,
        "created_at": record.created_at,
        "state": record.state.value,
        "version": record.version,
    }
    if record.state is BlobState.RESERVED:
        body["expires_at"] = record.expires_at
    if record.state is BlobState.READY:
        body["header_length"] = record.header_length
        body["armored"] = record.armored
    if record.state is BlobState.REJECTED and caller == record.owner:
        body["rejected_reason"] = record.reject_reason
        # What proves what was rejected, now that the bytes are deleted.
        if record.rejected_size is not None:
            body["rejected_size"] = record.rejected_size
        if record.rejected_sha256 is not None:
            body["rejected_sha256"] = record.rejected_sha256
    return body


def view_body(view: BlobView, caller: str) -> dict[str, Any]:
    body = record_body(view.record, caller)
    if view.download_url is not None:
        body["download"] = {"url": view.download_url, "expires_in": view.download_expires_in}
    return body


def reservation_body(reservation: Reservation) -> dict[str, Any]:
    record = reservation.record
    body: dict[str, Any] = {
        "blob_id": record.blob_id,
        "state": record.state.value,
        "size": record.size,
        "version": record.version,
    }
    plan = reservation.plan
    if plan is None:
        return body
    body["expires_at"] = record.expires_at
    body["expires_in"] = plan.expires_in
    if plan.kind == "single":
        (target,) = plan.targets
        body["upload"] = {
            "kind": "single",
            "method": "PUT",
            "url": target.url,
            "headers": dict(target.headers),
        }
    else:
        body["upload"] = {
            "kind": "multipart",
            "method": "PUT",
            "part_size": plan.part_size,
            "parts": [
                {"part_number": t.part_number, "url": t.url, "headers": dict(t.headers)}
                for t in plan.targets
            ],
        }
    return body
