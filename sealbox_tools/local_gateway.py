"""API Gateway's own answers, for ``chalice local`` and ``chalice.test.Client``.

On AWS, a request for a path no route has never reaches the function: API
Gateway answers it with its ``MISSING_AUTHENTICATION_TOKEN`` gateway response,
which ``infra/resources.json`` redefines as ``404 not_found`` in the Sealbox
error shape.  Chalice's local gateway hard-codes API Gateway's *default* for
that case (``403 {"message": "Missing Authentication Token"}``).  :func:`install`
makes it answer with the response the template defines instead, read from the
same file, so local and deployed stacks agree (a test compares them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chalice.local import ForbiddenError, LocalGateway, LocalGatewayException

from sealbox_tools.provisioning import load_template

__all__ = ["GatewayResponse", "gateway_response", "install"]

_HEADER_PREFIX = "gatewayresponse.header."
# What chalice.local marks its "no route matched" answer with (and nothing else
# it raises: Sealbox declares no API Gateway authorizer).
_NO_ROUTE_ERROR_TYPE = "UnauthorizedException"


@dataclass(frozen=True)
class GatewayResponse:
    """One gateway response of the deployable template, as sent."""

    status: int
    headers: dict[str, str]
    body: bytes


def gateway_response(response_type: str, template: dict[str, Any] | None = None) -> GatewayResponse:
    """The gateway response ``response_type`` as ``infra/resources.json`` defines it.

    Only static values are supported (single-quoted header literals, a
    template without ``$`` variables): what Sealbox uses, and what can be
    reproduced exactly without API Gateway.

    Raises:
        KeyError: the template defines no such response.
        ValueError: it uses a value that isn't static.
    """
    template = template or load_template()
    body = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    spec = body["x-amazon-apigateway-gateway-responses"][response_type]
    headers: dict[str, str] = {}
    for key, value in spec.get("responseParameters", {}).items():
        if not key.startswith(_HEADER_PREFIX) or not (
            len(value) >= 2 and value[0] == value[-1] == "'"
        ):
            raise ValueError(f"{response_type}: only static headers are reproduced locally")
        headers[key[len(_HEADER_PREFIX) :]] = value[1:-1]
    text = spec["responseTemplates"]["application/json"]
    if "$" in text:
        raise ValueError(f"{response_type}: only static templates are reproduced locally")
    json.loads(text)  # a template that isn't JSON would be a broken contract
    return GatewayResponse(int(spec["statusCode"]), headers, text.encode("utf-8"))


class _GatewayResponseError(LocalGatewayException):
    """Carries a gateway response through chalice.local's error path, which
    both its HTTP server and ``chalice.test.Client`` turn into a reply."""

    def __init__(self, response: GatewayResponse) -> None:
        super().__init__(dict(response.headers), response.body)
        self.CODE = response.status


def install() -> None:
    """Make chalice.local's gateway answer a path no route has with the
    template's ``MISSING_AUTHENTICATION_TOKEN`` response, and deliver binary
    bodies as API Gateway does.  Idempotent."""
    _install_binary_bodies()
    original = LocalGateway.handle_request
    if getattr(original, "sealbox_gateway_responses", False):
        return
    missing = gateway_response("MISSING_AUTHENTICATION_TOKEN")

    def handle_request(self: LocalGateway, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        except ForbiddenError as exc:
            if exc.headers.get("x-amzn-ErrorType") != _NO_ROUTE_ERROR_TYPE:
                raise
            raise _GatewayResponseError(missing) from None

    handle_request.sealbox_gateway_responses = True  # type: ignore[attr-defined]
    LocalGateway.handle_request = handle_request  # type: ignore[method-assign]


def _install_binary_bodies() -> None:
    """Base64-encode bodies of binary media types whatever the header's case.

    API Gateway matches ``Content-Type`` against the binary media types
    case-insensitively and then delivers the body base64-encoded with
    ``isBase64Encoded``; chalice.local looks up only a lower-case
    ``content-type`` key, so a client sending ``Content-Type`` got its bytes
    raw and the base64 path was never exercised locally.
    """
    from chalice.local import LambdaEventConverter

    original = LambdaEventConverter._is_binary
    if getattr(original, "sealbox_case_insensitive", False):
        return

    def is_binary(self: LambdaEventConverter, headers: dict[str, Any]) -> bool:
        lowered = {str(k).lower(): v for k, v in headers.items()}
        return bool(original(self, lowered))

    is_binary.sealbox_case_insensitive = True  # type: ignore[attr-defined]
    LambdaEventConverter._is_binary = is_binary  # type: ignore[method-assign]
