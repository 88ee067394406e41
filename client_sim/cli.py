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


# Each verb lives in its own module; registering here keeps `sealbox --help`
# complete without this module knowing what the verbs do.
from client_sim.age_cli import age_command, age_keygen_command  # noqa: E402

main.add_command(age_command)
main.add_command(age_keygen_command)
