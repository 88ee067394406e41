"""``make deploy`` / ``make destroy``: one stage's stack, with the AWS CLI.

``deploy`` packages the stage (:mod:`sealbox_tools.deploy_template`), uploads
the code and the template (over CloudFormation's 51,200-byte inline limit) to
an artifact bucket with ``aws cloudformation package``/``deploy``, and:

* creates a new stack with table deletion protection off, so a failed first
  create rolls back completely and can simply be run again, then updates it
  with protection on;
* seeds the first app key: the rotation schedule rotates once on creation;
  if the secret has never been rotated (the schedule's first run failed or is
  still pending), it starts a rotation and waits for it;
* (``main``, :mod:`sealbox_tools.deploy_trust`) seeds the OPRF and
  transparency log keys once and writes the app's SDK configuration to
  ``out/<stage>/sdk-config.json``.

``destroy`` deletes the stack; tables, the bucket and the secret are retained
(``RetainExceptOnCreate``) and listed with the commands that remove them.

Every AWS call goes through one ``run`` function, so the tests check the exact
commands without AWS.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sealbox_tools.deploy_template import package
from sealbox_tools.local_stack import PROJECT_DIR

Runner = Callable[[Sequence[str]], str]


def run_aws(argv: Sequence[str]) -> str:
    """Run an ``aws`` CLI command; return its standard output.

    Raises:
        RuntimeError: the AWS CLI is not installed.
        subprocess.CalledProcessError: the command failed.
    """
    aws = shutil.which("aws")
    if aws is None:
        raise RuntimeError("the AWS CLI (`aws`) is needed to deploy: see docs/deploying.md")
    done = subprocess.run(  # noqa: S603 - argv built here, no shell
        [aws, *argv], check=True, capture_output=True, text=True
    )
    return done.stdout


@dataclass(frozen=True)
class Target:
    """Where a stage goes: its stack, the artifact bucket, the alarm topic."""

    stage: str
    stack: str
    artifact_bucket: str
    alarm_topic_arn: str = ""
    #: CloudFormation's service role (the bootstrap stack's
    #: CloudFormationExecutionRoleArn); empty: the caller's own permissions.
    cfn_role_arn: str = ""

    def __post_init__(self) -> None:
        if not self.artifact_bucket:
            raise ValueError("an artifact bucket is required (ARTIFACT_BUCKET=...)")


def stack_exists(target: Target, run: Runner) -> bool:
    try:
        out = run(["cloudformation", "describe-stacks", "--stack-name", target.stack])
    except subprocess.CalledProcessError:
        return False
    stacks = json.loads(out or "{}").get("Stacks", [])
    return bool(stacks) and stacks[0].get("StackStatus") != "REVIEW_IN_PROGRESS"


def deploy_commands(target: Target, template: Path, *, protection: bool) -> list[list[str]]:
    """The ``aws`` commands that upload and deploy ``template``."""
    packaged = template.with_name("packaged.json")
    return [
        [
            "cloudformation",
            "package",
            "--template-file",
            str(template),
            "--s3-bucket",
            target.artifact_bucket,
            "--s3-prefix",
            target.stack,
            "--use-json",
            "--output-template-file",
            str(packaged),
        ],
        [
            "cloudformation",
            "deploy",
            "--template-file",
            str(packaged),
            "--stack-name",
            target.stack,
            # The packaged template is far over the 51,200-byte inline limit.
            "--s3-bucket",
            target.artifact_bucket,
            "--s3-prefix",
            target.stack,
            "--capabilities",
            "CAPABILITY_IAM",
            "CAPABILITY_AUTO_EXPAND",
            "--no-fail-on-empty-changeset",
            "--parameter-overrides",
            f"AlarmTopicArn={target.alarm_topic_arn}",
            f"DeletionProtection={'true' if protection else 'false'}",
            "--tags",
            f"sealbox:stage={target.stage}",
            *(["--role-arn", target.cfn_role_arn] if target.cfn_role_arn else []),
        ],
    ]


def stack_outputs(target: Target, run: Runner) -> dict[str, str]:
    out = run(["cloudformation", "describe-stacks", "--stack-name", target.stack])
    (stack,) = json.loads(out)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def seed_app_key(
    target: Target, run: Runner, *, wait: float = 300.0, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Make sure the app key secret holds a real key (a rotation has run).

    Raises:
        RuntimeError: no rotation completed within ``wait`` seconds.
    """
    secret = stack_outputs(target, run)["AppKeySecretArn"]
    deadline = time.monotonic() + wait
    started = False
    while True:
        described = json.loads(run(["secretsmanager", "describe-secret", "--secret-id", secret]))
        if described.get("LastRotatedDate"):
            return
        if not started and not described.get("RotationEnabled", True):
            raise RuntimeError(f"{secret}: rotation is not enabled; the stack is incomplete")
        if not started:
            run(["secretsmanager", "rotate-secret", "--secret-id", secret])
            started = True
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{secret}: no app key after {wait:.0f} s; see the rotation logs")
        sleep(5)


