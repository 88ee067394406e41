"""``sealbox age`` and ``sealbox age-keygen`` declared for click.

The commands' logic is :mod:`client_sim.age_cli`; this module gives them
their help text and click's full parsing of every flag.  ``sealbox age``
with plain arguments skips click entirely (``client_sim.age_cli.run_age_fast``);
anything else -- ``--help``, a usage error -- lands here.
"""

from __future__ import annotations

from typing import Any

import click

from client_sim.age_cli import run_age, run_age_keygen

__all__ = ["age_command", "age_keygen_command"]


@click.command(
    "age",
    context_settings={"help_option_names": ["-h", "--help"]},
    short_help="Encrypt and decrypt files with age (age-compatible flags).",
)
@click.option("-e", "--encrypt", "encrypt_flag", is_flag=True, help="Encrypt (the default).")
@click.option("-d", "--decrypt", "decrypt_flag", is_flag=True, help="Decrypt.")
@click.option("-o", "--output", metavar="OUTPUT", help="Write the result to OUTPUT.")
@click.option("-a", "--armor", is_flag=True, help="Encrypt to a PEM encoded format.")
@click.option("-p", "--passphrase", is_flag=True, help="Encrypt with a passphrase.")
@click.option(
    "-r",
    "--recipient",
    "recipients",
    multiple=True,
    metavar="RECIPIENT",
    help="Encrypt to RECIPIENT (age1... or age1pq1...). Repeatable.",
)
@click.option(
    "-R",
    "--recipients-file",
    "recipient_files",
    multiple=True,
    metavar="PATH",
    help="Encrypt to the recipients listed at PATH. Repeatable.",
)
@click.option(
    "-i",
    "--identity",
    "identity_files",
    multiple=True,
    metavar="PATH",
    help="Use the identity file at PATH. Repeatable.",
)
@click.argument("input_path", required=False, metavar="[INPUT]")
def age_command(**params: Any) -> None:
    """Encrypt INPUT (default stdin) to OUTPUT (default stdout), or decrypt it.

    \b
    sealbox age [-e] (-r RECIPIENT | -R PATH | -i PATH)... [-a] [-o OUTPUT] [INPUT]
    sealbox age -p [-a] [-o OUTPUT] [INPUT]
    sealbox age -d [-i PATH]... [-o OUTPUT] [INPUT]

    Passphrases are read from the terminal, or from SEALBOX_PASSPHRASE.
    """
    # The options above name run_age's parameters (one signature, not two).
    run_age(**params)


@click.command(
    "age-keygen",
    context_settings={"help_option_names": ["-h", "--help"]},
    short_help="Generate an age identity (age-keygen compatible).",
)
@click.option("--pq", is_flag=True, help="Generate a post-quantum hybrid identity.")
@click.option("-o", "--output", metavar="OUTPUT", help="Write the identity to OUTPUT (0600).")
@click.option(
    "-y", "convert", is_flag=True, help="Print the recipients of the identity file INPUT."
)
@click.argument("input_path", required=False, metavar="[INPUT]")
def age_keygen_command(pq: bool, output: str | None, convert: bool, input_path: str | None) -> None:
    """Generate a new identity, or with -y convert INPUT's identities to recipients.

    \b
    sealbox age-keygen [--pq] [-o OUTPUT]
    sealbox age-keygen -y [-o OUTPUT] [INPUT]
    """
    run_age_keygen(pq, output, convert, input_path)
