"""The ``sealbox`` command line (the console-script entry point).

Each verb lives with the code it drives; this module assembles the group so
that ``sealbox --help`` lists them all.  ``local`` and ``demo`` (here) and
``fleet`` and ``audit`` (:mod:`sealbox_tools.fleet.cli`) drive a backend;
``device``, ``age`` and ``age-keygen`` are the device-side command lines
from ``client_sim``, registered here so one ``sealbox`` command has them all.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sealbox_tools.local_stack import LocalStack


# Each verb lives in its own module, imported only when that verb runs (or
# when `sealbox --help` lists them all): `sealbox age` pays for the age
# library and click, not for the device SDK, the fleet or the local stack
# (bench.age_throughput compares its whole-process time with the age CLI).
_LAZY_COMMANDS = {
    "age": ("client_sim.age_click", "age_command"),
    "age-keygen": ("client_sim.age_click", "age_keygen_command"),
    "device": ("client_sim.device_cli", "device_command"),
    "fleet": ("sealbox_tools.fleet.cli", "fleet_command"),
    "audit": ("sealbox_tools.fleet.cli", "audit_command"),
    "kt": ("sealbox_tools.kt_cli", "kt_command"),
}


class _LazyGroup(click.Group):
    """A group whose listed commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY_COMMANDS and cmd_name not in self.commands:
            module, attribute = _LAZY_COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sealbox")
def main() -> None:
    """Sealbox: end-to-end encrypted application kit."""


def _stop_on_signals() -> threading.Event:
    stopping = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stopping


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--stage", default="local", show_default=True, help="Chalice stage to run.")
@click.option("--verbose", is_flag=True, help="Pass moto's and chalice's logs to stderr.")
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the API's log (chalice local and the event poller) to FILE, "
    "for `sealbox audit --log FILE`.",
)
@click.option(
    "--extension",
    "extensions",
    multiple=True,
    metavar="MODULE",
    help="A backend extension module to install (repeatable; importable from the "
    "current directory or PYTHONPATH; docs/extending.md).",
)
@click.option(
    "--sdk-config",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where to write this stack's SDK configuration (for `sealbox device --config`); "
    "default: sdk-config.json in a temporary directory removed on exit.  The path is printed.",
)
def local(
    port: int,
    stage: str,
    verbose: bool,
    log_file: Path | None,
    extensions: tuple[str, ...],
    sdk_config: Path | None,
) -> None:
    """Run the backend on 127.0.0.1:PORT with AWS on a moto server.

    Provisions the stage's tables, secret, blob bucket and event queue from
    infra/resources.json, seeds the app signing key, polls the blob-events
    queue for the blob_events handler, and stops every process it started
    on SIGINT or SIGTERM.
    """
    from sealbox_tools.local_stack import LocalStack

    stopping = _stop_on_signals()
    with contextlib.ExitStack() as files:
        log: IO[str] | None = sys.stderr if verbose else None
        aws_log = log
        if log_file is not None:
            log = files.enter_context(log_file.open("a", encoding="utf-8"))
            # moto's own log is AWS's, not the API's: kept out of the file.
            aws_log = aws_log or files.enter_context(open(os.devnull, "w"))
        if sdk_config is None:
            import tempfile

            temporary = files.enter_context(tempfile.TemporaryDirectory(prefix="sealbox-local-"))
            sdk_config = Path(temporary) / "sdk-config.json"
        _run_local(
            LocalStack(port=port, stage=stage, log=log, aws_log=aws_log, extensions=extensions),
            stopping,
            sdk_config,
        )


def _run_local(stack: LocalStack, stopping: threading.Event, sdk_config: Path) -> None:
    from sealbox_tools.local_stack import StackError

    try:
        stack.start()
        # What this stack's devices pin: `sealbox device --config FILE`.
        stack.sdk_config().write(sdk_config)
        click.echo(f"aws endpoint {stack.aws_endpoint}")
        click.echo(f"listening on {stack.url}")
        if stack.log_key is not None:
            # What an app pins (Device(log_key=...), sealbox device --log-key).
            click.echo(f"transparency log key {stack.log_key}")
        click.echo(f"sdk config {sdk_config}")
        while not stopping.wait(0.5):
            stack.check_alive()
    except StackError as exc:
        click.echo(f"sealbox: error: {exc}", err=True)
        sys.exit(1)
    finally:
        stack.stop()


@main.command()
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="0: any free port.")
@click.option("--devices", type=click.IntRange(2, 1000), default=50, show_default=True)
@click.option(
    "--scenario", type=click.Choice(["standard", "full"]), default="standard", show_default=True
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 256), default=16, show_default=True)
@click.option(
    "--reports",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Where the report, chart, needles file and server log go.",
)
def demo(
    port: int, devices: int, scenario: str, seed: int, concurrency: int, reports: Path
) -> None:
    """Start the local stack, walk one phone through sign-in, run a fleet
    over HTTP, audit the server side, write the reports, and stop.

    Exit code 0 only if every step passed: the walk, every delivery of the
    fleet, and the privacy audit.
    """
    from sealbox_tools.demo import DemoOptions, run_demo

    options = DemoOptions(
        port=port,
        devices=devices,
        scenario=scenario,
        seed=seed,
        concurrency=concurrency,
        reports=reports,
    )
    sys.exit(0 if run_demo(options, echo=click.echo, progress=sys.stderr) else 1)
