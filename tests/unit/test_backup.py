"""client_sim.backup: the password-protected key backup blob."""

from __future__ import annotations

import dataclasses

import pytest

from client_sim import _hazmat
from client_sim.backup import (
    DEFAULT_BOUNDS,
    MAX_BACKUP_SIZE,
    TESTING_BOUNDS,
    BackupAuthenticationError,
    BackupFormatError,
    KdfParams,
    KdfParamsOutOfRange,
    open_backup,
    parse_backup_header,
    seal_backup,
)
from tests.identities import bundle, seed

KEY = seed("backup key")
PARAMS = KdfParams(memory_kib=19 * 1024, iterations=2, lanes=1, salt=seed("salt")[:16])
ALICE0, ALICE1 = bundle("alice"), bundle("alice", 1)


def blob(bundles=(ALICE1, ALICE0), params: KdfParams = PARAMS) -> bytes:
    return seal_backup(list(bundles), KEY, params)


def header_size(params: KdfParams = PARAMS) -> int:
    return 8 + 1 + 1 + 12 + 1 + len(params.salt) + 32


def test_round_trip_restores_current_and_history() -> None:
    contents = open_backup(blob(), KEY)
    assert contents.identity == "alice"
    assert contents.bundles == (ALICE1, ALICE0)
    assert contents.current == ALICE1


def test_header_layout_and_parse() -> None:
    data = blob()
    assert data[:10] == b"SBBACKUP\x01\x01"
    assert data[10:22] == (19 * 1024).to_bytes(4, "big") + (2).to_bytes(4, "big") + (1).to_bytes(
        4, "big"
    )
    assert data[22] == 16
    assert data[23:39] == PARAMS.salt
    assert parse_backup_header(data) == PARAMS


def test_nonce_is_fresh_and_keys_do_not_appear() -> None:
    a, b = blob(), blob()
    assert a[39:71] != b[39:71]
    for secret in (seed("alice", 0, "ed25519"), seed("alice", 1, "pq"), KEY):
        assert secret not in a


def test_wrong_key_is_an_authentication_error() -> None:
    with pytest.raises(BackupAuthenticationError, match="wrong password"):
        open_backup(blob(), seed("another password"))


def test_every_bit_flip_is_detected() -> None:
    data = blob(bundles=(ALICE0,))
    for i in range(len(data)):
        mutated = bytearray(data)
        mutated[i] ^= 0x04
        with pytest.raises((BackupAuthenticationError, BackupFormatError, KdfParamsOutOfRange)):
            open_backup(bytes(mutated), KEY)


def test_header_fields_are_authenticated() -> None:
    # Within bounds, so only the AEAD can notice the change.
    data = bytearray(blob())
    data[17] ^= 0x01  # iterations 2 -> 3
    assert parse_backup_header(bytes(data)).iterations == 3
    with pytest.raises(BackupAuthenticationError):
        open_backup(bytes(data), KEY)


def test_truncation_and_extension() -> None:
    data = blob()
    for cut in (0, 7, 9, 21, 22, 38, header_size() - 1):
        with pytest.raises(BackupFormatError, match=r"truncated|not a Sealbox"):
            parse_backup_header(data[:cut])
    for cut in (header_size(), header_size() + 15, len(data) - 1):
        with pytest.raises(BackupAuthenticationError):
            open_backup(data[:cut], KEY)
    with pytest.raises(BackupAuthenticationError):
        open_backup(data + b"\x00", KEY)


def test_unsupported_version_and_algorithm() -> None:
    data = bytearray(blob())
    data[8] = 3
    with pytest.raises(BackupFormatError, match="version"):
        parse_backup_header(bytes(data))
    # Each version has one derivation: v1 with algorithm 2, v2 with algorithm 1.
    data[8], data[9] = 1, 2
    with pytest.raises(BackupFormatError, match="algorithm"):
        parse_backup_header(bytes(data))
    hardened = bytearray(blob(params=HARDENED))
    hardened[9] = 1
    with pytest.raises(BackupFormatError, match="algorithm"):
        parse_backup_header(bytes(hardened))


HARDENED = dataclasses.replace(PARAMS, algorithm=2, oprf_key_version=7)


def test_v2_header_records_the_oprf_key_version_and_round_trips() -> None:
    data = blob(params=HARDENED)
    assert data[8:10] == b"\x02\x02"
    assert data[23:39] == PARAMS.salt
    assert data[39:43] == (7).to_bytes(4, "big")
    assert parse_backup_header(data) == HARDENED
    assert open_backup(data, KEY).bundles == (ALICE1, ALICE0)
    # The version is authenticated with the rest of the header.
    tampered = bytearray(data)
    tampered[42] ^= 1
    with pytest.raises(BackupAuthenticationError):
        open_backup(bytes(tampered), KEY)


@pytest.mark.parametrize(
    "params",
    [
        dataclasses.replace(PARAMS, oprf_key_version=1),  # v1 naming an OPRF key
        dataclasses.replace(PARAMS, algorithm=2),  # v2 without an OPRF key version
    ],
)
def test_the_oprf_key_version_must_match_the_algorithm(params: KdfParams) -> None:
    with pytest.raises(KdfParamsOutOfRange):
        seal_backup([ALICE1], KEY, params)


def test_the_server_envelope_check_accepts_v2_and_refuses_version_zero() -> None:
    from chalicelib.wire.backup import NotABackup, check_backup_envelope

    data = blob(params=HARDENED)
    check_backup_envelope(data)
    zeroed = bytearray(data)
    zeroed[39:43] = bytes(4)
    with pytest.raises(NotABackup, match="OPRF"):
        check_backup_envelope(bytes(zeroed))


