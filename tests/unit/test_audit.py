"""The privacy audit's search: every encoding found, no false positives."""

from __future__ import annotations

import base64
import json
import logging
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client_sim import age
from sealbox_tools.audit import (
    STRIDE,
    Haystack,
    LogCapture,
    Needle,
    NeedleIndex,
    audit,
    is_age_file,
    needle,
    read_needles,
    write_needles,
)

SECRET = bytes(range(7, 39))


def embeddings(secret: bytes, before: bytes, after: bytes) -> list[bytes]:
    blob = before + secret + after
    return [
        blob,
        blob.hex().encode(),
        blob.hex().upper().encode(),
        base64.b64encode(blob),
        base64.urlsafe_b64encode(blob).rstrip(b"="),
        b'{"field": "' + base64.b64encode(blob) + b'"}',
    ]


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=40), st.binary(max_size=40), st.binary(min_size=12, max_size=64))
def test_a_secret_is_found_in_every_encoding_at_every_alignment(
    before: bytes, after: bytes, secret: bytes
) -> None:
    index = NeedleIndex([needle("s", secret)])
    for data in embeddings(secret, before, after):
        assert index.find(data) == {"s"}


def test_random_data_has_no_hits() -> None:
    index = NeedleIndex([needle(f"k{i}", os.urandom(32)) for i in range(200)])
    assert index.find(os.urandom(1 << 20)) == set()


def test_text_secrets_are_found_too() -> None:
    index = NeedleIndex([needle("password", "correct horse battery staple")])
    assert index.find(b"...login correct horse battery staple ...") == {"password"}


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="shorter"):
        needle("pin", "1234")


def test_needles_hide_their_bytes_in_repr() -> None:
    item = needle("k", SECRET)
    assert SECRET.hex() not in repr(item)
    assert isinstance(item, Needle)


def test_audit_passes_only_with_zero_hits_and_ciphertext_blobs() -> None:
    needles = [needle("alice/x25519", SECRET)]
    ciphertext = age.encrypt_bytes(b"hello", [age.X25519Identity.generate().recipient()])
    blob = Haystack("s3-object", "s3://b/blobs/1", ciphertext)
    clean = audit(
        [blob, Haystack("dynamodb-item", "t", b"{}")],
        needles,
        is_blob=lambda h: h.kind == "s3-object",
    )
    assert clean.passed
    assert "PASS" in clean.summary()

    leaked = audit([Haystack("log", "server", b"debug: key=" + base64.b64encode(SECRET))], needles)
    assert not leaked.passed
    assert leaked.hits == [("log", "server", "alice/x25519")]
    assert "HIT  alice/x25519 in log server" in leaked.summary()

    plaintext_blob = audit(
        [Haystack("s3-object", "s3://b/blobs/2", b"hello")], needles, is_blob=lambda h: True
    )
    assert not plaintext_blob.passed
    assert plaintext_blob.not_ciphertext == ["s3://b/blobs/2"]


def test_group_wraps_objects_pass_only_under_groups_with_their_header() -> None:
    """A group epoch's wraps object is not an age file: it passes the blob
    check under ``groups/`` with its versioned header, and nowhere else."""
    from chalicelib.wire.group_wraps import WRAPS_MAGIC

    wraps = WRAPS_MAGIC + b"\x01" + os.urandom(64)
    report = audit(
        [
            Haystack("s3-object", "s3://b/groups/g/0/w", wraps),
            Haystack("s3-object", "s3://b/groups/g/1/w", b"plaintext posing as wraps"),
            Haystack("s3-object", "s3://b/blobs/3", wraps),
            Haystack("log", "s3://b/groups/g/2/w", wraps),
        ],
        [needle("k", SECRET)],
        is_blob=lambda h: True,
    )
    assert report.not_ciphertext == [
        "s3://b/groups/g/1/w",
        "s3://b/blobs/3",
        "s3://b/groups/g/2/w",
    ]


def test_an_audit_that_scanned_nothing_does_not_pass() -> None:
    assert not audit([], [needle("k", SECRET)]).passed


def test_an_audit_that_searched_for_nothing_does_not_pass() -> None:
    # An empty needles file (or a run that gathered no secrets) would find
    # nothing anywhere: that is no evidence either.
    report = audit([Haystack("log", "server", b"INFO a clean log line")], [])
    assert not report.passed
    assert "FAIL" in report.summary()


def test_blobs_are_judged_by_the_shared_sniffer() -> None:
    recipient = age.X25519Identity.generate().recipient()
    binary = age.encrypt_bytes(b"x" * 1000, [recipient])
    armored = age.encrypt_bytes(b"x" * 1000, [recipient], armor=True)
    assert is_age_file(binary)
    assert is_age_file(armored)
    # The magic line alone is not enough: the header must parse, and the
    # payload must have a length age's STREAM can have.
    assert not is_age_file(b"age-encryption.org/v1\n-> X25519 not a stanza\n")
    # Header, nonce and an 11-byte payload: shorter than one chunk's tag.
    assert not is_age_file(binary[: len(binary) - 1016 + 11])
    assert not is_age_file(b"plain text that someone uploaded")


