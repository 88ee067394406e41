"""Turn ``chalice package``'s template into the one Sealbox deploys.

``chalice package --merge-template infra/resources.json`` writes functions
whose environment and IAM policies are literal strings from
``.chalice/config.json`` and ``.chalice/policy-*.json``.  Deployed names
depend on the stack (``${AWS::StackName}``), the account and the region, so
:func:`finalize` rewrites, in the packaged template:

* each function's resource-name variables: every resource in
  ``infra/resources.json`` whose ``Metadata.EnvironmentVariable`` names a
  variable gets that variable set, in every function, to its physical name
  expression (deployed stages keep no resource names in config.json);
* each function's role policy: ``infra/policies.json`` with its
  ``${...}`` placeholders evaluated by CloudFormation (``Fn::Sub``);
* each function's name (``${AWS::StackName}-<name>``), its log group (with the
  stage's retention) created before it, active X-Ray tracing, and alarms on
  its errors and throttles;
* a throttle alarm per DynamoDB table;
* the SQS event source's queue, by ``Fn::GetAtt`` of the queue resource;
* the ``Stage`` parameter pinned to the packaged stage.

Everything is derived from what the template contains, so a function, table
or named resource another change adds is covered without editing this file.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sealbox_tools.local_stack import POLICIES_PATH, PROJECT_DIR
from sealbox_tools.provisioning import TEMPLATE_PATH

#: Function logical id (as ``chalice package`` names it) -> key in
#: ``infra/policies.json`` and the suffix of the deployed function name.
FUNCTIONS: dict[str, str] = {
    "APIHandler": "api",
    "RotateAppKey": "rotate-app-key",
    "BlobEvents": "blob-events",
}
#: Which policy of ``infra/policies.json`` each function runs with.
POLICY_OF: dict[str, str] = {
    "APIHandler": "api",
    "RotateAppKey": "rotation",
    "BlobEvents": "blob-events",
}
#: Where every alarm goes: the topic the stack creates, or the one named by
#: the ``AlarmTopicArn`` parameter (infra/resources.json).
ALARM_TARGET: dict[str, Any] = {
    "Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]
}


class PackagingError(ValueError):
    """The packaged template has something :func:`finalize` can't place."""


def function_name_expression(logical_id: str) -> dict[str, str]:
    """The deployed name of a function: unique per stack, known before it exists."""
    return {"Fn::Sub": "${AWS::StackName}-" + FUNCTIONS[logical_id]}


def name_expressions(template: Mapping[str, Any]) -> dict[str, Any]:
    """Environment variable -> physical-name expression of the resource declaring it.

    Raises:
        PackagingError: two resources declare one variable, or a declaring
            resource has no physical name to give.
    """
    found: dict[str, Any] = {}
    for logical_id, resource in template["Resources"].items():
        variable = resource.get("Metadata", {}).get("EnvironmentVariable")
        if variable is None:
            continue
        if variable in found:
            raise PackagingError(f"{variable} is declared by more than one resource")
        name = physical_name(resource)
        if name is None:
            raise PackagingError(f"{logical_id} declares {variable} but has no physical name")
        found[variable] = name
    return found


#: The property that holds a resource's physical name, per resource type.
NAME_PROPERTIES: dict[str, str] = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::User": "UserName",
    "AWS::IAM::Group": "GroupName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::KMS::Alias": "AliasName",
    "AWS::Events::Rule": "Name",
    "AWS::Events::EventBus": "Name",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::SSM::Parameter": "Name",
    "AWS::Kinesis::Stream": "Name",
    "AWS::ECR::Repository": "RepositoryName",
    "AWS::Cognito::UserPool": "UserPoolName",
    "AWS::WAFv2::WebACL": "Name",
}


def physical_name(resource: Mapping[str, Any]) -> Any:
    """The resource's physical-name property value, or None when CloudFormation names it."""
    prop = NAME_PROPERTIES.get(str(resource.get("Type", "")))
    if prop is None:
        return None
    return resource.get("Properties", {}).get(prop)


def _sub_all(value: Any) -> Any:
    """Wrap every string holding a ``${...}`` placeholder in ``Fn::Sub``."""
    if isinstance(value, str):
        return {"Fn::Sub": value} if "${" in value else value
    if isinstance(value, list):
        return [_sub_all(item) for item in value]
    if isinstance(value, dict):
        return {key: _sub_all(item) for key, item in value.items()}
    return value


def deployed_policies() -> dict[str, Any]:
    """``infra/policies.json`` with placeholders left to CloudFormation."""
    source: dict[str, Any] = json.loads(POLICIES_PATH.read_text(encoding="utf-8"))
    return {key: _sub_all(policy) for key, policy in source.items()}


def log_group_id(function_id: str) -> str:
    return f"{function_id}LogGroup"


def _alarm(
    description: str,
    namespace: str,
    metric: str,
    dimensions: list[dict[str, Any]],
    *,
    statistic: str = "Sum",
    threshold: float = 0,
    period: int = 300,
    evaluation_periods: int = 1,
) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": dimensions,
            "Statistic": statistic,
            "Period": period,
            "EvaluationPeriods": evaluation_periods,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [ALARM_TARGET],
            "OKActions": [ALARM_TARGET],
        },
    }


