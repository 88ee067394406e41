"""Which IAM actions on which resources an AWS call needs, and whether a policy allows them.

Two small pieces used by the tests that derive the functions' policies from
what they call (tests/functional/test_iam_from_calls.py):

* :func:`requirements` maps one botocore call (service, operation,
  parameters) to the ``(action, resource ARN)`` pairs IAM authorizes it by.
  Most operations are checked as ``service:Operation`` on the named
  resource; the exceptions (S3's object-version, listing and multipart
  calls, DynamoDB's batch and transaction calls, presigned URLs) are spelled
  out, and an operation this module does not know raises rather than being
  guessed.
* :func:`evaluate` is a minimal identity-policy evaluator: explicit ``Deny``
  wins, else any ``Allow`` whose ``Action``/``NotAction`` and
  ``Resource``/``NotResource`` match (``*`` and ``?`` wildcards, actions
  case-insensitive) and whose ``Condition`` holds.  Conditions support the
  string, ARN and Bool operators with the context keys the caller supplies;
  any other operator raises :class:`UnsupportedPolicy`.  There are no
  resource policies, boundaries or SCPs: it answers "does this identity
  policy grant it", which is what a function's role must do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class UnsupportedPolicy(ValueError):
    """The policy uses something this evaluator does not implement."""


class UnknownOperation(ValueError):
    """No IAM mapping for this AWS operation: add one to :func:`requirements`."""


@dataclass(frozen=True)
class Need:
    """One IAM authorization an AWS call needs."""

    action: str
    resource: str


@dataclass(frozen=True)
class Decision:
    allowed: bool
    statement: str | None  # Sid (or index) of the statement that decided


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, *, case: bool) -> bool:
    # IAM wildcards: * any run, ? one character; nothing else is special
    # (not fnmatch: its [...] classes are not IAM syntax).
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


_CONDITION_TESTS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda want, got: got == want,
    "StringNotEquals": lambda want, got: got != want,
    "StringEqualsIgnoreCase": lambda want, got: got.lower() == want.lower(),
    "StringLike": lambda want, got: _glob(want, got, case=True),
    "StringNotLike": lambda want, got: not _glob(want, got, case=True),
    "ArnEquals": lambda want, got: got == want,
    "ArnLike": lambda want, got: _glob(want, got, case=True),
    "ArnNotEquals": lambda want, got: got != want,
    "ArnNotLike": lambda want, got: not _glob(want, got, case=True),
    "Bool": lambda want, got: got.lower() == str(want).lower(),
}
_NEGATED = {"StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike"}


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    for operator, tests in condition.items():
        if operator not in _CONDITION_TESTS:
            raise UnsupportedPolicy(f"condition operator {operator} is not supported")
        test = _CONDITION_TESTS[operator]
        for key, wanted in tests.items():
            got = context.get(key)
            if got is None:
                # A missing key fails every operator but the negated ones.
                if operator in _NEGATED:
                    continue
                return False
            options = [str(w) for w in _as_list(wanted)]
            if operator in _NEGATED:
                if not all(test(w, got) for w in options):
                    return False
            elif not any(test(w, got) for w in options):
                return False
    return True


def _matches(statement: Mapping[str, Any], need: Need, context: Mapping[str, str]) -> bool:
    if "Action" in statement:
        if not any(_glob(a, need.action, case=False) for a in _as_list(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(_glob(a, need.action, case=False) for a in _as_list(statement["NotAction"])):
            return False
    else:
        raise UnsupportedPolicy("a statement without Action or NotAction")
    if "Resource" in statement:
        if not any(_glob(r, need.resource, case=True) for r in _as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement:
        if any(_glob(r, need.resource, case=True) for r in _as_list(statement["NotResource"])):
            return False
    else:
        raise UnsupportedPolicy("a statement without Resource or NotResource")
    for key in statement:
        if key not in {
            "Sid",
            "Effect",
            "Action",
            "NotAction",
            "Resource",
            "NotResource",
            "Condition",
        }:
            raise UnsupportedPolicy(f"statement element {key} is not supported")
    return _condition_holds(statement.get("Condition", {}), context)


def evaluate(
    policy: Mapping[str, Any], need: Need, context: Mapping[str, str] | None = None
) -> Decision:
    """Does the identity ``policy`` allow ``need``? (explicit Deny wins)."""
    allow: str | None = None
    for index, statement in enumerate(_as_list(policy.get("Statement", []))):
        if not isinstance(statement, Mapping):
            raise UnsupportedPolicy("a statement that is not an object")
        if not _matches(statement, need, context or {}):
            continue
        name = str(statement.get("Sid") or index)
        if statement.get("Effect") == "Deny":
            return Decision(False, name)
        if statement.get("Effect") == "Allow" and allow is None:
            allow = name
    return Decision(allow is not None, allow)


def grants(policy: Mapping[str, Any]) -> set[tuple[str, str]]:
    """Every (statement Sid, action) an Allow statement lists."""
    out = set()
    for index, statement in enumerate(_as_list(policy.get("Statement", []))):
        if statement.get("Effect") == "Allow":
            for action in _as_list(statement.get("Action", [])):
                out.add((str(statement.get("Sid") or index), action))
    return out


# --- from botocore calls to IAM needs ---------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where the calls go: partition, region and account of the ARNs."""

    region: str
    account: str
    partition: str = "aws"


def _table(place: Place, name: str, index: str | None = None) -> str:
    if name.startswith("arn:"):
        return name
    arn = f"arn:{place.partition}:dynamodb:{place.region}:{place.account}:table/{name}"
    return f"{arn}/index/{index}" if index else arn