def deploy(target: Target, run: Runner = run_aws, out_dir: Path | None = None) -> dict[str, str]:
    """Package and deploy ``target``; return the stack's outputs."""
    template = package(target.stage, out_dir or PROJECT_DIR / "out" / target.stage)
    new = not stack_exists(target, run)
    passes = [False, True] if new else [True]
    for protection in passes:
        for argv in deploy_commands(target, template, protection=protection):
            run(argv)
    seed_app_key(target, run)
    return stack_outputs(target, run)


def destroy(target: Target, run: Runner = run_aws) -> list[str]:
    """Delete the stack; return what it leaves behind (retained resources).

    Raises:
        subprocess.CalledProcessError: the deletion failed.
    """
    retained = []
    out = run(["cloudformation", "describe-stack-resources", "--stack-name", target.stack])
    for resource in json.loads(out).get("StackResources", []):
        if resource["ResourceType"] in (
            "AWS::DynamoDB::Table",
            "AWS::S3::Bucket",
            "AWS::SecretsManager::Secret",
        ):
            retained.append(f"{resource['ResourceType']} {resource['PhysicalResourceId']}")
    run(["cloudformation", "delete-stack", "--stack-name", target.stack])
    run(["cloudformation", "wait", "stack-delete-complete", "--stack-name", target.stack])
    return retained


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sealbox_tools.deploy")
    parser.add_argument("action", choices=["deploy", "destroy"])
    parser.add_argument("--stage", required=True)
    parser.add_argument("--stack", default="")
    parser.add_argument("--artifact-bucket", default="")
    parser.add_argument("--alarm-topic-arn", default="")
    parser.add_argument("--cfn-role-arn", default="")
    parser.add_argument("--out-dir", default="", help="default: out/<stage>")
    args = parser.parse_args(argv)
    stack = args.stack or f"sealbox-{args.stage}"
    if args.action == "destroy":
        target = Target(args.stage, stack, artifact_bucket="-")
        left = destroy(target)
        print(f"deleted stack {stack}; retained (delete by hand to remove the data):")
        for line in left:
            print("  " + line)
        return 0
    target = Target(
        args.stage, stack, args.artifact_bucket, args.alarm_topic_arn, args.cfn_role_arn
    )
    # Imported here: deploy_trust builds on this module.
    from sealbox_tools.deploy_trust import deploy_and_configure

    out_dir = Path(args.out_dir) if args.out_dir else None
    outputs, config, path = deploy_and_configure(target, run_aws, out_dir=out_dir)
    print(json.dumps(outputs, indent=2))
    # Public values only: what the app pins (client_sim.config.SdkConfig).
    print(f"SDK configuration ({path}):")
    print(json.dumps(config.to_json(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
