"""Wycheproof Ed25519 vectors against both Ed25519 verification wrappers.

The backend verifies card self-signatures with ``chalicelib.crypto`` and the
devices verify card and sender signatures with ``client_sim._hazmat``; both
must accept exactly the valid vectors and refuse every malleable,
non-canonical, truncated or padded signature.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib import crypto
from client_sim import _hazmat
from tests.conftest import VECTORS

DOC = json.loads((VECTORS / "wycheproof" / "ed25519_test.json").read_text())
CASES = [
    pytest.param(group["publicKey"]["pk"], test, id=f"tc{test['tcId']}")
    for group in DOC["testGroups"]
    for test in group["tests"]
]


def backend_verify(pk: bytes, sig: bytes, msg: bytes) -> bool:
    try:
        crypto.ed25519_verify(crypto.ed25519_public_from_raw(pk), sig, msg)
    except crypto.InvalidSignature:
        return False
    return True


def device_verify(pk: bytes, sig: bytes, msg: bytes) -> bool:
    try:
        _hazmat.ed25519_verify_raw(pk, sig, msg)
    except _hazmat.InvalidSignature:
        return False
    return True


VERIFIERS: dict[str, Callable[[bytes, bytes, bytes], bool]] = {
    "chalicelib.crypto": backend_verify,
    "client_sim._hazmat": device_verify,
}


def test_the_file_is_the_expected_one() -> None:
    assert DOC["algorithm"] == "EDDSA"
    assert len(CASES) == DOC["numberOfTests"] == 151
    flags = {f for g in DOC["testGroups"] for t in g["tests"] for f in t["flags"]}
    assert {"SignatureMalleability", "InvalidEncoding", "TruncatedSignature"} <= flags


@pytest.mark.parametrize("verifier", sorted(VERIFIERS))
@pytest.mark.parametrize(("pk", "test"), CASES)
def test_vector(verifier: str, pk: str, test: dict[str, Any]) -> None:
    ok = VERIFIERS[verifier](
        bytes.fromhex(pk), bytes.fromhex(test["sig"]), bytes.fromhex(test["msg"])
    )
    assert ok is (test["result"] == "valid"), (test["comment"], test["flags"])
