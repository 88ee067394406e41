"""chalicelib/wire/agefile.py: is this byte string shaped like an age v1 file?"""

from __future__ import annotations

import ast
import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.wire import agefile
from chalicelib.wire.agefile import (
    MAX_HEADER_SIZE,
    SNIFF_WINDOW,
    NotAgeFile,
    check_header,
    payload_length_is_valid,
    sniff,
)
from client_sim import age

ALICE = age.X25519Identity.generate()
BOB = age.X25519Identity.generate()


def encrypted(size: int, *, armor: bool = False, recipients=None) -> bytes:
    return age.encrypt_bytes(
        bytes(size), recipients or [ALICE.recipient(), BOB.recipient()], armor=armor
    )


def reason(data: bytes, total: int | None = None) -> str:
    with pytest.raises(NotAgeFile) as refused:
        sniff(data, total)
    return refused.value.reason


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 2 * 65536, 300_000])
@pytest.mark.parametrize("armor", [False, True])
def test_real_files_pass_and_report_their_header(size: int, armor: bool) -> None:
    data = encrypted(size, armor=armor)
    info = sniff(data[:SNIFF_WINDOW], len(data))
    assert info.armored is armor
    assert info.stanza_count == 2
    binary = encrypted(0)
    header_length = sniff(binary).header_length
    assert binary[:header_length].endswith(b"\n")
    assert binary[:header_length].rsplit(b"\n", 2)[-2].startswith(b"--- ")


def test_header_length_is_where_the_payload_nonce_starts() -> None:
    data = encrypted(1000)
    info = sniff(data, len(data))
    # Header, 16-byte nonce, one chunk of 1000 bytes and its tag.
    assert len(data) == info.header_length + 16 + 1000 + 16
    assert age.rewrap_header(data[: info.header_length], [ALICE], [BOB.recipient()])


def test_post_quantum_headers_with_32_recipients_fit() -> None:
    hybrid = age.HybridIdentity.generate()
    data = age.encrypt_bytes(b"x", [hybrid.recipient()] * 32)
    info = sniff(data[:SNIFF_WINDOW], len(data))
    assert info.stanza_count == 32
    assert info.header_length < MAX_HEADER_SIZE


def test_armored_maximal_header_fits_the_window() -> None:
    hybrid = age.HybridIdentity.generate()
    data = age.encrypt_bytes(bytes(200_000), [hybrid.recipient()] * 41, armor=True)
    header_length = sniff(age.encrypt_bytes(b"", [hybrid.recipient()] * 41)).header_length
    assert MAX_HEADER_SIZE - 2000 < header_length <= MAX_HEADER_SIZE
    assert sniff(data[:SNIFF_WINDOW], len(data)).header_length == header_length


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "header_truncated"),
        (b"hello, plaintext world\n" * 100, "not_age"),
        (b"%PDF-1.7\n", "not_age"),
        (b"age-encryption.org/v2\n-> X25519 abc\n", "not_age"),
        (b"age-encryption.org/v1", "header_truncated"),
        (b"age-encryption.org/v1\n", "header_truncated"),
        (b"age-encryption.org/v1\n--- " + b"A" * 43 + b"\n", "malformed_header"),
        (b"age-encryption.org/v1\n-> \n\n--- " + b"A" * 43 + b"\n", "malformed_header"),
        (b"age-encryption.org/v1\n->X25519 a\n\n--- " + b"A" * 43 + b"\n", "malformed_header"),
        (b"age-encryption.org/v1\n-> a\xffb\n\n--- " + b"A" * 43 + b"\n", "malformed_header"),
        (b"age-encryption.org/v1\n-> a\nAAA=\n--- " + b"A" * 43 + b"\n", "malformed_header"),
        (b"age-encryption.org/v1\n-> a\n\n--- " + b"A" * 42 + b"\n", "malformed_header"),
        (b"age-encryption.org/v1\n-> a\n\n---  " + b"A" * 43 + b"\n", "malformed_header"),
        (b"age-encryption.org/v1\n-> a\n\n---\t" + b"A" * 43 + b"\n", "malformed_header"),
        (b"age-encryption.org/v1\r\n-> a\n\n--- " + b"A" * 43 + b"\n", "not_age"),
        (b"-----BEGIN AGE ENCRYPTED FILE-----\nnot base64!\n", "malformed_armor"),
        (b"-----BEGIN AGE ENCRYPTED FILE-----", "malformed_armor"),
        (b" " * 1025 + b"-----BEGIN AGE ENCRYPTED FILE-----\n", "not_age"),
    ],
)
def test_malformed_input_is_refused_with_a_fixed_reason(data: bytes, why: str) -> None:
    assert reason(data) == why


