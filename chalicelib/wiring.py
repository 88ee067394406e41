"""Composition: the one place that builds AWS clients and services.

Nothing here runs at import time.  The first request in a warm container
builds the :class:`Container` from the environment (``Settings.from_env``);
its clients and services are created on first use and then reused for the
life of the container, which is what makes the app-key cache and the dummy
Argon2id hash pay off.  ``boto3`` itself is imported lazily, so a cold start
that only serves ``/.well-known/jwks.json`` from cache, or fails validation,
doesn't pay for it.

Tests call :func:`reset` between cases (a fresh moto account each time) or
install a container of their own with :func:`install`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from chalicelib.config import ARGON2_PROFILES, BlobSettings, Settings
from chalicelib.errors import NotFound, OprfUnavailable
from chalicelib.http import Auth, Authenticator, Principal
from chalicelib.services.accounts import AccountService, LoginKeyHasher
from chalicelib.services.backups import BackupService
from chalicelib.services.blobs import BlobService
from chalicelib.services.cards import CardService
from chalicelib.services.groups import GroupService
from chalicelib.services.oprf import OprfService
from chalicelib.services.tokens import DEFAULT_LEEWAY, TokenService
from chalicelib.services.transparency import TransparencyService
from chalicelib.storage.appkeys import SecretsManagerKeyRing, quiet_botocore_payload_logs
from chalicelib.storage.blob_objects import S3ObjectStore
from chalicelib.storage.blob_records import DynamoBlobStore
from chalicelib.storage.directory import DynamoBackupStore, DynamoCardStore
from chalicelib.storage.dynamo import (
    DynamoAttemptStore,
    DynamoDeviceStore,
    DynamoSessionStore,
    DynamoStepUpStore,
    DynamoUserStore,
)
from chalicelib.storage.groups import DynamoGroupStore, S3WrapsStore
from chalicelib.storage.ktlog import DynamoLogStore, LogKeySource
from chalicelib.storage.oprfkeys import SecretsManagerOprfKeyRing

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from chalicelib.wire.cards import Card


class Container:
    """Lazily built clients and services for one warm Lambda container."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_factory: Callable[..., Any] | None = None,
        clock: Callable[[], float] = time.time,
        blob_settings: BlobSettings | None = None,
    ) -> None:
        self.settings = settings
        self._blob_settings = blob_settings
        self._client_factory = client_factory
        self._clock = clock
        self._lock = threading.Lock()
        self._session: Any = None
        # botocore logs request and response bodies at DEBUG; for Secrets
        # Manager that would be the app key (invariant 3).
        quiet_botocore_payload_logs()

    # --- AWS clients ----------------------------------------------------------

    def _client(
        self, service: str, *, connect_timeout: float, read_timeout: float, **options: Any
    ) -> Any:
        # boto3 sessions are not thread-safe (chalice local serves requests on
        # threads); clients are, once built.
        with self._lock:
            if self._client_factory is not None:
                return self._client_factory(service)
            # Deferred: importing boto3 costs a large share of a cold start.
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"mode": "standard", "max_attempts": 3},
                **options,
            )
            # One session for all of the container's clients: each new
            # session loads botocore's endpoint data and models again
            # (megabytes per session, measured by bench.fleet_memory).
            if self._session is None:
                self._session = boto3.session.Session()
            return self._session.client(service, region_name=self.settings.region, config=config)

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        client: DynamoDBClient = self._client("dynamodb", connect_timeout=2, read_timeout=5)
        return client

    @cached_property
    def secretsmanager(self) -> SecretsManagerClient:
        # Short timeouts: an unreachable Secrets Manager should become a quick
        # 503 signing_unavailable, not a Lambda timeout.
        client: SecretsManagerClient = self._client(
            "secretsmanager", connect_timeout=1, read_timeout=2
        )
        return client

    # --- services ---------------------------------------------------------------

    @cached_property
    def accounts(self) -> AccountService:
        memory_kib, iterations, lanes = ARGON2_PROFILES[self.settings.argon2_profile]
        return AccountService(
            users=DynamoUserStore(self.dynamodb, self.settings.users_table),
            sessions=DynamoSessionStore(self.dynamodb, self.settings.sessions_table),
            attempts=DynamoAttemptStore(self.dynamodb, self.settings.attempts_table),
            devices=DynamoDeviceStore(self.dynamodb, self.settings.sessions_table),
            step_ups=DynamoStepUpStore(self.dynamodb, self.settings.sessions_table),
            hasher=LoginKeyHasher(memory_kib=memory_kib, iterations=iterations, lanes=lanes),
            refresh_ttl=self.settings.refresh_token_ttl,
            clock=self._clock,
            oprf_version=self._current_oprf_version,
        )

    def _current_oprf_version(self) -> int:
        # 0 (no OPRF) on a stage without an OPRF key: nothing migrates.
        if self.settings.oprf_key_secret_id is None:
            return 0
        return self.oprf.current_version()

    @cached_property
    def oprf_keys(self) -> SecretsManagerOprfKeyRing:
        if self.settings.oprf_key_secret_id is None:
            raise OprfUnavailable("This stage has no OPRF key.")
        return SecretsManagerOprfKeyRing(
            self.secretsmanager,
            self.settings.oprf_key_secret_id,
            cache_ttl=self.settings.oprf_key_cache_ttl,
        )

    @cached_property
    def oprf(self) -> OprfService:
        return OprfService(self.oprf_keys, self.accounts)

    @cached_property
    def keyring(self) -> SecretsManagerKeyRing:
        # One ring per warm container: its cache is what keeps Secrets Manager
        # reads to about one per cache TTL.
        return SecretsManagerKeyRing(
            self.secretsmanager,
            self.settings.app_key_secret_id,
            cache_ttl=self.settings.app_key_cache_ttl,
            clock=self._clock,
        )

    @cached_property
    def tokens(self) -> TokenService:
        return TokenService(
            self.keyring,
            issuer=self.settings.token_issuer,
            audience=self.settings.token_audience,
            ttl=self.settings.access_token_ttl,
            # Warm containers sign with a loaded key until their cache TTL
            # ends: that long after a rotation the old key may still sign.
            previous_key_grace=self.settings.app_key_cache_ttl + DEFAULT_LEEWAY,
            clock=self._clock,
        )

    @cached_property
    def kt_log(self) -> DynamoLogStore | None:
        """The key-transparency log's store, or None when the stage has it off."""
        secret_id = self.settings.kt_log_key_secret_id
        if secret_id is None:
            return None
        keys = LogKeySource(
            self.secretsmanager,
            secret_id,
            origin=self.settings.kt_origin,
            cache_ttl=self.settings.app_key_cache_ttl,
        )
        return DynamoLogStore(self.dynamodb, self.settings.cards_table, keys, clock=self._clock)

    @cached_property
    def transparency(self) -> TransparencyService | None:
        log = self.kt_log
        return None if log is None else TransparencyService(log)

    @cached_property
    def cards(self) -> CardService:
        return CardService(
            DynamoCardStore(self.dynamodb, self.settings.cards_table, log=self.kt_log),
            clock=self._clock,
            max_skew=self.settings.card_max_skew,
            log=self.transparency,
        )

    @cached_property
    def backups(self) -> BackupService:
        return BackupService(
            DynamoBackupStore(self.dynamodb, self.settings.backups_table), clock=self._clock
        )

    # --- blobs --------------------------------------------------------------------

    @cached_property
    def blob_settings(self) -> BlobSettings:
        # Read on first use: accounts and tokens never need these settings.
        return self._blob_settings or BlobSettings.from_env()

    @cached_property
    def s3(self) -> S3Client:
        # SigV4 always: in us-east-1 botocore would otherwise presign with
        # SigV2, which can't sign Content-Length or If-None-Match (DESIGN §8).
        # The read timeout leaves room for a server-side copy within the
        # API's 29 s.
        client: S3Client = self._client(
            "s3", connect_timeout=2, read_timeout=20, signature_version="s3v4"
        )
        return client

    @cached_property
    def blobs(self) -> BlobService:
        settings = self.blob_settings
        return BlobService(
            DynamoBlobStore(
                self.dynamodb,
                table=settings.table,
                grants_table=settings.grants_table,
                usage_table=settings.usage_table,
            ),
            S3ObjectStore(self.s3, settings.bucket),
            settings,
            clock=self._clock,
            group_member=lambda group, identity: self.groups.is_member(group, identity),
        )

    @cached_property
    def groups(self) -> GroupService:
        settings = self.blob_settings
        cards = self.cards

        def card(card_id: str) -> Card | None:
            try:
                return cards.get(card_id).card
            except NotFound:
                return None

        return GroupService(
            DynamoGroupStore(self.dynamodb, settings.groups_table),
            S3WrapsStore(self.s3, settings.bucket),
            card,
            clock=self._clock,
            url_ttl=settings.download_url_ttl,
        )

    # --- authentication -----------------------------------------------------------

    def authenticate_refresh(self, token: str) -> Principal:
        session = self.accounts.authenticate_refresh(token)
        return Principal(identity=session.identity, expires_at=session.expires_at, credential=token)

    def authenticate_access(self, token: str) -> Principal:
        claims = self.tokens.verify(token)
        return Principal(identity=claims.identity, expires_at=claims.exp, credential=token)

    def authenticator(self, auth: Auth) -> Authenticator:
        if auth is Auth.REFRESH:
            return self.authenticate_refresh
        if auth is Auth.ACCESS:
            return self.authenticate_access
        raise ValueError(f"no authenticator for {auth}")


_container: Container | None = None
_container_lock = threading.Lock()


def container() -> Container:
    """The container of this warm Lambda (built on first call)."""
    global _container
    if _container is None:
        with _container_lock:
            if _container is None:
                _container = Container(Settings.from_env())
    return _container


def authenticator(auth: Auth) -> Authenticator:
    """Resolve the authenticator for ``auth`` at request time."""
    return container().authenticator(auth)


def install(new: Container | None) -> None:
    """Replace the container (tests and the local stack)."""
    global _container
    with _container_lock:
        _container = new


def reset() -> None:
    """Forget the container; the next request builds a fresh one."""
    install(None)
