"""The server's age sniffer (chalicelib/wire/agefile.py) against the CCTV vectors.

The sniffer decides which uploads are stored and which are quarantined, so
it must never refuse a well-formed file (every vector that decrypts, or
fails only for lack of the right key or MAC, passes it), and it must refuse
every file whose header breaks age's generic grammar.  What it can't see --
recipient-specific rules, the MAC, the payload's tags -- is left to the
devices that decrypt; the exact split is pinned here so a change shows up.
"""

from __future__ import annotations

import pytest

from chalicelib.wire.agefile import SNIFF_WINDOW, NotAgeFile, sniff
from tests.conftest import require_oracle
from tests.oracles import harness
from tests.vectors.testkit import Vector, parse_vector

RECIPIENT_SPECIFIC = ("x25519_", "scrypt_", "hybrid_")
# Payload failures visible from the file's length alone.
LENGTH_VISIBLE = {
    "stream_last_chunk_empty",
    "stream_missing_tag",
    "stream_no_chunks",
    "stream_short_chunk",
    "stream_short_second_chunk",
    "stream_trailing_garbage_short",
}
# Armor damage after the part a prefix shows.
ARMOR_BEYOND_PREFIX = {"armor_garbage_trailing", "armor_no_end_line"}


def _vectors() -> list[Vector]:
    vectors = harness.cctv_vectors()
    require_oracle(vectors is not None, "npm cctv-age@0.2.0 and node")
    assert vectors is not None
    return [parse_vector(name, raw) for name, raw in sorted(vectors.items())]


def accepts(vector: Vector) -> bool:
    try:
        sniff(vector.body[:SNIFF_WINDOW], len(vector.body))
    except NotAgeFile:
        return False
    return True


def test_well_formed_files_are_never_refused() -> None:
    vectors = [v for v in _vectors() if v.expect in ("success", "no match", "HMAC failure")]
    assert len(vectors) == 40
    assert [v.name for v in vectors if not accepts(v)] == []


def test_every_generic_header_failure_is_refused() -> None:
    failures = [v for v in _vectors() if v.expect == "header failure"]
    accepted = {v.name for v in failures if accepts(v)}
    assert all(name.startswith(RECIPIENT_SPECIFIC) for name in accepted), accepted
    generic = [v for v in failures if not v.name.startswith(RECIPIENT_SPECIFIC)]
    assert generic
    assert not any(accepts(v) for v in generic)


@pytest.mark.parametrize("expect", ["payload failure", "armor failure"])
def test_what_a_prefix_and_a_length_can_show_is_refused(expect: str) -> None:
    vectors = [v for v in _vectors() if v.expect == expect]
    refused = {v.name for v in vectors if not accepts(v)}
    if expect == "payload failure":
        assert refused == LENGTH_VISIBLE
    else:
        assert {v.name for v in vectors} - refused == ARMOR_BEYOND_PREFIX
