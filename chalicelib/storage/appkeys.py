"""The app key ring: app signing keys read from Secrets Manager, cached.

The secret named by ``Settings.app_key_secret_id`` holds one app key per
version (format: :mod:`chalicelib.wire.appkey`).  Two staging labels matter:

* ``AWSCURRENT``  -- the key that signs new tokens;
* ``AWSPREVIOUS`` -- the key before the last rotation; tokens it signed stay
  valid until they expire (at most 20 minutes), so it stays in the JWKS.
  Missing ``AWSPREVIOUS`` is normal: the first key has no predecessor.

Every ``GetSecretValue`` names its ``VersionStage`` explicitly: on moto (and
by documented AWS semantics) a read without it is not guaranteed to follow a
stage move (DESIGN §8).

Caching and failure policy (one instance per warm container)
------------------------------------------------------------
* **Lazy.** Nothing is read until the first call; building the ring costs
  nothing, so constructing it at cold start is free.
* **TTL.** A successful load (one ``GetSecretValue`` per stage) is *fresh*
  for ``cache_ttl`` seconds of ``clock`` (monotonic by default).  Any call on
  a stale cache re-reads both stages first.
* **Unknown kid.** :meth:`verification_key` with a ``kid`` that is neither
  cached key re-reads both stages at once (a rotation may have happened
  since the last load), but at most once per ``unknown_kid_refresh_interval``
  seconds, so a flood of tokens with random ``kid`` values costs at most two
  ``GetSecretValue`` calls per interval.
* **Errors back off.** After a failed load no further read is attempted for
  ``error_backoff`` seconds (throttling only gets worse when hammered).
* **Signing is fresh-only.** :meth:`signing_key` needs a fresh load; if the
  cache is stale and the re-read fails (or is backing off) it raises
  :class:`~chalicelib.errors.SigningUnavailable` (503, ``Retry-After`` = the
  rest of the back-off).  Signing with a key that may have been rotated away
  -- perhaps because it leaked -- is worse than a short 503.
* **Verification is stale-if-error.** :meth:`verification_key` and
  :meth:`verification_keys` keep serving the last loaded public keys while
  re-reads fail, for at most ``max_stale`` seconds past the end of their
  TTL; beyond that (or when nothing was ever loaded) they raise
  :class:`~chalicelib.errors.ServiceUnavailable`.  A forced (unknown-kid)
  re-read that fails just means the kid stays unknown: the token is
  rejected by the token service (401), nothing is raised.
* **Malformed values.** A malformed ``AWSCURRENT`` counts as a failed load
  (an operator must fix the secret; nothing can be signed meanwhile).  A
  malformed ``AWSPREVIOUS`` is logged and ignored: no valid token can have
  been signed by it, so dropping it costs nothing.

Secret values never appear in a log record, an exception message or a
``repr``: logs carry the secret id, stage, error code and public ``kid``
values only.  botocore itself logs whole request and response bodies, and
request signatures, at DEBUG, so constructing a ring also calls
:func:`quiet_botocore_payload_logs`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import ServiceUnavailable, SigningUnavailable
from chalicelib.wire.appkey import (
    AppKey,
    AppPublicKey,
    MalformedAppKeySecret,
    new_app_key_secret,
    parse_app_key_secret,
)

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.type_defs import GetSecretValueResponseTypeDef

__all__ = [
    "RETIRED_LABEL_PREFIX",
    "STAGE_CURRENT",
    "STAGE_PENDING",
    "STAGE_PREVIOUS",
    "KeyRingStats",
    "SecretsManagerKeyRing",
    "ensure_app_key",
    "quiet_botocore_payload_logs",
    "retired_at_from_labels",
    "retired_label",
]

log = logging.getLogger(__name__)

STAGE_CURRENT: Final = "AWSCURRENT"
STAGE_PREVIOUS: Final = "AWSPREVIOUS"
STAGE_PENDING: Final = "AWSPENDING"
# A custom staging label the rotation puts on the version it retires, at the
# moment it retires it: ``sealbox-retired-at-<unix seconds>``.  It travels
# with the version's other labels in every GetSecretValue answer, so the
# ring learns the retirement time with no extra call or permission.
RETIRED_LABEL_PREFIX: Final = "sealbox-retired-at-"
_RETIRED_LABEL_RE: Final = re.compile(r"sealbox-retired-at-(0|[1-9][0-9]{0,11})")


def retired_label(at: int) -> str:
    """The staging label recording a retirement at ``at`` (Unix seconds)."""
    return f"{RETIRED_LABEL_PREFIX}{int(at)}"


def retired_at_from_labels(labels: Sequence[str]) -> int | None:
    """The retirement time a version's labels record, or None (none, or malformed)."""
    times = [int(m.group(1)) for m in map(_RETIRED_LABEL_RE.fullmatch, labels) if m is not None]
    # One label at most is ever written; if several were planted, the
    # earliest is the strictest reading.
    return min(times) if times else None


