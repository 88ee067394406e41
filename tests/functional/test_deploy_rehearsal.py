"""Deploy rehearsal on moto: the packaged stack, SAM-translated, created by
moto's CloudFormation, then a fleet through the deployed functions'
environment.

moto's CloudFormation skips some resource types and ignores some
properties; the tests below pin exactly which (so a moto upgrade that
starts or stops honouring one is noticed) and check those from the template
itself.  Everything else the stack creates is compared with the template.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from sealbox_tools.deploy_template import package
from sealbox_tools.local_stack import stage_environment
from sealbox_tools.provisioning import LOCAL_ACCOUNT_ID

pytestmark = [
    pytest.mark.functional,
    # moto warns once more, outside stack creation, about the secret it skips
    # (MOTO_SKIPS, asserted below).
    pytest.mark.filterwarnings("ignore:Tried to parse AWS..SecretsManager..Secret but"),
]

STAGE = "test"
STACK = f"sealbox-{STAGE}"  # the local names: the fleet's audit finds them
REGION = "us-east-1"
ARTIFACTS = "sealbox-rehearsal-artifacts"

#: Resource types moto's CloudFormation accepts without creating anything.
MOTO_SKIPS = {
    "AWS::SQS::QueuePolicy": "checked: test_infra_definition (S3-only sender, this bucket)",
    "AWS::S3::BucketPolicy": (
        "checked: test_blob_bucket_is_private_versioned_encrypted_and_tls_only"
    ),
    "AWS::CloudWatch::Alarm": "checked: test_packaged_template alarm tests",
    "AWS::SecretsManager::RotationSchedule": "the rehearsal seeds the key as make deploy does",
    "AWS::SecretsManager::Secret": (
        "created with the first key by ensure_app_key, as `sealbox local` does; its name "
        "rule and retention are checked by test_deploy_rules"
    ),
}
#: Removed before moto sees the template: moto does not import a RestApi's
#: OpenAPI body, so its Deployment fails ("The REST API doesn't contain any
#: methods"); the body (routes, gateway responses) is checked by
#: test_infra_definition and test_packaged_template, and the stage's settings
#: (access logs, tracing) by test_access_logs_are_structured...
REMOVED_FOR_MOTO = {"AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage"}
#: (type, property) moto's CloudFormation ignores (moto 5.2): compared below,
#: so each entry is known to differ on moto.  Each is checked from the
#: template instead: the table settings and the bucket's by
#: test_infra_definition (SSE, PITR, TTL, versioning, public access block,
#: lifecycle, notifications) and test_deploy_rules (deletion protection), and
#: applied by the direct provisioner that test_local_provisioning checks.
#: The rehearsal's fleet therefore runs on an unversioned bucket with no
#: notifications: versions and blob events are exercised by the other tiers.
MOTO_IGNORED: set[tuple[str, str]] = {
    ("AWS::DynamoDB::Table", "DeletionProtectionEnabled"),
    ("AWS::DynamoDB::Table", "PointInTimeRecoverySpecification"),
    ("AWS::DynamoDB::Table", "SSESpecification"),
    ("AWS::DynamoDB::Table", "TimeToLiveSpecification"),
    ("AWS::S3::Bucket", "LifecycleConfiguration"),
    ("AWS::S3::Bucket", "NotificationConfiguration"),
    ("AWS::S3::Bucket", "PublicAccessBlockConfiguration"),
    ("AWS::S3::Bucket", "VersioningConfiguration"),
}


def translated(sam: dict[str, Any]) -> dict[str, Any]:
    """The SAM transform CloudFormation applies (samtranslator), code in S3."""
    from samtranslator.translator.transform import transform

    for resource in sam["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = {"Bucket": ARTIFACTS, "Key": "deployment.zip"}

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    out: dict[str, Any] = transform(sam, {}, NoManagedPolicies())
    return out


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package(STAGE, tmp_path_factory.mktemp("rehearsal") / STAGE)


@pytest.fixture(scope="module")
def template(packaged: Path) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        return translated(json.loads(packaged.read_text()))


class Rehearsal:
    """Creates the stack in the backend's moto; remembers what moto said."""

    def __init__(self, template: dict[str, Any], zip_path: Path) -> None:
        self.template = json.loads(json.dumps(template))
        for logical_id, resource in list(self.template["Resources"].items()):
            if resource["Type"] in REMOVED_FOR_MOTO:
                del self.template["Resources"][logical_id]
        for name, output in list(self.template.get("Outputs", {}).items()):
            text = json.dumps(output)
            if any(f'"{k}"' in text or "${" + k + "}" in text for k in ("RestAPI",)):
                del self.template["Outputs"][name]
        self.zip = zip_path.read_bytes()
        self.skipped: set[str] = set()
        self.clients: Any = None
        self.environment: dict[str, dict[str, str]] = {}

    def __call__(self, clients: Any) -> None:
        self.clients = clients
        s3 = clients("s3")
        s3.create_bucket(Bucket=ARTIFACTS)
        s3.put_object(Bucket=ARTIFACTS, Key="deployment.zip", Body=self.zip)
        s3.put_object(Bucket=ARTIFACTS, Key="template.json", Body=json.dumps(self.template))
        cloudformation = clients("cloudformation")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cloudformation.create_stack(
                StackName=STACK,
                TemplateURL=f"https://{ARTIFACTS}.s3.amazonaws.com/template.json",
                Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
            )
        for warning in caught:
            text = str(warning.message)
            if "not supported by moto's CloudFormation" in text:
                self.skipped.add(text.split("parse ", 1)[1].split(" but", 1)[0])
        (stack,) = cloudformation.describe_stacks(StackName=STACK)["Stacks"]
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
        self._create_skipped_empty_secrets(clients("secretsmanager"))
        functions = clients("lambda")
        for function in functions.list_functions()["Functions"]:
            self.environment[function["FunctionName"]] = function["Environment"]["Variables"]

    def _create_skipped_empty_secrets(self, secrets: Any) -> None:
        """Do what moto's CloudFormation skips and AWS does: create each secret
        the template declares without a value (the OPRF and log keys), by its
        name in the template, for `make deploy`'s seeding step to fill.  The
        app key (generated placeholder, then rotated) is seeded by the backend."""
        for resource in self.template["Resources"].values():
            props = resource.get("Properties", {})
            if resource.get("Type") != "AWS::SecretsManager::Secret" or (
                "GenerateSecretString" in props or "SecretString" in props
            ):
                continue
            name = props["Name"]["Fn::Sub"].replace("${AWS::StackName}", STACK)
            assert "${" not in name, name
            secrets.create_secret(Name=name, Description=props.get("Description", ""))


