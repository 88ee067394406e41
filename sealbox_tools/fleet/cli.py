"""``sealbox fleet`` and ``sealbox audit`` on the command line.

    sealbox fleet --devices 200 --in-process --scenario full --report reports/run.json
    sealbox fleet --devices 50 --url http://127.0.0.1:8000 --stage local \\
        --aws-endpoint http://127.0.0.1:41233 --server-log api.log
    sealbox audit --aws-endpoint http://127.0.0.1:41233 --stage local \\
        --needles reports/run.needles.json --log api.log

Exit codes: 0 the run (or audit) passed, 1 it did not, 2 usage errors.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from sealbox_tools.fleet.backends import Backend

__all__ = ["audit_command", "fleet_command", "needles_path_for", "write_outputs"]


def needles_path_for(report: Path) -> Path:
    """Where the needles file goes: next to the report (``run.json`` ->
    ``run.needles.json``)."""
    return report.with_name(report.stem + ".needles.json")


def write_outputs(
    result: Any, *, report: Path | None, chart: Path | None, needles: Path | None
) -> list[str]:
    """Write what was asked for; return one line per file written."""
    from sealbox_tools.audit import write_needles
    from sealbox_tools.fleet.report import write_html, write_json

    written = []
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        write_json(result.report, report)
        written.append(f"report: {report}")
    if chart is not None:
        chart.parent.mkdir(parents=True, exist_ok=True)
        write_html(result.report, result.samples, chart)
        written.append(f"chart: {chart}")
    if needles is not None:
        write_needles(needles, result.secrets)
        written.append(f"needles (secret, 0600): {needles}")
    return written


def _mix(_: click.Context, __: click.Parameter, values: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


@click.command("fleet")
@click.option("--devices", type=click.IntRange(1, 100_000), required=True, help="Simulated phones.")
@click.option("--url", help="The API to drive over HTTP (sealbox local or a deployed stage).")
@click.option(
    "--in-process",
    "in_process",
    is_flag=True,
    help="Run the backend in this process on moto (the default without --url).",
)
@click.option(
    "--scenario",
    type=click.Choice(["standard", "full", "hostile", "groups", "lying"]),
    default="standard",
    show_default=True,
)
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same plan.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 512),
    help="Phones working at once [default: 8 in process, 16 over HTTP].",
)
@click.option(
    "--mix",
    multiple=True,
    callback=_mix,
    metavar="NAME=VALUE",
    help="Change one setting of the scenario mix (repeatable), e.g. --mix rounds=2 "
    "--mix flaky=0.5 --mix sends_per_round=2,4.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON report here, and the audit's needles file next to it.",
)
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path), help="HTML chart.")
@click.option(
    "--audit/--no-audit",
    default=None,
    help="Run the privacy audit [default: when the backend's storage is reachable].",
)
@click.option("--stage", help="Over HTTP: the stage's name, so the audit can find its storage.")
@click.option(
    "--aws-endpoint",
    help="Over HTTP: the stage's AWS endpoint (sealbox local prints it); without it the "
    "default AWS credentials are used.",
)
@click.option(
    "--storage-origin",
    "storage_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Over HTTP: where the stage's presigned URLs may point (scheme://host[:port]), "
    "besides --url and --aws-endpoint; repeat for several.",
)
@click.option(
    "--server-log",
    "server_logs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Over HTTP: the API's log file to audit (sealbox local --log-file).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes to run the fleet on: the devices are split into this many shards "
    "(independent fleets, each its own plan), one process each; the report is merged.",
)
@click.option(
    "--server-argon2",
    type=click.Choice(["test", "owasp"]),
    default="test",
    show_default=True,
    help="In process: the server's Argon2id profile for login keys.",
)
@click.option(
    "--oprf/--no-oprf",
    default=True,
    show_default=True,
    help="Password hardening: the phones pin the stage's OPRF root keys (docs/spec/oprf.md). "
    "In process the OPRF key is seeded; over HTTP the roots come from --config, else from "
    "the stage's secret (with --stage), else none are pinned.",
)
@click.option(
    "--kt/--no-kt",
    default=None,
    help="Key transparency: the phones pin the log's verifier key [default: in process on; "
    "over HTTP when --config gives one].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Over HTTP: the stage's SDK configuration (sdk-config.json from `make deploy` or "
    "`sealbox local`): its OPRF roots, log key and storage origins are pinned.",
)
def fleet_command(
    devices: int,
    url: str | None,
    in_process: bool,
    scenario: str,
    seed: int,
    concurrency: int | None,
    mix: dict[str, str],
    report: Path | None,
    chart: Path | None,
    audit: bool | None,
    stage: str | None,
    aws_endpoint: str | None,
    storage_origins: tuple[str, ...],
    server_logs: tuple[Path, ...],
    workers: int,
    server_argon2: str,
    oprf: bool,
    kt: bool | None,
    config_path: Path | None,
) -> None:
    """Run a fleet of simulated phones through a scenario and audit the server.

    Every phone signs up, backs up its keys, sends sealed messages and files
    to contacts and reads its inbox, and lives through the scenario's events
    (lost phones, reinstalls, key rotations, flaky networks, skewed clocks,
    expired tokens, offline periods).  Every delivery is decrypted and
    checked against what was sent.  The summary goes to stdout, progress to
    stderr.
    """
    from client_sim.config import ConfigError, SdkConfig
    from client_sim.errors import InvalidInput
    from client_sim.origins import parse_origin
    from sealbox_tools.fleet.plan import scenario as scenario_mix
    from sealbox_tools.fleet.runner import FleetConfig, run_fleet

    if url and in_process:
        raise click.UsageError("--url and --in-process exclude each other")
    if not url and (stage or aws_endpoint or server_logs or storage_origins or config_path):
        raise click.UsageError(
            "--stage, --aws-endpoint, --storage-origin, --config and --server-log go with --url"
        )
    sdk = None
    if config_path is not None:
        try:
            sdk = SdkConfig.load(config_path)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--config") from exc
        storage_origins = (*storage_origins, *sdk.storage_origins)
    try:
        scenario_mix(scenario, mix)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--mix") from exc
    for origin in storage_origins:
        try:
            parse_origin(origin)
        except InvalidInput as exc:
            raise click.BadParameter(str(exc), param_hint="--storage-origin") from exc
    reachable = url is None or stage is not None
    if audit and not reachable:
        raise click.UsageError("the audit over HTTP needs --stage (and --aws-endpoint locally)")
    config = FleetConfig(
        devices=devices,
        scenario=scenario,
        overrides=mix,
        seed=seed,
        concurrency=concurrency or (16 if url else 8),
        audit=reachable if audit is None else audit,
        retry_backoff=0.05 if url else 0.0,
    )

    # A local stack's S3 is its AWS endpoint: presigned URLs point there.
    origins = (*storage_origins, *([aws_endpoint] if aws_endpoint else []))

    def stage_trust() -> tuple[dict[int, bytes] | None, str | None]:
        """Over HTTP: the OPRF roots and log key the phones pin."""
        from sealbox_tools.fleet.backends import aws_clients

        roots = None
        if oprf and sdk is not None and sdk.oprf_roots:
            roots = dict(sdk.oprf_roots)
        elif oprf and stage:
            roots = stage_oprf_roots(aws_clients(aws_endpoint), stage)
        log_key = sdk.log_key if sdk is not None and kt is not False else None
        if kt and log_key is None:
            raise click.UsageError("--kt over HTTP needs a --config with a log key")
        return roots, log_key

    def open_backend() -> contextlib.AbstractContextManager[Backend]:
        from sealbox_tools.fleet.backends import HttpBackend, InProcessBackend, aws_clients

        if url is None:
            return InProcessBackend(server_argon2=server_argon2, oprf=oprf, kt=kt is not False)
        aws = aws_clients(aws_endpoint) if stage else None
        roots, log_key = stage_trust()
        return contextlib.nullcontext(
            HttpBackend(
                url,
                aws=aws,
                stage=stage,
                server_logs=server_logs,
                storage_origins=origins,
                oprf_roots=roots,
                log_key=log_key,
            )
        )

    if devices < 2 * workers:
        raise click.BadParameter(f"{devices} devices can't make {workers} shards of 2 or more")
    where = "over HTTP to " + url if url else "in process on moto"
    if workers > 1:
        from sealbox_tools.fleet.backends import HttpBackend, aws_clients
        from sealbox_tools.fleet.workers import BackendSpec, run_workers

        roots, log_key = stage_trust() if url else (None, None)
        spec = BackendSpec(
            url=url,
            server_argon2=server_argon2,
            storage_origins=origins,
            oprf=oprf,
            kt=kt is not False,
            oprf_roots=roots,
            log_key=log_key,
        )
        stage_backend = (
            HttpBackend(url, aws=aws_clients(aws_endpoint), stage=stage, server_logs=server_logs)
            if url and stage
            else None
        )
        click.echo(
            f"sealbox fleet: {devices} devices in {workers} worker processes, scenario "
            f"{scenario}, seed {seed}, {where}",
            err=True,
        )
        with tempfile.TemporaryDirectory(prefix="sealbox-fleet-") as work:
            result = run_workers(
                config,
                workers,
                spec,
                work_dir=Path(work),
                audit_backend=stage_backend,
                progress=sys.stderr,
            )
        _finish(result, config, report, chart)

    with tempfile.TemporaryDirectory(prefix="sealbox-fleet-") as work, open_backend() as backend:
        click.echo(
            f"sealbox fleet: {devices} devices, scenario {scenario}, seed {seed}, {where}",
            err=True,
        )
        result = run_fleet(config, backend, work_dir=Path(work), progress=sys.stderr)
    _finish(result, config, report, chart)


def _finish(result: Any, config: Any, report: Path | None, chart: Path | None) -> NoReturn:
    """Print the summary, write the outputs, exit 0 on a pass and 1 otherwise."""
    from sealbox_tools.fleet.report import summary_text

    click.echo(summary_text(result.report))
    for line in write_outputs(
        result,
        report=report,
        chart=chart,
        needles=needles_path_for(report) if report is not None and config.audit else None,
    ):
        click.echo(line)
    sys.exit(0 if result.passed else 1)


@click.command("audit")
@click.option(
    "--needles",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The needles file a fleet run wrote next to its report.",
)
@click.option("--stage", default="local", show_default=True, help="Whose storage to read.")
@click.option(
    "--aws-endpoint",
    help="The stage's AWS endpoint (sealbox local prints it); without it the default AWS "
    "credentials are used.",
)
@click.option(
    "--log",
    "logs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A server log to scan too (sealbox local --log-file); repeatable.",
)
def audit_command(
    needles: Path, stage: str, aws_endpoint: str | None, logs: tuple[Path, ...]
) -> None:
    """Scan everything a stage's server side holds for a fleet's secrets.

    Reads every S3 object version, DynamoDB item and secret (but the app
    signing key) of the stage, and the given logs, and searches them for
    every needle in every encoding; checks every stored blob is an age
    file.  Zero hits is the only pass.
    """
    from sealbox_tools.audit import audit, read_needles
    from sealbox_tools.fleet.backends import HttpBackend, aws_clients

    try:
        found = read_needles(needles)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--needles") from exc
    backend = HttpBackend(
        "http://unused.invalid", aws=aws_clients(aws_endpoint), stage=stage, server_logs=logs
    )
    haystacks = backend.haystacks()
    assert haystacks is not None  # aws and stage are both given
    try:
        report = audit(haystacks, found)
    except LookupError as exc:  # the stage's storage isn't there: nothing was audited
        click.echo(f"privacy audit: not run ({exc})\n  verdict: FAIL")
        sys.exit(1)
    report.notes.extend(backend.audit_notes())
    click.echo(report.summary())
    sys.exit(0 if report.passed else 1)


def stage_oprf_roots(aws: Any, stage: str) -> dict[int, bytes]:
    """The current OPRF root public key of ``stage``, read from its secret."""
    from chalicelib.storage.appkeys import STAGE_CURRENT
    from chalicelib.wire.oprf_keys import parse_oprf_secret
    from sealbox_tools.local_stack import stage_environment

    secret_id = stage_environment(stage)["SEALBOX_OPRF_KEY_SECRET_ID"]
    value = aws("secretsmanager").get_secret_value(SecretId=secret_id, VersionStage=STAGE_CURRENT)
    key = parse_oprf_secret(value["SecretString"])
    return {key.version: key.root_public}
