"""A stolen access token alone can't revoke, reset, delete or replace the backup.

Issue 11 ("Key continuity", step-up): every card and backup route trusted
the bearer token alone, so 15 minutes with a stolen access token were
enough to revoke a user's card, publish the thief's keys as the user's new
identity, or delete or overwrite the key backup (the user's only way back to
their keys).  These calls now need a step-up proof: a single-use, five-
minute token from ``POST /v1/step-up``, which re-authenticates with the
login key (throttled like a login).  The access token can't make one.
"""

from __future__ import annotations

import pytest

from chalicelib.wire.b64 import b64url_encode
from client_sim.api import ApiClient
from client_sim.backup import TESTING_BOUNDS, KdfParams, seal_backup
from client_sim.errors import ServerError
from tests.support.directory import User, fresh_bundle, make_user

WRONG = "A" * 43
PARAMS = KdfParams(memory_kib=256, iterations=1, lanes=1, salt=bytes(32))


def _refused(call) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(ServerError) as refused:
        call()
    return refused.value.status, refused.value.code


@pytest.fixture
def alice(api: ApiClient) -> User:
    return make_user(api, "alice")


def _published(api: ApiClient, alice: User) -> str:
    bundle = fresh_bundle("alice")
    api.publish_card(alice.access_token, bundle.card.to_json())
    return bundle.card_id


def test_a_stolen_access_token_cannot_revoke_the_card(api, alice) -> None:
    card_id = _published(api, alice)
    assert _refused(lambda: api.revoke_card(alice.access_token, card_id)) == (
        403,
        "step_up_required",
    )
    assert api.find_cards(alice.access_token, ["alice"])  # still active
    # A made-up or reused proof is no proof.
    made_up = "sbs_" + WRONG
    assert _refused(lambda: api.revoke_card(alice.access_token, card_id, made_up))[0] == 403
    proof = api.step_up(alice.access_token, alice.keys.login_key_b64)
    api.revoke_card(alice.access_token, card_id, proof)
    assert api.find_cards(alice.access_token, ["alice"]) == []


def test_a_stolen_access_token_cannot_reset_the_identity(api, alice) -> None:
    card_id = _published(api, alice)
    api.revoke_card(
        alice.access_token, card_id, api.step_up(alice.access_token, alice.keys.login_key_b64)
    )
    # The thief publishes his own keys as alice's new card: refused.
    thiefs = fresh_bundle("alice")
    assert _refused(lambda: api.publish_card(alice.access_token, thiefs.card.to_json())) == (
        403,
        "step_up_required",
    )
    assert api.find_cards(alice.access_token, ["alice"]) == []
    # The owner, with the password, can.
    proof = api.step_up(alice.access_token, alice.keys.login_key_b64)
    api.publish_card(alice.access_token, fresh_bundle("alice").card.to_json(), step_up=proof)


def test_a_proof_is_single_use_and_bound_to_its_identity(api, alice) -> None:
    bob = make_user(api, "bob")
    card_id = _published(api, alice)
    bobs_proof = api.step_up(bob.access_token, bob.keys.login_key_b64)
    assert _refused(lambda: api.revoke_card(alice.access_token, card_id, bobs_proof))[0] == 403
    proof = api.step_up(alice.access_token, alice.keys.login_key_b64)
    ciphertext = _sealed(alice)
    api.put_backup(alice.access_token, "primary", ciphertext)
    api.delete_backup(alice.access_token, "primary", step_up=proof)
    api.put_backup(alice.access_token, "primary", ciphertext)
    assert _refused(lambda: api.delete_backup(alice.access_token, "primary", step_up=proof)) == (
        403,
        "step_up_required",
    )


def test_a_wrong_login_key_gets_no_proof_and_is_throttled(api, alice) -> None:
    wrong = b64url_encode(bytes(32))
    codes = [_refused(lambda: api.step_up(alice.access_token, wrong)) for _ in range(6)]
    assert codes[:5] == [(403, "wrong_login_key")] * 5
    assert codes[5] == (429, "too_many_attempts")


def _sealed(user: User) -> str:
    sealed = seal_backup([fresh_bundle(user.identity)], bytes(32), PARAMS, bounds=TESTING_BOUNDS)
    return b64url_encode(sealed)


def test_a_stolen_access_token_cannot_delete_or_replace_the_backup(api, alice) -> None:
    ciphertext = _sealed(alice)
    created = api.put_backup(alice.access_token, "primary", ciphertext)  # creating: free
    version = created["version"]
    assert _refused(lambda: api.delete_backup(alice.access_token, "primary")) == (
        403,
        "step_up_required",
    )
    assert _refused(
        lambda: api.put_backup(alice.access_token, "primary", _sealed(alice), version)
    ) == (403, "step_up_required")
    assert api.get_backup(alice.access_token, "primary")["ciphertext"] == ciphertext
    proof = api.step_up(alice.access_token, alice.keys.login_key_b64)
    api.put_backup(alice.access_token, "primary", _sealed(alice), version, step_up=proof)
