"""The OPRF key ring: versions of the OPRF key read from their own Secrets Manager secret.

The secret named by ``Settings.oprf_key_secret_id`` is separate from the app
key (only the API function may read it; infra/policies.json).  Each secret
version holds one OPRF key version (format: :mod:`chalicelib.wire.oprf_keys`):

* ``AWSCURRENT``  -- the version new login keys and backups are derived under;
* ``AWSPREVIOUS`` -- the version before the last rotation, still evaluated
  during the rotation window so that accounts and backups derived under it
  are re-wrapped on their next login (docs/spec/oprf.md, "Rotation").

Caching: one load (one ``GetSecretValue`` per stage, each naming its
``VersionStage``, DESIGN §8) is fresh for ``cache_ttl`` seconds.  A failed
load raises :class:`~chalicelib.errors.OprfUnavailable` (503) -- there is no
stale-if-error: evaluating under a key that may have been rotated away
would only make the device's derivation fail later.  Key material never
appears in a log record, an exception or a ``repr``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import OprfUnavailable
from chalicelib.storage.appkeys import (
    STAGE_CURRENT,
    STAGE_PREVIOUS,
    quiet_botocore_payload_logs,
)
from chalicelib.wire.oprf_keys import (
    MalformedOprfSecret,
    OprfKey,
    OprfKeys,
    encode_oprf_secret,
    parse_oprf_secret,
)

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = [
    "OprfKeys",
    "OprfRotationRefused",
    "SecretsManagerOprfKeyRing",
    "ensure_oprf_key",
    "rotate_oprf_key",
]

log = logging.getLogger(__name__)
_NOT_FOUND: Final = "ResourceNotFoundException"


class SecretsManagerOprfKeyRing:
    """The OPRF key versions, cached for ``cache_ttl`` seconds of ``clock``."""

    def __init__(
        self,
        client: SecretsManagerClient,
        secret_id: str,
        *,
        cache_ttl: float = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        quiet_botocore_payload_logs()
        self._client = client
        self._secret_id = secret_id
        self._ttl = cache_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, OprfKeys] | None = None

    def __repr__(self) -> str:
        return f"SecretsManagerOprfKeyRing(secret_id={self._secret_id!r})"

    def keys(self) -> OprfKeys:
        """The current (and previous) OPRF key.

        Raises:
            OprfUnavailable: Secrets Manager failed, or the current value is
                missing or malformed.
        """
        now = self._clock()
        with self._lock:
            if self._cached is not None and now < self._cached[0] + self._ttl:
                return self._cached[1]
        current = self._read(STAGE_CURRENT, required=True)
        assert current is not None  # required=True raises instead
        loaded = OprfKeys(current=current, previous=None)
        previous = self._read(STAGE_PREVIOUS, required=False)
        if previous is not None and previous.version != loaded.current.version:
            loaded = OprfKeys(current=loaded.current, previous=previous)
        with self._lock:
            self._cached = (now, loaded)
        return loaded

    def _read(self, stage: str, *, required: bool) -> OprfKey | None:
        try:
            response = self._client.get_secret_value(SecretId=self._secret_id, VersionStage=stage)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == _NOT_FOUND and not required:
                return None
            log.warning(
                "OPRF key read failed",
                extra={"secret_id": self._secret_id, "stage": stage, "error_code": code},
            )
            raise OprfUnavailable() from exc
        except BotoCoreError as exc:
            log.warning(
                "OPRF key read failed", extra={"secret_id": self._secret_id, "stage": stage}
            )
            raise OprfUnavailable() from exc
        try:
            return parse_oprf_secret(str(response.get("SecretString", "")))
        except MalformedOprfSecret as exc:
            log.error(
                "OPRF key secret malformed",
                extra={"secret_id": self._secret_id, "stage": stage, "problem": str(exc)},
            )
            if required:
                raise OprfUnavailable() from exc
            return None


def ensure_oprf_key(client: SecretsManagerClient, secret_id: str, now: float) -> OprfKey:
    """Give the OPRF secret its first key (version 1) unless it has one; return the current key.

    For the local stack, the tests and a first deployment.  Never overwrites
    a current value; relies on ``CreateSecret`` failing when the secret
    exists (no read-then-write race on creation).

    Raises:
        MalformedOprfSecret: the current value exists and is not an OPRF key.
        OprfUnavailable: any other Secrets Manager error.
    """
    quiet_botocore_payload_logs()
    first = OprfKey.generate(1, created_at=int(now))
    try:
        client.create_secret(
            Name=secret_id,
            Description="Sealbox OPRF key (password hardening); rotated by rotate_oprf_key.",
            SecretString=encode_oprf_secret(first),
        )
        return first
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceExistsException":
            raise OprfUnavailable() from exc
    except BotoCoreError as exc:
        raise OprfUnavailable() from exc
    try:
        value = client.get_secret_value(SecretId=secret_id, VersionStage=STAGE_CURRENT)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != _NOT_FOUND:
            raise OprfUnavailable() from exc
        # Provisioned from the template without a value: give it one.
        client.put_secret_value(
            SecretId=secret_id,
            SecretString=encode_oprf_secret(first),
            VersionStages=[STAGE_CURRENT],
        )
        return first
    return parse_oprf_secret(str(value.get("SecretString", "")))


class OprfRotationRefused(RuntimeError):
    """Rotating now would drop a key version that accounts still need."""


def rotate_oprf_key(
    client: SecretsManagerClient,
    secret_id: str,
    now: float,
    *,
    accounts_on_version: Callable[[int], int],
) -> OprfKey:
    """Introduce a new OPRF key version; the old current one becomes ``AWSPREVIOUS``.

    The version before it (the old ``AWSPREVIOUS``) stops being evaluated, so
    the rotation is refused while ``accounts_on_version(previous)`` reports
    accounts still derived under it (their next login re-wraps them; until
    then they need it).  Devices must pin the new version's root public key
    before the rotation (SDK configuration); the call returns the new key so
    the operator can publish its root.

    Raises:
        OprfRotationRefused: accounts still use the version that would be dropped.
        OprfUnavailable: Secrets Manager failed.
    """
    ring = SecretsManagerOprfKeyRing(client, secret_id, cache_ttl=0)
    keys = ring.keys()
    if keys.previous is not None:
        remaining = accounts_on_version(keys.previous.version)
        if remaining:
            raise OprfRotationRefused(
                f"{remaining} account(s) still use OPRF key version {keys.previous.version}"
            )
    new = OprfKey.generate(keys.current.version + 1, created_at=int(now))
    try:
        # Moving AWSCURRENT makes Secrets Manager put AWSPREVIOUS on the old one.
        client.put_secret_value(
            SecretId=secret_id, SecretString=encode_oprf_secret(new), VersionStages=[STAGE_CURRENT]
        )
    except (ClientError, BotoCoreError) as exc:
        raise OprfUnavailable() from exc
    log.info("OPRF key rotated", extra={"secret_id": secret_id, "version": new.version})
    return new
