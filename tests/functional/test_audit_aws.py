"""The audit reads every byte of a moto account and catches a planted leak."""

from __future__ import annotations

import base64
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from client_sim.passwords import PASSWORD_KDF_SIMULATION, derive_password_keys
from sealbox_tools.audit import audit, aws_haystacks, needle, write_needles
from sealbox_tools.fleet.cli import audit_command
from tests.functional.conftest import STAGE_ENV, aws_client

PASSWORD = "an audit password, long enough"


def run_audit(needles):
    return audit(
        aws_haystacks(
            aws_client,
            prefix="sealbox-test",
            skip_secret_ids=[STAGE_ENV["SEALBOX_APP_KEY_SECRET_ID"]],
        ),
        needles,
    )


def test_a_clean_account_passes_and_a_planted_canary_fails(api) -> None:
    keys = derive_password_keys("auditee", PASSWORD, PASSWORD_KDF_SIMULATION)
    api.register("auditee", keys.login_key_b64)
    session = api.login("auditee", keys.login_key_b64)
    canary = b"CANARY-plaintext-that-must-never-leave-the-device"
    needles = [
        needle("password", PASSWORD),
        needle("login-key", keys.login_key),
        needle("backup-key", keys.backup_key),
        needle("refresh-token", session.refresh_token),
        needle("device-cookie", session.device_cookie or ""),
        needle("canary", canary),
    ]
    clean = run_audit(needles)
    assert clean.passed, clean.summary()
    assert clean.scanned["dynamodb-item"] >= 2  # the user and the session

    # The test-only leak: a careless code path writes plaintext into a table.
    boto3.client("dynamodb", region_name="us-east-1").put_item(
        TableName=STAGE_ENV["SEALBOX_USERS_TABLE"],
        Item={"identity": {"S": "leaky"}, "note": {"B": base64.b64encode(canary)}},
    )
    leaked = run_audit(needles)
    assert not leaked.passed
    assert ("dynamodb-item", STAGE_ENV["SEALBOX_USERS_TABLE"], "canary") in leaked.hits


def test_the_app_key_is_skipped_but_other_secrets_are_read(stack) -> None:
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    sm.create_secret(Name="sealbox/test/other", SecretString="a-secret-that-is-not-the-app-key")
    report = run_audit([needle("other", "a-secret-that-is-not-the-app-key")])
    # The other secret, the OPRF key's and the transparency log's key (neither
    # holds user data).
    assert report.scanned["secret"] == 3
    assert report.hits == [("secret", "sealbox/test/other", "other")]


def test_string_attributes_are_searched_as_stored_not_as_json(stack) -> None:
    # A string attribute is searched as the bytes the table holds: the JSON
    # view of an item escapes quotes, backslashes, control characters and
    # every non-ASCII character, which would hide a raw secret.
    password = "pässwörd für den Tresor, lang genug"
    canary = 'CANARY "quoted" and back\\slashed\nover two lines'
    boto3.client("dynamodb", region_name="us-east-1").put_item(
        TableName=STAGE_ENV["SEALBOX_USERS_TABLE"],
        Item={
            "identity": {"S": "leaky"},
            "nested": {"M": {"notes": {"L": [{"SS": [canary]}, {"S": password}]}}},
        },
    )
    report = run_audit([needle("password", password), needle("canary", canary)])
    table = STAGE_ENV["SEALBOX_USERS_TABLE"]
    assert sorted(report.hits) == [
        ("dynamodb-item", table, "canary"),
        ("dynamodb-item", table, "password"),
    ]


def test_a_stage_whose_storage_is_not_there_is_an_error_not_a_pass(stack) -> None:
    # The account holds the test stage; an audit of another stage must not
    # pass on the strength of a clean log alone.
    with pytest.raises(LookupError, match="sealbox-local"):
        list(aws_haystacks(aws_client, prefix="sealbox-local"))


def test_sealbox_audit_of_a_stage_that_is_not_there_fails(stack, tmp_path) -> None:
    log = tmp_path / "api.log"
    log.write_text("INFO a clean log line\n")
    needles = tmp_path / "run.needles.json"
    write_needles(needles, [("password", PASSWORD.encode())])
    args = ["--needles", str(needles), "--stage", "local", "--log", str(log)]
    result = CliRunner().invoke(audit_command, args)
    assert result.exit_code == 1, result.output
    assert "PASS" not in result.output
    assert "sealbox-local" in result.output


class _LabelledVersionsOnly:
    """A Secrets Manager client whose ListSecrets shows only versions with a
    staging label, as AWS documents it (moto shows every version)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def get_paginator(self, operation: str) -> Any:
        paginator = self._inner.get_paginator(operation)
        if operation != "list_secrets":
            return paginator

        class Labelled:
            def paginate(self, **kwargs: Any) -> Any:
                for page in paginator.paginate(**kwargs):
                    for entry in page.get("SecretList", []):
                        stages = entry.get("SecretVersionsToStages", {})
                        entry["SecretVersionsToStages"] = {v: s for v, s in stages.items() if s}
                    yield page

        return Labelled()


def test_every_version_of_a_secret_is_read_even_without_a_staging_label(stack) -> None:
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    values = [f"version {n} of a secret that is not the app key" for n in range(3)]
    sm.create_secret(Name="sealbox/test/other", SecretString=values[0])
    for value in values[1:]:
        sm.put_secret_value(SecretId="sealbox/test/other", SecretString=value)
    # Three versions: AWSCURRENT, AWSPREVIOUS, and the first, now unlabelled.

    def client(service: str) -> Any:
        inner = aws_client(service)
        return _LabelledVersionsOnly(inner) if service == "secretsmanager" else inner

    report = audit(
        aws_haystacks(
            client,
            prefix="sealbox-test",
            skip_secret_ids=[STAGE_ENV["SEALBOX_APP_KEY_SECRET_ID"]],
        ),
        [needle(f"v{n}", value) for n, value in enumerate(values)],
    )
    # Three versions, the OPRF key's one and the transparency log's key.
    assert report.scanned["secret"] == 5
    assert sorted(label for _, _, label in report.hits) == ["v0", "v1", "v2"]


def test_sealbox_audit_says_which_uploads_it_could_not_read(stack, tmp_path) -> None:
    # The parts of an unfinished multipart upload are stored, but S3 has no
    # call that returns them: the summary must say so rather than stay silent.
    s3 = boto3.client("s3", region_name="us-east-1")
    bucket = STAGE_ENV["SEALBOX_BLOBS_BUCKET"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="blobs/unfinished")
    s3.upload_part(
        Bucket=bucket,
        Key="blobs/unfinished",
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=b"a part the audit cannot read back",
    )
    needles = tmp_path / "run.needles.json"
    write_needles(needles, [("password", PASSWORD.encode())])
    result = CliRunner().invoke(audit_command, ["--needles", str(needles), "--stage", "test"])
    assert f"note: s3://{bucket}: 1 unfinished multipart upload(s)" in result.output
