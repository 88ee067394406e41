"""The privacy audit's search: every encoding found, no false positives."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client_sim.audit import Haystack, Needle, NeedleIndex, audit, needle

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
    blob = Haystack("s3-object", "s3://b/blobs/1", b"age-encryption.org/v1\n-> X25519 ...")
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


def test_an_audit_that_scanned_nothing_does_not_pass() -> None:
    assert not audit([], [needle("k", SECRET)]).passed