@pytest.fixture(scope="module")
def rehearsal(
    template: dict[str, Any], packaged: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Rehearsal, Any]:
    from sealbox_tools.fleet.backends import InProcessBackend
    from sealbox_tools.fleet.runner import FleetConfig, run_fleet
    from sealbox_tools.pytest_plugin.backend import without_pytest_log_capture

    made = Rehearsal(template, packaged.with_name("deployment.zip"))
    with (
        without_pytest_log_capture(),
        InProcessBackend(stage=STAGE, region=REGION, provisioner=made) as backend,
    ):
        state = moto_state(made.clients)
        config = FleetConfig(
            devices=6,
            scenario="full",
            overrides={"rounds": "1"},
            seed=20261205,
            concurrency=4,
            retry_backoff=0.0,
        )
        result = run_fleet(config, backend, work_dir=tmp_path_factory.mktemp("fleet"))
    return made, (state, result)


def moto_state(clients: Any) -> dict[str, Any]:
    """What moto made of the stack, read back through the APIs."""
    env = stage_environment(STAGE)
    ddb, s3, sqs, logs = (clients(s) for s in ("dynamodb", "s3", "sqs", "logs"))
    bucket = env["SEALBOX_BLOBS_BUCKET"]
    tables = {}
    for variable in ("SEALBOX_USERS_TABLE", "SEALBOX_SESSIONS_TABLE", "SEALBOX_BLOBS_TABLE"):
        name = env[variable]
        tables[name] = {
            "table": ddb.describe_table(TableName=name)["Table"],
            "ttl": ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"],
            "pitr": ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"],
        }

    def get(call: Any, **kw: Any) -> Any:
        try:
            return call(**kw)
        except clients("s3").exceptions.ClientError:  # moto: "not configured"
            return None

    url = sqs.get_queue_url(QueueName=env["SEALBOX_BLOB_EVENTS_QUEUE"])["QueueUrl"]
    return {
        "tables": tables,
        "versioning": s3.get_bucket_versioning(Bucket=bucket).get("Status"),
        "encryption": get(s3.get_bucket_encryption, Bucket=bucket),
        "public_block": get(s3.get_public_access_block, Bucket=bucket),
        "lifecycle": get(s3.get_bucket_lifecycle_configuration, Bucket=bucket),
        "notifications": s3.get_bucket_notification_configuration(Bucket=bucket),
        "queue": sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"],
        "log_groups": {
            g["logGroupName"]: g.get("retentionInDays")
            for g in logs.describe_log_groups(logGroupNamePrefix="/aws/")["logGroups"]
        },
    }


