"""chalicelib.wire.cards: one canonical encoding, strict JSON, verified signatures."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest

from chalicelib.wire import cards
from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.binary import lp16
from client_sim import _hazmat as hz

ED_SEED = bytes([1]) * 32
OTHER_SEED = bytes([2]) * 32


def make_content(**overrides: Any) -> cards.CardContent:
    fields: dict[str, Any] = {
        "identity": "alice",
        "created_at": 1_700_000_000,
        "ed25519_public_key": hz.ed25519_public_key_of(ED_SEED),
        "x25519_public_key": hz.x25519_public_from_private(bytes([3]) * 32),
        "pq_public_key": hz.mlkem768x25519_from_seed(bytes([4]) * 32).public_bytes,
        "previous_card_id": None,
    }
    fields.update(overrides)
    return cards.CardContent(**fields)


def make_card(seed: bytes = ED_SEED, **overrides: Any) -> cards.Card:
    content = make_content(**overrides)
    return cards.sign_card(content, lambda m: hz.ed25519_sign_with_seed(seed, m))


# --- the canonical encoding ----------------------------------------------------


def test_content_layout_is_label_then_fields() -> None:
    content = make_content(pq_public_key=None)
    encoded = content.encode()
    assert encoded.startswith(lp16(b"sealbox/v1/card") + lp16(b"\x01") + lp16(b"alice"))
    assert encoded.endswith(lp16(b"") + lp16(b""))  # no pq key, no previous card
    assert content.card_id == b64url_encode(hashlib.sha256(encoded).digest())
    assert content.signing_message() == lp16(b"sealbox/v1/card-signature") + encoded


def test_encode_decode_round_trip() -> None:
    card = make_card()
    again = cards.decode_card(card.encode())
    assert again == card
    assert again.encode() == card.encode()
    assert len(card.encode()) == cards.MAX_CARD_SIZE - (64 - len("alice")) - 32


def test_decode_round_trip_with_previous_and_without_pq() -> None:
    first = make_card()
    second = make_card(previous_card_id=first.card_id, pq_public_key=None, created_at=1_700_000_100)
    assert cards.decode_card(second.encode()) == second
    assert second.previous_card_id == first.card_id


def test_card_id_changes_with_every_field() -> None:
    base = make_content()
    variants = [
        make_content(identity="alicf"),
        make_content(created_at=base.created_at + 1),
        make_content(ed25519_public_key=hz.ed25519_public_key_of(OTHER_SEED)),
        make_content(x25519_public_key=bytes(32)),
        make_content(pq_public_key=None),
        make_content(previous_card_id=b64url_encode(bytes(32))),
    ]
    ids = {base.card_id} | {v.card_id for v in variants}
    assert len(ids) == len(variants) + 1


def test_signature_is_over_label_plus_content() -> None:
    card = make_card()
    hz.ed25519_verify_raw(
        card.ed25519_public_key,
        card.signature,
        lp16(cards.CARD_SIGNATURE_LABEL) + card.content.encode(),
    )


def test_sign_card_with_the_wrong_key_is_refused() -> None:
    with pytest.raises(cards.BadCardSignature):
        make_card(seed=OTHER_SEED)


def test_constructing_a_card_verifies_it() -> None:
    card = make_card()
    forged = bytes([card.signature[0] ^ 1]) + card.signature[1:]
    with pytest.raises(cards.BadCardSignature):
        cards.Card(card.content, forged)


def test_repr_is_short_and_names_the_card() -> None:
    card = make_card()
    assert repr(card) == f"Card(identity='alice', card_id='{card.card_id}')"
    assert card.card_id in repr(card.content)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"identity": "Alice"}, cards.InvalidCardIdentity),
        ({"identity": "al"}, cards.InvalidCardIdentity),
        ({"identity": "a/b/c"}, cards.InvalidCardIdentity),
        ({"identity": 5}, cards.CardFieldType),
        ({"created_at": -1}, cards.CardValueOutOfRange),
        ({"created_at": 2**53}, cards.CardValueOutOfRange),
        ({"created_at": True}, cards.CardFieldType),
        ({"created_at": 1.5}, cards.CardFieldType),
        ({"version": 2}, cards.UnsupportedCardVersion),
        ({"version": True}, cards.CardFieldType),
        ({"ed25519_public_key": bytes(31)}, cards.CardFieldLength),
        ({"x25519_public_key": bytes(33)}, cards.CardFieldLength),
        ({"pq_public_key": bytes(1215)}, cards.CardFieldLength),
        ({"pq_public_key": "text"}, cards.CardFieldType),
        ({"previous_card_id": "not-a-card-id"}, cards.CardFieldLength),
        ({"previous_card_id": "A" * 42 + "B"}, cards.CardEncoding),
    ],
)
def test_content_validation(overrides: dict[str, Any], error: type[cards.InvalidCard]) -> None:
    with pytest.raises(error):
        make_content(**overrides)


# --- binary decoding failures ------------------------------------------------


def test_decode_refuses_trailing_bytes_and_truncation() -> None:
    data = make_card().encode()
    with pytest.raises(cards.CardMalformed):
        cards.decode_card(data + b"\x00")
    with pytest.raises(cards.CardMalformed):
        cards.decode_card(data[:-1])
    with pytest.raises(cards.CardMalformed):
        cards.decode_card(b"")


def test_decode_refuses_oversized_input_before_parsing() -> None:
    with pytest.raises(cards.CardTooLarge):
        cards.decode_card(b"\x00" * (cards.MAX_CARD_SIZE + 1))


def test_decode_refuses_wrong_label() -> None:
    data = make_card().encode()
    with pytest.raises(cards.CardMalformed):
        cards.decode_card(lp16(b"sealbox/v2/card") + data[2 + 15 :])


def test_decode_detects_any_flipped_byte() -> None:
    data = make_card().encode()
    for i in range(0, len(data), 7):
        mutated = bytearray(data)
        mutated[i] ^= 0x01
        with pytest.raises(cards.InvalidCard):
            cards.decode_card(bytes(mutated))


# --- JSON -----------------------------------------------------------------------


def test_json_round_trip() -> None:
    card = make_card()
    obj = card.to_json()
    assert set(obj) == {
        "version",
        "identity",
        "created_at",
        "keys",
        "previous_card_id",
        "signature",
        "card_id",
    }
    assert set(obj["keys"]) == {"ed25519", "x25519", "mlkem768x25519"}
    assert cards.card_from_json(obj) == card
    assert cards.card_from_json_text(json.dumps(obj)) == card
    assert cards.card_from_json_text(json.dumps(obj).encode()) == card


def test_json_without_pq_key_omits_it() -> None:
    card = make_card(pq_public_key=None)
    assert "mlkem768x25519" not in card.to_json()["keys"]
    assert cards.card_from_json(card.to_json()) == card


def mutate(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    *parents, leaf = path.split(".")
    target = out
    for p in parents:
        target = target[p]
    if value is _DELETE:
        del target[leaf]
    else:
        target[leaf] = value
    return out


_DELETE = object()


def flip_b64(text: str) -> str:
    raw = bytearray(b64url_decode(text))
    raw[0] ^= 1
    return b64url_encode(bytes(raw))


def json_failure_cases() -> list[tuple[str, Any, type[cards.InvalidCard], str | None]]:
    return [
        ("extra", 1, cards.UnknownCardField, "extra"),
        ("keys.rsa", "AAAA", cards.UnknownCardField, "keys.rsa"),
        ("signature", _DELETE, cards.MissingCardField, "signature"),
        ("previous_card_id", _DELETE, cards.MissingCardField, "previous_card_id"),
        ("keys.x25519", _DELETE, cards.MissingCardField, "keys.x25519"),
        ("version", "1", cards.CardFieldType, "version"),
        ("version", 2, cards.UnsupportedCardVersion, "version"),
        ("identity", None, cards.CardFieldType, "identity"),
        ("identity", "ALICE", cards.InvalidCardIdentity, "identity"),
        ("created_at", "1700000000", cards.CardFieldType, "created_at"),
        ("created_at", 1.7e9, cards.CardFieldType, "created_at"),
        ("keys", [], cards.CardFieldType, "keys"),
        ("keys.ed25519", 5, cards.CardFieldType, "keys.ed25519"),
        ("keys.mlkem768x25519", None, cards.CardFieldType, "keys.mlkem768x25519"),
        ("keys.ed25519", "AAAA", cards.CardFieldLength, "keys.ed25519"),
        ("keys.x25519", b64url_encode(bytes(33)), cards.CardFieldLength, "keys.x25519"),
        ("signature", b64url_encode(bytes(63)), cards.CardFieldLength, "signature"),
        ("card_id", b64url_encode(bytes(31)), cards.CardFieldLength, "card_id"),
        # padding and the standard alphabet are not canonical base64url
        ("signature", "+" * 86, cards.CardEncoding, "signature"),
        ("keys.x25519", "A" * 42 + "B", cards.CardEncoding, "keys.x25519"),
        ("card_id", b64url_encode(bytes(32)), cards.CardIdMismatch, "card_id"),
        ("previous_card_id", b64url_encode(bytes(32)), cards.CardIdMismatch, "card_id"),
        ("created_at", 1_700_000_001, cards.CardIdMismatch, "card_id"),
    ]


@pytest.mark.parametrize(("path", "value", "error", "field"), json_failure_cases())
def test_json_failures(path: str, value: Any, error: type[cards.InvalidCard], field: str) -> None:
    obj = mutate(make_card().to_json(), path, value)
    with pytest.raises(error) as info:
        cards.card_from_json(obj)
    assert type(info.value) is error
    assert info.value.field == field


def test_json_bad_signature_with_matching_card_id() -> None:
    obj = make_card().to_json()
    obj["signature"] = flip_b64(obj["signature"])
    with pytest.raises(cards.BadCardSignature):
        cards.card_from_json(obj)


def test_json_swapped_key_breaks_card_id() -> None:
    obj = make_card().to_json()
    obj["keys"]["x25519"] = flip_b64(obj["keys"]["x25519"])
    with pytest.raises(cards.CardIdMismatch):
        cards.card_from_json(obj)


def test_json_resigned_by_another_key_with_recomputed_id_is_refused() -> None:
    # An attacker who recomputes card_id for a changed key still cannot sign.
    card = make_card()
    content = make_content(x25519_public_key=bytes(32))
    obj = card.to_json()
    obj["keys"]["x25519"] = b64url_encode(bytes(32))
    obj["card_id"] = content.card_id
    with pytest.raises(cards.BadCardSignature):
        cards.card_from_json(obj)


def test_json_not_an_object() -> None:
    values: list[object] = [[], "card", None, 1]
    for value in values:
        with pytest.raises(cards.CardMalformed):
            cards.card_from_json(value)


def test_json_text_limits() -> None:
    text = json.dumps(make_card().to_json())
    with pytest.raises(cards.CardTooLarge):
        cards.card_from_json_text(text + " " * cards.MAX_CARD_JSON_SIZE)
    with pytest.raises(cards.CardTooLarge):
        cards.card_from_json_text("é" * (cards.MAX_CARD_JSON_SIZE // 2 + 1))
    with pytest.raises(cards.CardMalformed):
        cards.card_from_json_text("{not json")
    with pytest.raises(cards.CardMalformed):
        cards.card_from_json_text(b"\xff\xfe")
    with pytest.raises(cards.CardMalformed):
        cards.card_from_json_text('{"version": NaN}')
    dup = text[:-1] + ', "version": 1}'
    with pytest.raises(cards.CardMalformed):
        cards.card_from_json_text(dup)


def test_error_codes_are_distinct_and_stable() -> None:
    classes = [
        c for c in vars(cards).values() if isinstance(c, type) and issubclass(c, cards.InvalidCard)
    ]
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))
    assert all(issubclass(c, ValueError) for c in classes)
    assert cards.BadCardSignature.code == "bad_card_signature"
    assert cards.InvalidCard.code == "invalid_card"


def test_error_messages_do_not_echo_input() -> None:
    obj = make_card().to_json()
    obj["identity"] = "<script>evil</script>"
    with pytest.raises(cards.InvalidCard) as info:
        cards.card_from_json(obj)
    assert "script" not in str(info.value)


# --- policy checks --------------------------------------------------------------


def test_check_created_at() -> None:
    card = make_card()
    cards.check_created_at(card, now=card.created_at + 300)
    cards.check_created_at(card, now=card.created_at - 300)
    with pytest.raises(cards.CardClockSkew):
        cards.check_created_at(card, now=card.created_at + 301)
    with pytest.raises(cards.CardClockSkew):
        cards.check_created_at(card, now=card.created_at - 11, max_skew=10)
    with pytest.raises(ValueError, match="negative"):
        cards.check_created_at(card, now=0, max_skew=-1)


def test_check_rotation() -> None:
    first = make_card()
    second = make_card(
        seed=OTHER_SEED,
        ed25519_public_key=hz.ed25519_public_key_of(OTHER_SEED),
        previous_card_id=first.card_id,
        created_at=first.created_at + 10,
    )
    cards.check_rotation(second, first)
    with pytest.raises(cards.CardRotationMismatch):
        cards.check_rotation(first, second)
    with pytest.raises(cards.CardRotationMismatch):
        cards.check_rotation(first, first)
    bob = make_card(identity="bob", previous_card_id=first.card_id, created_at=first.created_at + 1)
    with pytest.raises(cards.CardRotationMismatch):
        cards.check_rotation(bob, first)
    older = make_card(previous_card_id=first.card_id, created_at=first.created_at - 1)
    with pytest.raises(cards.CardRotationMismatch):
        cards.check_rotation(older, first)


# --- rotation signatures and safety numbers -------------------------------------


def test_sign_rotation_refuses_a_key_other_than_the_previous_cards() -> None:
    from client_sim.identity import KeyBundle

    old = KeyBundle.generate("alice", created_at=1_700_000_000)
    new = old.rotate(created_at=1_700_000_100)
    stranger = KeyBundle.generate("alice", created_at=1_700_000_000)
    with pytest.raises(cards.BadRotationSignature):
        cards.sign_rotation(old.card, new.card, stranger.sign)
    signature = old.sign_rotation(new.card)
    cards.verify_rotation(old.card, new.card, signature)
    # The signature is for this pair only.
    with pytest.raises(cards.BadRotationSignature):
        cards.verify_rotation(old.card, old.rotate(created_at=1_700_000_100).card, signature)


def test_safety_number_changes_with_either_card_and_needs_two_identities() -> None:
    from chalicelib.wire.safety import safety_number

    a, b, c = (cards.card_id_to_str(bytes([n]) * 32) for n in (1, 2, 3))
    number = safety_number("alice", a, "bob", b)
    assert safety_number("bob", b, "alice", a) == number
    assert safety_number("alice", c, "bob", b) != number
    assert safety_number("alice", a, "bob", c) != number
    with pytest.raises(ValueError, match="two different"):
        safety_number("alice", a, "alice", b)
    with pytest.raises(ValueError, match="canonical"):
        safety_number("Alice", a, "bob", b)
