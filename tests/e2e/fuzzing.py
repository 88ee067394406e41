"""What the two fuzz tests share: statuses, methods and credentials.

``test_api_fuzz`` fuzzes Sealbox's own document; ``test_extension_fuzz`` an
app team's extension routes as the stack serves them.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
    unsupported_method,
)

from client_sim.api import ApiClient
from client_sim.passwords import PASSWORD_KDF_SIMULATION, derive_password_keys
from client_sim.transport import HttpTransport

# 413 is how Sealbox rejects an oversized body, and how it answers a valid
# reservation over the caller's storage quota (schemathesis's default lists
# don't include it).
REJECTION_STATUSES = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
ACCEPTANCE_STATUSES = ["2xx", "3xx", 401, 403, 404, 409, 413, 429, "5xx"]
# The methods chalice local's request handler implements (do_GET, ...).
DEV_SERVER_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def make_credentials(url: str, username: str) -> dict[str, str]:
    """A fresh account on the stack at ``url``: its tokens by security scheme."""
    api = ApiClient(HttpTransport(url))
    keys = derive_password_keys(username, "fuzzing-password-123", PASSWORD_KDF_SIMULATION)
    api.register(username, keys.login_key_b64)
    session = api.login(username, keys.login_key_b64)
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


def schema_config() -> Any:
    """schemathesis's configuration with Sealbox's expected statuses."""
    return schemathesis.config.SchemathesisConfig.from_dict(
        {
            "checks": {
                "negative_data_rejection": {"expected-statuses": REJECTION_STATUSES},
                "positive_data_acceptance": {"expected-statuses": ACCEPTANCE_STATUSES},
            }
        }
    )


FUZZ_SETTINGS = settings(
    max_examples=int(os.environ.get("SEALBOX_FUZZ_EXAMPLES", "30")),
    # The suite (and CI) replays the same examples every run, so main stays
    # green on its merits; SEALBOX_FUZZ_EXPLORE=1 draws new ones each run.
    derandomize=os.environ.get("SEALBOX_FUZZ_EXPLORE") != "1",
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def call_and_validate(
    case: Any, base_url: str, credentials: dict[str, str], *, semantic: bool = False
) -> None:
    """Send ``case`` to ``base_url`` and run schemathesis's checks on the answer.

    ``semantic``: the operation's input carries structure its schema can't
    state, so a schema-valid request may still be a 400 (no positive-data
    check).
    """
    if case.method.upper() not in DEV_SERVER_METHODS:
        # chalice local's development server (http.server) answers other
        # methods (TRACE, QUERY, ...) with its own 501 before the app sees
        # them; on AWS, API Gateway refuses them.  Undeclared methods are
        # covered for the app itself by tests/functional/test_methods.py.
        return
    excluded = [unsupported_method]
    if semantic:
        excluded.append(positive_data_acceptance)
    if removes_authorization(case):
        # As generated, without credentials: it must be refused.  Then with
        # them, so the rest of the mutation still reaches the handler, which
        # must not fail or answer off the document (whether what is left is
        # still invalid once serialized, only the server can tell).
        case.call_and_validate(base_url=base_url, headers={}, excluded_checks=excluded)
        excluded.append(negative_data_rejection)
    case.call_and_validate(
        base_url=base_url,
        headers=auth_headers(case, credentials),
        excluded_checks=excluded,
    )
