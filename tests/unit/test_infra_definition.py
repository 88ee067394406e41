"""The deployable definition and the local stack can't drift apart."""

from __future__ import annotations

import json
import re

import pytest

from sealbox_tools.local_gateway import gateway_response
from sealbox_tools.local_stack import (
    LOCAL_SKIPS,
    PROJECT_DIR,
    TemplateError,
    load_template,
    render_policies,
    resolve,
    stage_environment,
    template_parameters,
)

CONFIG = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
STAGES = sorted(CONFIG["stages"])
DIRECTORY_TABLES = ("CardsTable", "BackupsTable")


def resolved_properties(stage: str) -> dict[str, dict]:
    template = load_template()
    params = template_parameters(template, stage, region="us-east-1", account_id="1" * 12)
    return {
        logical_id: resolve(resource.get("Properties", {}), params)
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") is not None and resource["Type"] not in LOCAL_SKIPS
    }


def test_stages_are_the_documented_ones() -> None:
    assert {"local", "dev", "prod"} <= set(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_stage_environment_names_the_resources_the_template_creates(stage: str) -> None:
    env = stage_environment(stage)
    props = resolved_properties(stage)
    assert env["SEALBOX_STAGE"] == stage
    assert env["SEALBOX_USERS_TABLE"] == props["UsersTable"]["TableName"]
    assert env["SEALBOX_SESSIONS_TABLE"] == props["SessionsTable"]["TableName"]
    assert env["SEALBOX_ATTEMPTS_TABLE"] == props["LoginAttemptsTable"]["TableName"]
    assert env["SEALBOX_APP_KEY_SECRET_ID"] == props["AppKeySecret"]["Name"]
    assert env["SEALBOX_KT_LOG_KEY_SECRET_ID"] == props["KtLogKeySecret"]["Name"]
    assert env["SEALBOX_KT_LOG_KEY_SECRET_ID"] != env["SEALBOX_APP_KEY_SECRET_ID"]
    assert env["SEALBOX_CARDS_TABLE"] == props["CardsTable"]["TableName"]
    assert env["SEALBOX_BACKUPS_TABLE"] == props["BackupsTable"]["TableName"]
    assert env["SEALBOX_BLOBS_BUCKET"] == props["BlobsBucket"]["BucketName"]
    assert env["SEALBOX_BLOBS_TABLE"] == props["BlobsTable"]["TableName"]
    assert env["SEALBOX_BLOB_GRANTS_TABLE"] == props["BlobGrantsTable"]["TableName"]
    assert env["SEALBOX_BLOB_USAGE_TABLE"] == props["BlobUsageTable"]["TableName"]
    assert env["SEALBOX_BLOB_EVENTS_QUEUE"] == props["BlobEventsQueue"]["QueueName"]


@pytest.mark.parametrize("stage", STAGES)
def test_production_stages_use_owasp_argon2(stage: str) -> None:
    profile = stage_environment(stage)["SEALBOX_ARGON2_PROFILE"]
    assert profile == ("test" if stage == "test" else "owasp")


def test_tables_that_hold_expiring_records_have_ttl_on_expires_at() -> None:
    props = resolved_properties("prod")
    for logical_id in ("SessionsTable", "LoginAttemptsTable"):
        assert props[logical_id]["TimeToLiveSpecification"] == {
            "AttributeName": "expires_at",
            "Enabled": True,
        }
    for table in ("UsersTable", "SessionsTable", "LoginAttemptsTable", *DIRECTORY_TABLES):
        assert props[table]["SSESpecification"] == {"SSEEnabled": True}
        assert props[table]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]


def test_chalice_iam_autogen_is_off_and_every_function_has_a_policy_file() -> None:
    assert CONFIG["autogen_policy"] is False
    for stage, settings in CONFIG["stages"].items():
        names = [settings["iam_policy_file"]] + [
            fn["iam_policy_file"] for fn in settings.get("lambda_functions", {}).values()
        ]
        for name in names:
            assert (PROJECT_DIR / ".chalice" / name).is_file(), (stage, name)


@pytest.mark.parametrize("stage", STAGES)
def test_committed_policy_files_are_rendered_from_infra(stage: str) -> None:
    for name, text in render_policies(stage).items():
        assert (PROJECT_DIR / ".chalice" / name).read_text() == text, (
            f".chalice/{name} is stale: run `make policies`"
        )


