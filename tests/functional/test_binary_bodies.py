"""Binary bodies the way API Gateway delivers them.

For a media type listed in the API's binary media types, API Gateway hands
the function the body base64-encoded with ``isBase64Encoded: true``; for any
other type it passes the body as text.  The inline blob upload is the one
binary route: these tests send it as API Gateway does (a hand-built REST
proxy event, and through Chalice's local gateway) and check what a body
API Gateway did not encode becomes: refused, nothing stored.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from tests.functional.blob_helpers import User, make_user, versions
from tests.functional.test_blobs_api import ciphertext, reserve

pytestmark = pytest.mark.functional

OCTETS = "application/octet-stream"


@pytest.fixture
def alice(api: Any, transport: Any) -> User:
    return make_user(api, transport, "alice")


def proxy_event(blob_id: str, token: str, body: str, *, encoded: bool) -> dict[str, Any]:
    """A REST API (v1) Lambda proxy event as API Gateway sends it."""
    resource = "/v1/blobs/{blob_id}/content"
    path = f"/v1/blobs/{blob_id}/content"
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": OCTETS,
        "Host": "abc123.execute-api.eu-west-1.amazonaws.com",
    }
    return {
        "resource": resource,
        "path": path,
        "httpMethod": "PUT",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"blob_id": blob_id},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": "PUT",
            "path": "/api" + path,
            "stage": "api",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"sourceIp": "203.0.113.7"},
        },
        "body": body,
        "isBase64Encoded": encoded,
    }


class LambdaContext:
    function_name = "sealbox-test-api"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def invoke(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    from app import app

    reply = app(event, LambdaContext())
    body = reply["body"]
    if reply.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return reply["statusCode"], json.loads(body)


def test_the_inline_upload_media_type_is_one_api_gateway_base64_encodes() -> None:
    from app import app

    assert OCTETS in app.api.binary_types


def test_a_base64_body_from_api_gateway_is_stored_byte_for_byte(raw: Any, alice: User) -> None:
    data = ciphertext(3000, alice)
    assert any(b >= 0x80 for b in data)  # not text: the encoding matters
    blob_id = reserve(raw, alice, len(data))["blob_id"]
    event = proxy_event(blob_id, alice.token, base64.b64encode(data).decode(), encoded=True)
    status, body = invoke(event)
    assert status == 200, body
    assert body["state"] == "ready"
    assert requests.get(body["download"]["url"], timeout=30).content == data


def test_a_binary_body_api_gateway_passed_as_text_is_refused_and_not_stored(
    raw: Any, alice: User
) -> None:
    """Were the media type missing from the binary types, API Gateway would
    hand over the bytes decoded as text: the upload must fail, not store
    mangled ciphertext."""
    data = ciphertext(3000, alice)
    blob_id = reserve(raw, alice, len(data))["blob_id"]
    mangled = data.decode("utf-8", errors="replace")
    status, body = invoke(proxy_event(blob_id, alice.token, mangled, encoded=False))
    assert 400 <= status < 500, body
    assert set(body) == {"error"}
    assert versions() == []


def test_chalices_local_gateway_delivers_it_the_same_way(
    raw: Any, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chalice.app

    seen: list[dict[str, Any]] = []
    original = chalice.app.Chalice.__call__

    def spy(self: Any, event: dict[str, Any], context: Any) -> Any:
        seen.append(event)
        return original(self, event, context)

    monkeypatch.setattr(chalice.app.Chalice, "__call__", spy)
    data = ciphertext(2000, alice)
    blob_id = reserve(raw, alice, len(data))["blob_id"]
    reply = raw(
        "PUT",
        f"/v1/blobs/{blob_id}/content",
        data,
        token=alice.token,
        headers={"Content-Type": OCTETS},
    )
    assert reply.status == 200
    (event,) = [e for e in seen if e["requestContext"]["resourcePath"].endswith("/content")]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == data
