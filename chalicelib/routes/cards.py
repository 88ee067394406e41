"""``/v1/cards``: the key directory.  Publish, find, fetch and revoke cards."""

from __future__ import annotations

from typing import Any

from chalicelib import wiring
from chalicelib.http import ApiBlueprint, ApiRequest, ApiResponse, Auth
from chalicelib.routes.stepup import require_step_up_to_publish, require_step_up_to_revoke
from chalicelib.services.cards import CardRecord
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
    return view


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
    records = wiring.container().cards.find(identities)
    return ApiResponse(200, {"cards": [card_view(record) for record in records]})


@api.route("/v1/cards/{card_id}", methods=["GET"], auth=Auth.ACCESS)
def get_card(request: ApiRequest, card_id: str) -> ApiResponse:
    """One card by id, active, superseded or revoked (to verify old signatures)."""
    return ApiResponse(200, card_view(wiring.container().cards.get(card_id)))


@api.route("/v1/cards/{card_id}/revoke", methods=["POST"], auth=Auth.ACCESS)
def revoke_card(request: ApiRequest, card_id: str) -> ApiResponse:
    """The owner revokes its active card (unregister); needs a step-up proof."""
    require_step_up_to_revoke(request)
    wiring.container().cards.revoke(request.identity, card_id)
    return ApiResponse(204)
