"""``sealbox kt …``: the key-transparency log from outside (auditors, operators)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from client_sim.api import ApiClient
from client_sim.errors import DeviceError
from client_sim.transport import HttpTransport
from sealbox_tools.ktaudit import AuditFailed, audit_log


@click.group("kt")
def kt_command() -> None:
    """The key-transparency log: audit it with nothing but its public key."""


@kt_command.command("init-key")
@click.option("--secret-id", required=True, help="The stage's log key secret (<stack>-kt-log-key).")
@click.option("--origin", required=True, help="The stage's SEALBOX_KT_ORIGIN (the key's name).")
def kt_init_key(secret_id: str, origin: str) -> None:
    """Give the log key secret its key once; print the verifier key devices pin.

    Uses the ambient AWS credentials.  An existing key is kept (devices pin it).
    """
    import boto3

    from chalicelib.storage.ktlog import ensure_log_key

    session: Any = boto3.session.Session()
    click.echo(ensure_log_key(session.client("secretsmanager"), secret_id, origin))


@kt_command.command("audit")
@click.option("--url", required=True, help="The API's base URL.")
@click.option("--log-key", required=True, help="The log's verifier key (name+id+key).")
@click.option(
    "--checkpoints",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File of signed checkpoints seen before (appended to after a clean audit).",
)
def kt_audit(url: str, log_key: str, checkpoints: Path | None) -> None:
    """Download the log, rebuild the tree, check checkpoints and card chains.

    Exit status 0: clean; 1: problems found (listed); 2: the log can't be audited.
    """
    known: list[str] = []
    if checkpoints is not None and checkpoints.exists():
        # One signed note per block; notes are separated by a line "---".
        known = [n for n in checkpoints.read_text(encoding="utf-8").split("---\n") if n.strip()]
    try:
        report = audit_log(ApiClient(HttpTransport(url)), log_key, checkpoints=known)
    except (AuditFailed, DeviceError) as exc:
        click.echo(f"audit failed: {exc}", err=True)
        sys.exit(2)
    click.echo(f"log size {report.size}, root {report.root.hex()}, {report.identities} identities")
    for problem in report.problems:
        click.echo(f"PROBLEM {problem}")
    if report.ok and checkpoints is not None:
        with checkpoints.open("a", encoding="utf-8") as out:
            out.write(report.checkpoint + "---\n")
    sys.exit(0 if report.ok else 1)