def test_oversized_blob_is_refused_first() -> None:
    with pytest.raises(BackupFormatError, match="larger"):
        parse_backup_header(b"SBBACKUP" + bytes(MAX_BACKUP_SIZE))


def with_params(data: bytes, *, memory: int, iterations: int, lanes: int) -> bytes:
    factors = b"".join(v.to_bytes(4, "big") for v in (memory, iterations, lanes))
    return data[:10] + factors + data[22:]


@pytest.mark.parametrize(
    ("memory", "iterations", "lanes", "message"),
    [
        (2**32 - 1, 2, 1, "memory"),  # 4 TiB: a hostile blob
        (256 * 1024 + 1, 2, 1, "memory"),
        (1024, 2, 1, "memory"),
        (19 * 1024, 1, 1, "iterations"),
        (19 * 1024, 11, 1, "iterations"),
        (19 * 1024, 2**32 - 1, 1, "iterations"),
        (19 * 1024, 2, 0, "lanes"),
        (19 * 1024, 2, 9, "lanes"),
    ],
)
def test_restore_refuses_work_factors_out_of_bounds(
    memory: int, iterations: int, lanes: int, message: str
) -> None:
    data = with_params(blob(), memory=memory, iterations=iterations, lanes=lanes)
    with pytest.raises(KdfParamsOutOfRange, match=message):
        parse_backup_header(data)
    with pytest.raises(KdfParamsOutOfRange, match=message):
        open_backup(data, KEY)


@pytest.mark.parametrize(
    "params",
    [
        dataclasses.replace(PARAMS, memory_kib=64),
        dataclasses.replace(PARAMS, iterations=1),
        dataclasses.replace(PARAMS, memory_kib=10**9),
        dataclasses.replace(PARAMS, lanes=16),
        dataclasses.replace(PARAMS, salt=b"short"),
        dataclasses.replace(PARAMS, salt=bytes(65)),
        dataclasses.replace(PARAMS, algorithm=2),
        dataclasses.replace(PARAMS, iterations=True),
    ],
)
def test_seal_refuses_weak_or_absurd_params(params: KdfParams) -> None:
    with pytest.raises(KdfParamsOutOfRange):
        seal_backup([ALICE0], KEY, params)


def test_testing_bounds_allow_fast_params_but_keep_the_ceiling() -> None:
    fast = KdfParams(memory_kib=64, iterations=1, lanes=1, salt=bytes(16))
    data = seal_backup([ALICE0], KEY, fast, bounds=TESTING_BOUNDS)
    with pytest.raises(KdfParamsOutOfRange):
        parse_backup_header(data)  # the default bounds refuse it
    assert parse_backup_header(data, bounds=TESTING_BOUNDS) == fast
    assert open_backup(data, KEY, bounds=TESTING_BOUNDS).current == ALICE0
    hostile = with_params(data, memory=2**31, iterations=1, lanes=1)
    with pytest.raises(KdfParamsOutOfRange):
        parse_backup_header(hostile, bounds=TESTING_BOUNDS)
    assert TESTING_BOUNDS.max_memory_kib == DEFAULT_BOUNDS.max_memory_kib
    lane_heavy = dataclasses.replace(fast, memory_kib=8, lanes=2)
    with pytest.raises(KdfParamsOutOfRange, match="per lane"):
        seal_backup([ALICE0], KEY, lane_heavy, bounds=TESTING_BOUNDS)


def test_seal_input_checks() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        seal_backup([ALICE0], b"short", PARAMS)
    with pytest.raises(ValueError, match="1 to"):
        seal_backup([], KEY, PARAMS)
    with pytest.raises(ValueError, match="one identity"):
        seal_backup([ALICE0, bundle("bob")], KEY, PARAMS)
    with pytest.raises(ValueError, match="twice"):
        seal_backup([ALICE0, ALICE0], KEY, PARAMS)
    with pytest.raises(ValueError, match="32 bytes"):
        open_backup(blob(), b"short")


def test_authenticated_but_inconsistent_body() -> None:
    # A writer bug (not an attacker): the body names bob but holds alice's bundle.
    nonce = seed("nonce")
    header = blob()[: header_size() - 32] + nonce
    body = b"\x00\x03bob\x00\x01" + len(ALICE0.to_bytes()).to_bytes(2, "big") + ALICE0.to_bytes()
    data = header + _hazmat.at_rest_seal(KEY, nonce, b"sealbox/v1/backup", body, header)
    with pytest.raises(BackupFormatError, match="consistent"):
        open_backup(data, KEY)
    body = b"\x00\x05alice\x00\x00"
    data = header + _hazmat.at_rest_seal(KEY, nonce, b"sealbox/v1/backup", body, header)
    with pytest.raises(BackupFormatError, match="number"):
        open_backup(data, KEY)


def test_backup_label_separates_it_from_the_keystore() -> None:
    # The same key and nonce under the keystore label can't open a backup.
    data = blob()
    hs = header_size()
    with pytest.raises(_hazmat.InvalidTag):
        _hazmat.at_rest_open(KEY, data[hs - 32 : hs], b"sealbox/v1/keystore", data[hs:], data[:hs])


def test_repr_of_contents() -> None:
    contents = open_backup(blob(), KEY)
    assert repr(contents) == (
        f"BackupContents(identity='alice', current_card_id='{ALICE1.card_id}', previous=1)"
    )
