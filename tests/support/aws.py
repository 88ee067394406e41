"""moto helpers for the functional tests: a clean in-process AWS, outages, rotation set-up."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.secretsmanager.models import FakeSecret, secretsmanager_backends

from chalicelib.storage.appkeys import RETIRED_LABEL_PREFIX

REGION = "us-east-1"
SECRET_ID = "sealbox-test-app-signing-key"


@contextmanager
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in process, with fake credentials and no endpoint override.

    ``mock_aws`` stops intercepting when ``AWS_ENDPOINT_URL`` (or a
    per-service variant) is set, so every such variable is removed first
    (DESIGN §8).
    """
    import os

    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    with mock_aws():
        yield


def secretsmanager_client() -> Any:
    """A fresh client; call it inside ``moto_aws``."""
    return boto3.client("secretsmanager", region_name=REGION)


@dataclass
class CallLog:
    """Counts API calls as they leave the client (independent of our own stats)."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def count(self, operation: str) -> int:
        return sum(1 for name, _ in self.calls if name == operation)


def record_calls(client: Any) -> CallLog:
    log = CallLog()

    def before_build(model: Any, params: dict[str, Any], **_: Any) -> None:
        log.calls.append((model.name, dict(params)))

    client.meta.events.register("before-parameter-build.secrets-manager.*", before_build)
    return log


@dataclass
class Outage:
    """Make GetSecretValue fail with ``error`` until it is set back to None.

    The exception is raised from botocore's own ``before-call`` event, so it
    surfaces from inside the real client call, where a throttle or a broken
    connection would.
    """

    error: Exception | None = None
    failures: int = 0


def inject_outage(client: Any, operation: str = "GetSecretValue") -> Outage:
    outage = Outage()

    def before_call(**_: Any) -> None:
        if outage.error is not None:
            outage.failures += 1
            raise outage.error

    client.meta.events.register(f"before-call.secrets-manager.{operation}", before_call)
    return outage


def begin_rotation(client: Any, secret_id: str = SECRET_ID) -> str:
    """Put the secret in the state AWS leaves it in before it calls the rotation Lambda.

    On AWS, RotateSecret enables rotation and creates a value-less version
    (id = the ClientRequestToken) staged AWSPENDING, then invokes the Lambda
    four times.  moto's RotateSecret without a runnable Lambda instead moves
    AWSCURRENT onto an empty version and leaves the secret unreadable
    (DESIGN §8), so the tests reproduce AWS's state in moto's backend
    directly and then call the handler's steps themselves.
    """
    arn = client.describe_secret(SecretId=secret_id)["ARN"]
    secret = secretsmanager_backends[DEFAULT_ACCOUNT_ID][REGION].secrets[arn]
    assert isinstance(secret, FakeSecret)
    token = str(uuid.uuid4())
    secret.rotation_requested = True
    secret.rotation_enabled = True
    secret.auto_rotate_after_days = 30
    secret.rotation_lambda_arn = (
        f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT_ID}:function:rotate_app_key"
    )
    secret.remove_version_stages_from_old_versions(["AWSPENDING"])
    secret.versions[token] = {
        "createdate": int(time.time()),
        "version_id": token,
        "version_stages": ["AWSPENDING"],
    }
    return token


def stages(client: Any, secret_id: str = SECRET_ID) -> dict[str, list[str]]:
    """Version id -> staging labels (sorted), less the retirement records (see ``retirements``)."""
    described = client.describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    kept = {
        version: sorted(label for label in labels if not label.startswith(RETIRED_LABEL_PREFIX))
        for version, labels in described.items()
    }
    return {version: labels for version, labels in kept.items() if labels}


def retirements(client: Any, secret_id: str = SECRET_ID) -> dict[str, list[str]]:
    """Version id -> its ``sealbox-retired-at-*`` labels (versions that have any)."""
    described = client.describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    found = {
        version: sorted(label for label in labels if label.startswith(RETIRED_LABEL_PREFIX))
        for version, labels in described.items()
    }
    return {version: labels for version, labels in found.items() if labels}


def read_stage(client: Any, stage: str, secret_id: str = SECRET_ID) -> str:
    return str(client.get_secret_value(SecretId=secret_id, VersionStage=stage)["SecretString"])
