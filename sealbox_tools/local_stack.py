"""The local stack: moto, provisioned from ``infra/``, and ``chalice local``, on loopback.

:class:`LocalStack` starts a moto server, provisions it from the same
template that deploys Sealbox (:mod:`sealbox_tools.provisioning`), seeds the
stage's keys, and starts ``chalice local`` and the blob-events poller.  The
stage's IAM policy files are rendered here too (:func:`render_policies`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from sealbox_tools.provisioning import INFRA_DIR, provision

if TYPE_CHECKING:
    from chalicelib.wire.oprf_keys import OprfKey
    from client_sim.config import SdkConfig

# --- running the stack ------------------------------------------------------------

PROJECT_DIR = INFRA_DIR.parent
FAKE_CREDENTIALS = {
    # moto accepts any credentials; these make sure real ones are never used.
    "AWS_ACCESS_KEY_ID": "sealbox-local",
    "AWS_SECRET_ACCESS_KEY": "sealbox-local",
    "AWS_SESSION_TOKEN": "sealbox-local",
}
#: ``chalice local`` listens with socketserver's backlog of 5: with a handful of
#: phones connecting at once the kernel drops SYNs (TcpExtListenOverflows) and
#: each dropped client waits out the 1 s SYN retransmit, which showed up as a
#: ~1.1 s p95 on every route of a 50-phone fleet.  A deeper backlog removes it.
CHALICE_LISTEN_BACKLOG = 128
_CHALICE_MAIN = (
    "import sys; import chalice.local; "
    f"chalice.local.ThreadedHTTPServer.request_queue_size = {CHALICE_LISTEN_BACKLOG}; "
    "import sealbox_tools.local_gateway; sealbox_tools.local_gateway.install(); "
    "from chalice.cli import main; sys.exit(main())"
)


class StackError(RuntimeError):
    """The local stack could not start, or a process of it died."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def stage_environment(stage: str) -> dict[str, str]:
    """The environment variables ``.chalice/config.json`` sets for ``stage``."""
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text(encoding="utf-8"))
    env: dict[str, str] = dict(config.get("environment_variables", {}))
    env.update(config["stages"][stage].get("environment_variables", {}))
    return env


