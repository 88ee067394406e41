"""Functional tier: the Chalice app in process, AWS on moto's ``mock_aws``.

Each test gets a fresh moto account provisioned from ``infra/resources.json``
for the ``test`` stage, and a fresh wiring container, so nothing leaks
between tests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from chalice.test import Client

from chalicelib import wiring
from chalicelib.config import Settings
from chalicelib.storage.appkeys import ensure_app_key
from chalicelib.storage.ktlog import ensure_log_key
from chalicelib.storage.oprfkeys import ensure_oprf_key
from client_sim.api import ApiClient
from client_sim.transport import ChaliceTransport, HttpReply
from sealbox_tools import local_gateway
from sealbox_tools.local_stack import stage_environment
from sealbox_tools.provisioning import ProvisionReport, provision
from tests.conftest import ROOT
from tests.support.aws import moto_aws
from tests.support.fakes import FakeClock

STAGE = "test"
STAGE_ENV = stage_environment(STAGE)


@pytest.fixture(autouse=True)
def fresh_wiring() -> Iterator[None]:
    """Each test builds its own container (clients bound to its moto state)."""
    wiring.reset()
    yield
    wiring.reset()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _SESSION.clear()
    try:
        with moto_aws(monkeypatch):
            yield
    finally:
        _SESSION.clear()


@pytest.fixture
def stack(aws: None) -> ProvisionReport:
    """The test stage provisioned from infra/resources.json, app and OPRF keys seeded."""
    report = provision(aws_client, stage=STAGE)
    ensure_app_key(
        aws_client("secretsmanager"), STAGE_ENV["SEALBOX_APP_KEY_SECRET_ID"], time.time()
    )
    ensure_oprf_key(
        aws_client("secretsmanager"), STAGE_ENV["SEALBOX_OPRF_KEY_SECRET_ID"], time.time()
    )
    ensure_log_key(
        aws_client("secretsmanager"),
        STAGE_ENV["SEALBOX_KT_LOG_KEY_SECRET_ID"],
        STAGE_ENV["SEALBOX_KT_ORIGIN"],
    )
    return report


def log_vkey() -> str:
    """The transparency log's verifier key, as an app team pins it in its SDK config."""
    return ensure_log_key(
        aws_client("secretsmanager"),
        STAGE_ENV["SEALBOX_KT_LOG_KEY_SECRET_ID"],
        STAGE_ENV["SEALBOX_KT_ORIGIN"],
    )


_SESSION: list[Any] = []


def aws_client(service: str) -> Any:
    """A boto3 client inside the current moto context.

    From one boto3 session per test (the ``aws`` fixture drops it): a new
    session reloads botocore's service models, and provisioning a stack asks
    for a client per resource -- that was most of every functional test's setup.
    """
    if not _SESSION:
        _SESSION.append(boto3.session.Session())
    return _SESSION[0].client(service, region_name="us-east-1")


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
def chalice_client(stack: ProvisionReport) -> Iterator[Client]:
    from app import app

    # Unknown paths answered like the deployed API Gateway (as `sealbox local` does).
    local_gateway.install()
    with Client(app, stage_name=STAGE, project_dir=str(ROOT)) as client:
        yield client


@pytest.fixture
def clock(stack: ProvisionReport) -> FakeClock:
    """Install a container whose services read this clock (time travel)."""
    fake = FakeClock(time.time())
    settings = Settings.from_env({**STAGE_ENV, "AWS_REGION": "us-east-1"})
    wiring.install(wiring.Container(settings, clock=fake))
    return fake


@pytest.fixture
def transport(chalice_client: Client) -> ChaliceTransport:
    return ChaliceTransport(chalice_client)


@pytest.fixture
def api(transport: ChaliceTransport) -> ApiClient:
    return ApiClient(transport)


@pytest.fixture
def raw(transport: ChaliceTransport) -> Raw:
    return Raw(transport)
