"""``sealbox age`` parses plain arguments without click, exactly as click would.

The console script (sealbox_tools/launcher.py) runs ``sealbox age`` through
``client_sim.age_cli.parse_age_args`` to keep click out of start-up; it
must either decline (click then parses, as before) or give the very
parameters click's command would.  A property test over arbitrary token
lists holds the two parsers together.
"""

from __future__ import annotations

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client_sim.age_cli import parse_age_args
from client_sim.age_click import age_command

pytestmark = pytest.mark.unit

TOKENS = [
    "-e", "-d", "-a", "-p", "-o", "-r", "-R", "-i", "-h", "-z", "-",
    "--encrypt", "--decrypt", "--armor", "--passphrase", "--output", "--recipient",
    "--recipients-file", "--identity", "--help", "--", "--out", "--armor=1",
    "--output=x", "--output=", "--identity=k", "--recipient=age1x",
    "-da", "-ad", "-oout", "-o=x", "-dio", "-ri", "-ai", "-ep", "-dz",
    "x", "y", "key.txt", "", "age1abc", "-x-",
]  # fmt: skip


def click_params(argv: list[str]) -> dict[str, object]:
    return dict(age_command.make_context("age", list(argv)).params)


@pytest.mark.parametrize(
    "argv",
    [
        ["-r", "age1abc", "-o", "out.age", "in.bin"],
        ["-d", "-i", "key.txt", "-o", "out", "in.age"],
        ["-di", "key.txt", "in.age"],
        ["--decrypt", "--identity=key.txt", "--output", "-", "-"],
        ["-a", "-R", "list.txt", "-r", "age1a", "-r", "age1b"],
        ["-o", "first", "-o", "second"],
        ["-oout", "-ea"],
        ["-r", "-looks-like-a-flag"],
        ["-p"],
        [],
    ],
)
def test_plain_command_lines_parse_like_click(argv: list[str]) -> None:
    fast = parse_age_args(argv)
    assert fast is not None
    assert fast == click_params(argv)


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["-h"], ["-d", "--", "-file"], ["--bogus"], ["-z"], ["--armor=1"], ["a", "b"],
     ["-o"], ["--identity"], ["-dz"]],
)  # fmt: skip
def test_help_and_anything_unusual_go_to_click(argv: list[str]) -> None:
    assert parse_age_args(argv) is None


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=7))
def test_the_fast_parser_never_disagrees_with_click(argv: list[str]) -> None:
    fast = parse_age_args(argv)
    if fast is None:
        return
    try:
        expected = click_params(argv)
    except (click.exceptions.ClickException, click.exceptions.Exit) as exc:
        raise AssertionError(f"click refuses {argv!r} ({exc}); the fast parser took it") from exc
    assert fast == expected, argv