def test_quarantined_objects_are_searched_but_need_not_be_age_files() -> None:
    needles = [needle("canary", "CANARY-in-a-rejected-upload")]
    report = audit(
        [
            Haystack("s3-object", "s3://b/quarantine/1", b"CANARY-in-a-rejected-upload"),
            Haystack("s3-object", "s3://b/quarantine/2", b"not age, and rejected"),
        ],
        needles,
    )
    assert report.not_ciphertext == []
    assert report.blobs_checked == 0
    assert report.hits == [("s3-object", "s3://b/quarantine/1", "canary")]


def test_needles_file_round_trip_is_private(tmp_path) -> None:
    path = tmp_path / "run" / "needles.json"
    write_needles(path, [("device-1 x25519", SECRET), ("password", b"a long password here")])
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = read_needles(path)
    assert [n.label for n in loaded] == ["device-1 x25519", "password"]
    assert loaded[0].forms == needle("x", SECRET).forms
    (tmp_path / "bad.json").write_text('{"version": 99, "needles": []}')
    with pytest.raises(ValueError, match="version"):
        read_needles(tmp_path / "bad.json")


def test_log_capture_keeps_messages_extras_and_exceptions() -> None:
    capture = LogCapture()
    logger = logging.getLogger("sealbox.audit-test")
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("plain %s", "argument-one-that-is-long")
        logger.info("with extra", extra={"detail": "extra-field-that-is-long"})
        try:
            raise RuntimeError("exception-text-that-is-long")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(capture)
    needles = [
        needle("argument", "argument-one-that-is-long"),
        needle("extra", "extra-field-that-is-long"),
        needle("exception", "exception-text-that-is-long"),
    ]
    report = audit(capture.haystacks(), needles)
    assert capture.count == 3
    assert sorted(label for _, _, label in report.hits) == ["argument", "exception", "extra"]


def test_long_needles_are_found_at_every_offset_and_at_the_very_end() -> None:
    # Long forms are searched at every STRIDE-th position only: check every
    # alignment against the stride, with the needle flush against both ends.
    secret = os.urandom(32)
    index = NeedleIndex([needle("long", secret)])
    for before in range(0, 2 * STRIDE + 1):
        for after in (0, 1, STRIDE - 1, STRIDE):
            data = os.urandom(before) + secret + os.urandom(after)
            assert index.find(data) == {"long"}, (before, after)
            assert index.find(base64.b64encode(data)) == {"long"}, (before, after)
    assert index.find(secret[:-1]) == set()
    assert index.find(os.urandom(before) + secret[1:]) == set()


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
@pytest.mark.parametrize("width", [64, 76])
def test_base64_wrapped_into_lines_is_found(width: int, newline: bytes) -> None:
    # MIME (76 columns) and PEM (64) wrap base64 into lines; a line break
    # can fall anywhere inside a secret's encoding.
    secret = os.urandom(64)  # as long as an ML-KEM seed: never fits one line
    index = NeedleIndex([needle("s", secret)])
    for before in range(0, 2 * width):
        encoded = base64.b64encode(os.urandom(before) + secret + os.urandom(7))
        lines = [encoded[i : i + width] for i in range(0, len(encoded), width)]
        assert index.find(newline.join(lines) + newline) == {"s"}, before


@pytest.mark.parametrize(
    "text",
    [
        "pässwörd für den Tresor, lang genug",
        'a canary with "quotes" in it',
        "a canary with a back\\slash",
        "a canary over\ntwo lines",
    ],
)
def test_text_secrets_are_found_inside_json(text: str) -> None:
    # The app's log lines are JSON (chalicelib.logs: json.dumps, ASCII only),
    # which escapes non-ASCII characters, quotes, backslashes and newlines.
    index = NeedleIndex([needle("s", text)])
    for ensure_ascii in (True, False):
        line = json.dumps({"event": "careless", "note": text}, ensure_ascii=ensure_ascii)
        assert index.find(line.encode("utf-8")) == {"s"}, line


def test_binary_secrets_are_found_as_a_python_repr() -> None:
    # A careless ``log.debug("key %r", key)`` writes b'\x8f...': the bytes'
    # repr, which is none of raw, hex or base64.  Every byte value appears.
    secret = bytes(range(256)) + bytes(range(255, -1, -1))
    index = NeedleIndex([needle("key", secret)])
    for logged in (f"key {secret!r}", "key " + str(secret), f"{[secret]}"):
        assert index.find(logged.encode()) == {"key"}, logged[:40]
    quote = b"'" + secret[:40]
    assert NeedleIndex([needle("q", quote)]).find(repr(quote).encode()) == {"q"}
