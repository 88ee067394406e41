"""Regression: a blob id starting with "-" broke `sealbox device get ID OUT`.

Command-line parsers read a leading "-" as an option, so one upload in 64
produced an id that `get`, `share` and `rm` could not take.  The server never
makes such ids now: random ids are redrawn, derived (idempotent) ids take the
next candidate deterministically.
"""

from __future__ import annotations

import itertools

from chalicelib.services.blobs import _derived_blob_id, _random_blob_id


def test_random_ids_never_start_with_a_dash() -> None:
    # 0xF8 encodes to a leading "-" in base64url; the next draw is used.
    draws = iter([b"\xf8" + bytes(15), b"\x00" * 16])
    assert _random_blob_id(lambda n: next(draws)) == "A" * 22


def test_derived_ids_never_start_with_a_dash_and_stay_stable() -> None:
    key = next(
        f"key-{i:016d}"
        for i in itertools.count()
        if _first_candidate_starts_with_dash("alice", f"key-{i:016d}")
    )
    blob_id = _derived_blob_id("alice", key)
    assert not blob_id.startswith("-")
    assert _derived_blob_id("alice", key) == blob_id
    assert _derived_blob_id("bob", key) != blob_id


def _first_candidate_starts_with_dash(owner: str, key: str) -> bool:
    from chalicelib import crypto
    from chalicelib.services.blobs import _BLOB_ID_LABEL, BLOB_ID_BYTES
    from chalicelib.wire.b64 import b64url_encode

    digest = crypto.sha256(_BLOB_ID_LABEL + b"\x00" + owner.encode() + b"\x00" + key.encode())
    return b64url_encode(digest[:BLOB_ID_BYTES]).startswith("-")
