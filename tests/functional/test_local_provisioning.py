"""Provisioning moto from infra/resources.json creates what the template says."""

from __future__ import annotations

import json
from typing import Any

from sealbox_tools.provisioning import LOCAL_SKIPS, MERGED_INTO_CHALICE, load_template
from tests.functional.conftest import aws_client


def test_provisioned_tables_match_the_template(stack: Any) -> None:
    template = load_template()
    ddb = aws_client("dynamodb")
    kinds = {r.get("Type") for r in template["Resources"].values()}
    assert set(stack.skipped) == {
        k for k, r in template["Resources"].items() if r.get("Type", "") in LOCAL_SKIPS
    } | {k for k, r in template["Resources"].items() if "Type" not in r}
    assert all(
        reason == MERGED_INTO_CHALICE
        for k, reason in stack.skipped.items()
        if "Type" not in template["Resources"][k]
    )
    assert "AWS::DynamoDB::Table" in kinds
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        name = stack.created[logical_id]
        table = ddb.describe_table(TableName=name)["Table"]
        props = resource["Properties"]
        assert table["KeySchema"] == props["KeySchema"]
        indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
        for index in props.get("GlobalSecondaryIndexes", []):
            assert indexes[index["IndexName"]]["KeySchema"] == index["KeySchema"]
            assert indexes[index["IndexName"]]["Projection"] == index["Projection"]
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
    assert sm.describe_secret(SecretId=name)["Name"] == "sealbox-test-app-signing-key"


def test_the_blob_bucket_gets_every_setting_the_template_gives_it(stack: Any) -> None:
    s3 = aws_client("s3")
    bucket = stack.created["BlobsBucket"]
    assert bucket == "sealbox-test-blobs-123456789012-us-east-1"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    assert len(block) == 4
    ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]
    assert ownership["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 8
    }
    assert rules["expire-quarantine"]["Filter"] == {"Prefix": "quarantine/"}
    assert rules["expire-replaced-blob-versions"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": 1
    }
    # Not applied locally: moto would enforce its Denies without their conditions.
    assert "BlobsBucketPolicy" in stack.skipped
    (queue,) = s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    assert queue["QueueArn"] == "arn:aws:sqs:us-east-1:123456789012:sealbox-test-blob-events"
    assert queue["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "blobs/"}]


def test_the_blob_event_queues_exist_with_redrive_and_an_s3_only_policy(stack: Any) -> None:
    sqs = aws_client("sqs")
    url = sqs.get_queue_url(QueueName="sealbox-test-blob-events")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "360"
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":sealbox-test-blob-events-dlq")
    assert int(redrive["maxReceiveCount"]) == 5
    (statement,) = json.loads(attributes["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"].endswith(
        ":::sealbox-test-blobs-123456789012-us-east-1"
    )
