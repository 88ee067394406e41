"""The identity / signature / at-rest section of client_sim._hazmat."""

from __future__ import annotations

import pytest

from client_sim import _hazmat as hz

SEED = bytes(range(32))


def test_ed25519_sign_verify_round_trip_and_determinism() -> None:
    public = hz.ed25519_public_key_of(SEED)
    sig = hz.ed25519_sign_with_seed(SEED, b"message")
    assert sig == hz.ed25519_sign_with_seed(SEED, b"message")
    hz.ed25519_verify_raw(public, sig, b"message")
    with pytest.raises(hz.InvalidSignature):
        hz.ed25519_verify_raw(public, sig, b"messagf")


def test_rfc8032_test_1() -> None:
    # RFC 8032 §7.1, TEST 1 (empty message).
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    sig = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert hz.ed25519_public_key_of(seed) == public
    assert hz.ed25519_sign_with_seed(seed, b"") == sig


@pytest.mark.parametrize(("key_len", "sig_len"), [(31, 64), (33, 64), (32, 63), (32, 65), (0, 0)])
def test_ed25519_verify_rejects_wrong_lengths(key_len: int, sig_len: int) -> None:
    with pytest.raises(hz.InvalidSignature):
        hz.ed25519_verify_raw(bytes(key_len), bytes(sig_len), b"")


def test_ed25519_seed_length_checked() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        hz.ed25519_public_key_of(b"short")
    with pytest.raises(ValueError, match="32 bytes"):
        hz.ed25519_sign_with_seed(b"short", b"")


def test_x25519_public_key_rfc7748() -> None:
    # RFC 7748 §6.1: Alice's key pair.
    secret = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    public = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert hz.x25519_public_from_private(secret) == public
    with pytest.raises(ValueError, match="32 bytes"):
        hz.x25519_public_from_private(b"")


def test_pq_hybrid_public_key_layout() -> None:
    pk = hz.mlkem768x25519_from_seed(SEED).public_bytes
    assert len(pk) == hz.PQ_HYBRID_PUBLIC_KEY_SIZE == 1216
    assert pk == hz.mlkem768x25519_from_seed(SEED).public_bytes
    assert pk != hz.mlkem768x25519_from_seed(bytes(32)).public_bytes
    with pytest.raises(ValueError, match="32 bytes"):
        hz.mlkem768x25519_from_seed(bytes(31))


KEY = bytes(range(32, 64))
NONCE = bytes(range(64, 96))


def test_at_rest_round_trip() -> None:
    ct = hz.at_rest_seal(KEY, NONCE, b"sealbox/v1/test", b"plain", b"header")
    assert len(ct) == len(b"plain") + hz.AT_REST_TAG_SIZE
    assert hz.at_rest_open(KEY, NONCE, b"sealbox/v1/test", ct, b"header") == b"plain"


@pytest.mark.parametrize(
    "change",
    ["key", "nonce", "label", "aad", "ciphertext", "truncate"],
)
def test_at_rest_open_detects_every_change(change: str) -> None:
    args = {"key": KEY, "nonce": NONCE, "label": b"sealbox/v1/test", "aad": b"header"}
    ct = hz.at_rest_seal(args["key"], args["nonce"], args["label"], b"plain", args["aad"])
    if change == "ciphertext":
        ct = bytes([ct[0] ^ 1]) + ct[1:]
    elif change == "truncate":
        ct = ct[:-1]
    elif change == "label":
        args["label"] = b"sealbox/v1/other"
    else:
        value = args[change]
        args[change] = bytes([value[0] ^ 0x80]) + value[1:]
    with pytest.raises(hz.InvalidTag):
        hz.at_rest_open(args["key"], args["nonce"], args["label"], ct, args["aad"])


def test_at_rest_refuses_bad_sizes() -> None:
    with pytest.raises(ValueError, match="keys are 32"):
        hz.at_rest_seal(b"k", NONCE, b"l", b"", b"")
    with pytest.raises(ValueError, match="nonces are 32"):
        hz.at_rest_seal(KEY, b"n", b"l", b"", b"")
    with pytest.raises(ValueError, match="label"):
        hz.at_rest_seal(KEY, NONCE, b"", b"", b"")
    with pytest.raises(hz.InvalidTag):
        hz.at_rest_open(KEY, NONCE, b"l", b"short", b"")


def test_random_bytes_are_fresh() -> None:
    assert len(hz.random_bytes(32)) == 32
    assert hz.random_bytes(32) != hz.random_bytes(32)
