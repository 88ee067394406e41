"""Sealbox's OPRF layer: the secret format, per-account keys, certificates, answers."""

from __future__ import annotations

import json

import pytest

from chalicelib.wire import oprf
from chalicelib.wire.b64 import b64url_encode
from chalicelib.wire.oprf_keys import (
    MalformedOprfSecret,
    OprfAnswerError,
    OprfEvaluation,
    OprfKey,
    OprfRoots,
    encode_oprf_secret,
    open_evaluation,
    parse_oprf_secret,
)

KEY = OprfKey(version=3, oprf_seed=bytes(range(32)), root_seed=bytes(range(1, 33)), created_at=5)


def test_secret_round_trips() -> None:
    assert parse_oprf_secret(encode_oprf_secret(KEY)) == KEY


@pytest.mark.parametrize(
    ("change", "member"),
    [
        ({"format": 2}, "format"),
        ({"version": 0}, "version"),
        ({"version": "3"}, "version"),
        ({"created_at": 1.5}, "created_at"),
        ({"oprf_seed": b64url_encode(bytes(31))}, "oprf_seed"),
        ({"root_seed": "not base64!"}, "root_seed"),
        ({"oprf_seed": None}, "oprf_seed"),
    ],
)
def test_malformed_secrets_name_the_member_never_the_value(change: dict, member: str) -> None:
    value = {**json.loads(encode_oprf_secret(KEY)), **change}
    with pytest.raises(MalformedOprfSecret) as caught:
        parse_oprf_secret(json.dumps(value))
    assert member in str(caught.value)
    assert b64url_encode(KEY.oprf_seed) not in str(caught.value)


def test_account_keys_are_per_identity_and_deterministic() -> None:
    assert KEY.account_key("alice") == KEY.account_key("alice")
    assert KEY.account_key("alice") != KEY.account_key("bob")
    other = OprfKey(version=3, oprf_seed=bytes(32), root_seed=KEY.root_seed)
    assert other.account_key("alice") != KEY.account_key("alice")


def _answer(identity: str, private_input: bytes) -> tuple[bytes, bytes, OprfEvaluation]:
    blind, blinded = oprf.blind(private_input, oprf.MODE_VOPRF)
    return blind, blinded, KEY.evaluate(identity, blinded)


def test_an_answer_opens_to_the_direct_evaluation() -> None:
    blind, blinded, evaluation = _answer("alice", b"input")
    roots = OprfRoots({3: KEY.root_public})
    wire = OprfEvaluation.from_json(json.loads(json.dumps(evaluation.to_json())))
    output = open_evaluation(roots, "alice", b"input", blind, blinded, wire)
    assert output == KEY.output("alice", b"input")


def test_a_certificate_for_another_identity_or_version_is_refused() -> None:
    blind, blinded, evaluation = _answer("mallory", b"input")
    roots = OprfRoots({3: KEY.root_public})
    with pytest.raises(OprfAnswerError, match="certified"):
        open_evaluation(roots, "alice", b"input", blind, blinded, evaluation)
    relabelled = OprfEvaluation(
        key_version=4,
        evaluated_element=evaluation.evaluated_element,
        proof=evaluation.proof,
        account_key=evaluation.account_key,
        certificate=evaluation.certificate,
    )
    with pytest.raises(OprfAnswerError, match="certified"):
        open_evaluation(
            OprfRoots({3: KEY.root_public, 4: KEY.root_public}),
            "mallory",
            b"input",
            blind,
            blinded,
            relabelled,
        )


@pytest.mark.parametrize(
    "answer",
    [
        None,
        [],
        {"key_version": 1},
        {
            "key_version": True,
            "evaluated_element": "",
            "proof": "",
            "account_key": "",
            "certificate": "",
        },
        {**KEY.evaluate("a", oprf.blind(b"x", 1)[1]).to_json(), "proof": "AA"},
        {**KEY.evaluate("a", oprf.blind(b"x", 1)[1]).to_json(), "certificate": 5},
    ],
)
def test_malformed_answers_are_refused(answer: object) -> None:
    with pytest.raises(OprfAnswerError):
        OprfEvaluation.from_json(answer)


def test_roots_must_be_ed25519_keys_under_positive_versions() -> None:
    with pytest.raises(ValueError, match="at least one"):
        OprfRoots({})
    with pytest.raises(ValueError, match="versions"):
        OprfRoots({0: KEY.root_public})
    with pytest.raises(ValueError, match="32 bytes"):
        OprfRoots({1: b"short"})
