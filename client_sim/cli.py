"""The ``sealbox`` command line.

Subcommands are added by the modules that implement them; this module only
assembles the group so that ``sealbox --help`` lists every verb.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sealbox")
def main() -> None:
    """Sealbox: end-to-end encrypted application kit."""