# botocore loggers that write request parameters or response bodies at DEBUG
# (``Making request ... with params``, ``Response body``): for Secrets
# Manager that is the app key itself.  And the one that writes every SigV4
# canonical request, string to sign and signature (``botocore.auth``): with
# the key id, enough to replay the GetSecretValue call that reads the app
# key for five minutes, and on Lambda the canonical request carries the
# role's session token.
_BOTOCORE_PAYLOAD_LOGGERS: Final = ("botocore.endpoint", "botocore.parsers", "botocore.auth")


def quiet_botocore_payload_logs() -> None:
    """Keep botocore from logging request and response bodies and signatures.

    botocore logs whole request parameters and response bodies at DEBUG
    level.  For Secrets Manager that is the app signing key; for other
    services it can be a bearer credential.  It also logs the signature of
    every request it signs (and, for a presigned URL, that signature is the
    credential).  This raises the three loggers that do it to INFO, so
    turning on DEBUG logging (root or ``botocore``) can't leak them (DESIGN
    invariant 3).  Called when the composition root, a key ring or the
    rotation handler is set up, before any AWS request.  Idempotent;
    everything else botocore logs at DEBUG (retries, endpoints, credential
    lookup) is unaffected.
    """
    for name in _BOTOCORE_PAYLOAD_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:
            logger.setLevel(logging.INFO)


@dataclass
class KeyRingStats:
    """Counters for benchmarks and tests (per ring instance)."""

    get_secret_value_calls: int = 0
    loads: int = 0
    failed_loads: int = 0
    forced_refreshes: int = 0


@dataclass(frozen=True)
class _Snapshot:
    current: AppKey
    previous: AppKey | None
    loaded_at: float
    # When the previous key was retired (its version's label); None for a
    # version retired by a release that did not record it.
    previous_retired_at: int | None = None

    def public_keys(self) -> tuple[AppPublicKey, ...]:
        if self.previous is None or self.previous.kid == self.current.kid:
            return (self.current.public,)
        # No recorded retirement: the successor's creation is the latest
        # moment the rotation can have started, so it bounds the retirement
        # from below (the stricter reading).
        retired_at = self.previous_retired_at
        if retired_at is None:
            retired_at = self.current.created_at
        return (
            self.current.public,
            dataclasses.replace(self.previous.public, retired_at=retired_at),
        )

    def find(self, kid: str) -> AppPublicKey | None:
        for public in self.public_keys():
            if public.kid == kid:
                return public
        return None


