"""The OpenAPI 3.1 document of every route, served at ``GET /openapi.json``.

Hand-written JSON next to this module, read once per warm container.  A test
holds it to the app: every route Chalice knows appears here with the same
methods and the security scheme its ``Auth`` declares, and nothing else does.

App teams' extension routes (chalicelib/extensions.py) are added to the
served document when they are installed: each operation is built from what
the route declared (``openapi=``) and what Sealbox's edge guarantees
(security, path parameters, the error shape), by :func:`extension_operation`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

DOCUMENT_PATH = Path(__file__).with_name("openapi.json")


# Set on a Chalice app that serves more than Sealbox's routes: its document.
_SERVED_ATTR = "sealbox_openapi_document"


@cache
def document() -> dict[str, Any]:
    """The parsed document (shared; callers must not mutate it)."""
    loaded: dict[str, Any] = json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))
    return loaded


def served_document(app: object) -> dict[str, Any]:
    """The document ``app`` serves: :func:`document`, or what :func:`serve`
    set on it (shared; callers must not mutate it)."""
    served: dict[str, Any] | None = getattr(app, _SERVED_ATTR, None)
    return served if served is not None else document()


def serve(app: object, served: dict[str, Any]) -> None:
    """Make ``served`` the document ``app`` answers ``GET /openapi.json`` with."""
    setattr(app, _SERVED_ATTR, served)


# --- App teams' extension routes (chalicelib/extensions.py) ---------------

#: The OpenAPI Operation fields an extension route may declare with
#: ``api.route(..., openapi={...})``.  Security, the path parameters' presence
#: and the error responses are Sealbox's to state, because Sealbox's edge
#: produces them: an extension can't document a route as public that the
#: token check guards, nor an error body other than the one it gets.
EXTENSION_FIELDS = frozenset(
    {"summary", "description", "operationId", "tags", "parameters", "requestBody", "responses"}
)
#: The OpenAPI security requirement of each ``Auth`` value (by its value).
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "none": [],
    "refresh": [{"refreshToken": []}],
    "access": [{"accessToken": []}],
}
#: Marks an operation an extension added, naming its module.
EXTENSION_MARK = "x-sealbox-extension"
# The errors Sealbox's edge itself can answer on any route (a malformed query
# or body is a 400, anything unexpected a 500, an AWS outage a 503), on a
# route behind a token (401), and on a route that takes a body (413, 415).
_EDGE_ERRORS = ("400", "500", "503")
_BODY_METHODS = frozenset({"post", "put", "patch"})
_PARAMETER_PLACES = frozenset({"path", "query", "header"})


class ExtensionDocError(ValueError):
    """An extension route's ``openapi=`` can't be published as declared."""


def extension_operation(
    path: str,
    method: str,
    *,
    security: str,
    declared: Mapping[str, Any] | None,
    module: str,
) -> dict[str, Any]:
    """The OpenAPI operation of one extension route.

    ``declared`` is what the route's ``openapi=`` said (or ``None``): its
    fields are kept, its error responses (status >= 400) become Sealbox's
    error shape, and without a 2xx response the route is documented as a
    200 with an unspecified body.  Sealbox adds the security requirement of
    ``security`` (an ``Auth`` value), every path parameter the template has
    and the errors its edge answers.

    Raises:
        ExtensionDocError: a field outside :data:`EXTENSION_FIELDS`, a
            parameter in an unknown place or naming a path parameter the
            path doesn't have, or a response status that isn't one.
    """
    fragment = dict(declared or {})
    unknown = sorted(set(fragment) - EXTENSION_FIELDS)
    if unknown:
        raise ExtensionDocError(f"{method.upper()} {path}: openapi= may not set {unknown}")
    template = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    parameters = [_parameter(p, template, path) for p in fragment.pop("parameters", [])]
    named = {p["name"] for p in parameters if p["in"] == "path"}
    parameters += [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in template
        if name not in named
    ]
    responses: dict[str, Any] = {}
    for status, response in dict(fragment.pop("responses", {})).items():
        code = str(status)
        if not (code.isdigit() and len(code) == 3 and 200 <= int(code) <= 599):
            raise ExtensionDocError(f"{method.upper()} {path}: response status {status!r}")
        responses[code] = _ERROR_REF if int(code) >= 400 else response
    if not any(code.startswith("2") for code in responses):
        responses["200"] = {"description": "Success (the extension did not describe its reply)."}
    errors = list(_EDGE_ERRORS)
    if security != "none":
        errors.append("401")
    if method.lower() in _BODY_METHODS:
        errors += ["413", "415"]
    for code in errors:
        responses[code] = _ERROR_REF
    operation: dict[str, Any] = {**fragment, "security": SECURITY[security]}
    if parameters:
        operation["parameters"] = parameters
    operation["responses"] = dict(sorted(responses.items()))
    operation[EXTENSION_MARK] = module
    return operation


def with_operations(
    base: Mapping[str, Any], operations: Mapping[tuple[str, str], dict[str, Any]]
) -> dict[str, Any]:
    """A copy of the document ``base`` with ``operations`` (by ``(path,
    method)``) added.

    Raises:
        ExtensionDocError: an operation already in ``base``, or an
            ``operationId`` another operation has.
    """
    merged = copy.deepcopy(dict(base))
    paths: dict[str, dict[str, Any]] = merged.setdefault("paths", {})
    ids = {op.get("operationId") for ops in paths.values() for op in ops.values()} - {None}
    for (path, method), operation in operations.items():
        ops = paths.setdefault(path, {})
        if method in ops:
            raise ExtensionDocError(f"{method.upper()} {path} is already documented")
        op_id = operation.get("operationId")
        if op_id is not None and op_id in ids:
            raise ExtensionDocError(f"{method.upper()} {path}: operationId {op_id!r} is taken")
        ids.add(op_id)
        ops[method] = copy.deepcopy(operation)
    return merged


_ERROR_REF = {"$ref": "#/components/responses/Error"}


def _parameter(parameter: Any, template: list[str], path: str) -> dict[str, Any]:
    if not isinstance(parameter, Mapping) or not isinstance(parameter.get("name"), str):
        raise ExtensionDocError(f"{path}: a parameter must be an object with a name")
    place = parameter.get("in")
    if place not in _PARAMETER_PLACES:
        raise ExtensionDocError(f"{path}: parameter {parameter['name']!r} is in {place!r}")
    if place == "path" and parameter["name"] not in template:
        raise ExtensionDocError(f"{path} has no path parameter {parameter['name']!r}")
    return {**parameter, "required": True} if place == "path" else dict(parameter)