def _secret(place: Place, secret_id: str) -> str:
    if secret_id.startswith("arn:"):
        return secret_id
    # AWS appends six random characters to a secret's name in its ARN.
    prefix = f"arn:{place.partition}:secretsmanager:{place.region}:{place.account}"
    return f"{prefix}:secret:{secret_id}-AbCdEf"


def _queue(place: Place, url_or_name: str) -> str:
    name = url_or_name.rstrip("/").rsplit("/", 1)[-1]
    return f"arn:{place.partition}:sqs:{place.region}:{place.account}:{name}"


def _object(place: Place, bucket: str, key: str) -> str:
    return f"arn:{place.partition}:s3:::{bucket}/{key}"


def _bucket(place: Place, bucket: str) -> str:
    return f"arn:{place.partition}:s3:::{bucket}"


_S3_OBJECT = {
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListParts": "s3:ListMultipartUploadParts",
}
_S3_VERSIONED = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "DeleteObject": "s3:DeleteObject",
}
_S3_BUCKET = {
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
}
_DDB_ITEM = {
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "DescribeTable",
}
_TRANSACT = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def _versioned(action: str, params: Mapping[str, Any]) -> str:
    # s3:GetObjectVersion / s3:DeleteObjectVersion when a version is named.
    return action + "Version" if params.get("VersionId") else action


def _copy_source(place: Place, source: Any) -> Need:
    if isinstance(source, Mapping):
        bucket, key, version = source["Bucket"], source["Key"], source.get("VersionId")
    else:
        text = str(source).lstrip("/")
        path, _, query = text.partition("?versionId=")
        bucket, _, key = path.partition("/")
        version = query or None
    action = "s3:GetObjectVersion" if version else "s3:GetObject"
    return Need(action, _object(place, bucket, key))


def requirements(
    place: Place, service: str, operation: str, params: Mapping[str, Any]
) -> list[Need]:
    """The IAM authorizations a call to ``service.operation(**params)`` needs.

    Raises:
        UnknownOperation: the operation has no mapping here yet.
    """
    if service == "s3":
        bucket = str(params.get("Bucket", ""))
        key = str(params.get("Key", ""))
        if operation in _S3_OBJECT:
            return [Need(_S3_OBJECT[operation], _object(place, bucket, key))]
        if operation in _S3_VERSIONED:
            return [Need(_versioned(_S3_VERSIONED[operation], params), _object(place, bucket, key))]
        if operation in _S3_BUCKET:
            return [Need(_S3_BUCKET[operation], _bucket(place, bucket))]
        if operation in ("CopyObject", "UploadPartCopy"):
            return [
                Need("s3:PutObject", _object(place, bucket, key)),
                _copy_source(place, params["CopySource"]),
            ]
        if operation == "DeleteObjects":
            return [
                Need(_versioned("s3:DeleteObject", obj), _object(place, bucket, obj["Key"]))
                for obj in params["Delete"]["Objects"]
            ]
    elif service == "dynamodb":
        if operation in _DDB_ITEM:
            return [
                Need(
                    f"dynamodb:{operation}",
                    _table(place, str(params["TableName"]), params.get("IndexName")),
                )
            ]
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [Need(f"dynamodb:{operation}", _table(place, t)) for t in params["RequestItems"]]
        if operation in ("TransactWriteItems", "TransactGetItems"):
            needs = []
            for item in params["TransactItems"]:
                ((kind, body),) = item.items()
                needs.append(Need(f"dynamodb:{_TRANSACT[kind]}", _table(place, body["TableName"])))
            return needs
    elif service == "secretsmanager":
        if "SecretId" in params:
            return [Need(f"secretsmanager:{operation}", _secret(place, str(params["SecretId"])))]
    elif service == "sqs":
        if "QueueUrl" in params:
            return [Need(f"sqs:{operation}", _queue(place, str(params["QueueUrl"])))]
        if operation == "GetQueueUrl":
            return [Need("sqs:GetQueueUrl", _queue(place, str(params["QueueName"])))]
    raise UnknownOperation(f"{service}:{operation} has no IAM mapping in sealbox_tools/iam.py")


@dataclass(frozen=True)
class Call:
    """One AWS call a function made (or a URL it presigned)."""

    function: str
    service: str
    operation: str
    params: Mapping[str, Any]


def denied(
    policy: Mapping[str, Any], place: Place, calls: Iterable[Call]
) -> list[tuple[Call, Need]]:
    """Each call's needs the policy does not allow."""
    return [
        (call, need)
        for call in calls
        for need in requirements(place, call.service, call.operation, call.params)
        if not evaluate(policy, need).allowed
    ]


def unused(policy: Mapping[str, Any], place: Place, calls: Sequence[Call]) -> set[tuple[str, str]]:
    """(Sid, action) grants no recorded call needed."""
    needs = [n for c in calls for n in requirements(place, c.service, c.operation, c.params)]
    used = set()
    for sid, action in grants(policy):
        single = {"Statement": [s for s in policy["Statement"] if s.get("Sid") == sid]}
        single = {"Statement": [{**s, "Action": action} for s in single["Statement"]]}
        if any(evaluate(single, need).allowed for need in needs):
            used.add((sid, action))
    return grants(policy) - used


__all__ = [
    "Call",
    "Decision",
    "Need",
    "Place",
    "UnknownOperation",
    "UnsupportedPolicy",
    "denied",
    "evaluate",
    "grants",
    "requirements",
    "unused",
]
