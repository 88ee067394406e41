"""The OpenAPI document describes exactly the routes the app serves."""

from __future__ import annotations

import pytest

from app import app
from chalicelib.http import Auth
from chalicelib.openapi import document

SECURITY: dict[Auth, list[dict[str, list[str]]]] = {
    Auth.NONE: [],
    Auth.REFRESH: [{"refreshToken": []}],
    Auth.ACCESS: [{"accessToken": []}],
}
DOC = document()


def served() -> dict[tuple[str, str], Auth]:
    out = {}
    for path, methods in app.routes.items():
        for method, entry in methods.items():
            if getattr(entry.view_function, "sealbox_method_not_allowed", False):
                continue  # the 405 answers of answer_undeclared_methods
            out[(path, method.lower())] = getattr(entry.view_function, "sealbox_auth")  # noqa: B009
    return out


def test_document_is_openapi_3_1_with_an_error_schema() -> None:
    assert DOC["openapi"] == "3.1.0"
    assert DOC["components"]["schemas"]["Error"]["required"] == ["error"]


def test_every_served_route_is_documented_and_nothing_else() -> None:
    documented = {(path, method) for path, ops in DOC["paths"].items() for method in ops}
    assert documented == set(served())


@pytest.mark.parametrize(("route", "auth"), sorted(served().items(), key=str))
def test_security_matches_the_routes_auth(route: tuple[str, str], auth: Auth) -> None:
    path, method = route
    assert DOC["paths"][path][method]["security"] == SECURITY[auth]


@pytest.mark.parametrize(("route", "auth"), sorted(served().items(), key=str))
def test_error_responses_use_the_error_shape(route: tuple[str, str], auth: Auth) -> None:
    path, method = route
    responses = DOC["paths"][path][method]["responses"]
    assert any(code.startswith("2") for code in responses)
    for code, response in responses.items():
        if int(code) >= 400:
            assert response == {"$ref": "#/components/responses/Error"}, (path, method, code)
    if auth is not Auth.NONE:
        assert "401" in responses


def test_path_parameters_are_declared() -> None:
    for path, ops in DOC["paths"].items():
        names = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for op in ops.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, path
