"""The ``sealbox`` command line.

Each verb lives with the code it drives; this module assembles the group so
that ``sealbox --help`` lists them all.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
def local(port: int, stage: str, verbose: bool) -> None:
    """Run the backend on 127.0.0.1:PORT with AWS on a moto server.

    Provisions the stage's tables, secret, blob bucket and event queue from
    infra/resources.json, seeds the app signing key, polls the blob-events
    queue for the blob_events handler, and stops every process it started
    on SIGINT or SIGTERM.
    """
    from client_sim.local_stack import LocalStack, StackError

    stopping = _stop_on_signals()
    stack = LocalStack(port=port, stage=stage, log=sys.stderr if verbose else None)
    try:
        stack.start()
        click.echo(f"aws endpoint {stack.aws_endpoint}")
        click.echo(f"listening on {stack.url}")
        while not stopping.wait(0.5):
            stack.check_alive()
    except StackError as exc:
        click.echo(f"sealbox: error: {exc}", err=True)
        sys.exit(1)
    finally:
        stack.stop()


@main.command()
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="0: any free port.")
def demo(port: int) -> None:
    """Start the local stack, run a scripted device walk, and stop."""
    from client_sim.api import ApiClient, ApiError
    from client_sim.demo import DemoFailure, run_walk
    from client_sim.local_stack import LocalStack, StackError, stage_environment
    from client_sim.transport import HttpTransport, TransportError

    started = time.perf_counter()
    click.echo("Sealbox demo: starting the local stack (moto + chalice local) ...")
    try:
        with LocalStack(port=port) as stack:
            click.echo(f"aws endpoint {stack.aws_endpoint}")
            click.echo(f"listening on {stack.url}")
            click.echo("One device signs up and signs in; every answer is checked:")
            audience = stage_environment(stack.stage)["SEALBOX_TOKEN_AUDIENCE"]
            run_walk(ApiClient(HttpTransport(stack.url)), audience=audience, echo=click.echo)
    except (StackError, DemoFailure, ApiError, TransportError) as exc:
        click.echo(f"sealbox: demo failed: {exc}", err=True)
        sys.exit(1)
    click.echo(f"Demo passed in {time.perf_counter() - started:.1f} s; the stack is stopped.")


# Each verb lives in its own module; registering here keeps `sealbox --help`
# complete without this module knowing what the verbs do.
from client_sim.age_cli import age_command, age_keygen_command  # noqa: E402

main.add_command(age_command)
main.add_command(age_keygen_command)

from client_sim.device_cli import device_command  # noqa: E402

main.add_command(device_command)
