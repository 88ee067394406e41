"""The deployable definition and the local stack can't drift apart."""

from __future__ import annotations

import json
import re

import pytest

from sealbox_tools.deploy_template import NAME_PROPERTIES, deployed_policies
from sealbox_tools.local_gateway import gateway_response
from sealbox_tools.local_stack import PROJECT_DIR, render_policies, stage_environment
from sealbox_tools.provisioning import (
    LOCAL_ACCOUNT_ID,
    LOCAL_SKIPS,
    TemplateError,
    load_template,
    resolve,
    template_parameters,
)

CONFIG = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
STAGES = sorted(CONFIG["stages"])
DIRECTORY_TABLES = ("CardsTable", "BackupsTable")


def resolved_properties(stage: str, account_id: str = "1" * 12) -> dict[str, dict]:
    template = load_template()
    params = template_parameters(template, stage, region="us-east-1", account_id=account_id)
    return {
        logical_id: resolve(resource.get("Properties", {}), params)
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") is not None and resource["Type"] not in LOCAL_SKIPS
    }


def test_stages_are_the_documented_ones() -> None:
    assert {"local", "dev", "prod"} <= set(STAGES)


NAMED = {
    resource["Metadata"]["EnvironmentVariable"]: logical_id
    for logical_id, resource in load_template()["Resources"].items()
    if "EnvironmentVariable" in resource.get("Metadata", {})
}
LOCAL_STAGES = ("local", "test")


def test_every_resource_name_variable_the_code_reads_is_declared_by_a_resource() -> None:
    """A table, bucket, queue or secret the code finds through a variable must
    say so in its Metadata, or the deployed functions would not get its name."""
    for stage in LOCAL_STAGES:
        for variable in stage_environment(stage):
            if re.search(r"_(TABLE|BUCKET|QUEUE|SECRET_ID)$", variable):
                assert variable in NAMED, (
                    f"{variable} names a resource: give that resource in infra/resources.json "
                    f'"Metadata": {{"EnvironmentVariable": "{variable}"}}'
                )


@pytest.mark.parametrize("stage", LOCAL_STAGES)
def test_local_stage_environment_names_the_resources_the_template_creates(stage: str) -> None:
    env = stage_environment(stage)
    props = resolved_properties(stage, LOCAL_ACCOUNT_ID)
    assert env["SEALBOX_STAGE"] == stage
    for variable, logical_id in NAMED.items():
        resource = load_template()["Resources"][logical_id]
        name = props[logical_id][NAME_PROPERTIES[resource["Type"]]]
        assert env[variable] == name, (variable, logical_id)


@pytest.mark.parametrize("stage", sorted(set(STAGES) - set(LOCAL_STAGES)))
def test_deployed_stages_take_resource_names_from_the_stack_not_from_config(stage: str) -> None:
    env = stage_environment(stage)
    assert env["SEALBOX_STAGE"] == stage
    named_here = [v for v in env if re.search(r"_(TABLE|BUCKET|QUEUE|SECRET_ID)$", v)]
    assert named_here == [], (
        f"{named_here} in .chalice/config.json's {stage} stage: deployed names come from the "
        "stack; declare the variable in the resource's Metadata.EnvironmentVariable instead"
    )


def resolved_policy(function: str, stage: str) -> dict:
    template = load_template()
    params = template_parameters(template, stage, region="us-east-1", account_id="1" * 12)
    policy: dict = resolve(deployed_policies()[function], params)
    return policy


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
    policy = resolved_policy("api", stage)
    props = resolved_properties(stage)
    resources: list[str] = []
    for statement in policy["Statement"]:
        assert "*" not in statement["Action"]
        if statement["Sid"] == "Tracing":
            continue  # X-Ray has no resource-level permissions
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
            "GroupsTable",
        )
    }
    granted_tables = {table_of(r) for r in resources if ":dynamodb:" in r}
    assert granted_tables == tables
    bucket = props["BlobsBucket"]["BucketName"]
    assert {bucket_of(r) for r in resources if ":s3:::" in r} == {bucket}
    secret = props["AppKeySecret"]["Name"]
    assert any(r.endswith(f":secret:{secret}-??????") for r in resources)
    oprf_secret = props["OprfKeySecret"]["Name"]
    assert any(r.endswith(f":secret:{oprf_secret}-??????") for r in resources)


@pytest.mark.parametrize("stage", STAGES)
def test_only_the_api_function_may_read_the_oprf_key(stage: str) -> None:
    oprf_secret = resolved_properties(stage)["OprfKeySecret"]["Name"]
    for name, text in render_policies(stage).items():
        granted = oprf_secret in text
        assert granted == name.startswith("policy-api-"), name


def table_of(arn: str) -> str:
    match = re.search(r":table/([^/]+)", arn)
    assert match, arn
    return match.group(1)


def bucket_of(arn: str) -> str:
    return arn.split(":::", 1)[1].split("/", 1)[0]


@pytest.mark.parametrize("stage", STAGES)
def test_blob_events_policy_reads_only_its_queue_bucket_and_blob_tables(stage: str) -> None:
    policy = resolved_policy("blob-events", stage)
    props = resolved_properties(stage)
    resources: list[str] = []
    actions: list[str] = []
    for statement in policy["Statement"]:
        if statement["Sid"] == "Tracing":
            continue  # X-Ray has no resource-level permissions
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
                    assert arn.split("/", 1)[1] in ("blobs/*", "quarantine/*", "groups/*"), arn


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
    # The packaged blob_events function's event source is this queue (by GetAtt).
    assert template["Resources"]["BlobEventsQueue"]["Metadata"]["EventSourceFor"] == "BlobEvents"


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
    # TransactWriteItems is authorised per item action (the adapters send
    # Put, Update and Delete items, no ConditionCheck); no Scan or Query:
    # the directory is never enumerated.
    assert sorted(statement["Action"]) == [
        "dynamodb:BatchGetItem",
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
