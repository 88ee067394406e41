"""Password → login key + backup key (docs/spec/passwords.md)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from argon2.low_level import Type, hash_secret_raw
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.wire.identity import InvalidIdentity
from client_sim.passwords import (
    BACKUP_KEY_LABEL,
    LOGIN_KEY_LABEL,
    PASSWORD_KDF_SIMULATION,
    PASSWORD_KDF_V1,
    KdfParams,
    WeakPassword,
    derive_password_keys,
    password_salt,
)

PASSWORD = "correct horse battery staple"


def reference(identity: str, password: str, params: KdfParams) -> tuple[bytes, bytes]:
    """The spec, computed with code Sealbox didn't write: the Argon2 reference
    implementation (argon2-cffi) and RFC 5869 HKDF over the stdlib's HMAC."""
    salt = hashlib.sha256(b"sealbox/v1/password-salt\x00" + identity.encode()).digest()
    master = hash_secret_raw(
        password.encode(),
        salt,
        time_cost=params.iterations,
        memory_cost=params.memory_kib,
        parallelism=params.lanes,
        hash_len=32,
        type=Type.ID,
        version=19,
    )
    prk = hmac.new(b"\x00" * 32, master, hashlib.sha256).digest()

    def expand(info: bytes) -> bytes:
        return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()

    return expand(b"sealbox/v1/login-key"), expand(b"sealbox/v1/backup-key")


@pytest.mark.parametrize("params", [PASSWORD_KDF_SIMULATION, PASSWORD_KDF_V1])
def test_derivation_matches_an_independent_implementation(params: KdfParams) -> None:
    keys = derive_password_keys("Alice", PASSWORD, params)
    assert (keys.login_key, keys.backup_key) == reference("alice", PASSWORD, params)


def test_pinned_vector() -> None:
    keys = derive_password_keys("alice", PASSWORD, PASSWORD_KDF_V1)
    assert keys.login_key.hex() == (
        "e85cb18e06d9121ece91959aa06d2b7a220755649b7d2bfb98031ef9b5ef0648"
    )
    assert keys.backup_key.hex() == (
        "cb798fb4069f56a61262994795119aa0caff0adde98b3cb5d3cea7761290d65b"
    )
    assert password_salt("alice").hex() == (
        "35273e3b1f879b3df5cbecd2f44234ae720dddce5e5a919be3b8f52048db233b"
    )


def test_labels_are_the_documented_ones() -> None:
    assert LOGIN_KEY_LABEL == b"sealbox/v1/login-key"
    assert BACKUP_KEY_LABEL == b"sealbox/v1/backup-key"


def test_default_profile_meets_owasp_and_simulation_does_not() -> None:
    assert PASSWORD_KDF_V1.meets_owasp
    assert not PASSWORD_KDF_SIMULATION.meets_owasp


def test_keys_are_independent_and_hidden_from_repr() -> None:
    keys = derive_password_keys("alice", PASSWORD, PASSWORD_KDF_SIMULATION)
    assert keys.login_key != keys.backup_key
    text = repr(keys) + str(keys)
    for secret in (keys.login_key, keys.backup_key):
        assert secret.hex() not in text
    assert keys.login_key_b64 not in text
    assert PASSWORD not in text


def test_identity_and_unicode_normalisation() -> None:
    composed = "pässwörd-long-enough"
    decomposed = "pa\u0308sswo\u0308rd-long-enough"
    a = derive_password_keys("ALICE", composed, PASSWORD_KDF_SIMULATION)
    b = derive_password_keys("alice", decomposed, PASSWORD_KDF_SIMULATION)
    assert (a.login_key, a.backup_key) == (b.login_key, b.backup_key)
    other = derive_password_keys("alice2", composed, PASSWORD_KDF_SIMULATION)
    assert other.login_key != a.login_key


@pytest.mark.parametrize("password", ["", "short", "x" * 11, "y" * 1025, "z" * 5000])
def test_password_length_is_enforced_before_derivation(password: str) -> None:
    with pytest.raises(WeakPassword):
        derive_password_keys("alice", password, PASSWORD_KDF_SIMULATION)


def test_password_bounds_are_inclusive() -> None:
    derive_password_keys("alice", "x" * 12, PASSWORD_KDF_SIMULATION)
    derive_password_keys("alice", "x" * 1024, PASSWORD_KDF_SIMULATION)


def test_non_string_password_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        derive_password_keys("alice", b"bytes are not a password", PASSWORD_KDF_SIMULATION)  # type: ignore[arg-type]


@pytest.mark.parametrize("username", ["al", "al/ice", "alıce", ""])
def test_invalid_usernames_are_refused(username: str) -> None:
    with pytest.raises(InvalidIdentity):
        derive_password_keys(username, PASSWORD, PASSWORD_KDF_SIMULATION)


@pytest.mark.parametrize(
    "params",
    [
        KdfParams(version=2, memory_kib=1024, iterations=1, lanes=1),
        KdfParams(version=1, memory_kib=7, iterations=1, lanes=1),
        KdfParams(version=1, memory_kib=1024 * 1024 + 1, iterations=1, lanes=1),
        KdfParams(version=1, memory_kib=1024, iterations=0, lanes=1),
        KdfParams(version=1, memory_kib=1024, iterations=17, lanes=1),
        KdfParams(version=1, memory_kib=1024, iterations=1, lanes=9),
        KdfParams(version=1, memory_kib=63, iterations=1, lanes=8),
    ],
)
def test_out_of_bound_parameters_are_refused(params: KdfParams) -> None:
    with pytest.raises(ValueError, match=r"out of range|unknown"):
        derive_password_keys("alice", PASSWORD, params)


@settings(max_examples=25, deadline=None)
@given(st.text(min_size=12, max_size=40))
def test_any_valid_password_derives_deterministically(password: str) -> None:
    a = derive_password_keys("alice", password, PASSWORD_KDF_SIMULATION)
    b = derive_password_keys("alice", password, PASSWORD_KDF_SIMULATION)
    assert a == b
