"""App teams' own routes, behind Sealbox's token check, without forking ``app.py``.

An extension is a module of the app team's that defines ``api``, made with
:func:`blueprint`::

    # notes_server/routes.py
    from chalicelib.extensions import ApiRequest, ApiResponse, Auth, blueprint, services

    api = blueprint(__name__)

    @api.route("/v1/notes", methods=["GET"], auth=Auth.ACCESS)
    def list_notes(request: ApiRequest) -> ApiResponse:
        return ApiResponse(200, {"identity": request.identity})

and is named in the stage's ``SEALBOX_EXTENSIONS`` environment variable
(comma-separated module names; ``.chalice/config.json`` for a deployed
stage, the environment for ``sealbox local``).  ``app.py`` installs the
named modules when it is imported, before it gives every path its 405
answers, so an extension's routes get exactly what Sealbox's own get: the
mandatory ``auth=`` checked before the view runs (401 first, then 415),
the caller's identity as ``request.identity``, strict JSON parsing, the
error shape and the request log line.

Rules :func:`install` enforces, so an extension can't weaken the API:

* ``api`` must be an :class:`~chalicelib.http.ApiBlueprint` (made by
  :func:`blueprint`), and every route on it must have come through its
  ``route`` decorator (a plain Chalice route would skip the token check);
* an extension may not declare a path Sealbox's own routes serve (no
  extra method on ``/v1/blobs``, no replacing ``/v1/me``);
* what a route declares with ``openapi=`` must be publishable: installed
  routes appear in the served ``/openapi.json``, their security, path
  parameters and error responses stated by Sealbox (:mod:`chalicelib.openapi`).

Nothing here talks to AWS, and an extension module must not either at
import time (it is imported when the Lambda container starts).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from typing import Any

from chalice.app import Chalice

from chalicelib import openapi, wiring
from chalicelib.http import (
    ApiBlueprint,
    ApiRequest,
    ApiResponse,
    Auth,
    Principal,
    answer_undeclared_methods,
)

__all__ = [
    "EXTENSIONS_ENV",
    "ApiBlueprint",
    "ApiRequest",
    "ApiResponse",
    "Auth",
    "ExtensionError",
    "Principal",
    "blueprint",
    "install",
    "install_from_environment",
    "installed",
    "services",
]

#: The environment variable naming the extension modules (comma-separated).
EXTENSIONS_ENV = "SEALBOX_EXTENSIONS"

# Set on the Chalice app: the extension modules installed on it, in order.
_INSTALLED_ATTR = "sealbox_extensions"


class ExtensionError(ValueError):
    """An extension module that can't be installed (named in the message)."""


def blueprint(import_name: str) -> ApiBlueprint:
    """A blueprint whose routes are checked by Sealbox's authenticators.

    Its ``route`` decorator requires ``auth=`` (:class:`Auth`); an
    ``Auth.ACCESS`` route's view reads the caller as ``request.identity``.
    """
    return ApiBlueprint(import_name, wiring.authenticator)


def services() -> wiring.Container:
    """Sealbox's services for this warm container (``.blobs``, ``.cards``, ...).

    Call it inside a view, never at import time: the container builds its
    AWS clients on first use.
    """
    return wiring.container()


def installed(app: Chalice) -> tuple[str, ...]:
    """The extension modules installed on ``app``, in order."""
    return tuple(getattr(app, _INSTALLED_ATTR, ()))


def install(app: Chalice, modules: Iterable[str]) -> tuple[str, ...]:
    """Register each module's ``api`` blueprint on ``app``; return the new ones.

    Idempotent: a module already installed is skipped.  Paths the new
    routes add get the same 405 answers as Sealbox's own paths, and their
    operations join the document ``GET /openapi.json`` serves.

    Raises:
        ExtensionError: a module without an ``api`` made by :func:`blueprint`,
            a route that did not come through ``api.route`` (so nobody
            checked its ``auth=``), a path Sealbox itself serves, or an
            ``openapi=`` that can't be published (the module is not installed).
        ImportError: a module that can't be imported.
    """
    done = list(installed(app))
    added: list[str] = []
    for name in (m.strip() for m in modules):
        if not name or name in done:
            continue
        module = importlib.import_module(name)
        api = getattr(module, "api", None)
        if not isinstance(api, ApiBlueprint):
            raise ExtensionError(
                f"extension {name}: define `api = chalicelib.extensions.blueprint(__name__)`"
            )
        _register_checked(name, api, app)
        done.append(name)
        added.append(name)
    setattr(app, _INSTALLED_ATTR, tuple(done))
    if added:
        answer_undeclared_methods(app)
    return tuple(added)


def install_from_environment(app: Chalice) -> tuple[str, ...]:
    """:func:`install` the modules named in ``SEALBOX_EXTENSIONS``, if any."""
    return install(app, os.environ.get(EXTENSIONS_ENV, "").split(","))


def _register_checked(name: str, api: ApiBlueprint, app: Chalice) -> None:
    """Register ``api`` on ``app`` and publish its operations; undo it and
    raise if a route skips the auth check, lands on a path Sealbox serves or
    declares an ``openapi=`` that can't be published.

    Registering for real and rolling back, rather than trying the blueprint
    on a scratch app first: Chalice consumes a blueprint's route arguments
    when it registers them (a second registration gets ``GET`` for every
    route), so a blueprint can only be registered once.

    Raises:
        ExtensionError: as :func:`install`.
    """
    before = {path: dict(entries) for path, entries in app.routes.items()}

    def rollback() -> None:
        app.routes.clear()
        app.routes.update(before)

    try:
        app.register_blueprint(api.blueprint)
    except ValueError as exc:  # Chalice: a duplicate method on an existing path
        rollback()
        raise ExtensionError(f"extension {name}: {exc}".splitlines()[0]) from exc
    added = [
        (path, method, entry)
        for path, entries in app.routes.items()
        for method, entry in entries.items()
        if method not in before.get(path, {})
    ]
    problem = None
    if not added:
        problem = "its blueprint declares no route"
    for path, method, entry in added:
        if path in before:
            problem = f"{path} is a path Sealbox serves"
        elif not isinstance(_auth_of(entry), Auth):
            problem = f"{method} {path} was not declared with api.route(auth=...)"
        if problem:
            break
    if problem is None:
        try:
            document = openapi.with_operations(
                openapi.served_document(app),
                {
                    (path, method.lower()): openapi.extension_operation(
                        path,
                        method,
                        security=_auth_of(entry).value,
                        declared=getattr(entry.view_function, "sealbox_openapi", None),
                        module=name,
                    )
                    for path, method, entry in added
                },
            )
        except openapi.ExtensionDocError as exc:
            problem = f"openapi= {exc}"
    if problem:
        rollback()
        raise ExtensionError(f"extension {name}: {problem}")
    openapi.serve(app, document)


def _auth_of(entry: Any) -> Any:
    """The ``Auth`` an ``api.route`` view was declared with (``None`` for a
    view that didn't come through it)."""
    return getattr(entry.view_function, "sealbox_auth", None)
