"""The local stack: AWS on moto, provisioned from ``infra/resources.json``.

``infra/resources.json`` is the CloudFormation template that deploys
Sealbox's stateful resources on AWS (merged into Chalice's generated
template).  moto's CloudFormation accepts such templates but silently skips
Secrets Manager resources and ignores TTL and bucket settings, so the local
stack does not go through it: :func:`provision` reads the same template and
makes the equivalent direct API calls, one function per resource type, and
reports what it skipped and why.  Tests compare the provisioned resources
with the template so the two can't drift apart.
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.wire.oprf_keys import OprfKey
    from client_sim.config import SdkConfig

INFRA_DIR = Path(__file__).resolve().parent.parent / "infra"
TEMPLATE_PATH = INFRA_DIR / "resources.json"

# Resource types that only make sense on AWS, and why moto doesn't get them.
LOCAL_SKIPS = {
    "AWS::SecretsManager::RotationSchedule": (
        "moto can't invoke a rotation Lambda; the app key is seeded directly and "
        "rotation is exercised by calling the handler's steps"
    ),
    "AWS::Lambda::Permission": "no Lambda functions run under moto",
    "AWS::Logs::LogGroup": "the local processes log to the terminal or a file, not CloudWatch",
    "AWS::CloudWatch::Alarm": "nothing publishes CloudWatch metrics locally",
    "AWS::SNS::Topic": "alarms are not evaluated locally, so nothing publishes to their topic",
    "AWS::S3::BucketPolicy": (
        "moto applies bucket-policy statements for principal * but ignores their "
        "conditions, so the conditional Denies (TLS only, SigV4 only) would deny "
        "every request; the policy is checked against the template by unit tests"
    ),
}
#: Entries without a ``Type`` add properties (such as ``DependsOn``, or the
#: REST API's gateway responses) to a resource that ``chalice package``
#: generates; there is nothing to create.
MERGED_INTO_CHALICE = (
    "merged into a Chalice-generated resource; the local stack runs its equivalent "
    "(the function under chalice local, the gateway responses in local_gateway.py)"
)


#: The account moto plays (its default): local resource names that carry
#: ``${AWS::AccountId}`` (the bucket) are made with it.
LOCAL_ACCOUNT_ID = "123456789012"


class TemplateError(ValueError):
    """The template uses something the local provisioner can't evaluate."""


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Read the CloudFormation template."""
    template: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return template


def resolve(value: Any, params: Mapping[str, str]) -> Any:
    """Evaluate the intrinsic functions the stateful resources use.

    Supports ``Ref`` to parameters and pseudo parameters and ``Fn::Sub`` with
    ``${Name}`` placeholders; anything else raises :class:`TemplateError`
    rather than being passed through unevaluated.
    """
    if isinstance(value, list):
        return [resolve(item, params) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            if arg not in params:
                raise TemplateError(f"Ref to {arg!r} can't be resolved locally")
            return params[arg]
        if fn == "Fn::Sub":
            if not isinstance(arg, str):
                raise TemplateError("only the string form of Fn::Sub is supported")

            def substitute(match: re.Match[str]) -> str:
                name = match.group(1)
                if name not in params:
                    raise TemplateError(f"Fn::Sub variable {name!r} can't be resolved")
                return params[name]

            return re.sub(r"\$\{([A-Za-z0-9:]+)\}", substitute, arg)
        if fn.startswith("Fn::"):
            raise TemplateError(f"{fn} is not supported by the local provisioner")
    return {key: resolve(item, params) for key, item in value.items()}


def template_parameters(
    template: Mapping[str, Any], stage: str, *, region: str, account_id: str
) -> dict[str, str]:
    """Parameter values for ``stage``: defaults plus the pseudo parameters."""
    params = {
        name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()
    }
    allowed = template.get("Parameters", {}).get("Stage", {}).get("AllowedValues")
    if allowed and stage not in allowed:
        raise TemplateError(f"stage {stage!r} is not one of {allowed}")
    params.update(
        {
            "Stage": stage,
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": f"sealbox-{stage}",
        }
    )
    return params


@dataclass
class ProvisionReport:
    """What :func:`provision` created, and what it skipped with the reason."""

    created: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def provision(
    clients: Callable[[str], Any],
    *,
    stage: str,
    template: Mapping[str, Any] | None = None,
    region: str = "us-east-1",
    account_id: str = LOCAL_ACCOUNT_ID,
) -> ProvisionReport:
    """Create the template's resources for ``stage`` with direct API calls.

    Args:
        clients: returns a boto3 client for a service name; pointed at moto.
        stage: the Chalice stage whose resource names to create.

    Raises:
        TemplateError: the template uses a resource type or function the
            provisioner doesn't support (so nothing is silently left out).
    """
    template = template or load_template()
    params = template_parameters(template, stage, region=region, account_id=account_id)
    report = ProvisionReport()
    made: dict[str, Any] = {}

    def client(service: str) -> Any:
        # One client per service: building a boto3 client loads its service
        # model (~0.1 s), which per resource dominated provisioning time.
        if service not in made:
            made[service] = clients(service)
        return made[service]

    for logical_id, resource in template["Resources"].items():
        kind = resource.get("Type")
        if kind is None:
            report.skipped[logical_id] = MERGED_INTO_CHALICE
            continue
        if kind in LOCAL_SKIPS:
            report.skipped[logical_id] = LOCAL_SKIPS[kind]
            continue
        creator = _CREATORS.get(kind)
        if creator is None:
            raise TemplateError(f"{logical_id}: resource type {kind} is not supported locally")
        props = resolve(resource.get("Properties", {}), params)
        report.created[logical_id] = creator(client, props)
    return report


def _create_table(clients: Callable[[str], Any], props: Mapping[str, Any]) -> str:
    ddb = clients("dynamodb")
    name = props["TableName"]
    kwargs: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("SSESpecification", {}).get("SSEEnabled"):
        kwargs["SSESpecification"] = {"Enabled": True}
    if props.get("GlobalSecondaryIndexes"):
        # On-demand tables: the API and CloudFormation spell indexes alike.
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    ddb.create_table(**kwargs)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
        )
    pitr = props.get("PointInTimeRecoverySpecification", {})
    if pitr.get("PointInTimeRecoveryEnabled"):
        ddb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    return str(name)


def _create_secret(clients: Callable[[str], Any], props: Mapping[str, Any]) -> str:
    # No value: on AWS the first rotation writes the key; locally the stack
    # seeds it right after provisioning.
    clients("secretsmanager").create_secret(
        Name=props["Name"], Description=props.get("Description", "")
    )
    return str(props["Name"])


def _only(props: Mapping[str, Any], known: set[str], what: str) -> None:
    # A property the provisioner doesn't apply must fail loudly, not be
    # silently dropped (moto's CloudFormation drops bucket settings).
    unknown = sorted(set(props) - known)
    if unknown:
        raise TemplateError(f"{what}: properties not supported locally: {', '.join(unknown)}")


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the S3 API's spelling."""
    _only(
        rule,
        {
            "Id",
            "Status",
            "Prefix",
            "AbortIncompleteMultipartUpload",
            "ExpirationInDays",
            "ExpiredObjectDeleteMarker",
            "NoncurrentVersionExpiration",
        },
        "lifecycle rule",
    )
    out: dict[str, Any] = {
        "ID": rule["Id"],
        "Status": rule["Status"],
        "Filter": {"Prefix": rule.get("Prefix", "")},
    }
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": rule["ExpirationInDays"]}
    elif "ExpiredObjectDeleteMarker" in rule:
        out["Expiration"] = {"ExpiredObjectDeleteMarker": rule["ExpiredObjectDeleteMarker"]}
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = rule["NoncurrentVersionExpiration"]
    return out