def finalize(template: dict[str, Any], stage: str) -> dict[str, Any]:
    """Return the deployable template for ``stage`` (``template`` is not changed).

    Raises:
        PackagingError: a function the template holds has no entry in
            :data:`FUNCTIONS`, or a role/policy is not where Chalice puts it.
    """
    out = copy.deepcopy(template)
    resources: dict[str, Any] = out["Resources"]
    out["Parameters"]["Stage"]["Default"] = stage
    out["Parameters"]["Stage"]["AllowedValues"] = [stage]
    names = name_expressions(out)
    policies = deployed_policies()
    functions = [k for k, r in resources.items() if r.get("Type") == "AWS::Serverless::Function"]
    for function_id in functions:
        if function_id not in FUNCTIONS:
            raise PackagingError(
                f"function {function_id} is not in sealbox_tools/deploy_template.FUNCTIONS: "
                "add its deployed name suffix and its policy key in infra/policies.json"
            )
        props = resources[function_id]["Properties"]
        variables = props.setdefault("Environment", {}).setdefault("Variables", {})
        variables.update(names)
        props["FunctionName"] = function_name_expression(function_id)
        props["Tracing"] = "Active"
        resources[function_id]["DependsOn"] = sorted(
            {*resources[function_id].get("DependsOn", []), log_group_id(function_id)}
        )
        role_ref = props.get("Role", {}).get("Fn::GetAtt", [None])[0]
        role = resources.get(str(role_ref))
        if role is None or len(role["Properties"].get("Policies", [])) != 1:
            raise PackagingError(f"{function_id}: no single inline role policy to replace")
        role["Properties"]["Policies"][0]["PolicyDocument"] = policies[POLICY_OF[function_id]]
        for event in props.get("Events", {}).values():
            if event.get("Type") == "SQS":
                event["Properties"]["Queue"] = _queue_arn(resources, function_id)
        resources[log_group_id(function_id)] = {
            "Type": "AWS::Logs::LogGroup",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {
                "LogGroupName": {
                    "Fn::Sub": "/aws/lambda/${AWS::StackName}-" + FUNCTIONS[function_id]
                },
                "RetentionInDays": {"Fn::FindInMap": ["StageSettings", stage, "LogRetentionDays"]},
            },
        }
        dims = [{"Name": "FunctionName", "Value": {"Ref": function_id}}]
        resources[f"{function_id}ErrorsAlarm"] = _alarm(
            f"{function_id}: invocations that raised (any in 5 minutes)",
            "AWS/Lambda",
            "Errors",
            dims,
        )
        resources[f"{function_id}ThrottlesAlarm"] = _alarm(
            f"{function_id}: invocations throttled by Lambda's concurrency limit",
            "AWS/Lambda",
            "Throttles",
            dims,
        )
    for table_id in [
        k for k, r in list(resources.items()) if r.get("Type") == "AWS::DynamoDB::Table"
    ]:
        resources[f"{table_id}ThrottlesAlarm"] = _alarm(
            f"{table_id}: requests DynamoDB throttled",
            "AWS/DynamoDB",
            "ThrottledRequests",
            [{"Name": "TableName", "Value": {"Ref": table_id}}],
        )
    return out


def _queue_arn(resources: Mapping[str, Any], function_id: str) -> Any:
    """The ``Fn::GetAtt`` of the queue whose ``Metadata.EventSourceFor`` is the function.

    Chalice writes the event source's queue ARN from the queue name the app
    read at packaging time; the deployed name depends on the stack.
    """
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::SQS::Queue":
            continue
        if resource.get("Metadata", {}).get("EventSourceFor") == function_id:
            return {"Fn::GetAtt": [logical_id, "Arn"]}
    raise PackagingError(
        f"{function_id} has an SQS event source but no AWS::SQS::Queue declares "
        f'"Metadata": {{"EventSourceFor": "{function_id}"}}'
    )


def finalize_file(path: Path, stage: str) -> None:
    """Rewrite the packaged ``sam.json`` at ``path`` in place (compact JSON)."""
    template = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(finalize(template, stage), indent=1) + "\n", encoding="utf-8")


def package(stage: str, out_dir: Path) -> Path:
    """``chalice package`` for ``stage`` into ``out_dir``, then :func:`finalize`.

    Returns the path of the deployable ``sam.json`` (beside it,
    ``deployment.zip``).

    Raises:
        subprocess.CalledProcessError: chalice could not package the app.
    """
    if out_dir.exists():
        shutil.rmtree(out_dir)
    chalice = Path(sys.executable).with_name("chalice")
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [
            str(chalice),
            "package",
            "--pkg-format",
            "cloudformation",
            "--stage",
            stage,
            "--merge-template",
            str(TEMPLATE_PATH),
            str(out_dir),
        ],
        cwd=PROJECT_DIR,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    template = out_dir / "sam.json"
    finalize_file(template, stage)
    return template


def main(argv: list[str] | None = None) -> int:
    """``python -m sealbox_tools.deploy_template STAGE OUT_DIR`` (``make package``)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m sealbox_tools.deploy_template STAGE OUT_DIR", file=sys.stderr)
        return 2
    print(package(args[0], Path(args[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
