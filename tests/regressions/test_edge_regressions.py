"""Regression tests for the HTTP edge (body decoding, unknown routes), one per
bug, named after it."""

from __future__ import annotations

import boto3
import pytest

from app import app
from chalicelib.http import Auth
from tests.functional.blob_helpers import make_user
from tests.functional.test_accounts_api import KEY, assert_error


def _scan(table: str) -> list[dict]:
    return list(boto3.client("dynamodb").scan(TableName=f"sealbox-test-{table}")["Items"])


def _json_body_routes() -> list[tuple[str, str]]:
    """Every (method, path) whose view reads a JSON body."""
    out = []
    for path, methods in sorted(app.routes.items()):
        for method, entry in sorted(methods.items()):
            if getattr(entry.view_function, "sealbox_method_not_allowed", False):
                continue
            if method in ("POST", "PUT") and entry.view_name not in {
                "put_blob_content",  # application/octet-stream
                "commit_blob",
                "revoke_card",
                "create_token",
            }:
                out.append((method, path))
    return out


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-8-sig"])
def test_a_utf16_registration_body_was_accepted_and_stored(raw, encoding: str) -> None:
    """``json.loads`` on bytes guesses UTF-16 and UTF-32 and skips a BOM, so a
    body in another encoding than the contract's UTF-8 was parsed and the
    account stored: two parsers (a WAF, a log pipeline, the API) could read
    different things from one request."""
    body = f'{{"username": "alice", "login_key": "{KEY}"}}'.encode(encoding)
    assert_error(raw("POST", "/v1/users", body), 400, "invalid_encoding")
    assert _scan("users") == []


def test_a_cesu8_surrogate_in_a_body_was_accepted(raw) -> None:
    """``json.loads`` decodes bytes with ``surrogatepass``: a lone surrogate
    encoded as UTF-8 bytes reached the services as a string no UTF-8 encoder
    can write back."""
    body = b'{"username": "ali\xed\xa0\x80ce", "login_key": "' + KEY.encode() + b'"}'
    assert_error(raw("POST", "/v1/sessions", body), 400, "invalid_encoding")
    assert _scan("login-attempts") == []


def test_every_json_route_refuses_a_body_that_is_not_utf8(api, transport, raw) -> None:
    user = make_user(api, transport, "alice")
    routes = _json_body_routes()
    assert len(routes) >= 7
    before = {t: _scan(t) for t in ("users", "sessions", "cards", "backups", "blobs")}
    for method, path in routes:
        concrete = path.replace("{name}", "primary").replace("{blob_id}", "b" * 32)
        auth = getattr(app.routes[path][method].view_function, "sealbox_auth", None)
        token = user.token if auth is Auth.ACCESS else None
        reply = raw(method, concrete, "{}".encode("utf-16"), token=token)
        assert_error(reply, 400, "invalid_encoding")
        reply = raw(method, concrete, b'{"x": "\\udfff"}', token=token)
        assert_error(reply, 400, "invalid_encoding")
    assert {t: _scan(t) for t in before} == before


@pytest.mark.parametrize("name", ["-rf", "--help", ".hidden", "alice-", "bob."])
def test_an_identity_that_looks_like_a_command_line_option_was_registered(raw, name: str) -> None:
    """Identities were any 3-64 of ``[a-z0-9._-]``, so ``-rf`` or ``.hidden``
    could be registered, and a contact named ``--help`` reached command lines
    (``sealbox device find --help``) and file names as an option or a hidden
    file.  They now start and end with ``[a-z0-9]``, on both sides."""
    assert_error(
        raw("POST", "/v1/users", {"username": name, "login_key": KEY}), 400, "invalid_username"
    )
    assert _scan("users") == []
