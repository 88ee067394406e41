"""client_sim.identity: key bundles, their cards and serialization."""

from __future__ import annotations

import copy
import pickle

import pytest

from chalicelib.wire import cards
from chalicelib.wire.binary import lp16
from client_sim import _hazmat, age
from client_sim.identity import (
    KEY_BUNDLE_LABEL,
    InvalidKeyBundle,
    KeyBundle,
    age_identities_for,
    age_recipients_for,
)
from tests.identities import bundle, seed


def test_generate_makes_a_verified_self_signed_card() -> None:
    keys = KeyBundle.generate("alice", created_at=1234)
    card = keys.card
    assert card.identity == "alice" == keys.identity
    assert card.created_at == 1234
    assert card.previous_card_id is None
    assert card.pq_public_key is not None
    assert len(card.pq_public_key) == 1216
    assert keys.card_id == card.card_id
    # The published form parses back to the same card.
    assert cards.card_from_json(card.to_json()) == card


def test_generate_uses_fresh_keys_each_time() -> None:
    a = KeyBundle.generate("alice")
    b = KeyBundle.generate("alice")
    assert a.card.ed25519_public_key != b.card.ed25519_public_key
    assert a.card.x25519_public_key != b.card.x25519_public_key
    assert a.card.pq_public_key != b.card.pq_public_key


def test_generate_defaults_created_at_to_now() -> None:
    import time

    before = int(time.time())
    keys = KeyBundle.generate("alice")
    assert before <= keys.card.created_at <= int(time.time())


def test_generate_takes_its_randomness_from_rand() -> None:
    draws = iter([seed("e"), seed("x"), seed("p")])
    keys = KeyBundle.generate("alice", created_at=5, rand=lambda n: next(draws))
    twin = KeyBundle._from_seeds(
        "alice", ed25519_seed=seed("e"), x25519_secret=seed("x"), pq_seed=seed("p"), created_at=5
    )
    assert keys == twin
    assert keys.card.encode() == twin.card.encode()


def test_generate_refuses_non_canonical_identity() -> None:
    with pytest.raises(cards.InvalidCardIdentity):
        KeyBundle.generate("Alice")


def test_rotation_names_the_previous_card() -> None:
    old = bundle("alice")
    new = old.rotate(created_at=old.card.created_at + 60)
    assert new.card.previous_card_id == old.card_id
    assert new.identity == old.identity
    assert new.card_id != old.card_id
    cards.check_rotation(new.card, old.card)


def test_sign_verifies_against_the_card_key() -> None:
    keys = bundle("alice")
    sig = keys.sign(b"sealbox/v1/test")
    _hazmat.ed25519_verify_raw(keys.card.ed25519_public_key, sig, b"sealbox/v1/test")


def test_serialization_round_trip() -> None:
    keys = bundle("alice")
    data = keys.to_bytes()
    assert data.startswith(lp16(KEY_BUNDLE_LABEL) + lp16(b"\x01"))
    again = KeyBundle.from_bytes(data)
    assert again == keys
    assert again.card == keys.card
    assert again.to_bytes() == data


def test_from_bytes_rejects_every_flipped_byte() -> None:
    data = bundle("alice").to_bytes()
    for i in range(0, len(data), 11):
        mutated = bytearray(data)
        mutated[i] ^= 0x01
        with pytest.raises(InvalidKeyBundle):
            KeyBundle.from_bytes(bytes(mutated))


def test_from_bytes_rejects_truncation_and_trailing_data() -> None:
    data = bundle("alice").to_bytes()
    with pytest.raises(InvalidKeyBundle):
        KeyBundle.from_bytes(data[:-1])
    with pytest.raises(InvalidKeyBundle):
        KeyBundle.from_bytes(data + b"\x00")
    with pytest.raises(InvalidKeyBundle):
        KeyBundle.from_bytes(b"")