class _LoadFailed(Exception):
    """Internal: the key ring could not be (re)loaded; ``code`` is loggable."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _error_code(exc: ClientError) -> str:
    code = exc.response.get("Error", {}).get("Code")
    return code if isinstance(code, str) and code else "ClientError"


class SecretsManagerKeyRing:
    """A :class:`chalicelib.services.tokens.KeyRing` over Secrets Manager.

    See the module docstring for the caching and failure policy.

    Args:
        client: a boto3 ``secretsmanager`` client (injected; never created here).
        secret_id: name or ARN of the app key secret.
        cache_ttl: seconds a load stays fresh (``Settings.app_key_cache_ttl``);
            0 re-reads on every call.
        clock: monotonic seconds; injected so tests can move time.
        unknown_kid_refresh_interval: minimum seconds between two re-reads
            triggered by an unknown ``kid``.
        error_backoff: seconds without any read after a failed load; also the
            ``Retry-After`` of the resulting 503s.
        max_stale: seconds past the TTL during which verification keeps using
            the last loaded keys while loads fail.

    Raises:
        ValueError: a negative duration, a zero ``error_backoff`` or an empty
            ``secret_id``.
    """

    def __init__(
        self,
        client: SecretsManagerClient,
        secret_id: str,
        *,
        cache_ttl: float,
        clock: Callable[[], float] = time.monotonic,
        unknown_kid_refresh_interval: float = 10.0,
        error_backoff: float = 5.0,
        max_stale: float = 3600.0,
    ) -> None:
        if not isinstance(secret_id, str) or not secret_id:
            raise ValueError("secret_id must be a non-empty string")
        if min(cache_ttl, unknown_kid_refresh_interval, max_stale) < 0 or error_backoff <= 0:
            raise ValueError("durations must be non-negative (error_backoff positive)")
        self._client = client
        self._secret_id = secret_id
        self._cache_ttl = float(cache_ttl)
        self._clock = clock
        self._unknown_kid_interval = float(unknown_kid_refresh_interval)
        self._error_backoff = float(error_backoff)
        self._max_stale = float(max_stale)
        self._snapshot: _Snapshot | None = None
        self._retry_at: float | None = None
        self._last_forced: float | None = None
        # Lambda runs one request at a time per container, but `chalice
        # local` and the benchmarks may use threads; the lock also makes
        # concurrent callers share one load instead of each doing their own.
        self._lock = threading.Lock()
        self.stats = KeyRingStats()
        quiet_botocore_payload_logs()

    def __repr__(self) -> str:
        snapshot = self._snapshot
        kids = [public.kid for public in snapshot.public_keys()] if snapshot else []
        return f"SecretsManagerKeyRing(secret_id={self._secret_id!r}, kids={kids!r})"

    # --- KeyRing protocol -----------------------------------------------------

    def signing_key(self) -> AppKey:
        """The current app key from a fresh load.

        Raises:
            SigningUnavailable: the cache is stale and Secrets Manager can't
                be read (any botocore error, a missing or malformed
                ``AWSCURRENT``), or a failed load is still backing off.
        """
        with self._lock:
            now = self._clock()
            snapshot = self._snapshot
            if snapshot is not None and self._is_fresh(snapshot, now):
                return snapshot.current
            try:
                return self._load(now).current
            except _LoadFailed as exc:
                raise SigningUnavailable(retry_after=self._retry_after(now)) from exc

    def verification_key(self, kid: str) -> AppPublicKey | None:
        """The current or previous public key named ``kid``, else ``None``.

        Raises:
            ServiceUnavailable: see :meth:`verification_keys`.
        """
        with self._lock:
            now = self._clock()
            snapshot, reloaded = self._verification_snapshot(now)
            public = snapshot.find(kid)
            if public is not None or reloaded or not self._may_force(now):
                return public
            # An unknown kid may be a key rotated in after our last load.
            self._last_forced = now
            self.stats.forced_refreshes += 1
            try:
                return self._load(now).find(kid)
            except _LoadFailed:
                return None

    def verification_keys(self) -> Sequence[AppPublicKey]:
        """Current public key first, then previous (if any).

        Raises:
            ServiceUnavailable: nothing was ever loaded, or the last load is
                more than ``max_stale`` seconds past its TTL, and Secrets
                Manager can't be read now.
        """
        with self._lock:
            snapshot, _ = self._verification_snapshot(self._clock())
            return snapshot.public_keys()

    # --- internals (called with the lock held) --------------------------------

    def _is_fresh(self, snapshot: _Snapshot, now: float) -> bool:
        return now - snapshot.loaded_at < self._cache_ttl

    def _may_force(self, now: float) -> bool:
        return self._last_forced is None or now - self._last_forced >= self._unknown_kid_interval

    def _retry_after(self, now: float) -> int:
        remaining = (self._retry_at or now) - now
        return max(1, math.ceil(remaining))

    def _verification_snapshot(self, now: float) -> tuple[_Snapshot, bool]:
        """The snapshot to verify with, and whether it was loaded just now."""
        snapshot = self._snapshot
        if snapshot is not None and self._is_fresh(snapshot, now):
            return snapshot, False
        try:
            return self._load(now), True
        except _LoadFailed as exc:
            if (
                snapshot is not None
                and now - snapshot.loaded_at < self._cache_ttl + self._max_stale
            ):
                # stale-if-error: see the module docstring.
                return snapshot, False
            raise ServiceUnavailable(retry_after=self._retry_after(now)) from exc

    def _load(self, now: float) -> _Snapshot:
        """Read both stages and replace the snapshot.

        Raises:
            _LoadFailed: a read failed, ``AWSCURRENT`` is malformed, or an
                earlier failure is still backing off.
        """
        if self._retry_at is not None and now < self._retry_at:
            raise _LoadFailed("BackingOff")
        try:
            current = self._read_current()
            previous, retired_at = self._read_previous()
        except _LoadFailed as exc:
            self.stats.failed_loads += 1
            self._retry_at = now + self._error_backoff
            log.warning(
                "app key ring load failed",
                extra={"secret_id": self._secret_id, "error_code": exc.code},
            )
            raise
        self._retry_at = None
        snapshot = _Snapshot(
            current=current, previous=previous, loaded_at=now, previous_retired_at=retired_at
        )
        old = self._snapshot
        if old is None or old.public_keys() != snapshot.public_keys():
            log.info(
                "app key ring loaded",
                extra={
                    "secret_id": self._secret_id,
                    "current_kid": current.kid,
                    "previous_kid": previous.kid if previous else None,
                },
            )
        self._snapshot = snapshot
        self.stats.loads += 1
        return snapshot

    def _read_current(self) -> AppKey:
        """Read and parse ``AWSCURRENT``.

        Raises:
            _LoadFailed: any botocore error, or a missing/malformed value.
        """
        response = self._get_secret_value(STAGE_CURRENT)
        if response is None:
            raise _LoadFailed("ResourceNotFoundException")
        key = self._parse(STAGE_CURRENT, response)
        if key is None:
            raise _LoadFailed("MalformedAppKeySecret")
        return key

    def _read_previous(self) -> tuple[AppKey | None, int | None]:
        """Read and parse ``AWSPREVIOUS`` and its retirement label.

        ``(None, None)`` when absent or malformed.

        Raises:
            _LoadFailed: any botocore error other than "not found".
        """
        response = self._get_secret_value(STAGE_PREVIOUS)
        if response is None:
            return None, None
        key = self._parse(STAGE_PREVIOUS, response)
        return key, retired_at_from_labels(list(response.get("VersionStages", [])))

    def _get_secret_value(self, stage: str) -> GetSecretValueResponseTypeDef | None:
        """One ``GetSecretValue`` with an explicit stage; ``None`` when not found.

        Raises:
            _LoadFailed: any other botocore error.
        """
        self.stats.get_secret_value_calls += 1
        try:
            return self._client.get_secret_value(SecretId=self._secret_id, VersionStage=stage)
        except ClientError as exc:
            code = _error_code(exc)
            if code == "ResourceNotFoundException":
                # For AWSPREVIOUS this is normal: the first key has no
                # predecessor.  (The secret itself existing was established
                # by the AWSCURRENT read just before.)
                return None
            raise _LoadFailed(code) from exc
        except BotoCoreError as exc:
            # Connection errors, timeouts, missing credentials...
            raise _LoadFailed(type(exc).__name__) from exc

    def _parse(self, stage: str, response: GetSecretValueResponseTypeDef) -> AppKey | None:
        """Parse one version's value; log (without the value) and return ``None`` if bad."""
        value = response.get("SecretString")
        try:
            if not isinstance(value, str):
                raise MalformedAppKeySecret("app key secret has no SecretString")
            return parse_app_key_secret(value)
        except MalformedAppKeySecret as exc:
            log.error(
                "app key secret version is malformed",
                extra={
                    "secret_id": self._secret_id,
                    "stage": stage,
                    "version_id": response.get("VersionId"),
                    # The parser's message names the member at fault only.
                    "problem": str(exc),
                },
            )
            return None


