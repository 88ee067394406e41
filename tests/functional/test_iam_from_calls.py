"""Each function's IAM policy is what it calls: nothing denied, nothing unused
without a written reason.

A small ``full`` fleet runs in process (every behaviour: accounts, tokens,
cards, backups, blobs inline and multipart, sharing, revocation), then the
rotation function rotates the app key and the blob-events function checks
the fleet's uploads.  Every AWS call -- and every URL presigned, which S3
authorizes against the signer's role -- is recorded with the function that
made it (the API function while Chalice handles a request; the others while
their Lambda handler runs) and evaluated against that function's policy
from infra/policies.json, resolved as CloudFormation would for the stack
``sealbox-test`` in moto's account.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.client
import botocore.signers
import pytest

from sealbox_tools.deploy_template import deployed_policies
from sealbox_tools.fleet.backends import InProcessBackend
from sealbox_tools.fleet.runner import FleetConfig, run_fleet
from sealbox_tools.iam import Call, Place, denied, unused
from sealbox_tools.local_stack import stage_environment
from sealbox_tools.provisioning import (
    INFRA_DIR,
    LOCAL_ACCOUNT_ID,
    load_template,
    resolve,
    template_parameters,
)
from sealbox_tools.pytest_plugin.backend import without_pytest_log_capture

pytestmark = pytest.mark.functional

REGION = "us-east-1"
PLACE = Place(REGION, LOCAL_ACCOUNT_ID)
STAGE_ENV = stage_environment("test")
ACTING: contextvars.ContextVar[str | None] = contextvars.ContextVar("acting", default=None)
#: Grants no recorded call used, each with the reason it stays (infra/).
JUSTIFIED: dict[str, dict[str, str]] = json.loads((INFRA_DIR / "unused-grants.json").read_text())[
    "grants"
]


@contextlib.contextmanager
def acting_as(function: str) -> Iterator[None]:
    token = ACTING.set(function)
    try:
        yield
    finally:
        ACTING.reset(token)


@contextlib.contextmanager
def recording(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Call]]:
    import chalice.app

    calls: list[Call] = []
    make_api_call = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]
    presign = botocore.signers.generate_presigned_url

    def recorded_call(self: Any, operation: str, params: dict[str, Any]) -> Any:
        function = ACTING.get()
        if function is not None:
            calls.append(Call(function, self.meta.service_model.service_name, operation, params))
        return make_api_call(self, operation, params)

    def recorded_presign(self: Any, ClientMethod: str, Params: Any = None, **kw: Any) -> Any:
        function = ACTING.get()
        if function is not None:
            operation = self.meta.method_to_api_mapping[ClientMethod]
            calls.append(Call(function, self.meta.service_model.service_name, operation, Params))
        return presign(self, ClientMethod, Params=Params, **kw)

    api_call = chalice.app.Chalice.__call__

    def api(self: Any, event: Any, context: Any) -> Any:
        with acting_as("api"):
            return api_call(self, event, context)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recorded_call)
    # Client classes pick the presigner up when they are created (lazily, below).
    monkeypatch.setattr(botocore.signers, "generate_presigned_url", recorded_presign)
    monkeypatch.setattr(chalice.app.Chalice, "__call__", api)
    yield calls


def sqs_event(bodies: list[str]) -> dict[str, Any]:
    queue = f"arn:aws:sqs:{REGION}:{LOCAL_ACCOUNT_ID}:{STAGE_ENV['SEALBOX_BLOB_EVENTS_QUEUE']}"
    return {
        "Records": [
            {
                "messageId": str(i),
                "receiptHandle": f"r{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue,
                "awsRegion": REGION,
            }
            for i, body in enumerate(bodies)
        ]
    }


def exercise_groups(backend: InProcessBackend, home: Path) -> None:
    """The group routes the ``full`` fleet doesn't reach: create, add, remove
    (new epochs and wraps objects), a catch-up frame, a history share, a
    group blob up and down, listing."""
    from client_sim.device import Device
    from client_sim.passwords import PASSWORD_KDF_SIMULATION

    def phone(name: str) -> Device:
        device = Device(
            home / name,
            backend.api(),
            kdf=PASSWORD_KDF_SIMULATION,
            clock=backend.clock,
            sleep=lambda _: None,
            objects=backend.objects(),
            storage_origins=backend.storage_origins(),
            oprf_roots=backend.oprf_roots(),
        )
        device.register(f"iam-{name}", "correct horse battery staple")
        return device

    alice, bob, carol = phone("alice"), phone("bob"), phone("carol")
    group = alice.create_group(["iam-bob"])
    bob.group(group.group_id).info()  # follows epoch 0
    group.add_members(["iam-carol"])
    group.remove_members(["iam-carol"])
    bob.group(group.group_id).info()  # moves on by a catch-up frame (wraps read inline)
    group.share_history("iam-bob", from_epoch=0, to_epoch=0)  # a counted history share
    info = group.upload(b"group blob")
    assert bob.group(group.group_id).download(info.blob_id).plaintext == b"group blob"
    assert [g.group_id for g in carol.list_groups()] == []


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> list[Call]:
    from chalicelib.rotation import ROTATION_STEPS
    from tests.functional.blob_helpers import s3_event
    from tests.support.aws import begin_rotation

    monkeypatch = pytest.MonkeyPatch()
    work = tmp_path_factory.mktemp("iam")
    try:
        with (
            recording(monkeypatch) as found,
            without_pytest_log_capture(),
            InProcessBackend(capture_logs=False, oprf=True) as backend,
        ):
            config = FleetConfig(
                devices=8,
                scenario="full",
                overrides={"rounds": "1"},
                seed=20261204,
                concurrency=4,
                retry_backoff=0.0,
            )
            result = run_fleet(config, backend, work_dir=work / "phones")
            assert result.passed, result.report["verdict"]
            exercise_groups(backend, work / "group-phones")
            from app import app, blob_events, rotate_app_key

            assert app
            secret_id = STAGE_ENV["SEALBOX_APP_KEY_SECRET_ID"]
            token = begin_rotation(backend.client("secretsmanager"), secret_id)
            with acting_as("rotation"):
                for step in ROTATION_STEPS:
                    rotate_app_key(
                        {"SecretId": secret_id, "ClientRequestToken": token, "Step": step}, None
                    )
            s3 = backend.client("s3")
            bucket = STAGE_ENV["SEALBOX_BLOBS_BUCKET"]
            keys = [
                o["Key"]
                for o in s3.list_objects_v2(Bucket=bucket, Prefix="blobs/").get("Contents", [])
            ]
            assert keys, "the fleet stored no blob"
            bodies = [s3_event(k.split("/", 1)[1], bucket=bucket) for k in keys[:10]]
            bodies.append(s3_event("A" * 22, bucket=bucket))  # an object that is gone
            with acting_as("blob-events"):
                blob_events(sqs_event(bodies), None)
        return found
    finally:
        monkeypatch.undo()


def policy_for(function: str) -> dict[str, Any]:
    template = load_template()
    params = template_parameters(template, "test", region=REGION, account_id=LOCAL_ACCOUNT_ID)
    resolved: dict[str, Any] = resolve(deployed_policies()[function], params)
    return resolved


FUNCTIONS = ("api", "rotation", "blob-events")


def test_every_function_made_calls(calls: list[Call]) -> None:
    assert {c.function for c in calls} == set(FUNCTIONS)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_call_is_denied(calls: list[Call], function: str) -> None:
    mine = [c for c in calls if c.function == function]
    refused = denied(policy_for(function), PLACE, mine)
    assert [
        f"{call.service}:{call.operation} needs {need.action} on {need.resource}"
        for call, need in refused
    ] == []


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_grant_is_used_or_justified(calls: list[Call], function: str) -> None:
    mine = [c for c in calls if c.function == function]
    never = {f"{sid} {action}" for sid, action in unused(policy_for(function), PLACE, mine)}
    assert never == set(JUSTIFIED.get(function, {})), (
        "grants never used must be removed from infra/policies.json or justified in "
        "infra/unused-grants.json (and justifications of grants now used removed)"
    )


def test_the_recorder_sees_a_grant_taken_away(calls: list[Call]) -> None:
    """Not vacuous: without the blob tables' Query the API is denied."""
    policy = policy_for("api")
    for statement in policy["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != "dynamodb:Query"]
    refused = denied(policy, PLACE, [c for c in calls if c.function == "api"])
    assert {need.action for _, need in refused} == {"dynamodb:Query"}


def test_justifications_are_written_down() -> None:
    for function, grants in JUSTIFIED.items():
        assert function in FUNCTIONS
        for grant, reason in grants.items():
            assert len(reason) > 30, (function, grant)
