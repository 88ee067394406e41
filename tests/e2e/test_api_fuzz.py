"""Fuzz the running API from its own OpenAPI document (schemathesis).

Every operation in ``/openapi.json`` gets generated requests, valid and
invalid, against ``sealbox local`` over HTTP.  schemathesis checks that no
request produces a 5xx, that status codes, content types and bodies match the
document, that invalid input is rejected, and that authenticated operations
refuse a request without credentials (its ignored-auth check).  Credentials
come from a real account on the stack.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis

from chalicelib.openapi import DOCUMENT_PATH
from tests.e2e.conftest import RunningStack
from tests.e2e.fuzzing import FUZZ_SETTINGS, call_and_validate, make_credentials, schema_config

schema = schemathesis.openapi.from_path(str(DOCUMENT_PATH), config=schema_config())
# Operations whose inputs carry structure no schema can state: a
# schema-valid random card has no valid self-signature (nor a random group
# epoch a valid signature and chain), a random backup
# doesn't start with the backup envelope, a re-wrapped blob header must be
# an age header, a listing cursor is an opaque token only the server
# mints, and a consistency proof's `from` must not exceed its `to` (two
# parameters' relation, which OpenAPI can't state).  For these, "valid per the schema" can still
# mean 400, so the positive-data check can't apply; the negative checks, the
# 5xx check and the auth checks still run.
SEMANTICALLY_CHECKED = {
    ("POST", "/v1/cards"),
    ("PUT", "/v1/backups/{name}"),
    ("GET", "/v1/blobs"),
    ("PUT", "/v1/blobs/{blob_id}/recipients"),
    # A schema-valid blinded element is 32 random bytes, almost never a
    # canonical ristretto255 element; and oprf_key_version must be the
    # stage's current OPRF key version, which the document can't pin.
    ("POST", "/v1/oprf"),
    ("POST", "/v1/users"),
    ("PUT", "/v1/users/me/login-key"),
    # A schema-valid random epoch is not a signed epoch of the group.
    ("POST", "/v1/groups/{group_id}/epochs"),
    # Nor a random history share one an admin of the group signed.
    ("POST", "/v1/groups/{group_id}/history"),
    ("GET", "/v1/kt/consistency"),
    # A frame is served only to a request whose Accept names
    # application/octet-stream first (a header OpenAPI parameters can't
    # declare), and only for an `after` at most the group's head.
    ("GET", "/v1/groups/{group_id}/catchup"),
}


@pytest.fixture(scope="module")
def credentials(local_stack: RunningStack) -> dict[str, str]:
    return make_credentials(local_stack.url, "fuzz-user")


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_conforms_to_its_document(
    case: Any, local_stack: RunningStack, credentials: dict[str, str]
) -> None:
    semantic = (case.method.upper(), case.operation.path) in SEMANTICALLY_CHECKED
    call_and_validate(case, local_stack.url, credentials, semantic=semantic)
