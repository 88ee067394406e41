"""Extension routes' OpenAPI operations (chalicelib.openapi.extension_operation).

What an app team declares is kept; what Sealbox's edge decides (security,
path parameters, the error shape) is Sealbox's to state, whatever the team
wrote.
"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib import openapi
from chalicelib.openapi import ExtensionDocError, extension_operation, with_operations

ERROR = {"$ref": "#/components/responses/Error"}


def operation(path: str = "/v1/notes", method: str = "get", **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("security", "access")
    kwargs.setdefault("declared", None)
    kwargs.setdefault("module", "notes_server.routes")
    return extension_operation(path, method, **kwargs)


def test_an_undescribed_route_still_gets_security_errors_and_a_success() -> None:
    op = operation()
    assert op["security"] == [{"accessToken": []}]
    assert op["x-sealbox-extension"] == "notes_server.routes"
    assert set(op["responses"]) == {"200", "400", "401", "500", "503"}
    assert all(op["responses"][code] == ERROR for code in ("400", "401", "500", "503"))
    assert "parameters" not in op


def test_security_follows_the_routes_auth() -> None:
    assert operation(security="none")["security"] == []
    assert "401" not in operation(security="none")["responses"]
    assert operation(security="refresh")["security"] == [{"refreshToken": []}]


def test_body_methods_document_the_body_refusals() -> None:
    assert {"413", "415"} <= set(operation(method="post")["responses"])
    assert {"413", "415"} <= set(operation(method="PUT")["responses"])
    assert not {"413", "415"} & set(operation(method="delete")["responses"])


def test_every_path_parameter_is_declared_even_when_the_team_forgot() -> None:
    declared = {"parameters": [{"name": "a", "in": "path", "schema": {"pattern": "^x$"}}]}
    op = operation("/v1/notes/{a}/{b}", declared=declared)
    by_name = {p["name"]: p for p in op["parameters"]}
    assert by_name["a"] == {
        "name": "a",
        "in": "path",
        "required": True,
        "schema": {"pattern": "^x$"},
    }
    assert by_name["b"]["in"] == "path"
    assert by_name["b"]["required"] is True


def test_declared_errors_get_the_error_shape_whatever_the_team_wrote() -> None:
    declared = {
        "summary": "s",
        "responses": {201: {"description": "made"}, "404": {"description": "custom body"}},
    }
    op = operation(method="post", declared=declared)
    assert op["summary"] == "s"
    assert op["responses"]["201"] == {"description": "made"}
    assert op["responses"]["404"] == ERROR
    assert "200" not in op["responses"]  # a declared 2xx replaces the default


@pytest.mark.parametrize(
    ("declared", "match"),
    [
        # A team can't document its route as public, nor hide the token check.
        ({"security": []}, "may not set"),
        ({"x-anything": 1}, "may not set"),
        ({"parameters": [{"name": "zz", "in": "path"}]}, "no path parameter"),
        ({"parameters": [{"name": "c", "in": "cookie"}]}, "is in 'cookie'"),
        ({"parameters": ["limit"]}, "object with a name"),
        ({"responses": {"2xx": {"description": "x"}}}, "response status"),
        ({"responses": {"99": {"description": "x"}}}, "response status"),
    ],
)
def test_what_can_not_be_published_is_refused(declared: dict[str, Any], match: str) -> None:
    with pytest.raises(ExtensionDocError, match=match):
        operation(declared=declared)


def test_merging_copies_and_refuses_collisions() -> None:
    base = openapi.document()
    before = len(base["paths"])
    merged = with_operations(base, {("/v1/notes", "get"): operation()})
    assert "/v1/notes" in merged["paths"]
    assert len(base["paths"]) == before
    with pytest.raises(ExtensionDocError, match="already documented"):
        with_operations(base, {("/v1/me", "get"): operation("/v1/me")})
    taken = base["paths"]["/v1/me"]["get"]["operationId"]
    with pytest.raises(ExtensionDocError, match="is taken"):
        with_operations(
            base, {("/v1/x", "get"): operation("/v1/x", declared={"operationId": taken})}
        )


def test_the_served_document_is_sealboxs_until_an_extension_is_served() -> None:
    class App:
        pass

    app = App()
    assert openapi.served_document(app) is openapi.document()
    openapi.serve(app, {"paths": {}})
    assert openapi.served_document(app) == {"paths": {}}
