"""Step-up: re-authentication with the login key for destructive or identity-changing calls.

``POST /v1/step-up`` turns the login key into a single-use proof that lives
five minutes; the hooks below are what the card and backup routes call
before a call that needs one (revoking a card, publishing a card that
resets an identity, deleting or replacing a backup).  docs/security.md says
why the login key and not a card-key signature.
"""

from __future__ import annotations

from typing import Any, Final

from chalicelib import wiring
from chalicelib.http import ApiBlueprint, ApiRequest, ApiResponse, Auth

api = ApiBlueprint(__name__, wiring.authenticator)

STEP_UP_HEADER: Final = "sealbox-step-up"


@api.route("/v1/step-up", methods=["POST"], auth=Auth.ACCESS)
def create_step_up(request: ApiRequest) -> ApiResponse:
    """Re-authenticate with the login key; a single-use proof for one destructive call."""
    body = request.json(required=("login_key",))
    proof, ttl = wiring.container().accounts.step_up(request.identity, body["login_key"])
    return ApiResponse(201, {"step_up_token": proof, "expires_in": ttl})


def require_step_up(request: ApiRequest) -> None:
    """Spend the request's step-up proof (``Sealbox-Step-Up`` header).

    Raises:
        StepUpRequired: absent, malformed, unknown, spent, expired, or
            another identity's (403 ``step_up_required``).
    """
    proof = request.raw.headers.get(STEP_UP_HEADER)
    wiring.container().accounts.consume_step_up(request.identity, proof)


def require_step_up_to_publish(request: ApiRequest, card: Any) -> None:
    """The publish hook: a card that is not a rotation, for an identity that
    has (or had) a card, is an identity reset and needs a step-up proof.

    A rotation (the card names ``previous_card_id``) is proven by keys, not
    here.  A first registration needs none: nothing to take over.  "Had a
    card" is this identity having revoked one (noted by the revoke hook);
    "has" is an active card now.

    Raises:
        StepUpRequired: a reset without a live proof.
    """
    if isinstance(card, dict) and card.get("previous_card_id") is not None:
        return
    container = wiring.container()
    identity = request.identity
    if container.accounts.had_card(identity) or container.cards.find([identity]):
        require_step_up(request)


def require_step_up_to_revoke(request: ApiRequest) -> None:
    """The revoke hook: spend a step-up proof, then note that the identity had a card.

    Raises:
        StepUpRequired: no live proof.
    """
    require_step_up(request)
    wiring.container().accounts.note_card_revocation(request.identity)
