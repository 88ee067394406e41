"""The small IAM evaluator the call-derived policy test relies on."""

from __future__ import annotations

import pytest

from sealbox_tools.iam import (
    Need,
    Place,
    UnknownOperation,
    UnsupportedPolicy,
    evaluate,
    requirements,
)

pytestmark = pytest.mark.unit

PLACE = Place("eu-west-1", "111122223333")
TABLE = "arn:aws:dynamodb:eu-west-1:111122223333:table/s-users"


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: str | list[str], resource: str | list[str], **extra: object) -> dict:
    return {"Sid": "A", "Effect": "Allow", "Action": action, "Resource": resource, **extra}


def test_allow_needs_both_action_and_resource_to_match() -> None:
    p = policy(allow("dynamodb:GetItem", TABLE))
    assert evaluate(p, Need("dynamodb:GetItem", TABLE)).allowed
    assert evaluate(p, Need("dynamodb:getitem", TABLE)).allowed  # actions ignore case
    assert not evaluate(p, Need("dynamodb:PutItem", TABLE)).allowed
    assert not evaluate(p, Need("dynamodb:GetItem", TABLE + "x")).allowed
    assert not evaluate(p, Need("dynamodb:GetItem", TABLE.upper())).allowed  # ARNs don't


def test_wildcards_are_iams_not_globs() -> None:
    p = policy(allow("s3:Get*", "arn:aws:s3:::b/blobs/*"))
    assert evaluate(p, Need("s3:GetObjectVersion", "arn:aws:s3:::b/blobs/x/y")).allowed
    assert not evaluate(p, Need("s3:GetObject", "arn:aws:s3:::b/other")).allowed
    q = policy(allow("secretsmanager:GetSecretValue", "arn:x:secret:k-??????"))
    assert evaluate(q, Need("secretsmanager:GetSecretValue", "arn:x:secret:k-AbCdEf")).allowed
    assert not evaluate(q, Need("secretsmanager:GetSecretValue", "arn:x:secret:k-AbCdE")).allowed
    r = policy(allow("s3:GetObject", "arn:aws:s3:::b/[ab]"))
    assert not evaluate(r, Need("s3:GetObject", "arn:aws:s3:::b/a")).allowed


def test_explicit_deny_wins_and_nothing_is_implicitly_allowed() -> None:
    p = policy(
        allow("s3:*", "*"),
        {"Sid": "D", "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"},
    )
    decision = evaluate(p, Need("s3:DeleteObject", "arn:aws:s3:::b/k"))
    assert not decision.allowed
    assert decision.statement == "D"
    assert not evaluate(policy(), Need("s3:GetObject", "arn:aws:s3:::b/k")).allowed


def test_not_action_and_not_resource() -> None:
    p = policy({"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::secret/*"})
    assert evaluate(p, Need("s3:GetObject", "arn:aws:s3:::b/k")).allowed
    assert not evaluate(p, Need("iam:PassRole", "arn:aws:iam::1:role/r")).allowed
    assert not evaluate(p, Need("s3:GetObject", "arn:aws:s3:::secret/k")).allowed


def test_conditions_are_evaluated_or_refused() -> None:
    p = policy(allow("s3:GetObject", "*", Condition={"Bool": {"aws:SecureTransport": "true"}}))
    need = Need("s3:GetObject", "arn:aws:s3:::b/k")
    assert evaluate(p, need, {"aws:SecureTransport": "true"}).allowed
    assert not evaluate(p, need, {"aws:SecureTransport": "false"}).allowed
    assert not evaluate(p, need).allowed  # a missing key fails a positive test
    odd = policy(allow("s3:GetObject", "*", Condition={"DateLessThan": {"aws:CurrentTime": "x"}}))
    with pytest.raises(UnsupportedPolicy):
        evaluate(odd, need)


def test_calls_map_to_the_actions_iam_checks() -> None:
    def needs(service: str, op: str, **params: object) -> list[tuple[str, str]]:
        return [(n.action, n.resource) for n in requirements(PLACE, service, op, params)]

    assert needs("s3", "HeadObject", Bucket="b", Key="k", VersionId="v") == [
        ("s3:GetObjectVersion", "arn:aws:s3:::b/k")
    ]
    assert needs("s3", "ListObjectVersions", Bucket="b", Prefix="k") == [
        ("s3:ListBucketVersions", "arn:aws:s3:::b")
    ]
    assert needs(
        "s3",
        "UploadPartCopy",
        Bucket="b",
        Key="k",
        CopySource={"Bucket": "b", "Key": "j", "VersionId": "1"},
    ) == [("s3:PutObject", "arn:aws:s3:::b/k"), ("s3:GetObjectVersion", "arn:aws:s3:::b/j")]
    assert needs("dynamodb", "Query", TableName="s-blobs", IndexName="owner-index") == [
        (
            "dynamodb:Query",
            "arn:aws:dynamodb:eu-west-1:111122223333:table/s-blobs/index/owner-index",
        )
    ]
    assert needs(
        "dynamodb",
        "TransactWriteItems",
        TransactItems=[{"Put": {"TableName": "a"}}, {"ConditionCheck": {"TableName": "b"}}],
    ) == [
        ("dynamodb:PutItem", "arn:aws:dynamodb:eu-west-1:111122223333:table/a"),
        ("dynamodb:ConditionCheckItem", "arn:aws:dynamodb:eu-west-1:111122223333:table/b"),
    ]
    assert needs("secretsmanager", "GetSecretValue", SecretId="k")[0][1].endswith(
        ":secret:k-AbCdEf"
    )
    with pytest.raises(UnknownOperation):
        needs("s3", "PutBucketPolicy", Bucket="b")