def test_moto_skips_exactly_the_known_resource_types(rehearsal: Any, template: dict) -> None:
    made, _ = rehearsal
    assert made.skipped == set(MOTO_SKIPS)
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert set(MOTO_SKIPS) <= kinds
    assert kinds >= REMOVED_FOR_MOTO


def test_the_deployed_functions_get_the_stacks_names(rehearsal: Any) -> None:
    made, _ = rehearsal
    assert set(made.environment) == {
        f"{STACK}-api",
        f"{STACK}-rotate-app-key",
        f"{STACK}-blob-events",
    }
    local = stage_environment(STAGE)
    for function, env in made.environment.items():
        # Stack sealbox-test in moto's account resolves to the local names,
        # so every variable equals the test stage's configuration.
        assert {k: env.get(k) for k in local} == local, function


def test_what_moto_created_matches_the_template(rehearsal: Any) -> None:
    _, (state, _) = rehearsal
    ignored = set()
    for name, table in state["tables"].items():
        if table["table"].get("SSEDescription", {}).get("Status") != "ENABLED":
            ignored.add(("AWS::DynamoDB::Table", "SSESpecification"))
        if name.endswith("-sessions") and table["ttl"]["TimeToLiveStatus"] != "ENABLED":
            ignored.add(("AWS::DynamoDB::Table", "TimeToLiveSpecification"))
        pitr = table["pitr"].get("PointInTimeRecoveryDescription", {})
        if pitr.get("PointInTimeRecoveryStatus") != "ENABLED":
            ignored.add(("AWS::DynamoDB::Table", "PointInTimeRecoverySpecification"))
        if table["table"].get("DeletionProtectionEnabled") is not True:
            ignored.add(("AWS::DynamoDB::Table", "DeletionProtectionEnabled"))
        if name.endswith("-blobs") and len(table["table"].get("GlobalSecondaryIndexes", [])) != 2:
            ignored.add(("AWS::DynamoDB::Table", "GlobalSecondaryIndexes"))
    if state["versioning"] != "Enabled":
        ignored.add(("AWS::S3::Bucket", "VersioningConfiguration"))
    if not state["encryption"]:
        ignored.add(("AWS::S3::Bucket", "BucketEncryption"))
    if not state["public_block"]:
        ignored.add(("AWS::S3::Bucket", "PublicAccessBlockConfiguration"))
    if not state["lifecycle"] or len(state["lifecycle"]["Rules"]) != 3:
        ignored.add(("AWS::S3::Bucket", "LifecycleConfiguration"))
    if not state["notifications"].get("QueueConfigurations"):
        ignored.add(("AWS::S3::Bucket", "NotificationConfiguration"))
    queue = state["queue"]
    if queue.get("VisibilityTimeout") != "360" or "RedrivePolicy" not in queue:
        ignored.add(("AWS::SQS::Queue", "VisibilityTimeout/RedrivePolicy"))
    retention = state["log_groups"]
    if retention.get(f"/aws/lambda/{STACK}-api") != 7:
        ignored.add(("AWS::Logs::LogGroup", "RetentionInDays"))
    assert sorted(ignored) == sorted(MOTO_IGNORED), json.dumps(sorted(ignored))


def test_a_fleet_runs_through_the_deployed_stack(rehearsal: Any) -> None:
    _, (_, result) = rehearsal
    assert result.passed, result.report["verdict"]


def test_the_bucket_name_is_the_accounts(rehearsal: Any) -> None:
    assert stage_environment(STAGE)["SEALBOX_BLOBS_BUCKET"].endswith(
        f"-{LOCAL_ACCOUNT_ID}-{REGION}"
    )
