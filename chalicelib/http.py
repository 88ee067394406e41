"""The HTTP edge: one route decorator, one error table, one body parser.

Every route is declared through :meth:`ApiBlueprint.route`, whose ``auth``
argument is required: a route can't be added without saying which bearer
credential protects it, and the credential is checked before the view runs.
Views receive an :class:`ApiRequest` and return an :class:`ApiResponse`;
domain errors raised anywhere below become ``{"error": {"code", "message"}}``
bodies here, and anything unexpected becomes a bare 500 ``internal_error``
with the exception logged by type and location only.
"""

from __future__ import annotations

import enum
import json
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalice.app import Blueprint, Chalice, Request, Response, RouteEntry

from chalicelib.errors import (
    InvalidEncoding,
    InvalidRequest,
    MethodNotAllowed,
    NotAcceptable,
    PayloadTooLarge,
    SealboxError,
    Unauthorized,
    UnsupportedMediaType,
)
from chalicelib.logs import log_event, log_exception
from chalicelib.wire.strictjson import NotUTF8, StrictJSONError, loads_strict

# Bearer credentials are bounded before any parsing.  Access JWTs are ~600
# bytes; refresh tokens are 47.
MAX_AUTHORIZATION_HEADER = 2048
DEFAULT_MAX_BODY = 8 * 1024
# Query values are short tokens (a role, a number, an opaque cursor).
MAX_QUERY_VALUE = 256

