"""Functional tier: the Chalice app in process, AWS on moto's ``mock_aws``.

Each test gets a fresh moto account provisioned from ``infra/resources.json``
for the ``test`` stage, and a fresh wiring container, so nothing leaks
between tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib import wiring
from client_sim.api import ApiClient
from client_sim.local_stack import provision
from client_sim.transport import ChaliceTransport, HttpReply
from tests.conftest import ROOT

STAGE = "test"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # mock_aws stops intercepting when an endpoint override is set (DESIGN §8).
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.fixture
def aws(aws_env: None) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def stack(aws: None) -> Any:
    return provision(aws_client, stage=STAGE)


def aws_client(service: str) -> Any:
    """A boto3 client inside the current moto context."""
    session: Any = boto3.session.Session()
    return session.client(service, region_name="us-east-1")


@dataclass
class Raw:
    """Raw HTTP calls into the app, for malformed-input tests."""

    transport: ChaliceTransport

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpReply:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        if body is None:
            data = None
        elif isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
        return self.transport.request(method, path, body=data, headers=all_headers)


@pytest.fixture
def chalice_client(stack: Any) -> Iterator[Client]:
    from app import app

    wiring.reset()
    with Client(app, stage_name=STAGE, project_dir=str(ROOT)) as client:
        yield client
    wiring.reset()


@pytest.fixture
def transport(chalice_client: Client) -> ChaliceTransport:
    return ChaliceTransport(chalice_client)


@pytest.fixture
def api(transport: ChaliceTransport) -> ApiClient:
    return ApiClient(transport)


@pytest.fixture
def raw(transport: ChaliceTransport) -> Raw:
    return Raw(transport)
