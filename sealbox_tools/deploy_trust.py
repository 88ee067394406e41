"""After ``make deploy``: seed the stage's OPRF and log keys, write its SDK configuration.

The stack creates the OPRF key secret and the transparency log key secret
empty (infra/resources.json); until they hold a key the card and OPRF
routes answer 503.  :func:`seed_trust` gives each its first key, once:

* with boto3 from the deployer's default session (never the AWS CLI: a
  secret value on a command line would show in ``ps`` and shell history);
* idempotently: ``ensure_oprf_key`` and ``ensure_log_key`` keep an existing
  value (devices pin its public half), so a second deploy changes nothing;
* with the secrets named by the stack itself (the ``KtLogKeySecretArn``
  output and the ``OprfKeySecret`` resource).

It returns the app's SDK trust configuration (:class:`client_sim.config.SdkConfig`,
public values only), which :func:`write_sdk_config` stores as
``out/<stage>/sdk-config.json`` for the app team to ship.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client_sim.config import SdkConfig
from client_sim.origins import s3_bucket_origins
from sealbox_tools.deploy import Runner, Target, stack_outputs
from sealbox_tools.local_stack import stage_environment

__all__ = ["SDK_CONFIG_NAME", "seed_trust", "write_sdk_config"]

SDK_CONFIG_NAME = "sdk-config.json"
#: The OPRF key secret's logical id in infra/resources.json.
OPRF_SECRET_RESOURCE = "OprfKeySecret"  # noqa: S105 - a logical id, not a secret


def default_clients(service: str) -> Any:
    """A boto3 client from the deployer's default session (profile, region, credentials)."""
    import boto3

    return boto3.session.Session().client(service)  # type: ignore[call-overload]


def _resource_id(target: Target, run: Runner, logical_id: str) -> str:
    out = run(["cloudformation", "describe-stack-resources", "--stack-name", target.stack])
    for resource in json.loads(out).get("StackResources", []):
        if resource.get("LogicalResourceId") == logical_id:
            return str(resource["PhysicalResourceId"])
    raise RuntimeError(f"stack {target.stack} has no {logical_id} resource")


def seed_trust(
    target: Target,
    run: Runner,
    clients: Callable[[str], Any] = default_clients,
    *,
    now: Callable[[], float] = time.time,
) -> SdkConfig:
    """Give the stage's OPRF and log key secrets their first key (kept if present).

    Returns the SDK configuration that pins them.

    Raises:
        RuntimeError: the stack lacks an output or resource named above, or
            the stage has no ``SEALBOX_KT_ORIGIN`` in .chalice/config.json.
        chalicelib.errors.OprfUnavailable, botocore errors: Secrets Manager
            refused (the message names no secret value).
        chalicelib.wire.oprf_keys.MalformedOprfSecret: the OPRF secret holds
            something else (it is never overwritten).
    """
    from chalicelib.storage.ktlog import ensure_log_key
    from chalicelib.storage.oprfkeys import ensure_oprf_key

    outputs = stack_outputs(target, run)
    missing = [
        k for k in ("EndpointURL", "KtLogKeySecretArn", "BlobsBucketName") if k not in outputs
    ]
    if missing:
        raise RuntimeError(f"stack {target.stack} has no output {missing[0]}")
    origin = stage_environment(target.stage).get("SEALBOX_KT_ORIGIN")
    if not origin:
        raise RuntimeError(f"stage {target.stage} has no SEALBOX_KT_ORIGIN in .chalice/config.json")
    secrets = clients("secretsmanager")
    oprf_arn = _resource_id(target, run, OPRF_SECRET_RESOURCE)
    # ensure_oprf_key creates the secret by name when absent: give it the
    # name (an ARN is not a valid secret name), read from the secret itself.
    oprf_name = secrets.describe_secret(SecretId=oprf_arn)["Name"]
    oprf = ensure_oprf_key(secrets, oprf_name, now())
    log_key = ensure_log_key(secrets, outputs["KtLogKeySecretArn"], origin)
    region = secrets.meta.region_name
    return SdkConfig(
        url=outputs["EndpointURL"],
        log_key=log_key,
        oprf_roots={oprf.version: oprf.root_public},
        storage_origins=s3_bucket_origins(outputs["BlobsBucketName"], region),
    )


def write_sdk_config(config: SdkConfig, out_dir: Path) -> Path:
    """Write ``config`` as ``out_dir/sdk-config.json``; return the path."""
    return config.write(out_dir / SDK_CONFIG_NAME)


def deploy_and_configure(
    target: Target,
    run: Runner,
    clients: Callable[[str], Any] = default_clients,
    out_dir: Path | None = None,
) -> tuple[dict[str, str], SdkConfig, Path]:
    """``make deploy``: deploy ``target``, seed its keys, write its SDK configuration.

    Returns the stack's outputs, the configuration and where it was written.

    Raises:
        As :func:`sealbox_tools.deploy.deploy` and :func:`seed_trust`.
    """
    from sealbox_tools.deploy import deploy
    from sealbox_tools.local_stack import PROJECT_DIR

    out = out_dir or PROJECT_DIR / "out" / target.stage
    outputs = deploy(target, run, out)
    config = seed_trust(target, run, clients)
    return outputs, config, write_sdk_config(config, out)