class LocalStack:
    """moto server + provisioning + ``chalice local``, all on loopback.

    Use as a context manager; leaving it stops every process it started, in
    reverse order, each in its own process group so nothing is orphaned.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        stage: str = "local",
        region: str = "us-east-1",
        log: IO[str] | None = None,
        aws_log: IO[str] | None = None,
        startup_timeout: float = 60.0,
        extensions: tuple[str, ...] = (),
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the local stack only listens on loopback")
        self.host = host
        self.port = port or free_port(host)
        self.stage = stage
        self.region = region
        self.moto_port = free_port(host)
        self._log = log
        # moto plays AWS: its request log is the service's, not Sealbox's
        # (it shows presigned URLs as S3 access logs would), so it can go
        # elsewhere.  Default: with everything else.
        self._aws_log = log if aws_log is None else aws_log
        self._timeout = startup_timeout
        self.extensions = extensions
        self._procs: list[subprocess.Popen[bytes]] = []
        #: The transparency log's verifier key once started (None: no log).
        self.log_key: str | None = None
        #: The OPRF root public key by version once started.
        self.oprf_roots: dict[int, bytes] = {}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def aws_endpoint(self) -> str:
        return f"http://{self.host}:{self.moto_port}"

    @property
    def pids(self) -> tuple[int, ...]:
        """Process ids of the stack's running processes (moto, API, poller)."""
        return tuple(proc.pid for proc in self._procs if proc.poll() is None)

    def aws_env(self) -> dict[str, str]:
        """Environment for anything that should talk to this stack's AWS."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(FAKE_CREDENTIALS)
        env.update(
            {
                "AWS_ENDPOINT_URL": self.aws_endpoint,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region,
            }
        )
        return env

    def client(self, service: str) -> Any:
        """A boto3 client for this stack's moto server."""
        import boto3

        session: Any = boto3.session.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            region_name=self.region,
        )
        return session.client(service, endpoint_url=self.aws_endpoint)

    def _extension_env(self) -> dict[str, str]:
        """``SEALBOX_EXTENSIONS`` for the API process, and the directory we
        were started from on its path: the app team's modules live there
        (``chalice local`` runs in the project directory)."""
        if not self.extensions:
            return {}
        paths = [os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        return {
            "SEALBOX_EXTENSIONS": ",".join(self.extensions),
            "PYTHONPATH": os.pathsep.join(paths),
        }

    def _spawn(
        self, argv: list[str], env: dict[str, str], *, log: IO[str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = log or self._log
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv,
            cwd=PROJECT_DIR,
            # Unbuffered: a log file shows every line as soon as it is
            # written (the privacy audit reads it while the stack runs).
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=log or subprocess.DEVNULL,
            stderr=log or subprocess.DEVNULL,
            start_new_session=True,  # own process group: we can stop all of it
        )
        self._procs.append(proc)
        return proc

    def _wait_until(
        self, ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str
    ) -> None:
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StackError(f"{what} exited with status {proc.returncode} during startup")
            if ready():
                return
            time.sleep(0.1)
        raise StackError(f"{what} did not become ready within {self._timeout:.0f} s")

    def _http_ok(self, url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:  # noqa: S310 - loopback http
                return bool(200 <= reply.status < 500)
        except urllib.error.HTTPError as exc:
            return exc.code < 500
        except OSError:
            return False

    def start(self) -> LocalStack:
        """Start moto, provision it, seed the app key, start ``chalice local``
        and the blob-events poller (:mod:`sealbox_tools.local_events`).

        Raises:
            StackError: a process failed to start or to answer in time.
        """
        try:
            moto = self._spawn(
                [
                    sys.executable,
                    "-m",
                    "sealbox_tools.moto_server",
                    "-H",
                    self.host,
                    "-p",
                    str(self.moto_port),
                ],
                self.aws_env(),
                log=self._aws_log,
            )
            self._wait_until(
                lambda: self._http_ok(f"{self.aws_endpoint}/moto-api/"), moto, "moto server"
            )
            provision(self.client, stage=self.stage, region=self.region)
            self.seed_app_key()
            key = self.seed_oprf_key()
            self.oprf_roots = {key.version: key.root_public}
            self.log_key = self.seed_log_key()
            api = self._spawn(
                [
                    sys.executable,
                    "-c",
                    _CHALICE_MAIN,
                    "local",
                    "--no-autoreload",
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                    "--stage",
                    self.stage,
                ],
                {**self.aws_env(), **self._extension_env()},
            )
            self._wait_until(
                lambda: self._http_ok(f"{self.url}/.well-known/jwks.json"), api, "chalice local"
            )
            # chalice local serves HTTP only; this process plays Lambda's SQS
            # event source for the blob_events function.
            self._spawn(
                [sys.executable, "-m", "sealbox_tools.local_events"],
                {**self.aws_env(), **stage_environment(self.stage)},
            )
        except BaseException:
            self.stop()
            raise
        return self

    def seed_app_key(self) -> None:
        """Write a first app signing key (on AWS the first rotation does this)."""
        from chalicelib.storage.appkeys import ensure_app_key

        secret_id = stage_environment(self.stage)["SEALBOX_APP_KEY_SECRET_ID"]
        ensure_app_key(self.client("secretsmanager"), secret_id, time.time())

    def seed_oprf_key(self) -> OprfKey:
        """Give the OPRF secret its first key version (on AWS, ``make deploy`` does it)."""
        from chalicelib.storage.oprfkeys import ensure_oprf_key

        secret_id = stage_environment(self.stage)["SEALBOX_OPRF_KEY_SECRET_ID"]
        return ensure_oprf_key(self.client("secretsmanager"), secret_id, time.time())

    def sdk_config(self) -> SdkConfig:
        """What this stack's devices pin (client_sim.config): log key, OPRF roots, moto's S3."""
        from client_sim.config import SdkConfig

        return SdkConfig(self.url, self.log_key, self.oprf_roots, (self.aws_endpoint,))

    def seed_log_key(self) -> str | None:
        """Write the transparency log's key once (on AWS: `sealbox kt init-key`).

        Returns the log's verifier key (what devices pin), or None when the
        stage runs no log.
        """
        from chalicelib.storage.ktlog import ensure_log_key

        env = stage_environment(self.stage)
        secret_id = env.get("SEALBOX_KT_LOG_KEY_SECRET_ID")
        if not secret_id:
            return None
        return ensure_log_key(self.client("secretsmanager"), secret_id, env["SEALBOX_KT_ORIGIN"])

    def check_alive(self) -> None:
        """Raise :class:`StackError` if a process of the stack has died."""
        for proc in self._procs:
            if proc.poll() is not None:
                raise StackError(f"a stack process exited with status {proc.returncode}")

    def stop(self) -> None:
        """Stop every process this stack started (SIGTERM, then SIGKILL)."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self._procs.clear()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- IAM policies ---------------------------------------------------------------

POLICIES_PATH = INFRA_DIR / "policies.json"


def render_policies(stage: str) -> dict[str, str]:
    """The policy files Chalice wants for ``stage`` under ``.chalice/``.

    ``infra/policies.json`` is the source: one policy per function, with
    CloudFormation placeholders (``${AWS::StackName}``, ``${AWS::Region}``,
    ``${AWS::AccountId}``, ``${AWS::Partition}``, ``${Stage}``).  The deployed
    template gets them as ``Fn::Sub`` (:mod:`sealbox_tools.deploy_template`);
    Chalice insists on one literal file per stage and function, rendered here
    for the stack name ``sealbox-<stage>`` with any region and account.
    Returns file name -> JSON text.  A test checks the committed files equal
    this output.
    """
    source = json.loads(POLICIES_PATH.read_text(encoding="utf-8"))
    values = {
        "Stage": stage,
        "AWS::StackName": f"sealbox-{stage}",
        "AWS::Partition": "aws",
        "AWS::Region": "*",
        "AWS::AccountId": "*",
    }
    out = {}
    for function, policy in source.items():
        text = json.dumps(policy, indent=2)
        text = re.sub(r"\$\{([A-Za-z:]+)\}", lambda m: values[m.group(1)], text)
        out[f"policy-{function}-{stage}.json"] = text + "\n"
    return out


def write_policies(stages: tuple[str, ...] = ("local", "dev", "prod", "test")) -> None:
    """Regenerate ``.chalice/policy-*.json`` from ``infra/policies.json``."""
    for stage in stages:
        for name, text in render_policies(stage).items():
            (PROJECT_DIR / ".chalice" / name).write_text(text, encoding="utf-8")
