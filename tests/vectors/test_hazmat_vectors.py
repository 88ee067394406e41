"""External vectors run against OUR wrappers in client_sim/_hazmat.py.

* Wycheproof x25519 / chacha20_poly1305 / hkdf_sha256 (tests/vectors/data/
  wycheproof): edge cases, low-order points (which our X25519 wrapper must
  refuse), wrong nonce sizes, tag forgeries, HKDF length limits.
* RFC 9180 (cryptography-vectors ``HPKE/test-vectors.json``), the
  DHKEM(X25519)/HKDF-SHA256/ChaCha20-Poly1305 base-mode cases: our X25519,
  HKDF, HMAC and ChaCha20-Poly1305 wrappers recompute the KEM shared secret
  and the key schedule, then open every encryption.
* hpke-pq (``HPKE/hpke-pq-test-vectors.json``), the MLKEM768-X25519 /
  HKDF-SHA256 / ChaCha20-Poly1305 case age uses: our seed expansion must give
  the vector's public key, and our decapsulation (through HPKE open) must
  reach the vector's key schedule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from client_sim import _hazmat
from tests.conftest import VECTORS

WYCHEPROOF = VECTORS / "wycheproof"


def _wycheproof(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    data = json.loads((WYCHEPROOF / name).read_text())
    cases = [(group, test) for group in data["testGroups"] for test in group["tests"]]
    assert len(cases) == data["numberOfTests"]
    return cases


def _cryptography_vectors() -> Path:
    try:
        import cryptography_vectors
    except ImportError:  # pragma: no cover - a test dependency
        pytest.fail("cryptography-vectors is a test dependency (pip install -e '.[test]')")
    return Path(cryptography_vectors.__file__).parent


# --- Wycheproof --------------------------------------------------------------------


def test_wycheproof_x25519() -> None:
    refused = 0
    for _group, test in _wycheproof("x25519_test.json"):
        private = bytes.fromhex(test["private"])
        public = bytes.fromhex(test["public"])
        shared = bytes.fromhex(test["shared"])
        if shared == bytes(32):
            # Low-order (or equivalent) points: the wrapper must refuse them.
            with pytest.raises(_hazmat.LowOrderPoint):
                _hazmat.x25519_shared_secret(private, public)
            refused += 1
        else:
            assert _hazmat.x25519_shared_secret(private, public) == shared, test["tcId"]
    assert refused >= 30  # the file has 31 zero-shared-secret cases


def test_wycheproof_chacha20_poly1305() -> None:
    checked = 0
    for group, test in _wycheproof("chacha20_poly1305_test.json"):
        key, iv = bytes.fromhex(test["key"]), bytes.fromhex(test["iv"])
        aad, msg = bytes.fromhex(test["aad"]), bytes.fromhex(test["msg"])
        sealed = bytes.fromhex(test["ct"]) + bytes.fromhex(test["tag"])
        if group["ivSize"] != 96:
            # Only RFC 8439's 96-bit nonces are accepted.
            with pytest.raises(ValueError, match="nonces are 12 bytes"):
                _hazmat.chacha20poly1305_open(key, iv, sealed, aad)
            continue
        if test["result"] == "valid":
            assert _hazmat.chacha20poly1305_seal(key, iv, msg, aad) == sealed, test["tcId"]
            assert _hazmat.chacha20poly1305_open(key, iv, sealed, aad) == msg
        else:
            with pytest.raises(_hazmat.InvalidTag):
                _hazmat.chacha20poly1305_open(key, iv, sealed, aad)
        checked += 1
    assert checked > 200


def test_wycheproof_hkdf_sha256() -> None:
    for _group, test in _wycheproof("hkdf_sha256_test.json"):
        ikm, salt = bytes.fromhex(test["ikm"]), bytes.fromhex(test["salt"])
        info, size = bytes.fromhex(test["info"]), test["size"]
        if test["result"] == "valid":
            okm = _hazmat.hkdf_sha256(ikm, salt=salt, info=info, length=size)
            assert okm == bytes.fromhex(test["okm"]), test["tcId"]
        else:
            with pytest.raises(ValueError, match="output length"):
                _hazmat.hkdf_sha256(ikm, salt=salt, info=info, length=size)


# --- RFC 9180 (DHKEM X25519, HKDF-SHA256, ChaCha20-Poly1305, base mode) ----------------


def _labeled_ikm(suite_id: bytes, label: bytes, ikm: bytes) -> bytes:
    return b"HPKE-v1" + suite_id + label + ikm


def _labeled_info(suite_id: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info


def _extract(salt: bytes, ikm: bytes) -> bytes:
    # HKDF-Extract is one HMAC keyed with the salt (zeros when empty).
    return _hazmat.hmac_sha256(salt or bytes(32), ikm)


def test_rfc9180_x25519_chacha20poly1305_base_mode() -> None:
    cases = [
        v
        for v in json.loads((_cryptography_vectors() / "HPKE" / "test-vectors.json").read_text())
        if (v["mode"], v["kem_id"], v["kdf_id"], v["aead_id"]) == (0, 0x20, 1, 3)
    ]
    assert cases, "RFC 9180 vectors for the X25519/HKDF-SHA256/ChaCha20-Poly1305 suite"
    for v in cases:
        h = {k: bytes.fromhex(x) for k, x in v.items() if isinstance(x, str)}
        assert _hazmat.x25519_public_from_private(h["skRm"]) == h["pkRm"]
        assert _hazmat.x25519_public_from_private(h["skEm"]) == h["pkEm"] == h["enc"]
        dh = _hazmat.x25519_shared_secret(h["skEm"], h["pkRm"])
        assert dh == _hazmat.x25519_shared_secret(h["skRm"], h["pkEm"])
        kem_id = b"KEM\x00\x20"
        shared = _hazmat.hkdf_sha256(
            _labeled_ikm(kem_id, b"eae_prk", dh),
            salt=b"",
            info=_labeled_info(kem_id, b"shared_secret", h["enc"] + h["pkRm"], 32),
        )
        assert shared == h["shared_secret"]
        suite_id = b"HPKE\x00\x20\x00\x01\x00\x03"
        context = (
            b"\x00"
            + _extract(b"", _labeled_ikm(suite_id, b"psk_id_hash", b""))
            + _extract(b"", _labeled_ikm(suite_id, b"info_hash", h["info"]))
        )
        secret_ikm = _labeled_ikm(suite_id, b"secret", b"")
        key = _hazmat.hkdf_sha256(
            secret_ikm, salt=shared, info=_labeled_info(suite_id, b"key", context, 32)
        )
        nonce = _hazmat.hkdf_sha256(
            secret_ikm,
            salt=shared,
            info=_labeled_info(suite_id, b"base_nonce", context, 12),
            length=12,
        )
        assert (key, nonce) == (h["key"], h["base_nonce"])
        for enc in v["encryptions"]:
            plain = _hazmat.chacha20poly1305_open(
                key,
                bytes.fromhex(enc["nonce"]),
                bytes.fromhex(enc["ct"]),
                bytes.fromhex(enc["aad"]),
            )
            assert plain == bytes.fromhex(enc["pt"])


def test_rfc9180_vectors_reach_our_x25519_hpke_open() -> None:
    # Group epoch wraps to classical cards use this suite through
    # _hazmat.x25519_hpke_open (single shot: sequence 0, empty AAD).  Seal
    # with each vector's key schedule; our open must decapsulate the
    # vector's enc with its private key to the same key and nonce.
    cases = [
        v
        for v in json.loads((_cryptography_vectors() / "HPKE" / "test-vectors.json").read_text())
        if (v["mode"], v["kem_id"], v["kdf_id"], v["aead_id"]) == (0, 0x20, 1, 3)
    ]
    assert cases
    for v in cases:
        h = {k: bytes.fromhex(x) for k, x in v.items() if isinstance(x, str)}
        message = b"a 32-byte group epoch secret...."
        sealed = _hazmat.chacha20poly1305_seal(h["key"], h["base_nonce"], message)
        assert _hazmat.x25519_hpke_open(h["skRm"], h["enc"], sealed, info=h["info"]) == message
        with pytest.raises(_hazmat.InvalidTag):
            _hazmat.x25519_hpke_open(h["skRm"], h["enc"], sealed, info=h["info"] + b"!")
        with pytest.raises(_hazmat.LowOrderPoint):
            _hazmat.x25519_hpke_open(h["skRm"], bytes(32), sealed, info=h["info"])
        enc, ct = _hazmat.x25519_hpke_seal(h["pkRm"], message, info=b"group")
        assert _hazmat.x25519_hpke_open(h["skRm"], enc, ct, info=b"group") == message


# --- hpke-pq: MLKEM768-X25519 (0x647a), HKDF-SHA256, ChaCha20-Poly1305 ----------------


@pytest.fixture(scope="module")
def pq_vector() -> dict[str, bytes]:
    path = _cryptography_vectors() / "HPKE" / "hpke-pq-test-vectors.json"
    (vector,) = [
        v
        for v in json.loads(path.read_text())
        if (v["mode"], v["kem_id"], v["kdf_id"], v["aead_id"]) == (0, 0x647A, 1, 3)
    ]
    return {k: bytes.fromhex(x) for k, x in vector.items() if isinstance(x, str)}


def test_hpke_pq_seed_expansion_gives_the_vector_public_key(pq_vector) -> None:
    private = _hazmat.mlkem768x25519_from_seed(pq_vector["skRm"])
    assert private.public_bytes == pq_vector["pkRm"]
    _hazmat.mlkem768x25519_public_check(pq_vector["pkRm"])


def test_hpke_pq_decapsulation_reaches_the_vector_key_schedule(pq_vector) -> None:
    # Seal a message with the vector's key and base nonce (sequence 0, empty
    # AAD, as age uses HPKE); our open must decapsulate the vector's enc to
    # the same shared secret and key schedule to read it back.
    private = _hazmat.mlkem768x25519_from_seed(pq_vector["skRm"])
    message = b"sixteen byte key"
    sealed = _hazmat.chacha20poly1305_seal(pq_vector["key"], pq_vector["base_nonce"], message)
    enc, info = pq_vector["enc"], pq_vector["info"]
    assert _hazmat.mlkem768x25519_open(private, enc, sealed, info=info) == message
    # A different info, a flipped ML-KEM ciphertext bit, or a flipped X25519
    # share bit all change the key: the AEAD refuses.
    with pytest.raises(_hazmat.InvalidTag):
        _hazmat.mlkem768x25519_open(private, enc, sealed, info=info + b"!")
    for index in (0, 1087, 1088, 1119):
        tampered = bytearray(enc)
        tampered[index] ^= 0x01
        with pytest.raises(_hazmat.InvalidTag):
            _hazmat.mlkem768x25519_open(private, bytes(tampered), sealed, info=info)


def test_hpke_pq_refuses_a_low_order_x25519_share(pq_vector) -> None:
    private = _hazmat.mlkem768x25519_from_seed(pq_vector["skRm"])
    enc = pq_vector["enc"][:1088] + bytes(32)
    with pytest.raises(_hazmat.LowOrderPoint):
        _hazmat.mlkem768x25519_open(private, enc, bytes(32), info=pq_vector["info"])


def test_hpke_pq_seal_then_open(pq_vector) -> None:
    private = _hazmat.mlkem768x25519_from_seed(pq_vector["skRm"])
    enc, ct = _hazmat.mlkem768x25519_seal(private.public_bytes, b"k" * 16, info=b"age")
    assert len(enc) == 1120
    assert len(ct) == 32
    assert _hazmat.mlkem768x25519_open(private, enc, ct, info=b"age") == b"k" * 16