def ensure_app_key(client: SecretsManagerClient, secret_id: str, now: float) -> bool:
    """Create the app key secret with a fresh key unless it already exists.

    For the local stack and the tests; on AWS the deployment does the same
    through this function or an equivalent.  Idempotent and race-free: it
    relies on ``CreateSecret`` failing with ``ResourceExistsException``,
    never on a read-then-write, and it never overwrites an existing value.

    Args:
        client: a boto3 ``secretsmanager`` client.
        secret_id: the secret's name.
        now: Unix seconds, recorded as the key's ``created_at``.

    Returns:
        True when the secret was created or had no value and got its first
        one; False when it already held a valid app key as ``AWSCURRENT``.

    Raises:
        MalformedAppKeySecret: the secret exists but its ``AWSCURRENT`` value
            is not an app key (left untouched for an operator to fix).
        ServiceUnavailable: any other Secrets Manager error.
    """
    quiet_botocore_payload_logs()
    try:
        client.create_secret(
            Name=secret_id,
            Description="Sealbox app signing key (Ed25519); rotated by rotate_app_key.",
            SecretString=new_app_key_secret(now),
        )
    except ClientError as exc:
        if _error_code(exc) != "ResourceExistsException":
            raise ServiceUnavailable() from exc
    except BotoCoreError as exc:
        raise ServiceUnavailable() from exc
    else:
        log.info("app key secret created", extra={"secret_id": secret_id})
        return True
    try:
        response = client.get_secret_value(SecretId=secret_id, VersionStage=STAGE_CURRENT)
    except ClientError as exc:
        if _error_code(exc) != "ResourceNotFoundException":
            raise ServiceUnavailable() from exc
        # The secret exists without any value: provisioned from the template
        # (which leaves the first value to the first rotation).  Give it one.
        try:
            client.put_secret_value(
                SecretId=secret_id,
                SecretString=new_app_key_secret(now),
                VersionStages=[STAGE_CURRENT],
            )
        except (ClientError, BotoCoreError) as put_exc:
            raise ServiceUnavailable() from put_exc
        log.info("app key secret given its first value", extra={"secret_id": secret_id})
        return True
    except BotoCoreError as exc:
        raise ServiceUnavailable() from exc
    value = response.get("SecretString")
    if not isinstance(value, str):
        raise MalformedAppKeySecret("app key secret has no SecretString")
    parse_app_key_secret(value)
    return False
