"""`make deploy`/`make destroy` issue the right AWS CLI commands (no AWS needed)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from sealbox_tools import deploy as deploying
from sealbox_tools.deploy import Target, deploy, destroy, seed_app_key

pytestmark = pytest.mark.unit

TARGET = Target("prod", "sealbox-prod", "my-artifacts")
OUTPUTS = {
    "Stacks": [
        {
            "StackStatus": "CREATE_COMPLETE",
            "Outputs": [
                {"OutputKey": "AppKeySecretArn", "OutputValue": "arn:secret"},
                {"OutputKey": "EndpointURL", "OutputValue": "https://x/api/"},
            ],
        }
    ]
}


class FakeAws:
    def __init__(self, *, exists: bool, rotated_after: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.exists = exists
        self.rotated_after = rotated_after

    def __call__(self, argv: Sequence[str]) -> str:
        argv = list(argv)
        self.calls.append(argv)
        if argv[:2] == ["cloudformation", "describe-stacks"]:
            if not self.exists:
                self.exists = True  # the first deploy creates it
                raise subprocess.CalledProcessError(254, argv)
            return json.dumps(OUTPUTS)
        if argv[:2] == ["secretsmanager", "describe-secret"]:
            self.rotated_after -= 1
            return json.dumps({"LastRotatedDate": "now"} if self.rotated_after < 0 else {})
        if argv[:2] == ["cloudformation", "describe-stack-resources"]:
            return json.dumps(
                {
                    "StackResources": [
                        {
                            "ResourceType": "AWS::DynamoDB::Table",
                            "PhysicalResourceId": "sealbox-prod-users",
                        },
                        {"ResourceType": "AWS::Lambda::Function", "PhysicalResourceId": "f"},
                    ]
                }
            )
        return ""


@pytest.fixture(autouse=True)
def no_packaging(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(deploying, "package", lambda stage, out: tmp_path / "sam.json")


def deploys(aws: FakeAws) -> list[list[str]]:
    return [c for c in aws.calls if c[:2] == ["cloudformation", "deploy"]]


def test_a_new_stack_is_created_unprotected_then_protected() -> None:
    aws = FakeAws(exists=False)
    outputs = deploy(TARGET, aws)
    first, second = deploys(aws)
    assert "DeletionProtection=false" in first
    assert "DeletionProtection=true" in second
    for argv in (first, second):
        # Over the inline limit: the template goes through the artifact bucket.
        assert argv[argv.index("--s3-bucket") + 1] == "my-artifacts"
        assert argv[argv.index("--stack-name") + 1] == "sealbox-prod"
        assert "CAPABILITY_IAM" in argv
    assert outputs["EndpointURL"] == "https://x/api/"


def test_an_existing_stack_is_updated_once_with_protection() -> None:
    aws = FakeAws(exists=True)
    deploy(TARGET, aws)
    (only,) = deploys(aws)
    assert "DeletionProtection=true" in only


def test_the_first_app_key_is_seeded_when_no_rotation_ran() -> None:
    aws = FakeAws(exists=True, rotated_after=2)
    seed_app_key(TARGET, aws, sleep=lambda s: None)
    rotations = [c for c in aws.calls if c[:2] == ["secretsmanager", "rotate-secret"]]
    assert rotations == [["secretsmanager", "rotate-secret", "--secret-id", "arn:secret"]]


def test_seeding_gives_up_with_a_clear_error() -> None:
    aws = FakeAws(exists=True, rotated_after=10**6)
    with pytest.raises(RuntimeError, match="no app key"):
        seed_app_key(TARGET, aws, wait=0, sleep=lambda s: None)


def test_destroy_reports_what_it_keeps() -> None:
    aws = FakeAws(exists=True)
    assert destroy(TARGET, aws) == ["AWS::DynamoDB::Table sealbox-prod-users"]
    assert ["cloudformation", "delete-stack", "--stack-name", "sealbox-prod"] in aws.calls


def test_deploy_needs_an_artifact_bucket() -> None:
    with pytest.raises(ValueError, match="artifact bucket"):
        Target("prod", "sealbox-prod", "")


def test_the_service_role_is_passed_when_given() -> None:
    aws = FakeAws(exists=True)
    deploy(Target("dev", "sealbox-dev", "b", cfn_role_arn="arn:aws:iam::1:role/x"), aws)
    (only,) = deploys(aws)
    assert only[only.index("--role-arn") + 1] == "arn:aws:iam::1:role/x"
