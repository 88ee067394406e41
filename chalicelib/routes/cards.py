"""``/v1/cards``: the key directory.  Publish, find, fetch and revoke cards."""

from __future__ import annotations

from typing import Any

from chalicelib import wiring
from chalicelib.http import ApiBlueprint, ApiRequest, ApiResponse, Auth
from chalicelib.routes.stepup import require_step_up_to_publish, require_step_up_to_revoke
from chalicelib.services.cards import CardRecord
from chalicelib.services.transparency import InclusionProofs
from chalicelib.wire.b64 import b64url_encode
from chalicelib.wire.cards import MAX_CARD_JSON_SIZE

api = ApiBlueprint(__name__, wiring.authenticator)

# The card itself is bounded by the card format; the envelope adds a few bytes.
_MAX_PUBLISH_BODY = MAX_CARD_JSON_SIZE + 256


def card_view(record: CardRecord) -> dict[str, Any]:
    """The JSON shape of a card record in every response."""
    view: dict[str, Any] = {
        "card": record.card.to_json(),
        "status": record.status.value,
        "published_at": record.published_at,
    }
    if record.status_changed_at is not None:
        view["status_changed_at"] = record.status_changed_at
    if record.superseded_by is not None:
        view["superseded_by"] = record.superseded_by
    if record.rotation_signature is not None:
        view["rotation_signature"] = b64url_encode(record.rotation_signature)
    if record.log_index is not None:
        view["log_index"] = record.log_index
    return view


def _with_proofs(
    views: list[dict[str, Any]], records: list[CardRecord], proofs: InclusionProofs | None
) -> dict[str, Any]:
    """Attach each card's inclusion proof and the checkpoint they lead to."""
    if proofs is None:
        return {}
    for view, record in zip(views, records, strict=True):
        proof = proofs.proofs.get(record.log_index) if record.log_index is not None else None
        if proof is not None:
            view["log_proof"] = [b64url_encode(h) for h in proof]
    return {"checkpoint": proofs.checkpoint}


@api.route("/v1/cards", methods=["POST"], auth=Auth.ACCESS, max_body=_MAX_PUBLISH_BODY)
def publish_card(request: ApiRequest) -> ApiResponse:
    """Publish the caller's self-signed card (first registration, or a rotation
    signed by the previous card's key in ``rotation_signature``; an identity
    reset needs a step-up proof)."""
    body = request.json(required=("card",), optional=("rotation_signature",))
    require_step_up_to_publish(request, body["card"])
    record = wiring.container().cards.publish(
        request.identity, body["card"], body.get("rotation_signature")
    )
    return ApiResponse(201, card_view(record))


@api.route("/v1/cards", methods=["GET"], auth=Auth.ACCESS)
def find_cards(request: ApiRequest) -> ApiResponse:
    """Active cards of up to 50 identities, in one batched read."""
    identities = request.query_list("identity")
    records, proofs = wiring.container().cards.find_proven(identities)
    views = [card_view(record) for record in records]
    extra = _with_proofs(views, records, proofs)
    return ApiResponse(200, {"cards": views, **extra})


@api.route("/v1/cards/{card_id}", methods=["GET"], auth=Auth.ACCESS)
def get_card(request: ApiRequest, card_id: str) -> ApiResponse:
    """One card by id, active, superseded or revoked (to verify old signatures)."""
    cards = wiring.container().cards
    record = cards.get(card_id)
    view = card_view(record)
    extra = _with_proofs([view], [record], cards.prove([record]))
    return ApiResponse(200, {**view, **extra})


@api.route("/v1/cards/{card_id}/revoke", methods=["POST"], auth=Auth.ACCESS)
def revoke_card(request: ApiRequest, card_id: str) -> ApiResponse:
    """The owner revokes its active card (unregister); needs a step-up proof."""
    require_step_up_to_revoke(request)
    wiring.container().cards.revoke(request.identity, card_id)
    return ApiResponse(204)
