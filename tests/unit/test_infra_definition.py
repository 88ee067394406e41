"""The deployable definition and the local stack can't drift apart."""

from __future__ import annotations

import json

import pytest

from client_sim.local_stack import (
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
        if resource["Type"] not in LOCAL_SKIPS
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
    assert env["SEALBOX_CARDS_TABLE"] == props["CardsTable"]["TableName"]
    assert env["SEALBOX_BACKUPS_TABLE"] == props["BackupsTable"]["TableName"]


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
        for t in ("UsersTable", "SessionsTable", "LoginAttemptsTable", *DIRECTORY_TABLES)
    }
    granted_tables = {r.rsplit("/", 1)[1] for r in resources if ":dynamodb:" in r}
    assert granted_tables == tables
    secret = props["AppKeySecret"]["Name"]
    assert any(r.endswith(f":secret:{secret}-??????") for r in resources)


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
