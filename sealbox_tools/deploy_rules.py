"""Rules every deployed resource follows, checked on the whole template.

A first deploy to a fresh account must succeed, and a failed one must be
retryable.  Two things break that and are easy to add by accident:

* a fixed physical name: a bucket name is global, and a table, queue,
  secret or log group name is unique per account and region, so a literal
  name collides with another stack, another account's bucket, or the
  resource a failed create left behind;
* ``DeletionPolicy: Retain`` on a stateful resource: a failed *first*
  create keeps it, and the retry fails on "already exists".  Stateful
  resources use ``RetainExceptOnCreate`` (kept on stack deletion, removed
  when their own creation is rolled back).

The rules read only the template, so resources added later are held to them
without naming them here.  Each problem is a sentence saying what to change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sealbox_tools.deploy_template import NAME_PROPERTIES

#: Resource types holding data that must survive a stack deletion.
STATEFUL_TYPES = frozenset(
    {
        "AWS::DynamoDB::Table",
        "AWS::DynamoDB::GlobalTable",
        "AWS::S3::Bucket",
        "AWS::SecretsManager::Secret",
        "AWS::KMS::Key",
        "AWS::RDS::DBInstance",
        "AWS::RDS::DBCluster",
        "AWS::EFS::FileSystem",
        "AWS::Cognito::UserPool",
    }
)
#: Names that must be unique across all accounts (S3 bucket names are global).
GLOBAL_NAME_TYPES = frozenset({"AWS::S3::Bucket"})
#: Stateful types with a deletion-protection switch, and its property.
DELETION_PROTECTION = {
    "AWS::DynamoDB::Table": "DeletionProtectionEnabled",
    "AWS::RDS::DBInstance": "DeletionProtection",
    "AWS::RDS::DBCluster": "DeletionProtection",
    "AWS::Cognito::UserPool": "DeletionProtection",
}

#: The parameter that turns deletion protection on (``make deploy`` keeps it
#: off only while it creates the stack, so a failed first create rolls back).
PROTECTION_REF = {"Ref": "DeletionProtection"}


def _sub_text(value: Any) -> str | None:
    """The template string of an ``Fn::Sub`` (either form), else None."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        arg = value["Fn::Sub"]
        if isinstance(arg, str):
            return arg
        if isinstance(arg, list) and arg and isinstance(arg[0], str):
            return arg[0]
    return None


def naming_problems(template: Mapping[str, Any]) -> list[str]:
    """Resources whose physical name could collide on a fresh or second deploy.

    A name is acceptable when it is left to CloudFormation (absent), or is an
    ``Fn::Sub`` containing ``${AWS::StackName}`` (unique per account and
    region) -- or, for globally named types, ``${AWS::AccountId}`` and
    ``${AWS::Region}`` plus ``${Stage}`` or ``${AWS::StackName}``.  Other
    intrinsics (``Ref``/``Fn::GetAtt`` of a resource, ``Fn::Join``) are
    accepted only when they contain ``AWS::StackName`` or a resource's name.
    """
    problems = []
    resources = template.get("Resources", {})
    for logical_id, resource in resources.items():
        kind = resource.get("Type")
        if kind is None:
            continue
        prop = NAME_PROPERTIES.get(kind)
        if prop is None:
            continue
        value = resource.get("Properties", {}).get(prop)
        if value is None:
            continue
        text = _sub_text(value)
        if text is None:
            if isinstance(value, str):
                problems.append(
                    f"{logical_id} ({kind}): {prop} is the fixed name {value!r}; leave it out "
                    'or use {"Fn::Sub": "${AWS::StackName}-..."}'
                )
                continue
            text = json.dumps(value)
            if "AWS::StackName" in text or any(f'"{other}"' in text for other in resources):
                continue
            problems.append(f"{logical_id} ({kind}): {prop} {text} is not unique per stack")
            continue
        if kind in GLOBAL_NAME_TYPES:
            missing = [p for p in ("${AWS::AccountId}", "${AWS::Region}") if p not in text]
            if "${Stage}" not in text and "${AWS::StackName}" not in text:
                missing.append("${Stage} or ${AWS::StackName}")
            if missing:
                problems.append(
                    f"{logical_id} ({kind}): the global name {text!r} lacks {', '.join(missing)}"
                )
        elif "${AWS::StackName}" not in text and not any(
            "${" + other + "}" in text for other in resources
        ):
            problems.append(
                f"{logical_id} ({kind}): the name {text!r} is the same for every stack in the "
                "account and region; include ${AWS::StackName}"
            )
    return problems


def retention_problems(template: Mapping[str, Any]) -> list[str]:
    """Resources whose deletion policy blocks a retry or loses data.

    * no resource uses ``DeletionPolicy: Retain`` (a failed first create
      would leave it behind): use ``RetainExceptOnCreate``;
    * every stateful resource states ``DeletionPolicy: RetainExceptOnCreate``
      (or ``Snapshot``) and ``UpdateReplacePolicy: Retain`` (or
      ``Snapshot``);
    * a stateful type AWS can protect from deletion has protection on.
    """
    problems = []
    for logical_id, resource in template.get("Resources", {}).items():
        kind = resource.get("Type")
        deletion = resource.get("DeletionPolicy")
        if deletion == "Retain":
            problems.append(
                f"{logical_id}: DeletionPolicy Retain keeps it when its first create fails and "
                "the retry then fails on 'already exists'; use RetainExceptOnCreate"
            )
        if kind not in STATEFUL_TYPES:
            continue
        if deletion not in ("RetainExceptOnCreate", "Snapshot"):
            problems.append(
                f"{logical_id} ({kind}) holds data: set DeletionPolicy RetainExceptOnCreate"
            )
        if resource.get("UpdateReplacePolicy") not in ("Retain", "Snapshot"):
            problems.append(
                f"{logical_id} ({kind}) holds data: set UpdateReplacePolicy Retain so a "
                "replacement keeps the old copy"
            )
        switch = DELETION_PROTECTION.get(str(kind))
        if switch and resource.get("Properties", {}).get(switch) not in (True, PROTECTION_REF):
            problems.append(
                f"{logical_id} ({kind}): set {switch} to {json.dumps(PROTECTION_REF)} "
                "(on, except while `make deploy` creates the stack)"
            )
    return problems