def test_keys_must_match_the_card() -> None:
    alice, bob = bundle("alice"), bundle("bob")
    with pytest.raises(InvalidKeyBundle, match="do not match"):
        KeyBundle(
            alice.card,
            ed25519_seed=seed("bob", 0, "ed25519"),
            x25519_secret=seed("alice", 0, "x25519"),
            pq_seed=seed("alice", 0, "pq"),
        )
    with pytest.raises(InvalidKeyBundle, match="do not match"):
        KeyBundle(
            bob.card,
            ed25519_seed=seed("bob", 0, "ed25519"),
            x25519_secret=seed("bob", 0, "x25519"),
            pq_seed=seed("alice", 0, "pq"),
        )
    with pytest.raises(InvalidKeyBundle, match="32 bytes"):
        KeyBundle(alice.card, ed25519_seed=b"", x25519_secret=b"", pq_seed=b"")
    with pytest.raises(TypeError):
        KeyBundle(alice.card.to_json(), ed25519_seed=b"", x25519_secret=b"", pq_seed=b"")  # type: ignore[arg-type]


def test_card_without_pq_key_cannot_back_a_bundle() -> None:
    ed = seed("nopq", "ed")
    content = cards.CardContent(
        identity="carol",
        created_at=1,
        ed25519_public_key=_hazmat.ed25519_public_key_of(ed),
        x25519_public_key=_hazmat.x25519_public_from_private(seed("nopq", "x")),
    )
    card = cards.sign_card(content, lambda m: _hazmat.ed25519_sign_with_seed(ed, m))
    with pytest.raises(InvalidKeyBundle, match="no ML-KEM"):
        KeyBundle(card, ed25519_seed=ed, x25519_secret=seed("nopq", "x"), pq_seed=seed("p"))


def test_bundles_are_immutable_unhashable_and_unpicklable() -> None:
    keys = bundle("alice")
    with pytest.raises(AttributeError):
        keys._card = bundle("bob").card
    with pytest.raises(TypeError):
        hash(keys)
    with pytest.raises(TypeError):
        pickle.dumps(keys)
    with pytest.raises(TypeError):
        copy.deepcopy(keys)
    assert keys != bundle("bob")
    assert keys != "alice"


def test_repr_names_identity_and_card_only() -> None:
    keys = bundle("alice")
    assert repr(keys) == f"KeyBundle(identity='alice', card_id='{keys.card_id}')"
    assert str(keys) == repr(keys)


# --- the age adapter -------------------------------------------------------------


def test_age_recipients_prefer_pq_when_every_card_has_it() -> None:
    recipients = age_recipients_for([bundle("alice").card, bundle("bob").card])
    assert [type(r) for r in recipients] == [age.HybridRecipient] * 2
    assert [str(r) for r in recipients] == [
        str(age.HybridRecipient(bundle(name).card.pq_public_key or b""))
        for name in ("alice", "bob")
    ]


def test_age_recipients_fall_back_to_x25519_for_all() -> None:
    ed = seed("legacy", "ed")
    content = cards.CardContent(
        identity="legacy",
        created_at=1,
        ed25519_public_key=_hazmat.ed25519_public_key_of(ed),
        x25519_public_key=_hazmat.x25519_public_from_private(seed("legacy", "x")),
    )
    legacy = cards.sign_card(content, lambda m: _hazmat.ed25519_sign_with_seed(ed, m))
    recipients = age_recipients_for([bundle("alice").card, legacy])
    assert [type(r) for r in recipients] == [age.X25519Recipient] * 2


def test_age_recipients_need_a_card() -> None:
    with pytest.raises(ValueError, match="at least one"):
        age_recipients_for([])


def test_age_identities_cover_every_bundle() -> None:
    identities = age_identities_for([bundle("alice"), bundle("alice", 1)])
    assert len(identities) == 4
    assert {type(i) for i in identities} == {age.HybridIdentity, age.X25519Identity}
