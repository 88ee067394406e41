"""``make deploy`` seeds the OPRF and log keys once and writes the SDK configuration.

The AWS CLI is faked (as in tests/unit/test_deploy_commands.py); the boto3
part runs on moto with the stack's two secrets created empty, as
CloudFormation creates them (infra/resources.json).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.note import parse_verifier_key
from chalicelib.wire.oprf_keys import parse_oprf_secret
from client_sim.config import SdkConfig
from sealbox_tools import deploy as deploying
from sealbox_tools.deploy import Target
from sealbox_tools.deploy_trust import deploy_and_configure, seed_trust
from sealbox_tools.local_stack import stage_environment
from tests.functional.conftest import aws_client

pytestmark = pytest.mark.functional

TARGET = Target("prod", "sealbox-prod", "my-artifacts")
BUCKET = "sealbox-prod-blobs-123456789012-us-east-1"


class FakeAws:
    """The AWS CLI of a deployed stack whose secrets live in moto."""

    def __init__(self, oprf_arn: str, log_arn: str) -> None:
        self.calls: list[list[str]] = []
        self.oprf_arn = oprf_arn
        self.log_arn = log_arn

    def __call__(self, argv: Sequence[str]) -> str:
        argv = list(argv)
        self.calls.append(argv)
        if argv[:2] == ["cloudformation", "describe-stacks"]:
            outputs = {
                "EndpointURL": "https://abc.execute-api.us-east-1.amazonaws.com/api/",
                "KtLogKeySecretArn": self.log_arn,
                "BlobsBucketName": BUCKET,
                "AppKeySecretArn": "arn:app",
            }
            return json.dumps(
                {
                    "Stacks": [
                        {
                            "StackStatus": "CREATE_COMPLETE",
                            "Outputs": [
                                {"OutputKey": k, "OutputValue": v} for k, v in outputs.items()
                            ],
                        }
                    ]
                }
            )
        if argv[:2] == ["secretsmanager", "describe-secret"]:
            return json.dumps({"LastRotatedDate": "now"})
        if argv[:2] == ["cloudformation", "describe-stack-resources"]:
            return json.dumps(
                {
                    "StackResources": [
                        {
                            "LogicalResourceId": "OprfKeySecret",
                            "ResourceType": "AWS::SecretsManager::Secret",
                            "PhysicalResourceId": self.oprf_arn,
                        }
                    ]
                }
            )
        return ""


@pytest.fixture
def stack_secrets(aws: None) -> FakeAws:
    """The two secrets, created without a value (CloudFormation's way)."""
    sm = aws_client("secretsmanager")
    oprf = sm.create_secret(Name="sealbox-prod-oprf-key")["ARN"]
    log = sm.create_secret(Name="sealbox-prod-kt-log-key")["ARN"]
    return FakeAws(oprf, log)


def _current(secret: str) -> str:
    value = aws_client("secretsmanager").get_secret_value(
        SecretId=secret, VersionStage="AWSCURRENT"
    )
    return str(value["SecretString"])


def test_seeding_fills_both_secrets_and_pins_their_public_halves(stack_secrets: FakeAws) -> None:
    config = seed_trust(TARGET, stack_secrets, aws_client)
    oprf = parse_oprf_secret(_current(stack_secrets.oprf_arn))
    assert dict(config.oprf_roots) == {oprf.version: oprf.root_public}
    assert config.log_key is not None
    verifier = parse_verifier_key(config.log_key)
    assert verifier.name == stage_environment("prod")["SEALBOX_KT_ORIGIN"]
    assert _current(stack_secrets.log_arn).startswith("PRIVATE+KEY+")
    assert config.url == "https://abc.execute-api.us-east-1.amazonaws.com/api/"
    assert config.storage_origins == (
        f"https://{BUCKET}.s3.amazonaws.com",
        f"https://{BUCKET}.s3.us-east-1.amazonaws.com",
    )


def test_seeding_again_keeps_the_keys_devices_pinned(stack_secrets: FakeAws) -> None:
    first = seed_trust(TARGET, stack_secrets, aws_client)
    oprf_value, log_value = _current(stack_secrets.oprf_arn), _current(stack_secrets.log_arn)
    again = seed_trust(TARGET, stack_secrets, aws_client)
    assert again == first
    assert (_current(stack_secrets.oprf_arn), _current(stack_secrets.log_arn)) == (
        oprf_value,
        log_value,
    )


def test_no_secret_goes_on_an_aws_command_line(stack_secrets: FakeAws) -> None:
    seed_trust(TARGET, stack_secrets, aws_client)
    secrets = (_current(stack_secrets.oprf_arn), _current(stack_secrets.log_arn))
    command_lines = " ".join(" ".join(argv) for argv in stack_secrets.calls)
    assert not any(c[:2] == ["secretsmanager", "put-secret-value"] for c in stack_secrets.calls)
    for secret in secrets:
        for part in json.loads(secret).values() if secret.startswith("{") else [secret]:
            assert str(part) not in command_lines


def test_make_deploy_writes_and_prints_public_values_only(
    stack_secrets: FakeAws,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(deploying, "package", lambda stage, out: tmp_path / "sam.json")
    monkeypatch.setattr(deploying, "run_aws", stack_secrets)
    monkeypatch.setattr("sealbox_tools.deploy_trust.default_clients", aws_client)
    argv = ["deploy", "--stage", "prod", "--artifact-bucket", "b", "--out-dir", str(tmp_path)]
    assert deploying.main(argv) == 0
    printed = capsys.readouterr().out
    written = tmp_path / "sdk-config.json"
    config = SdkConfig.load(written)
    assert json.dumps(config.to_json(), indent=2) in printed
    document = json.loads(written.read_text(encoding="utf-8"))
    assert document["version"] == 1
    assert set(document) == {"version", "url", "log_key", "oprf_roots", "storage_origins"}
    oprf = parse_oprf_secret(_current(stack_secrets.oprf_arn))
    (root,) = document["oprf_roots"].values()
    assert b64url_decode(root) == oprf.root_public
    for private in (oprf.oprf_seed, oprf.root_seed):
        assert b64url_encode(private) not in printed
    assert _current(stack_secrets.log_arn) not in printed
    assert "PRIVATE" not in printed
    assert "PRIVATE" not in written.read_text(encoding="utf-8")


def test_deploy_and_configure_writes_under_the_given_directory(
    stack_secrets: FakeAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deploying, "package", lambda stage, out: tmp_path / "sam.json")
    outputs, config, path = deploy_and_configure(TARGET, stack_secrets, aws_client, tmp_path)
    assert path == tmp_path / "sdk-config.json"
    assert SdkConfig.load(path) == config
    assert outputs["KtLogKeySecretArn"] == stack_secrets.log_arn


def test_a_stack_without_the_oprf_secret_is_refused(stack_secrets: FakeAws) -> None:
    def no_resources(argv: Sequence[str]) -> str:
        if list(argv[:2]) == ["cloudformation", "describe-stack-resources"]:
            return json.dumps({"StackResources": []})
        return stack_secrets(argv)

    with pytest.raises(RuntimeError, match="OprfKeySecret"):
        seed_trust(TARGET, no_resources, aws_client)


def test_a_failing_cli_call_stops_the_seeding(stack_secrets: FakeAws) -> None:
    def broken(argv: Sequence[str]) -> Any:
        raise subprocess.CalledProcessError(254, list(argv))

    with pytest.raises(subprocess.CalledProcessError):
        seed_trust(TARGET, broken, aws_client)
    assert _current_or_none(stack_secrets.oprf_arn) is None


def _current_or_none(secret: str) -> str | None:
    try:
        return _current(secret)
    except Exception:
        return None