@pytest.mark.parametrize("stage", STAGES)
def test_api_policy_grants_only_this_stages_tables_and_secret(stage: str) -> None:
    policy = json.loads(render_policies(stage)[f"policy-api-{stage}.json"])
    props = resolved_properties(stage)
    resources: list[str] = []
    for statement in policy["Statement"]:
        assert "*" not in statement["Action"]
        found = statement["Resource"]
        resources += found if isinstance(found, list) else [found]
    assert "*" not in resources
    tables = {
        props[t]["TableName"]
        for t in (
            "UsersTable",
            "SessionsTable",
            "LoginAttemptsTable",
            *DIRECTORY_TABLES,
            "BlobsTable",
            "BlobGrantsTable",
            "BlobUsageTable",
        )
    }
    granted_tables = {table_of(r) for r in resources if ":dynamodb:" in r}
    assert granted_tables == tables
    bucket = props["BlobsBucket"]["BucketName"]
    assert {bucket_of(r) for r in resources if ":s3:::" in r} == {bucket}
    secret = props["AppKeySecret"]["Name"]
    assert any(r.endswith(f":secret:{secret}-??????") for r in resources)


def table_of(arn: str) -> str:
    match = re.search(r":table/([^/]+)", arn)
    assert match, arn
    return match.group(1)


def bucket_of(arn: str) -> str:
    return arn.split(":::", 1)[1].split("/", 1)[0]


@pytest.mark.parametrize("stage", STAGES)
def test_blob_events_policy_reads_only_its_queue_bucket_and_blob_tables(stage: str) -> None:
    policy = json.loads(render_policies(stage)[f"policy-blob-events-{stage}.json"])
    props = resolved_properties(stage)
    resources: list[str] = []
    actions: list[str] = []
    for statement in policy["Statement"]:
        found = statement["Resource"]
        resources += found if isinstance(found, list) else [found]
        actions += statement["Action"]
    assert "*" not in resources
    assert not any(action.endswith("*") for action in actions)
    assert {table_of(r) for r in resources if ":dynamodb:" in r} == {
        props[t]["TableName"] for t in ("BlobsTable", "BlobGrantsTable", "BlobUsageTable")
    }
    assert {r.rsplit(":", 1)[1] for r in resources if ":sqs:" in r} == {
        props["BlobEventsQueue"]["QueueName"]
    }
    assert {bucket_of(r) for r in resources if ":s3:::" in r} == {
        props["BlobsBucket"]["BucketName"]
    }
    # It checks and deletes rejected bytes; it never deletes records or
    # lists owners, and never writes an object (no quarantine copy any more).
    assert "dynamodb:DeleteItem" not in actions
    assert "s3:PutObject" not in actions
    assert "dynamodb:Query" not in actions


def test_blob_object_grants_cover_only_the_server_chosen_prefixes() -> None:
    for function in ("api", "blob-events"):
        policy = json.loads(render_policies("prod")[f"policy-{function}-prod.json"])
        for statement in policy["Statement"]:
            found = statement["Resource"]
            for arn in found if isinstance(found, list) else [found]:
                if arn.startswith("arn:aws:s3:::") and "/" in arn:
                    assert arn.split("/", 1)[1] in ("blobs/*", "quarantine/*"), arn


def test_blob_bucket_is_private_versioned_encrypted_and_tls_only() -> None:
    props = resolved_properties("prod")
    bucket = props["BlobsBucket"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"]
    assert rules["expire-quarantine"]["Prefix"] == "quarantine/"
    # The last resort for rejected bytes (older releases kept a copy here
    # for 30 days): current copies go within a day, replaced ones a day later.
    assert rules["expire-quarantine"]["ExpirationInDays"] == 1
    assert rules["expire-quarantine"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    (notification,) = bucket["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Queue"].endswith(":" + props["BlobEventsQueue"]["QueueName"])
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "blobs/"}]
    template = load_template()
    params = template_parameters(template, "prod", region="us-east-1", account_id="1" * 12)
    policy = resolve(template["Resources"]["BlobsBucketPolicy"]["Properties"], params)
    assert policy["Bucket"] == bucket["BucketName"]
    statements = policy["PolicyDocument"]["Statement"]
    tls = next(s for s in statements if s["Sid"] == "DenyInsecureTransport")
    assert tls["Effect"] == "Deny"
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_blob_events_queue_outlives_its_function_and_has_a_dead_letter_queue() -> None:
    props = resolved_properties("prod")
    queue = props["BlobEventsQueue"]
    timeout = CONFIG["stages"]["prod"]["lambda_functions"]["blob_events"]["lambda_timeout"]
    # AWS: a visibility timeout of at least six times the function's timeout.
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert queue["RedrivePolicy"]["deadLetterTargetArn"].endswith(
        ":" + props["BlobEventsDeadLetterQueue"]["QueueName"]
    )
    template = load_template()
    # The function Chalice generates for blob_events waits for its queue.
    assert template["Resources"]["BlobEvents"]["DependsOn"] == ["BlobEventsQueue"]
    assert "Type" not in template["Resources"]["BlobEvents"]


