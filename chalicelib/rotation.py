"""Secrets Manager rotation of the app signing key.

Secrets Manager calls the rotation Lambda (``rotate_app_key``) four times
per rotation, with ``{"SecretId", "ClientRequestToken", "Step"}``.  Before the
first call it has already created the new version *stub*: the version id is
the ``ClientRequestToken`` and it carries the ``AWSPENDING`` label but no
value yet.  :func:`handle_rotation_event` implements the steps:

``createSecret``
    If the pending version already has a value, do nothing (a retried
    event).  Otherwise generate a fresh Ed25519 key and
    ``PutSecretValue(ClientRequestToken=token, VersionStages=["AWSPENDING"])``.
``setSecret``
    Nothing to do: no external system holds the key.  Verifiers learn the
    new public key from the secret's stages (the key ring and the JWKS read
    ``AWSCURRENT`` and ``AWSPREVIOUS``), so there is no database password
    or third-party registration to update.
``testSecret``
    Parse the pending value strictly and issue + verify an access token with
    it, through the same code path production uses.
``finishSecret``
    Make the new version ``AWSCURRENT`` and the old current one
    ``AWSPREVIOUS``, then drop ``AWSPENDING``:

    1. move ``AWSPREVIOUS`` onto the version that is still current;
    2. move ``AWSCURRENT`` to the new version (``RemoveFromVersionId`` = the
       old one).  AWS -- and moto 5.2, which we checked -- also moves
       ``AWSPREVIOUS`` to the old version in this same call; step 1 makes
       the outcome independent of that, and of a crash between calls;
    3. remove ``AWSPENDING`` from the new version.  AWS accepts a rotation
       that ends with ``AWSPENDING`` either absent or on the current
       version; moto's next ``RotateSecret`` refuses the latter, so we leave
       it absent.

    Every step is a no-op when already done, so a retried (or half-done)
    finish converges to the same state.

Validation (as in AWS's rotation templates): rotation must be enabled on the
secret; the token must be a version of it; a version that is already
``AWSCURRENT`` means the rotation is complete (only ``finishSecret``'s
``AWSPENDING`` clean-up still runs); otherwise the version must be staged
``AWSPENDING``.  Every read passes ``VersionStage`` (DESIGN §8).

Nothing here logs or raises secret material: messages carry the secret id,
the step, the version id and public ``kid`` values only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import SealboxError
from chalicelib.services.tokens import StaticKeyRing, TokenService
from chalicelib.storage.appkeys import (
    STAGE_CURRENT,
    STAGE_PENDING,
    STAGE_PREVIOUS,
    quiet_botocore_payload_logs,
)
from chalicelib.wire.appkey import MalformedAppKeySecret, new_app_key_secret, parse_app_key_secret

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["ROTATION_STEPS", "RotationError", "handle_rotation_event"]

log = logging.getLogger(__name__)

ROTATION_STEPS: Final = ("createSecret", "setSecret", "testSecret", "finishSecret")

# Values for the testSecret round trip only; such a token is never handed out.
_TEST_ISSUER: Final = "urn:sealbox:rotation-test"
_TEST_AUDIENCE: Final = "urn:sealbox:rotation-test"
_TEST_IDENTITY: Final = "rotation-test"


class RotationError(RuntimeError):
    """A rotation step can't proceed.  Secrets Manager marks the rotation failed.

    The message names the secret, the version and what is wrong; never a
    secret value.
    """


def handle_rotation_event(
    event: Mapping[str, Any],
    client: SecretsManagerClient,
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    """Run one rotation step for the app key secret.

    Args:
        event: the Secrets Manager rotation event (``SecretId``,
            ``ClientRequestToken``, ``Step``).
        client: a boto3 ``secretsmanager`` client (injected).
        clock: Unix seconds, for the new key's ``created_at``.

    Raises:
        RotationError: the event is malformed, rotation is not enabled, the
            token is not a pending version of the secret, the pending value
            fails its test, or Secrets Manager returned an error (chained).
    """
    quiet_botocore_payload_logs()
    secret_id, token, step = _parse_event(event)
    try:
        versions = _versions(client, secret_id)
        stages = versions.get(token)
        if stages is None:
            raise RotationError(f"version {token} of secret {secret_id} is not staged for rotation")
        if STAGE_CURRENT in stages:
            log.info(
                "app key rotation: version already current",
                extra={"secret_id": secret_id, "version_id": token, "step": step},
            )
            if step == "finishSecret":
                _drop_pending(client, secret_id, token, stages)
            return
        if STAGE_PENDING not in stages:
            raise RotationError(f"version {token} of secret {secret_id} is not AWSPENDING")

        log.info(
            "app key rotation step",
            extra={"secret_id": secret_id, "version_id": token, "step": step},
        )
        if step == "createSecret":
            _create(client, secret_id, token, clock)
        elif step == "setSecret":
            # Nothing external holds the key: verifiers read the stages of
            # this secret (key ring, JWKS), see the module docstring.
            pass
        elif step == "testSecret":
            _test(client, secret_id, token)
        else:
            _finish(client, secret_id, token, versions)
    except (ClientError, BotoCoreError) as exc:
        raise RotationError(
            f"Secrets Manager error during {step} of secret {secret_id}: {_describe(exc)}"
        ) from exc


def _parse_event(event: Mapping[str, Any]) -> tuple[str, str, str]:
    if not isinstance(event, Mapping):
        raise RotationError("rotation event must be an object")
    secret_id = event.get("SecretId")
    token = event.get("ClientRequestToken")
    step = event.get("Step")
    if not isinstance(secret_id, str) or not secret_id:
        raise RotationError("rotation event has no SecretId")
    if not isinstance(token, str) or not token:
        raise RotationError("rotation event has no ClientRequestToken")
    if step not in ROTATION_STEPS:
        raise RotationError("rotation event has an unknown Step")
    return secret_id, token, step


def _describe(exc: ClientError | BotoCoreError) -> str:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        return code if isinstance(code, str) and code else "ClientError"
    return type(exc).__name__


def _versions(client: SecretsManagerClient, secret_id: str) -> dict[str, list[str]]:
    """Version id -> staging labels, after checking that rotation is enabled."""
    metadata = client.describe_secret(SecretId=secret_id)
    if not metadata.get("RotationEnabled"):
        raise RotationError(f"secret {secret_id} is not enabled for rotation")
    return {
        version: list(labels) for version, labels in metadata.get("VersionIdsToStages", {}).items()
    }


def _is_not_found(exc: ClientError) -> bool:
    return _describe(exc) == "ResourceNotFoundException"


def _create(
    client: SecretsManagerClient, secret_id: str, token: str, clock: Callable[[], float]
) -> None:
    # The current version must exist (it need not parse: rotating is also how
    # an operator replaces a broken value).
    client.get_secret_value(SecretId=secret_id, VersionStage=STAGE_CURRENT)
    try:
        client.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage=STAGE_PENDING)
    except ClientError as exc:
        if not _is_not_found(exc):
            raise
    else:
        # A retried createSecret: the value was put by an earlier attempt.
        # Never overwrite it (moto would; AWS would refuse a different value).
        log.info(
            "app key rotation: pending value exists",
            extra={"secret_id": secret_id, "version_id": token},
        )
        return
    client.put_secret_value(
        SecretId=secret_id,
        ClientRequestToken=token,
        SecretString=new_app_key_secret(clock()),
        VersionStages=[STAGE_PENDING],
    )


def _test(client: SecretsManagerClient, secret_id: str, token: str) -> None:
    response = client.get_secret_value(
        SecretId=secret_id, VersionId=token, VersionStage=STAGE_PENDING
    )
    value = response.get("SecretString")
    try:
        if not isinstance(value, str):
            raise MalformedAppKeySecret("app key secret has no SecretString")
        key = parse_app_key_secret(value)
    except MalformedAppKeySecret as exc:
        # The parser's message names the member at fault, never a value.
        raise RotationError(
            f"pending version {token} of secret {secret_id} is malformed: {exc}"
        ) from None
    # Sign and verify a token with the pending key through the production
    # code path (PyJWT, EdDSA, our header and claim checks).
    service = TokenService(StaticKeyRing(key), issuer=_TEST_ISSUER, audience=_TEST_AUDIENCE, ttl=60)
    try:
        service.verify(service.issue(_TEST_IDENTITY).access_token)
    except SealboxError:
        raise RotationError(
            f"pending version {token} of secret {secret_id} failed the signing test"
        ) from None
    log.info("app key rotation: pending key tested", extra={"secret_id": secret_id, "kid": key.kid})


def _finish(
    client: SecretsManagerClient, secret_id: str, token: str, versions: dict[str, list[str]]
) -> None:
    old = next((v for v, labels in versions.items() if STAGE_CURRENT in labels), None)
    if old is None:
        raise RotationError(f"secret {secret_id} has no AWSCURRENT version")
    # Step 1: AWSPREVIOUS onto the version that is about to stop being current.
    if STAGE_PREVIOUS not in versions[old]:
        holder = next((v for v, labels in versions.items() if STAGE_PREVIOUS in labels), None)
        if holder is None:
            client.update_secret_version_stage(
                SecretId=secret_id, VersionStage=STAGE_PREVIOUS, MoveToVersionId=old
            )
        else:
            client.update_secret_version_stage(
                SecretId=secret_id,
                VersionStage=STAGE_PREVIOUS,
                MoveToVersionId=old,
                RemoveFromVersionId=holder,
            )
    # Step 2: the new key becomes current.
    client.update_secret_version_stage(
        SecretId=secret_id,
        VersionStage=STAGE_CURRENT,
        MoveToVersionId=token,
        RemoveFromVersionId=old,
    )
    log.info(
        "app key rotation finished",
        extra={"secret_id": secret_id, "version_id": token, "previous_version_id": old},
    )
    # Step 3: no AWSPENDING left behind.
    _drop_pending(client, secret_id, token, versions[token])


def _drop_pending(
    client: SecretsManagerClient, secret_id: str, token: str, stages: list[str]
) -> None:
    if STAGE_PENDING in stages:
        client.update_secret_version_stage(
            SecretId=secret_id, VersionStage=STAGE_PENDING, RemoveFromVersionId=token
        )
