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
}


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
    account_id: str = "123456789012",
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
    for logical_id, resource in template["Resources"].items():
        kind = resource["Type"]
        if kind in LOCAL_SKIPS:
            report.skipped[logical_id] = LOCAL_SKIPS[kind]
            continue
        creator = _CREATORS.get(kind)
        if creator is None:
            raise TemplateError(f"{logical_id}: resource type {kind} is not supported locally")
        props = resolve(resource.get("Properties", {}), params)
        report.created[logical_id] = creator(clients, props)
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


_CREATORS: dict[str, Callable[[Callable[[str], Any], Mapping[str, Any]], str]] = {
    "AWS::DynamoDB::Table": _create_table,
    "AWS::SecretsManager::Secret": _create_secret,
}