def _queue_configuration(config: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudFormation S3 queue notification in the S3 API's spelling."""
    _only(config, {"Event", "Queue", "Filter"}, "queue notification")
    out: dict[str, Any] = {"QueueArn": config["Queue"], "Events": [config["Event"]]}
    rules = config.get("Filter", {}).get("S3Key", {}).get("Rules")
    if rules:
        out["Filter"] = {"Key": {"FilterRules": rules}}
    return out


def _create_bucket(clients: Callable[[str], Any], props: Mapping[str, Any]) -> str:
    _only(
        props,
        {
            "BucketName",
            "VersioningConfiguration",
            "BucketEncryption",
            "PublicAccessBlockConfiguration",
            "OwnershipControls",
            "LifecycleConfiguration",
            "NotificationConfiguration",
        },
        "bucket",
    )
    s3 = clients("s3")
    name = str(props["BucketName"])
    region = s3.meta.region_name
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    if "OwnershipControls" in props:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=props["OwnershipControls"])
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
        )
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration=props["VersioningConfiguration"]
        )
    if "BucketEncryption" in props:
        # CloudFormation says ServerSideEncryptionByDefault where the API
        # says ApplyServerSideEncryptionByDefault.
        rules = [
            {
                "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                **{k: v for k, v in rule.items() if k != "ServerSideEncryptionByDefault"},
            }
            for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "LifecycleConfiguration" in props:
        s3.put_bucket_lifecycle_configuration(
            Bucket=name,
            LifecycleConfiguration={
                "Rules": [_lifecycle_rule(r) for r in props["LifecycleConfiguration"]["Rules"]]
            },
        )
    notifications = props.get("NotificationConfiguration")
    if notifications:
        _only(notifications, {"QueueConfigurations"}, "bucket notifications")
        s3.put_bucket_notification_configuration(
            Bucket=name,
            NotificationConfiguration={
                "QueueConfigurations": [
                    _queue_configuration(c) for c in notifications["QueueConfigurations"]
                ]
            },
        )
    return name


def _create_queue(clients: Callable[[str], Any], props: Mapping[str, Any]) -> str:
    _only(
        props,
        {
            "QueueName",
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "SqsManagedSseEnabled",
            "RedrivePolicy",
        },
        "queue",
    )
    attributes = {
        name: str(props[name]).lower() if isinstance(props[name], bool) else str(props[name])
        for name in ("VisibilityTimeout", "MessageRetentionPeriod", "SqsManagedSseEnabled")
        if name in props
    }
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
    clients("sqs").create_queue(QueueName=props["QueueName"], Attributes=attributes)
    return str(props["QueueName"])


def _create_queue_policy(clients: Callable[[str], Any], props: Mapping[str, Any]) -> str:
    _only(props, {"Queues", "PolicyDocument"}, "queue policy")
    sqs = clients("sqs")
    names = []
    for url in props["Queues"]:
        # The template names AWS's URL; moto serves the queue elsewhere.
        name = str(url).rstrip("/").rsplit("/", 1)[1]
        local_url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(
            QueueUrl=local_url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
        )
        names.append(name)
    return f"{', '.join(names)} policy"


_CREATORS: dict[str, Callable[[Callable[[str], Any], Mapping[str, Any]], str]] = {
    "AWS::DynamoDB::Table": _create_table,
    "AWS::SecretsManager::Secret": _create_secret,
    "AWS::S3::Bucket": _create_bucket,
    "AWS::SQS::Queue": _create_queue,
    "AWS::SQS::QueuePolicy": _create_queue_policy,
}


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