def test_a_stanza_body_line_of_65_columns_is_refused() -> None:
    body = base64.b64encode(bytes(48)).rstrip(b"=") + b"A"
    data = b"age-encryption.org/v1\n-> a\n" + body + b"\n\n--- " + b"A" * 43 + b"\n"
    assert reason(data) == "malformed_header"


def test_a_header_that_never_ends_is_too_large() -> None:
    line = base64.b64encode(bytes(48)) + b"\n"
    data = b"age-encryption.org/v1\n-> a\n" + line * (MAX_HEADER_SIZE // len(line) + 10)
    assert reason(data) == "header_too_large"
    assert reason(data[: MAX_HEADER_SIZE // 2]) == "header_truncated"


def test_the_payload_length_must_be_possible() -> None:
    data = encrypted(70_000)
    header = sniff(data, len(data)).header_length
    full = 65536 + 16
    for payload in (0, 16 + 15, 16 + full + 16, 16 + full + 7, 16 + 2 * full + 16):
        assert reason(data, header + payload) == "bad_payload_length"


def test_a_plaintext_with_a_copied_header_passes_the_shape_check() -> None:
    # Documented limit: the check is about shape, not about encryption.
    header = encrypted(0)[: sniff(encrypted(0)).header_length]
    forged = header + bytes(16) + b"plaintext" + bytes(16)
    assert sniff(forged, len(forged)).header_length == len(header)


@given(st.integers(min_value=0, max_value=5 * 65536 + 100))
@settings(max_examples=200, deadline=None)
def test_payload_length_rule_matches_real_streams(plaintext: int) -> None:
    chunks = max(1, -(-plaintext // 65536))
    real = 16 + plaintext + 16 * chunks
    assert payload_length_is_valid(real)


def test_payload_lengths_that_streams_cannot_have() -> None:
    full = 65536 + 16
    assert not payload_length_is_valid(0)
    assert not payload_length_is_valid(16 + 15)
    assert payload_length_is_valid(16 + 16)  # the empty file
    assert not payload_length_is_valid(16 + full + 16)  # an empty last chunk after a full one
    assert not payload_length_is_valid(16 + full + 5)  # a tag cut short


def test_check_header_wants_exactly_one_header() -> None:
    data = encrypted(10)
    length = sniff(data).header_length
    assert check_header(data[:length]).header_length == length
    with pytest.raises(NotAgeFile):
        check_header(data[: length + 1])
    with pytest.raises(NotAgeFile):
        check_header(data[: length - 1])
    with pytest.raises(NotAgeFile):
        check_header(b"x" * (MAX_HEADER_SIZE + 1))


def test_reasons_never_quote_the_input() -> None:
    secret = b"age-encryption.org/v1\n-> canary-secret-value\nnot base64\n"
    with pytest.raises(NotAgeFile) as refused:
        sniff(secret)
    assert "canary" not in str(refused.value)


def test_non_bytes_are_a_programming_error() -> None:
    with pytest.raises(TypeError):
        sniff("age-encryption.org/v1\n")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        check_header(bytearray(b"x"))  # type: ignore[arg-type]


def test_the_module_imports_neither_chalice_nor_boto3_nor_the_device_code() -> None:
    with open(agefile.__file__, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "base64", "binascii", "re", "dataclasses"}


# --- the first payload chunk must look like ciphertext -------------------------------

_KEY = age.X25519Identity.generate()


def _first_chunk_check(data: bytes) -> None:
    prefix = data[: agefile.SNIFF_WINDOW]
    agefile.check_first_chunk(prefix, agefile.sniff(prefix, len(data)))


@pytest.mark.parametrize("armor", [False, True])
@pytest.mark.parametrize(
    "size", [0, 1, 31, 32, 47, 48, 49, 100, 1000, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 200_000]
)
def test_real_ciphertexts_of_every_size_pass(size: int, armor: bool) -> None:
    # Plaintext of zeros: the most regular input, and its ciphertext is random.
    data = age.encrypt_bytes(bytes(size), [_KEY.recipient()], armor=armor)
    _first_chunk_check(data)


def test_a_ciphertext_with_a_maximal_header_passes_on_what_the_window_holds() -> None:
    recipients = [age.X25519Identity.generate().recipient() for _ in range(600)]
    data = age.encrypt_bytes(bytes(200_000), recipients)
    assert agefile.sniff(data[: agefile.SNIFF_WINDOW]).header_length > 50_000
    _first_chunk_check(data)


@given(st.binary(min_size=agefile.MIN_TESTED_CHUNK, max_size=4096))
@settings(max_examples=50)
def test_the_statistic_is_pearsons_chi_squared(data: bytes) -> None:
    expected = len(data) / 256
    pearson = sum((data.count(v) - expected) ** 2 / expected for v in range(256))
    assert agefile.chi_squared(data) == pytest.approx(pearson)


def test_known_values() -> None:
    assert agefile.chi_squared(bytes(range(256)) * 4) == 0
    assert agefile.chi_squared(bytes(1000)) == pytest.approx(255 * 1000)
    with pytest.raises(ValueError, match="no bytes"):
        agefile.chi_squared(b"")


def _forged(payload: bytes, *, armor: bool = False) -> bytes:
    real = age.encrypt_bytes(bytes(len(payload)), [_KEY.recipient()])
    start = agefile.sniff(real).header_length + 16
    forged = real[:start] + payload
    if armor:
        body = base64.b64encode(forged)
        lines = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64))
        forged = agefile.ARMOR_BEGIN + b"\n" + lines + b"\n-----END AGE ENCRYPTED FILE-----\n"
    return forged


@pytest.mark.parametrize("armor", [False, True])
@pytest.mark.parametrize(
    "payload",
    [
        bytes(64),
        b"Meet me at the station at nine. Bring the documents. Tell nobody.!!"[:64],
        b'{"card_number": "4111111111111111", "cvv": "123", "name": "A B"}' * 20,
        b"%PDF-1.7\n" + b"1 0 obj << /Type /Catalog >> endobj\n" * 100,
        bytes(range(48, 58)) * 1000,  # digits
        base64.b64encode(bytes(range(256)) * 40),  # base64 text: 64 symbols
    ],
)
def test_a_plaintext_behind_a_real_header_is_refused(payload: bytes, armor: bool) -> None:
    # A payload length STREAM can have: the shape check alone lets it through.
    payload = payload + b"\x00" * 16 if len(payload) < 16 else payload
    forged = _forged(payload, armor=armor)
    agefile.sniff(forged[: agefile.SNIFF_WINDOW], len(forged))
    with pytest.raises(agefile.NotAgeFile) as info:
        _first_chunk_check(forged)
    assert info.value.reason == "payload_not_random"


def test_chunks_shorter_than_the_minimum_are_not_judged() -> None:
    _first_chunk_check(_forged(bytes(agefile.MIN_TESTED_CHUNK - 1)))
    with pytest.raises(agefile.NotAgeFile):
        _first_chunk_check(_forged(bytes(agefile.MIN_TESTED_CHUNK)))
