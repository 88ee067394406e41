"""``GET /v1/notes``: every note the caller can read, in one call.

A note is a sealed blob (the device encrypted and signed it; the server
holds ciphertext only).  This route only lists: it merges the caller's own
notes and those shared with it, newest first, and says which are whose.
It reads the caller's identity from the access token Sealbox verified
(``request.identity``) and asks Sealbox's blob service, so it can never
list another person's notes.
"""

from __future__ import annotations

from typing import Any

from chalicelib.extensions import ApiRequest, ApiResponse, Auth, blueprint, services

api = blueprint(__name__)

#: The most notes one listing returns (of each kind: own and shared).
MAX_NOTES = 200
_PAGE = "100"


# Published in /openapi.json beside Sealbox's own routes; Sealbox adds the
# security requirement, the error responses and any path parameters.
_NOTE = {
    "type": "object",
    "required": ["id", "author", "mine", "shared_with", "size", "created_at"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string"},
        "author": {"type": "string"},
        "mine": {"type": "boolean"},
        "shared_with": {"type": "array", "items": {"type": "string"}},
        "size": {"type": "integer", "minimum": 0},
        "created_at": {"type": "integer"},
    },
}
LIST_NOTES_DOC = {
    "operationId": "listNotes",
    "summary": "The caller's notes and the notes shared with it, newest first.",
    "tags": ["notes"],
    "responses": {
        "200": {
            "description": "At most 200 notes of each kind (own and shared).",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["identity", "notes"],
                        "additionalProperties": False,
                        "properties": {
                            "identity": {"type": "string"},
                            "notes": {"type": "array", "items": _NOTE},
                        },
                    }
                }
            },
        }
    },
}


@api.route("/v1/notes", methods=["GET"], auth=Auth.ACCESS, openapi=LIST_NOTES_DOC)
def list_notes(request: ApiRequest) -> ApiResponse:
    """The caller's notes and the notes shared with it, newest first."""
    request.query(allowed=())  # no parameters: an unknown one is a 400
    me = request.identity
    notes: list[dict[str, Any]] = []
    for role in ("outbox", "inbox"):
        notes.extend(_note(record, me) for record in _all(me, role))
    notes.sort(key=lambda note: (note["created_at"], note["id"]), reverse=True)
    return ApiResponse(200, {"identity": me, "notes": notes})


def _all(identity: str, role: str) -> list[Any]:
    blobs = services().blobs
    records: list[Any] = []
    cursor = None
    while len(records) < MAX_NOTES:
        page = blobs.list_blobs(identity, role=role, limit=_PAGE, cursor=cursor)
        records.extend(r for r in page.items if r.state.value == "ready")
        cursor = page.next_cursor
        if cursor is None:
            break
    return records[:MAX_NOTES]


def _note(record: Any, me: str) -> dict[str, Any]:
    return {
        "id": record.blob_id,
        "author": record.owner,
        "mine": record.owner == me,
        "shared_with": sorted(r for r in record.recipients if r != record.owner),
        "size": record.size,
        "created_at": record.created_at,
    }
