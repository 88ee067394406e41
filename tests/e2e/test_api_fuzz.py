"""Fuzz the running API from its own OpenAPI document (schemathesis).

Every operation in ``/openapi.json`` gets generated requests, valid and
invalid, against ``sealbox local`` over HTTP.  schemathesis checks that no
request produces a 5xx, that status codes, content types and bodies match the
document, that invalid input is rejected, and that authenticated operations
refuse a request without credentials (its ignored-auth check).  Credentials
come from a real account on the stack.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
    unsupported_method,
)

from chalicelib.openapi import DOCUMENT_PATH
from client_sim.api import ApiClient
from client_sim.passwords import PASSWORD_KDF_SIMULATION, derive_password_keys
from client_sim.transport import HttpTransport
from tests.e2e.conftest import RunningStack

# 413 is how Sealbox rejects an oversized body, and how it answers a valid
# reservation over the caller's storage quota (schemathesis's default lists
# don't include it).
REJECTION_STATUSES = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
ACCEPTANCE_STATUSES = ["2xx", "3xx", 401, 403, 404, 409, 413, 429, "5xx"]
schema = schemathesis.openapi.from_path(
    str(DOCUMENT_PATH),
    config=schemathesis.config.SchemathesisConfig.from_dict(
        {
            "checks": {
                "negative_data_rejection": {"expected-statuses": REJECTION_STATUSES},
                "positive_data_acceptance": {"expected-statuses": ACCEPTANCE_STATUSES},
            }
        }
    ),
)
# The methods chalice local's request handler implements (do_GET, ...).
DEV_SERVER_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
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
    api = ApiClient(HttpTransport(local_stack.url))
    keys = derive_password_keys("fuzz-user", "fuzzing-password-123", PASSWORD_KDF_SIMULATION)
    api.register("fuzz-user", keys.login_key_b64)
    session = api.login("fuzz-user", keys.login_key_b64)
    issued = api.access_token(session.refresh_token)
    return {
        # Rotated by the renewal above; the fuzzer's own renewals spend it
        # (and a second one revokes it), so refresh routes are fuzzed for
        # their refusals after the first call.
        "refreshToken": issued.refresh_token,
        "accessToken": issued.access_token,
    }


def removes_authorization(case: Any) -> bool:
    """Whether this negative case's mutation is the missing credentials.

    schemathesis models a security scheme as a required ``Authorization``
    header; a negative case may drop it *and* mutate a query parameter into
    something still valid on the wire (``identity=false`` is a valid
    username).  Adding the credentials back would undo the one mutation that
    made the request invalid, and a correct 200 would be reported as
    "schema-violating request accepted".
    """
    data = getattr(getattr(case.meta, "phase", None), "data", None)
    for mutation in getattr(data, "mutations", None) or ():
        if (
            mutation.parameter_location == ParameterLocation.HEADER
            and (mutation.parameter or "").lower() == "authorization"
        ):
            return True
    return False


def auth_headers(case: Any, credentials: dict[str, str]) -> dict[str, str]:
    requirements = case.operation.definition.raw.get("security") or []
    for requirement in requirements:
        for scheme in requirement:
            return {"Authorization": f"Bearer {credentials[scheme]}"}
    return {}


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("SEALBOX_FUZZ_EXAMPLES", "30")),
    # The suite (and CI) replays the same examples every run, so main stays
    # green on its merits; SEALBOX_FUZZ_EXPLORE=1 draws new ones each run.
    derandomize=os.environ.get("SEALBOX_FUZZ_EXPLORE") != "1",
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_conforms_to_its_document(
    case: Any, local_stack: RunningStack, credentials: dict[str, str]
) -> None:
    if case.method.upper() not in DEV_SERVER_METHODS:
        # chalice local's development server (http.server) answers other
        # methods (TRACE, QUERY, ...) with its own 501 before the app sees
        # them; on AWS, API Gateway refuses them.  Undeclared methods are
        # covered for the app itself by tests/functional/test_methods.py.
        return
    excluded = [unsupported_method]
    if (case.method.upper(), case.operation.path) in SEMANTICALLY_CHECKED:
        excluded.append(positive_data_acceptance)
    if removes_authorization(case):
        # As generated, without credentials: it must be refused.  Then with
        # them, so the rest of the mutation still reaches the handler, which
        # must not fail or answer off the document (whether what is left is
        # still invalid once serialized, only the server can tell).
        case.call_and_validate(base_url=local_stack.url, headers={}, excluded_checks=excluded)
        excluded.append(negative_data_rejection)
    case.call_and_validate(
        base_url=local_stack.url,
        headers=auth_headers(case, credentials),
        excluded_checks=excluded,
    )
