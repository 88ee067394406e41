"""The ``sealbox`` console script: a fast lane for ``sealbox age``, else click.

``sealbox age`` is compared, whole process, with Go's age CLI
(``python -m bench.age_throughput``), and on a small file start-up is
nearly all of its time; click alone is about a fifth of that start-up.  So
this entry point imports nothing but :mod:`client_sim.age_cli` for an
``age`` command line with plain arguments
(:func:`client_sim.age_cli.run_age_fast`), and hands everything else --
every other verb, ``--help``, anything that parser does not take -- to the
click group :func:`sealbox_tools.cli.main`, exactly as before.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Run ``sealbox`` with ``sys.argv``; exits with the command's status."""
    if sys.argv[1:2] == ["age"]:
        from client_sim.age_cli import run_age_fast

        status = run_age_fast(sys.argv[2:])
        if status is not None:
            sys.exit(status)
    from sealbox_tools.cli import main as click_main

    click_main()
