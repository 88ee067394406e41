"""The app key secret format (chalicelib.wire.appkey): round trip and MUST-reject rules."""

from __future__ import annotations

import json

import pytest

from chalicelib.storage.appkeys import retired_at_from_labels, retired_label
from chalicelib.wire.appkey import (
    MAX_APP_KEY_SECRET_LENGTH,
    AppKey,
    MalformedAppKeySecret,
    encode_app_key_secret,
    new_app_key_secret,
    parse_app_key_secret,
    parse_app_key_secret_with_rotation,
)
from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.jwk import ed25519_jwk_thumbprint
from tests.unit.test_jwk import RFC8037_D, RFC8037_THUMBPRINT, RFC8037_X

SEED = b64url_decode(RFC8037_D)


def assert_no_secret_in_chain(exc: BaseException, secret: str) -> None:
    """No exception in the chain mentions ``secret`` or keeps it in an attribute."""
    seen = 0
    current: BaseException | None = exc
    while current is not None:
        seen += 1
        assert secret not in str(current)
        assert secret not in repr(current.args)
        for value in vars(current).values():
            assert secret not in repr(value)
        current = current.__cause__ or current.__context__
    assert seen >= 1


def _fields(**changes):
    obj = json.loads(encode_app_key_secret(AppKey.from_seed(SEED, created_at=1_700_000_000)))
    for name, value in changes.items():
        if value is ...:
            del obj[name]
        else:
            obj[name] = value
    return obj


def test_deterministic_encoding_is_the_documented_format():
    text = encode_app_key_secret(AppKey.from_seed(SEED, created_at=1_700_000_000))
    assert json.loads(text) == {
        "v": 1,
        "kid": RFC8037_THUMBPRINT,
        "alg": "EdDSA",
        "crv": "Ed25519",
        "x": RFC8037_X,
        "d": RFC8037_D,
        "created_at": 1_700_000_000,
    }


def test_round_trip_of_a_fresh_key():
    text = new_app_key_secret(1_700_000_123.9)
    key = parse_app_key_secret(text)
    assert key.created_at == 1_700_000_123
    assert key.kid == ed25519_jwk_thumbprint(key.public.x)
    assert encode_app_key_secret(key) == text


def test_fresh_keys_differ():
    assert (
        parse_app_key_secret(new_app_key_secret(0)).kid
        != parse_app_key_secret(new_app_key_secret(0)).kid
    )


def test_repr_shows_the_kid_only():
    key = AppKey.from_seed(SEED, created_at=0)
    text = encode_app_key_secret(key)
    for shown in (repr(key), str(key), repr(key.public), f"{key}"):
        assert RFC8037_D not in shown
        assert SEED.hex() not in shown
    assert repr(key) == f"AppKey(kid={RFC8037_THUMBPRINT!r})"
    assert RFC8037_D in text  # sanity: the secret really is in the encoding


BAD = {
    "not json": "{",
    "array": "[]",
    "duplicate member": '{"v":1,"v":1}',
    "too long": " " * (MAX_APP_KEY_SECRET_LENGTH + 1),
    "NaN": '{"v":NaN}',
}


@pytest.mark.parametrize("text", BAD.values(), ids=BAD.keys())
def test_malformed_text(text):
    with pytest.raises(MalformedAppKeySecret):
        parse_app_key_secret(text)


FIELD_CASES = {
    "v=2": {"v": 2},
    "v=true": {"v": True},
    "v missing": {"v": ...},
    "extra member": {"use": "sig"},
    "alg HS256": {"alg": "HS256"},
    "crv Ed448": {"crv": "Ed448"},
    "created_at negative": {"created_at": -1},
    "created_at float": {"created_at": 1.5},
    "created_at bool": {"created_at": True},
    "created_at string": {"created_at": "1"},
    "d padded": {"d": RFC8037_D + "="},
    "d short": {"d": b64url_encode(SEED[:31])},
    "d long": {"d": b64url_encode(SEED + b"\x00")},
    "d not a string": {"d": 5},
    "d standard base64": {"d": RFC8037_D.replace("_", "/")},
    "x of another key": {"x": b64url_encode(b"\x01" * 32)},
    "kid wrong": {"kid": "A" * 43},
    "kid not a string": {"kid": 1},
    "kid missing": {"kid": ...},
    "rotation too short": {"rotation": "a" * 31},
    "rotation too long": {"rotation": "a" * 65},
    "rotation with a slash": {"rotation": "a" * 31 + "/"},
    "rotation not a string": {"rotation": 12345678901234567890123456789012},
    "rotation null": {"rotation": None},
}


@pytest.mark.parametrize("changes", FIELD_CASES.values(), ids=FIELD_CASES.keys())
def test_malformed_members(changes):
    text = json.dumps(_fields(**changes))
    with pytest.raises(MalformedAppKeySecret) as info:
        parse_app_key_secret(text)
    assert_no_secret_in_chain(info.value, RFC8037_D)


def test_not_a_string():
    with pytest.raises(MalformedAppKeySecret):
        parse_app_key_secret(b"{}")  # type: ignore[arg-type]


def test_json_error_does_not_keep_the_text():
    # json.JSONDecodeError.doc holds the whole input; it must not be chained.
    text = encode_app_key_secret(AppKey.from_seed(SEED, created_at=0))[:-1]
    with pytest.raises(MalformedAppKeySecret) as info:
        parse_app_key_secret(text)
    assert_no_secret_in_chain(info.value, RFC8037_D)


@pytest.mark.parametrize("created_at", [-1, True, 1.0])
def test_from_seed_checks_created_at(created_at):
    with pytest.raises(ValueError, match="created_at"):
        AppKey.from_seed(SEED, created_at=created_at)


TOKEN = "0123abcd-" + "e" * 27  # Secrets Manager's ClientRequestToken shape


def test_a_key_generated_by_a_rotation_names_it():
    text = new_app_key_secret(0, rotation=TOKEN)
    key, rotation = parse_app_key_secret_with_rotation(text)
    assert rotation == TOKEN
    assert parse_app_key_secret(text).kid == key.kid


def test_a_seeded_key_names_no_rotation():
    _, rotation = parse_app_key_secret_with_rotation(new_app_key_secret(0))
    assert rotation is None


@pytest.mark.parametrize("bad", ["short", "a" * 65, "a" * 31 + "/", ""])
def test_encoding_refuses_a_token_of_another_shape(bad):
    with pytest.raises(ValueError, match="rotation"):
        new_app_key_secret(0, rotation=bad)


# --- the retirement record (a staging label) ------------------------------------------


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["AWSPREVIOUS"], None),
        (["AWSPREVIOUS", "sealbox-retired-at-1767225600"], 1767225600),
        (["sealbox-retired-at-0"], 0),
        # Planted extras: the earliest is the strictest reading.
        (["sealbox-retired-at-200", "sealbox-retired-at-100"], 100),
        # Malformed records are no records (the successor's creation bounds it).
        (["sealbox-retired-at-"], None),
        (["sealbox-retired-at-01"], None),
        (["sealbox-retired-at--5"], None),
        (["sealbox-retired-at-1e9"], None),
        (["sealbox-retired-at-1234567890123"], None),
        (["SEALBOX-RETIRED-AT-5"], None),
    ],
)
def test_retirement_labels_parse_strictly(labels, expected) -> None:
    assert retired_at_from_labels(labels) == expected


def test_retirement_label_round_trips() -> None:
    assert retired_at_from_labels([retired_label(1767225600)]) == 1767225600
