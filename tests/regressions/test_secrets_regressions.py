"""Regression tests for credential leaks, one per bug, named after it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.support.directory import make_user

# botocore's loggers that print request bodies, response bodies and signatures.
_BOTOCORE_LOGGERS = ("botocore.auth", "botocore.endpoint", "botocore.parsers")


@pytest.fixture
def botocore_as_configured() -> Iterator[None]:
    """botocore's loggers at their library defaults (another test may already
    have raised them), restored afterwards."""
    saved = {name: logging.getLogger(name).level for name in _BOTOCORE_LOGGERS}
    for name in _BOTOCORE_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def test_debug_logging_never_prints_aws_request_signatures(
    api, caplog, botocore_as_configured
) -> None:
    """botocore.auth logs every SigV4 canonical request, string to sign and
    signature at DEBUG.  Only the S3 adapter raised that logger, so a
    container that had not served a blob route yet (a cold start on
    /v1/tokens) logged the signed GetSecretValue request for the app key:
    with DEBUG on, the log held a request anyone with the role's key id could
    replay for five minutes to read the signing key (and, on Lambda, the
    session token inside the canonical request)."""
    caplog.set_level(logging.DEBUG)
    make_user(api, "alice")  # DynamoDB writes, then the app key from Secrets Manager
    assert any(r.name.startswith("botocore") for r in caplog.records)  # DEBUG was on
    signed = [
        record.getMessage()
        for record in caplog.records
        if record.name == "botocore.auth"
        and any(
            marker in record.getMessage()
            for marker in ("Signature", "CanonicalRequest", "StringToSign")
        )
    ]
    assert signed == []
