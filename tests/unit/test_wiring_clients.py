"""The composition root builds its AWS clients from one boto3 session."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from chalicelib.config import Settings
from chalicelib.wiring import Container
from sealbox_tools.local_stack import stage_environment


def test_one_session_serves_every_client(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each boto3 session loads botocore's endpoint data and service models
    # afresh (megabytes each): a session per client tripled that for the
    # process -- a fleet worker, a Lambda container.
    made: list[Any] = []
    real = boto3.session.Session

    def counting(*args: Any, **kwargs: Any) -> Any:
        session = real(*args, **kwargs)
        made.append(session)
        return session

    monkeypatch.setattr(boto3.session, "Session", counting)
    for name, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}.items():
        monkeypatch.setenv(name, value)
    container = Container(
        Settings.from_env({**stage_environment("test"), "AWS_REGION": "us-east-1"})
    )
    clients = [container.dynamodb, container.s3, container.secretsmanager]
    assert len({id(client) for client in clients}) == 3
    assert len(made) == 1
