"""The template `make package` writes is the one a fresh account can deploy.

Built once per module with ``chalice package`` + :func:`finalize` for prod,
then linted (cfn-lint with the SAM translator: 0 errors, 0 warnings) and
held to the deploy rules, so functions, tables and named resources other
changes add are checked too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from sealbox_tools.deploy_rules import STATEFUL_TYPES, naming_problems, retention_problems
from sealbox_tools.deploy_template import FUNCTIONS, name_expressions, package

pytestmark = pytest.mark.functional

STAGE = "prod"


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package(STAGE, tmp_path_factory.mktemp("package") / STAGE)


@pytest.fixture(scope="module")
def template(packaged: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(packaged.read_text())
    return loaded


def of_type(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: r for k, r in template["Resources"].items() if r.get("Type") == kind}


def test_cfn_lint_with_the_sam_translator_finds_nothing(packaged: Path) -> None:
    import samtranslator  # the transform cfn-lint needs for AWS::Serverless::*
    from cfnlint.api import lint_all

    assert samtranslator
    matches = lint_all(packaged.read_text())
    # Errors (E) and warnings (W); informational rules (I) are advice.
    found = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id[0] in "EW"]
    assert found == []


def test_the_packaged_template_follows_the_deploy_rules(template: dict[str, Any]) -> None:
    assert naming_problems(template) == []
    assert retention_problems(template) == []
    assert {k for k, r in template["Resources"].items() if r.get("Type") in STATEFUL_TYPES}


def test_every_function_gets_every_resource_name_from_the_stack(template: dict[str, Any]) -> None:
    names = name_expressions(template)
    assert len(names) >= 11
    functions = of_type(template, "AWS::Serverless::Function")
    assert set(functions) == set(FUNCTIONS)
    for function_id, function in functions.items():
        variables = function["Properties"]["Environment"]["Variables"]
        for variable, expression in names.items():
            assert variables[variable] == expression, (function_id, variable)
            assert not isinstance(expression, str), variable
        assert variables["SEALBOX_STAGE"] == STAGE
        # The deployed name is known before the function exists, so its log
        # group (with retention) is created first and the logs grant names it.
        assert function["Properties"]["FunctionName"] == {
            "Fn::Sub": "${AWS::StackName}-" + FUNCTIONS[function_id]
        }
        assert f"{function_id}LogGroup" in function["DependsOn"]
        assert function["Properties"]["Tracing"] == "Active"


def policy_of(template: dict[str, Any], function_id: str) -> dict[str, Any]:
    function = template["Resources"][function_id]
    role = template["Resources"][function["Properties"]["Role"]["Fn::GetAtt"][0]]
    (policy,) = role["Properties"]["Policies"]
    document: dict[str, Any] = policy["PolicyDocument"]
    return document


def test_role_policies_are_scoped_with_pseudo_parameters_not_wildcards(
    template: dict[str, Any],
) -> None:
    for function_id in FUNCTIONS:
        for statement in policy_of(template, function_id)["Statement"]:
            resources = statement["Resource"]
            resources = resources if isinstance(resources, list) else [resources]
            if statement["Sid"] == "Tracing":
                # X-Ray has no resource-level permissions.
                assert resources == ["*"]
                assert sorted(statement["Action"]) == [
                    "xray:PutTelemetryRecords",
                    "xray:PutTraceSegments",
                ]
                continue
            for resource in resources:
                text = resource["Fn::Sub"]
                assert text.startswith("arn:${AWS::Partition}:"), text
                if ":s3:::" not in text:  # S3 ARNs carry neither
                    assert ":${AWS::Region}:${AWS::AccountId}:" in text, text
                assert "${AWS::StackName}" in text or "${Stage}" in text, text


def test_log_permissions_follow_the_function_name_whatever_the_stack_is_called(
    template: dict[str, Any],
) -> None:
    for function_id in FUNCTIONS:
        (logs,) = [s for s in policy_of(template, function_id)["Statement"] if s["Sid"] == "Logs"]
        assert sorted(logs["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
        group = template["Resources"][f"{function_id}LogGroup"]["Properties"]
        assert logs["Resource"]["Fn::Sub"].endswith(
            ":log-group:" + group["LogGroupName"]["Fn::Sub"] + ":*"
        )
        assert group["RetentionInDays"] == {
            "Fn::FindInMap": ["StageSettings", STAGE, "LogRetentionDays"]
        }
    assert template["Mappings"]["StageSettings"][STAGE]["LogRetentionDays"] == 90


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in of_type(template, "AWS::CloudWatch::Alarm").items()}


def test_alarms_cover_5xx_rate_function_errors_throttles_and_the_dead_letter_queue(
    template: dict[str, Any],
) -> None:
    found = alarms(template)
    watched = {
        (a["Namespace"], a["MetricName"], json.dumps(a["Dimensions"])) for a in found.values()
    }
    for function_id in FUNCTIONS:
        dims = json.dumps([{"Name": "FunctionName", "Value": {"Ref": function_id}}])
        assert ("AWS/Lambda", "Errors", dims) in watched
        assert ("AWS/Lambda", "Throttles", dims) in watched
    for table_id in of_type(template, "AWS::DynamoDB::Table"):
        dims = json.dumps([{"Name": "TableName", "Value": {"Ref": table_id}}])
        assert ("AWS/DynamoDB", "ThrottledRequests", dims) in watched
    assert found["Api5xxRateAlarm"]["MetricName"] == "5XXError"
    assert found["Api5xxRateAlarm"]["Statistic"] == "Average"
    dlq = found["BlobEventsDeadLetterAlarm"]
    assert dlq["Dimensions"][0]["Value"] == {
        "Fn::GetAtt": ["BlobEventsDeadLetterQueue", "QueueName"]
    }
    target = {"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}
    for name, alarm in found.items():
        assert alarm["AlarmActions"] == [target], name
    # The 5xx alarm's ApiName dimension is the API's name.
    assert template["Resources"]["RestAPI"]["Properties"]["Name"] == {"Ref": "AWS::StackName"}


def test_access_logs_are_structured_and_carry_no_token_path_or_body(
    template: dict[str, Any],
) -> None:
    api = template["Resources"]["RestAPI"]["Properties"]
    assert api["TracingEnabled"] is True
    setting = api["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    fields = json.loads(setting["Format"])
    assert fields["requestId"] == "$context.requestId"
    assert fields["route"] == "$context.resourcePath"
    variables = set(re.findall(r"\$context\.[A-Za-z.]+", setting["Format"]))
    # No header, authorizer, path (identities), query string or body.
    for forbidden in (
        "header",
        "authorizer",
        "context.path",
        "querystring",
        "input",
        "identity.user",
    ):
        assert not any(forbidden in v.lower() for v in variables), forbidden
    (method,) = api["MethodSettings"]
    assert method["DataTraceEnabled"] is False  # would log bodies and Authorization
    assert method["LoggingLevel"] == "OFF"


def test_the_event_source_reads_the_stacks_queue(template: dict[str, Any]) -> None:
    (event,) = template["Resources"]["BlobEvents"]["Properties"]["Events"].values()
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["BlobEventsQueue", "Arn"]}


def test_the_api_hands_binary_answers_to_clients_that_accept_them(
    template: dict[str, Any],
) -> None:
    """The catch-up frame (``GET /v1/groups/{id}/catchup``) is bytes: API
    Gateway decodes the function's base64 only for a media type in the API's
    binary media types, and only for a client whose first Accept type is one."""
    apis = of_type(template, "AWS::Serverless::Api")
    assert apis
    for api in apis.values():
        body = api["Properties"]["DefinitionBody"]
        assert "application/octet-stream" in body["x-amazon-apigateway-binary-media-types"]
        assert "get" in body["paths"]["/v1/groups/{group_id}/catchup"]


def test_the_stage_is_pinned(template: dict[str, Any]) -> None:
    assert template["Parameters"]["Stage"]["AllowedValues"] == [STAGE]


def pyproject_range(name: str) -> str:
    import tomllib

    from sealbox_tools.local_stack import PROJECT_DIR

    deps = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]["dependencies"]
    (spec,) = [d for d in deps if re.split(r"[<>=!~ ]", d, maxsplit=1)[0] == name]
    return str(spec[len(name) :])


@pytest.fixture(scope="module")
def unzipped(packaged: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import zipfile

    target = tmp_path_factory.mktemp("lambda")
    with zipfile.ZipFile(packaged.with_name("deployment.zip")) as archive:
        archive.extractall(target)
    return target


def test_the_package_ships_the_boto3_and_botocore_the_tests_ran_with(unzipped: Path) -> None:
    """The runtime's botocore may predate S3's conditional writes."""
    from packaging.specifiers import SpecifierSet

    for name in ("boto3", "botocore"):
        (info,) = unzipped.glob(f"{name}-*.dist-info")
        version = info.name[len(name) + 1 : -len(".dist-info")]
        assert version in SpecifierSet(pyproject_range(name)), (name, version)


def test_wheels_in_the_package_match_the_lambda_runtime_and_architecture(
    template: dict[str, Any], unzipped: Path
) -> None:
    from packaging.tags import compatible_tags, cpython_tags, parse_tag

    (runtime,) = {
        f["Properties"]["Runtime"] for f in of_type(template, "AWS::Serverless::Function").values()
    }
    (arch,) = {
        tuple(f["Properties"]["Architectures"])
        for f in of_type(template, "AWS::Serverless::Function").values()
    }
    assert runtime == "python3.11"
    assert arch == ("x86_64",)
    # Lambda's python3.11 runtime: Amazon Linux 2, glibc 2.26, x86_64.
    platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(26, 4, -1)]
    platforms += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    supported = set(cpython_tags((3, 11), platforms=platforms))
    supported |= set(compatible_tags((3, 11), "cp311", platforms=platforms))
    wheels = list(unzipped.glob("*.dist-info/WHEEL"))
    assert len(wheels) >= 5
    for wheel in wheels:
        tags = {
            tag
            for line in wheel.read_text().splitlines()
            if line.startswith("Tag:")
            for tag in parse_tag(line.split(":", 1)[1].strip())
        }
        if tags & supported:
            continue
        # A wheel tagged for plain linux (not manylinux) passes only when it
        # installs no compiled module: rbcl's files are Python that loads a
        # hex-embedded libsodium, whose glibc needs the next test checks.
        record = (wheel.parent / "RECORD").read_text()
        native = [line for line in record.splitlines() if re.search(r"\.so(\.|,)", line)]
        assert tags <= set(parse_tag("py3-none-linux_x86_64")), (wheel.parent.name, tags)
        assert native == [], (wheel.parent.name, sorted(map(str, tags)))
    # The native code Sealbox relies on is there for this platform.
    assert list(unzipped.glob("cryptography/hazmat/bindings/_rust*.so"))


# Lambda's python3.11 runtime runs on Amazon Linux 2: glibc 2.26.
LAMBDA_GLIBC = (2, 26)
_GLIBC_NEED = re.compile(rb"GLIBC_(\d+)\.(\d+)")
# A shared library some wheels carry hex-encoded in a module and load from a
# temporary file at import (rbcl's libsodium): an ELF header in hex.
_EMBEDDED_ELF = re.compile(rb"fromhex\(\s*'(7f454c46[0-9a-f]+)'")


def glibc_needs(elf: bytes) -> tuple[int, int]:
    """The newest ``GLIBC_x.y`` symbol version an ELF object names ((0, 0): none)."""
    return max(((int(a), int(b)) for a, b in _GLIBC_NEED.findall(elf)), default=(0, 0))


def test_glibc_needs_reads_symbol_versions() -> None:
    assert glibc_needs(b"\0GLIBC_2.2.5\0GLIBC_2.14\0GLIBC_2.33\0") == (2, 33)
    assert glibc_needs(b"no versions") == (0, 0)


def test_native_code_in_the_package_loads_on_the_lambda_runtimes_glibc(unzipped: Path) -> None:
    """A wheel's tag is a promise its build may not keep: rbcl 1.1's manylinux2014
    wheel bundles a libsodium that needs glibc 2.33 and fails to load on Lambda."""
    checked = []
    for path in unzipped.rglob("*"):
        if path.suffix == ".so" or ".so." in path.name:
            checked.append((path.name, glibc_needs(path.read_bytes())))
        elif path.suffix == ".py" and path.stat().st_size > 100_000:
            for blob in _EMBEDDED_ELF.findall(path.read_bytes()):
                checked.append(
                    (f"{path.name} (embedded)", glibc_needs(bytes.fromhex(blob.decode())))
                )
    assert any(name.startswith("_sodium") for name, _ in checked), checked
    too_new = [(name, need) for name, need in checked if need > LAMBDA_GLIBC]
    assert too_new == [], f"native code needing a newer glibc than Lambda's {LAMBDA_GLIBC}"


PRESIGNED_UPLOAD = """
import sys, requests, boto3, botocore
from moto import mock_aws
root = sys.argv[1]
assert botocore.__file__.startswith(root), botocore.__file__
from chalicelib.storage.blob_objects import S3ObjectStore
assert sys.modules["chalicelib"].__file__.startswith(root)
with mock_aws():
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="sealbox-zip-test")
    store = S3ObjectStore(s3, "sealbox-zip-test")
    blob_id = "A" * 22
    target = store.presign_put(blob_id, 3, 60)
    assert requests.put(target.url, data=b"abc", headers=target.headers).status_code == 200
    again = requests.put(target.url, data=b"abc", headers=target.headers)
    assert again.status_code == 412, again.status_code
    assert store.put_new("B" * 22, b"xyz") is not None
    assert store.put_new("B" * 22, b"xyz") is None  # IfNoneMatch: write-once
print("ok", botocore.__version__)
"""


def test_the_packaged_code_presigns_and_makes_conditional_writes_with_its_own_botocore(
    unzipped: Path,
) -> None:
    """The package's code and botocore, first on the path as on Lambda
    (/var/task precedes the runtime's packages), run the upload path on moto."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        PYTHONPATH=str(unzipped),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    done = subprocess.run(
        [sys.executable, "-c", PRESIGNED_UPLOAD, str(unzipped)],
        cwd=unzipped,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok 1.44.")
