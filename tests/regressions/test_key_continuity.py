"""Key continuity (issue 11): a stolen access token must not hand an identity to its thief.

Each test is an attack that worked against the directory before rotations
had to be signed by the previous card's key: the thief holds the victim's
access token (15 minutes of it is enough) but not the victim's private keys.
"""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest

from chalicelib.wire.b64 import b64url_encode
from client_sim.api import ApiClient
from tests.functional.conftest import STAGE_ENV
from tests.support.directory import User, fresh_bundle, make_user, rotation_signature


def _table() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=STAGE_ENV["SEALBOX_CARDS_TABLE"])["Items"]
    return sorted(items, key=lambda item: item["pk"]["S"])


def _refused(reply: Any, code: str) -> None:
    assert 400 <= reply.status < 500, reply.body
    assert reply.json()["error"]["code"] == code


@pytest.fixture
def victim(api: ApiClient) -> User:
    return make_user(api, "alice")


def test_stolen_access_token_alone_cannot_rotate_the_card(api, raw, victim) -> None:
    """The thief names the victim's active card as previous_card_id and
    publishes his own keys: before the fix this was a valid rotation."""
    own = fresh_bundle("alice")
    api.publish_card(victim.access_token, own.card.to_json())
    before = _table()
    # The thief's card names the victim's card; he can sign only with his own keys.
    forged = type(own).generate("alice", previous_card_id=own.card_id)
    reply = raw("POST", "/v1/cards", {"card": forged.card.to_json()}, token=victim.access_token)
    _refused(reply, "rotation_signature_required")
    assert _table() == before


def test_a_rotation_signed_by_another_key_is_refused(api, raw, victim) -> None:
    """A rotation signature made by the new card's own key (or any key but the
    previous card's) proves nothing about the old key holder's consent."""
    own = fresh_bundle("alice")
    api.publish_card(victim.access_token, own.card.to_json())
    before = _table()
    forged = type(own).generate("alice", previous_card_id=own.card_id)
    # The thief signs the rotation message with the key he does hold.
    from chalicelib.wire.cards import rotation_message

    signature = b64url_encode(forged.sign(rotation_message(own.card, forged.card)))
    reply = raw(
        "POST",
        "/v1/cards",
        {"card": forged.card.to_json(), "rotation_signature": signature},
        token=victim.access_token,
    )
    _refused(reply, "bad_rotation_signature")
    assert _table() == before


def test_a_rotation_signature_for_another_card_is_not_replayed(api, raw, victim) -> None:
    """A genuine rotation signature binds the new card id: the thief can't
    lift it from one rotation and attach it to his own card."""
    own = fresh_bundle("alice")
    api.publish_card(victim.access_token, own.card.to_json())
    genuine = own.rotate(created_at=int(time.time()))
    lifted = rotation_signature(own, genuine)
    forged = type(own).generate("alice", previous_card_id=own.card_id)
    before = _table()
    reply = raw(
        "POST",
        "/v1/cards",
        {"card": forged.card.to_json(), "rotation_signature": lifted},
        token=victim.access_token,
    )
    _refused(reply, "bad_rotation_signature")
    assert _table() == before
