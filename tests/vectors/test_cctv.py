"""The CCTV age test vectors (npm ``cctv-age``), decrypted by our code.

Each vector says what decrypting it must do.  We check the outcome and the
SHA-256 of every plaintext byte our API released, including the bytes
released before a payload failure:

* ``success``: the whole file decrypts and the plaintext hash matches;
* ``no match``: :func:`decrypt_reader` raises :class:`NoIdentityMatch`;
* ``header failure`` / ``HMAC failure``: :func:`decrypt_reader` raises the
  opaque :class:`DecryptionError` (not ``NoIdentityMatch``), releasing nothing;
* ``payload failure``: the header opens, reading raises ``DecryptionError``,
  and what was released before matches the hash;
* ``armor failure``: ``DecryptionError`` either when opening or when reading.
"""

from __future__ import annotations

import hashlib
import io

import pytest

from tests.conftest import require_oracle
from tests.oracles import harness
from tests.vectors.testkit import ACCEPTED, Vector, parse_vector, run_vector

EXPECTED_VECTOR_COUNT = 143


def _vector_names() -> list[str]:
    vectors = harness.cctv_vectors()
    return sorted(vectors) if vectors else ["<cctv-age not installed>"]


def _load(name: str) -> Vector:
    vectors = harness.cctv_vectors()
    require_oracle(vectors is not None, "npm cctv-age@0.2.0 and node")
    assert vectors is not None
    return parse_vector(name, vectors[name])


def test_vector_count_is_exact():
    vectors = harness.cctv_vectors()
    require_oracle(vectors is not None, "npm cctv-age@0.2.0 and node")
    assert vectors is not None
    # A packaging change that silently drops vectors must fail the suite.
    assert len(vectors) == EXPECTED_VECTOR_COUNT


@pytest.mark.parametrize("read", ["read1", "readinto"])
@pytest.mark.parametrize("name", _vector_names())
def test_cctv_vector(name: str, read: str):
    vector = _load(name)
    outcome, released = run_vector(vector, read=read)
    assert outcome in ACCEPTED[vector.expect], (vector.expect, outcome)
    if vector.payload is not None:
        assert hashlib.sha256(released).hexdigest() == vector.payload
    elif vector.expect != "payload failure":
        assert released == b""


def test_every_outcome_kind_is_exercised():
    # Guards the mapping above: if the package stopped shipping a category,
    # the vectors above would test less than they claim.
    vectors = harness.cctv_vectors()
    require_oracle(vectors is not None, "npm cctv-age@0.2.0 and node")
    assert vectors is not None
    kinds = {parse_vector(n, raw).expect for n, raw in vectors.items()}
    assert kinds == set(ACCEPTED)


def test_success_vectors_round_trip_the_header_bytes():
    # Any vector that is not a header failure must re-serialise to the exact
    # header bytes we parsed (canonical parsing means one encoding per header).
    from client_sim.age._format import parse_header, serialize_header_without_mac
    from client_sim.age._io import ByteSource

    vectors = harness.cctv_vectors()
    require_oracle(vectors is not None, "npm cctv-age@0.2.0 and node")
    assert vectors is not None
    checked = 0
    for name, raw in vectors.items():
        vector = parse_vector(name, raw)
        if vector.armored or vector.expect in ("header failure", "armor failure"):
            continue
        header = parse_header(ByteSource(io.BytesIO(vector.body)))
        assert serialize_header_without_mac(header.stanzas) == header.mac_input, name
        checked += 1
    assert checked >= 50
