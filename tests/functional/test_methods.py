"""Undeclared methods on every route get 405 in the Sealbox error shape."""

from __future__ import annotations

import pytest

from app import app

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ROUTES = sorted(app.routes)


@pytest.mark.parametrize("path", ROUTES)
def test_undeclared_methods_are_405(raw, path: str) -> None:
    declared = set(app.routes[path])
    concrete = path.replace("{", "x").replace("}", "x")
    for method in METHODS:
        if method in declared:
            continue
        reply = raw(method, concrete, {} if method in ("POST", "PUT", "PATCH") else None)
        assert reply.status == 405, (method, path)
        assert reply.json()["error"]["code"] == "method_not_allowed"
        assert set(reply.headers["allow"].split(", ")) == declared
