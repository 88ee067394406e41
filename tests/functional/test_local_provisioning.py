"""Provisioning moto from infra/resources.json creates what the template says."""

from __future__ import annotations

from typing import Any

from client_sim.local_stack import LOCAL_SKIPS, load_template
from tests.functional.conftest import aws_client


def test_provisioned_tables_match_the_template(stack: Any) -> None:
    template = load_template()
    ddb = aws_client("dynamodb")
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert set(stack.skipped) == {
        k for k, r in template["Resources"].items() if r["Type"] in LOCAL_SKIPS
    }
    assert "AWS::DynamoDB::Table" in kinds
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        name = stack.created[logical_id]
        table = ddb.describe_table(TableName=name)["Table"]
        props = resource["Properties"]
        assert table["KeySchema"] == props["KeySchema"]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert table["SSEDescription"]["Status"] == "ENABLED"
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if "TimeToLiveSpecification" in props:
            assert ttl["TimeToLiveStatus"] == "ENABLED"
            assert ttl["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"]
        else:
            assert ttl["TimeToLiveStatus"] == "DISABLED"


def test_the_app_key_secret_exists(stack: Any) -> None:
    sm = aws_client("secretsmanager")
    name = stack.created["AppKeySecret"]
    assert sm.describe_secret(SecretId=name)["Name"] == "sealbox/test/app-signing-key"