def test_resolve_refuses_what_it_cannot_evaluate() -> None:
    with pytest.raises(TemplateError):
        resolve({"Fn::GetAtt": ["X", "Arn"]}, {})
    with pytest.raises(TemplateError):
        resolve({"Ref": "Nope"}, {})
    with pytest.raises(TemplateError):
        resolve({"Fn::Sub": "${Nope}"}, {})
    assert resolve({"Fn::Sub": "a-${Stage}-b"}, {"Stage": "x"}) == "a-x-b"


def test_key_directory_tables_grant_only_what_the_adapters_call() -> None:
    policy = json.loads(render_policies("prod")["policy-api-prod.json"])
    (statement,) = [s for s in policy["Statement"] if s["Sid"] == "KeyDirectory"]
    # TransactWriteItems is authorised per item action; no Scan or Query:
    # the directory is never enumerated.
    assert sorted(statement["Action"]) == [
        "dynamodb:BatchGetItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ]


GATEWAY_RESPONSES = load_template()["Resources"]["RestAPI"]["Properties"]["DefinitionBody"][
    "x-amazon-apigateway-gateway-responses"
]


def test_api_gateways_own_answers_are_redefined() -> None:
    """API Gateway answers some requests before the function runs; each kind
    a client can meet is redefined (DEFAULT_4XX/5XX catch the rest)."""
    assert {
        "DEFAULT_4XX",
        "DEFAULT_5XX",
        "MISSING_AUTHENTICATION_TOKEN",
        "UNAUTHORIZED",
        "ACCESS_DENIED",
        "REQUEST_TOO_LARGE",
        "THROTTLED",
    } <= set(GATEWAY_RESPONSES)


@pytest.mark.parametrize("response_type", sorted(GATEWAY_RESPONSES))
def test_gateway_responses_use_the_error_shape(response_type: str) -> None:
    spec = GATEWAY_RESPONSES[response_type]
    assert set(spec["responseTemplates"]) == {"application/json"}
    body = json.loads(spec["responseTemplates"]["application/json"])
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert re.fullmatch(r"[a-z][a-z_]*[a-z]", body["error"]["code"])
    assert body["error"]["message"]
    headers = spec["responseParameters"]
    assert headers["gatewayresponse.header.Content-Type"] == "'application/json'"
    assert headers["gatewayresponse.header.Cache-Control"] == "'no-store'"
    assert headers["gatewayresponse.header.X-Content-Type-Options"] == "'nosniff'"
    if response_type.startswith("DEFAULT_"):
        assert "statusCode" not in spec  # keeps the status API Gateway chose
    else:
        assert 400 <= int(spec["statusCode"]) < 600


def test_a_path_no_route_has_is_404_not_found_when_deployed() -> None:
    """API Gateway's default for it is 403 {"message": "Missing Authentication Token"}."""
    missing = gateway_response("MISSING_AUTHENTICATION_TOKEN")
    assert missing.status == 404
    assert json.loads(missing.body)["error"]["code"] == "not_found"
    unauthorized = gateway_response("UNAUTHORIZED")
    assert unauthorized.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_every_path_declares_every_method_so_api_gateway_forwards_them() -> None:
    """API Gateway answers a method a resource lacks with the gateway response
    above, never 405: each path must route every method to the function."""
    from app import app
    from chalicelib.http import HTTP_METHODS, declared_methods

    for path, entries in app.routes.items():
        assert set(entries) == set(HTTP_METHODS), path
        assert declared_methods(entries), path
