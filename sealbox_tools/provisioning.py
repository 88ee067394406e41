"""Sealbox's AWS resources from ``infra/resources.json``, made by direct API calls.

``infra/resources.json`` is the CloudFormation template that deploys
Sealbox's stateful resources on AWS (merged into Chalice's generated
template).  moto's CloudFormation accepts such templates but silently skips
Secrets Manager resources and ignores TTL and bucket settings, so the local
stack (:mod:`sealbox_tools.local_stack`) and the in-process backends don't
go through it: :func:`provision` reads the same template and makes the
equivalent direct API calls, one function per resource type, and reports
what it skipped and why.  Tests compare the provisioned resources with the
template so the two can't drift apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
