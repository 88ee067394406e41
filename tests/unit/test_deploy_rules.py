"""Deploy rules: no fixed physical names, no plain Retain, protected state.

The rules run on infra/resources.json here and on the packaged template in
tests/functional/test_packaged_template.py, so a resource another change adds
is held to them too.  The hostile cases below are the mistakes that made a
first deploy fail or a failed one impossible to retry.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sealbox_tools.deploy_rules import naming_problems, retention_problems
from sealbox_tools.provisioning import load_template

pytestmark = pytest.mark.unit


def table(**extra: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": "RetainExceptOnCreate",
        "UpdateReplacePolicy": "Retain",
        "Properties": {"DeletionProtectionEnabled": {"Ref": "DeletionProtection"}, **extra},
    }


def test_the_template_follows_the_naming_rules() -> None:
    assert naming_problems(load_template()) == []


def test_the_template_follows_the_retention_rules() -> None:
    assert retention_problems(load_template()) == []


@pytest.mark.parametrize(
    "name",
    [
        "sealbox-prod-users",  # literal
        {"Fn::Sub": "sealbox-${Stage}-users"},  # same in every stack of the account
    ],
)
def test_a_fixed_table_name_is_refused(name: Any) -> None:
    (problem,) = naming_problems({"Resources": {"T": table(TableName=name)}})
    assert "T (AWS::DynamoDB::Table)" in problem


def test_a_secret_named_like_the_old_ones_is_refused_with_the_fix() -> None:
    template = {
        "Resources": {
            "S": {
                "Type": "AWS::SecretsManager::Secret",
                "DeletionPolicy": "RetainExceptOnCreate",
                "UpdateReplacePolicy": "Retain",
                "Properties": {"Name": {"Fn::Sub": "sealbox/${Stage}/log-key"}},
            }
        }
    }
    (problem,) = naming_problems(template)
    assert "${AWS::StackName}" in problem


def test_a_bucket_name_must_be_account_and_region_qualified() -> None:
    bucket: dict[str, Any] = {
        "Type": "AWS::S3::Bucket",
        "DeletionPolicy": "RetainExceptOnCreate",
        "UpdateReplacePolicy": "Retain",
        "Properties": {"BucketName": {"Fn::Sub": "sealbox-${Stage}-blobs"}},
    }
    (problem,) = naming_problems({"Resources": {"B": bucket}})
    assert "${AWS::AccountId}" in problem
    assert "${AWS::Region}" in problem
    ok = copy.deepcopy(bucket)
    ok["Properties"]["BucketName"] = {"Fn::Sub": "x-${Stage}-${AWS::AccountId}-${AWS::Region}"}
    assert naming_problems({"Resources": {"B": ok}}) == []


def test_names_left_to_cloudformation_or_per_stack_are_fine() -> None:
    template = {
        "Resources": {
            "A": table(),
            "B": table(TableName={"Fn::Sub": "${AWS::StackName}-b"}),
            "F": {"Type": "AWS::Serverless::Function", "Properties": {}},
            "G": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {"LogGroupName": {"Fn::Sub": "/aws/lambda/${F}"}},
            },
        }
    }
    assert naming_problems(template) == []


def test_plain_retain_is_refused_on_any_resource() -> None:
    queue = {"Type": "AWS::SQS::Queue", "DeletionPolicy": "Retain", "Properties": {}}
    (problem,) = retention_problems({"Resources": {"Q": queue}})
    assert "RetainExceptOnCreate" in problem


def test_stateful_resources_must_be_retained_and_protected() -> None:
    bare = {"Type": "AWS::DynamoDB::Table", "Properties": {}}
    problems = retention_problems({"Resources": {"T": bare}})
    assert len(problems) == 3
    assert any("DeletionPolicy RetainExceptOnCreate" in p for p in problems)
    assert any("UpdateReplacePolicy Retain" in p for p in problems)
    assert any("DeletionProtectionEnabled" in p for p in problems)
    secret = {"Type": "AWS::SecretsManager::Secret", "DeletionPolicy": "Delete"}
    assert len(retention_problems({"Resources": {"S": secret}})) == 2


def test_the_template_protects_every_table_and_retains_every_stateful_resource() -> None:
    template = load_template()
    kinds = {r.get("Type") for r in template["Resources"].values()}
    # The rules above are not vacuous for this template.
    assert {"AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SecretsManager::Secret"} <= kinds
    assert template["Parameters"]["DeletionProtection"]["Default"] == "true"
