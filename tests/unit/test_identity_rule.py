"""chalicelib.wire.identity: the one identity rule both sides use."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.wire.identity import InvalidIdentity, is_identity, normalize_identity


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("alice", "alice"),
        ("Alice", "alice"),
        ("ＡＬＩＣＥ", "alice"),
        ("a.b", "a.b"),
        ("a-b_c.d", "a-b_c.d"),
        ("007", "007"),
        ("x" * 64, "x" * 64),
        ("a" + "-" * 62 + "z", "a" + "-" * 62 + "z"),
    ],
)
def test_valid_identities(raw: str, canonical: str) -> None:
    assert normalize_identity(raw) == canonical
    assert is_identity(canonical)


@pytest.mark.parametrize(
    "raw",
    [
        # Look like command-line options or hidden files when they end up in
        # an argv or a file name (a device CLI, a script over `ls`).
        "-rf",
        "--help",
        "-alice",
        ".hidden",
        "..x",
        "_private",
        "alice-",
        "alice.",
        "alice_",
        "...",
        "---",
        "a-",
        # The old rules still hold.
        "al",
        "x" * 65,
        "alıce",
        "a/b",
        "alice\n",
        " alice",
        "",
    ],
)
def test_refused_identities(raw: str) -> None:
    with pytest.raises(InvalidIdentity):
        normalize_identity(raw)
    assert not is_identity(raw)


@given(st.text(alphabet="abc09._-", min_size=3, max_size=64))
def test_the_first_and_last_characters_are_letters_or_digits(raw: str) -> None:
    ok = raw[0] not in "._-" and raw[-1] not in "._-"
    assert is_identity(raw) is ok
