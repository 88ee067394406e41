"""The process environment an in-process (moto) benchmark needs."""

from __future__ import annotations

import os


def in_process_aws(region: str = "us-east-1", credential: str = "bench") -> None:
    """Point boto3 at moto's in-process mock: no endpoint override, fake credentials.

    moto's ``mock_aws`` stops intercepting when ``AWS_ENDPOINT_URL`` is set
    (a shell left over from ``sealbox local``), so every such variable goes.
    """
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL"):
            del os.environ[name]
    os.environ.update(
        AWS_ACCESS_KEY_ID=credential, AWS_SECRET_ACCESS_KEY=credential, AWS_DEFAULT_REGION=region
    )
