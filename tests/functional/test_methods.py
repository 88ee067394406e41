"""Undeclared methods get 405 with ``Allow``, unknown routes 404, both in the
Sealbox error shape -- in process, under ``chalice local`` and (through the
gateway responses in ``infra/resources.json``) on API Gateway."""

from __future__ import annotations

import json

import pytest

from app import app
from chalicelib.http import HTTP_METHODS, declared_methods
from sealbox_tools.local_gateway import gateway_response
from tests.functional.test_accounts_api import assert_error

ROUTES = sorted(app.routes)
UNKNOWN = ["/", "/v2/users", "/v1", "/v1/nothing/here/at/all", "/v1/users/x", "/.env"]


@pytest.mark.parametrize("path", ROUTES)
def test_undeclared_methods_are_405(raw, path: str) -> None:
    declared = set(declared_methods(app.routes[path]))
    assert declared
    concrete = path.replace("{", "x").replace("}", "x")
    for method in HTTP_METHODS:
        if method in declared:
            continue
        reply = raw(method, concrete, {} if method in ("POST", "PUT", "PATCH") else None)
        assert reply.status == 405, (method, path)
        assert set(reply.headers["allow"].split(", ")) == declared
        if method != "HEAD":
            assert_error(reply, 405, "method_not_allowed")


def test_a_method_outside_api_gateways_set_lists_only_declared_methods(raw) -> None:
    reply = raw("TRACE", "/v1/users")
    assert_error(reply, 405, "method_not_allowed")
    assert reply.headers["allow"] == "POST"


@pytest.mark.parametrize("path", UNKNOWN)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_unknown_routes_are_404_in_the_error_shape(raw, path: str, method: str) -> None:
    """chalice local answered 403 ``{"message": "Missing Authentication
    Token"}`` (API Gateway's default) for a path no route has."""
    for headers in ({}, {"Authorization": "Bearer x"}):
        reply = raw(method, path, headers=headers)
        assert_error(reply, 404, "not_found")
        assert reply.headers["cache-control"] == "no-store"


def test_the_local_404_is_the_deployed_gateway_response(raw) -> None:
    deployed = gateway_response("MISSING_AUTHENTICATION_TOKEN")
    reply = raw("GET", "/nowhere")
    assert reply.status == deployed.status == 404
    assert json.loads(reply.body) == json.loads(deployed.body)
    for name, value in deployed.headers.items():
        assert reply.headers[name.lower()] == value