# Responses carry credentials or per-user data: never cache them anywhere
# (RFC 6749 §5.1 requires this for token responses).
_DEFAULT_HEADERS: dict[str, str | list[str]] = {
    "Content-Type": "application/json",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


class Auth(enum.Enum):
    """Which credential a route requires."""

    NONE = "none"
    REFRESH = "refresh"
    ACCESS = "access"


@dataclass(frozen=True)
class Principal:
    """Who is calling, once the route's credential has been verified."""

    identity: str
    # For access tokens: the token's ``exp``.  For refresh tokens: the session's.
    expires_at: int
    credential: str = field(repr=False)


@dataclass(frozen=True)
class ApiResponse:
    """What a view answers: a JSON ``body``, or raw ``data`` sent as
    ``application/octet-stream`` (the request must accept it: DESIGN §8)."""

    status: int
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    data: bytes | None = None


@dataclass(frozen=True)
class ApiRequest:
    """What a view may read from the request.

    ``principal`` is set for ``Auth.REFRESH`` and ``Auth.ACCESS`` routes and
    ``None`` for public ones.
    """

    raw: Request
    principal: Principal | None
    max_body: int

    @property
    def identity(self) -> str:
        """The authenticated identity (only on authenticated routes)."""
        if self.principal is None:
            raise RuntimeError("identity read on a route without authentication")
        return self.principal.identity

    def json(
        self,
        *,
        required: Collection[str],
        optional: Collection[str] = (),
        nullable: Collection[str] = (),
    ) -> dict[str, Any]:
        """The body as a JSON object with exactly the allowed keys.

        An optional field is either absent or has a value: ``null`` is
        refused unless the field is listed in ``nullable``, so "absent" has
        one spelling and a client bug that sends ``null`` is caught.

        Raises:
            PayloadTooLarge: the body exceeds the route's limit.
            InvalidEncoding: the body is not UTF-8 (another encoding, a
                byte-order mark, an encoded or escaped lone surrogate).
            InvalidRequest: not JSON, not an object, a required field
                missing, a field that is not part of the contract, or a
                ``null`` where the contract has none.
        """
        raw = self.raw.raw_body or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        if len(raw) > self.max_body:
            raise PayloadTooLarge()
        try:
            # Strict: a repeated key would let two parsers read different
            # values from one body; NaN/Infinity are not JSON.
            body = loads_strict(raw, integral_floats=True)
        except NotUTF8 as exc:
            raise InvalidEncoding() from exc
        except StrictJSONError as exc:
            raise InvalidRequest("The body must be a JSON object.") from exc
        if not isinstance(body, dict):
            raise InvalidRequest("The body must be a JSON object.")
        missing = sorted(set(required) - body.keys())
        if missing:
            raise InvalidRequest(f"Missing field(s): {', '.join(missing)}.")
        unknown = sorted(body.keys() - set(required) - set(optional))
        if unknown:
            # Field names only, truncated: the message must not echo input.
            names = ", ".join(name[:40] for name in unknown[:5])
            raise InvalidRequest(f"Unknown field(s): {names}.")
        nulls = sorted(k for k, v in body.items() if v is None and k not in nullable)
        if nulls:
            raise InvalidRequest(f"Field(s) may not be null: {', '.join(nulls)}.")
        return body

    def query(self, *, allowed: Collection[str]) -> dict[str, str]:
        """The query parameters: only ``allowed`` names, each at most once.

        Raises:
            InvalidRequest: an unknown or repeated parameter, or a value
                longer than ``MAX_QUERY_VALUE`` characters.
        """
        out: dict[str, str] = {}
        for name, values in self._query_values(allowed).items():
            if len(values) != 1:
                raise InvalidRequest(f"Query parameter {name} may appear only once.")
            out[name] = values[0]
        return out

    def query_list(self, name: str) -> list[str]:
        """Every value of the repeatable query parameter ``name``
        (``?identity=a&identity=b``); no other parameter is allowed.

        Raises:
            InvalidRequest: another parameter, or a value longer than
                ``MAX_QUERY_VALUE`` characters.
        """
        return self._query_values((name,)).get(name, [])

    def _query_values(self, allowed: Collection[str]) -> dict[str, list[str]]:
        params = self.raw.query_params
        if not params:
            return {}
        out: dict[str, list[str]] = {}
        for name in params.keys():  # noqa: SIM118 - MultiDict: keys() is the names
            if name not in allowed:
                raise InvalidRequest(f"Unknown query parameter: {name[:40]}.")
            values = list(params.getlist(name))
            if any(len(value) > MAX_QUERY_VALUE for value in values):
                raise InvalidRequest(f"Query parameter {name} is too long.")
            out[name] = values
        return out

    def binary(self) -> bytes:
        """The raw body, for routes that accept ``application/octet-stream``.

        Raises:
            PayloadTooLarge: the body exceeds the route's limit.
        """
        raw = self.raw.raw_body or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        if len(raw) > self.max_body:
            raise PayloadTooLarge()
        return raw


def bearer_token(request: Request) -> str:
    """The token of an ``Authorization: Bearer <token>`` header.

    Raises:
        Unauthorized: header missing, oversized or not a Bearer credential.
    """
    header = request.headers.get("authorization")
    if not isinstance(header, str) or not header or len(header) > MAX_AUTHORIZATION_HEADER:
        raise Unauthorized()
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthorized()
    return token


# The authenticators are looked up when a request arrives, from the wiring
# module, so nothing AWS-related is touched at import time.
Authenticator = Callable[[str], Principal]


class ApiBlueprint:
    """A Chalice blueprint whose routes must declare their authentication."""

    def __init__(self, import_name: str, authenticators: Callable[[Auth], Authenticator]) -> None:
        self.blueprint = Blueprint(import_name)
        self._authenticators = authenticators

    def route(
        self,
        path: str,
        *,
        methods: list[str],
        auth: Auth,
        max_body: int = DEFAULT_MAX_BODY,
        content_types: Collection[str] = ("application/json",),
        openapi: Mapping[str, Any] | None = None,
    ) -> Callable[[Callable[..., ApiResponse]], Callable[..., Response]]:
        """Register ``view`` for ``path``; ``auth`` is checked before it runs.

        ``openapi`` is for app teams' extension routes: the OpenAPI
        operation fields (summary, parameters, request body, responses)
        that :mod:`chalicelib.extensions` publishes in ``/openapi.json``
        next to what Sealbox states itself (see
        :func:`chalicelib.openapi.extension_operation`).  Sealbox's own
        routes are documented in the hand-written document instead.

        ``content_types`` are the request ``Content-Type`` values accepted
        (415 otherwise), checked here right after the credential rather than
        by Chalice before it, so an unauthenticated caller always gets 401
        first.  A binary type is read with :meth:`ApiRequest.binary`.
        """
        if not isinstance(auth, Auth):
            raise TypeError("auth must be an Auth member")
        accepted = frozenset(t.lower() for t in content_types)

        def decorator(view: Callable[..., ApiResponse]) -> Callable[..., Response]:
            def handler(**path_params: str) -> Response:
                started = time.perf_counter()
                request = self.blueprint.current_request
                identity: str | None = None
                try:
                    principal = None
                    if auth is not Auth.NONE:
                        principal = self._authenticators(auth)(bearer_token(request))
                        identity = principal.identity
                    _check_content_type(request, accepted)
                    result = view(ApiRequest(request, principal, max_body), **path_params)
                    response = render(result)
                except SealboxError as exc:
                    response = error_response(exc)
                except Exception as exc:  # noqa: BLE001 - the edge must answer
                    log_exception("unhandled_exception", exc, route=path)
                    response = error_response(SealboxError())
                log_event(
                    "request",
                    method=request.method,
                    route=path,
                    status=response.status_code,
                    code=_error_code(response),
                    identity=identity,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                    request_id=_request_id(self.blueprint),
                )
                return response

            handler.__name__ = view.__name__
            handler.__doc__ = view.__doc__
            handler.sealbox_auth = auth  # type: ignore[attr-defined]
            handler.sealbox_openapi = openapi  # type: ignore[attr-defined]
            # Chalice would answer 415 before the credential is looked at;
            # _check_content_type does the same check after it.
            self.blueprint.route(path, methods=methods, content_types=["*/*"])(handler)
            return handler

        return decorator


BINARY_TYPE = "application/octet-stream"


def require_binary_accept(request: ApiRequest) -> None:
    """Refuse a request for a binary answer whose ``Accept`` doesn't name
    ``application/octet-stream`` first: API Gateway decodes a base64 body
    only for a client whose *first* Accept type is a binary media type (any
    other gets the base64 text), and Chalice answers its own 400 without a
    matching one.

    Raises:
        NotAcceptable: it doesn't.
    """
    header = str(request.raw.headers.get("accept") or "")
    if header.split(",")[0].split(";")[0].strip().lower() != BINARY_TYPE:
        raise NotAcceptable()


def _check_content_type(request: Request, accepted: frozenset[str]) -> None:
    """Chalice's rule, applied after authentication: the ``Content-Type``
    (``application/json`` when absent) must name one of ``accepted``.

    Raises:
        UnsupportedMediaType: it doesn't.
    """
    header = request.headers.get("content-type") or "application/json"
    parts = {part.strip().lower() for part in re.split("[,;]", str(header))}
    if not parts & accepted:
        if accepted == {"application/json"}:
            raise UnsupportedMediaType()
        raise UnsupportedMediaType(f"Request bodies must be {' or '.join(sorted(accepted))}.")


#: The methods API Gateway routes (Chalice's list).  Every path answers each
#: of them: the ones a path doesn't declare with 405 (answer_undeclared_methods).
HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def declared_methods(entries: Mapping[str, RouteEntry]) -> list[str]:
    """The methods a path really serves (not its 405 answers), sorted."""
    return sorted(
        method
        for method, entry in entries.items()
        if not getattr(entry.view_function, "sealbox_method_not_allowed", False)
    )


def answer_undeclared_methods(app: Chalice) -> None:
    """Give every path a 405 view for each method of :data:`HTTP_METHODS` it
    doesn't declare, answering ``method_not_allowed`` with ``Allow``.

    Why a view rather than Chalice's own 405: API Gateway only forwards a
    method the resource has, and answers any other with its 403
    ``MISSING_AUTHENTICATION_TOKEN`` before the function runs.  Declaring
    every method makes the deployed API answer exactly like ``chalice local``
    and ``chalice.test.Client`` (which crashes on an ``OPTIONS`` nobody
    declared, chalice #2083).  Call it once, after the blueprints are
    registered; the views need no credential (they reveal only ``Allow``,
    which the OpenAPI document publishes anyway).
    """
    for number, (path, entries) in enumerate(sorted(app.routes.items())):
        allow = declared_methods(entries)
        missing = [method for method in HTTP_METHODS if method not in entries]
        if missing:
            view = _method_not_allowed_view(app, path, allow)
            name = f"{view.__name__}_{number}"
            app.route(path, methods=missing, content_types=["*/*"], name=name)(view)


def _method_not_allowed_view(app: Chalice, path: str, allow: list[str]) -> Callable[..., Response]:
    def method_not_allowed(**_path_params: str) -> Response:
        response = error_response(MethodNotAllowed(allow))
        log_event(
            "request",
            method=app.current_request.method if app.current_request else None,
            route=path,
            status=response.status_code,
            code=MethodNotAllowed.code,
            identity=None,
            duration_ms=0.0,
            request_id=None,
        )
        return response

    method_not_allowed.sealbox_auth = Auth.NONE  # type: ignore[attr-defined]
    method_not_allowed.sealbox_method_not_allowed = True  # type: ignore[attr-defined]
    return method_not_allowed


def render(result: ApiResponse) -> Response:
    headers: dict[str, str | list[str]] = {**_DEFAULT_HEADERS, **result.headers}
    if result.data is not None:
        # Bytes with a binary type: Chalice base64-encodes them for API
        # Gateway, which decodes them for a client whose Accept matches.
        headers["Content-Type"] = BINARY_TYPE
        return Response(body=result.data, status_code=result.status, headers=headers)
    if result.body is None:
        headers.pop("Content-Type", None)
        return Response(body="", status_code=result.status, headers=headers)
    return Response(body=_dumps(result.body), status_code=result.status, headers=headers)


def error_response(exc: SealboxError) -> Response:
    body = {"error": {"code": exc.code, "message": exc.message}}
    headers: dict[str, str | list[str]] = {**_DEFAULT_HEADERS, **exc.headers}
    return Response(body=_dumps(body), status_code=exc.status, headers=headers)


def _dumps(body: Mapping[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def _error_code(response: Response) -> str | None:
    if response.status_code < 400 or not isinstance(response.body, str):
        return None
    try:
        return str(json.loads(response.body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def _request_id(blueprint: Blueprint) -> str | None:
    try:
        context = blueprint.lambda_context
    except (AttributeError, RuntimeError):
        return None
    return getattr(context, "aws_request_id", None)


# Chalice answers some requests itself, before any view runs (wrong method,
# wrong content type, an exception outside our handlers).  Its bodies look
# like {"Code": "...", "Message": "..."}; this table rewrites them into the
# Sealbox error shape so clients see one format.
_CHALICE_CODES = {
    "BadRequestError": "invalid_request",
    "BadRequest": "invalid_request",
    "UnauthorizedError": "invalid_token",
    "ForbiddenError": "forbidden",
    "NotFoundError": "not_found",
    "MethodNotAllowedError": "method_not_allowed",
    "UnsupportedMediaType": "unsupported_media_type",
    "RequestTimeoutError": "request_timeout",
    "ConflictError": "conflict",
    "UnprocessableEntityError": "invalid_request",
    "TooManyRequestsError": "too_many_requests",
    "InternalServerError": "internal_error",
}
_CHALICE_MESSAGES = {
    "method_not_allowed": "This method is not allowed on this resource.",
    "unsupported_media_type": "Request bodies must be application/json.",
    "internal_error": "An internal error occurred.",
}


def normalize_chalice_error(response: Response, allow: list[str] | None = None) -> Response:
    """Rewrite a Chalice-generated error body into the Sealbox error shape.

    ``allow`` (the path's :func:`declared_methods`) replaces the ``Allow`` of
    Chalice's own 405, which would also list the 405 views.
    """
    body = response.body
    if response.status_code < 400 or not isinstance(body, dict) or "Code" not in body:
        return response
    code = _CHALICE_CODES.get(str(body.get("Code")), "internal_error")
    message = _CHALICE_MESSAGES.get(code, "The request could not be processed.")
    headers: dict[str, str | list[str]] = {**_DEFAULT_HEADERS, **(response.headers or {})}
    headers["Content-Type"] = "application/json"
    if response.status_code == 405 and allow is not None:
        headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
        headers["Allow"] = ", ".join(allow)
    return Response(
        body=_dumps({"error": {"code": code, "message": message}}),
        status_code=response.status_code,
        headers=headers,
    )
