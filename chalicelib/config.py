"""Backend settings, read from the environment of the running stage.

``.chalice/config.json`` sets these per stage (local, dev, prod and test);
``chalice.test.Client`` and ``chalice local`` apply the same file, and Lambda
gets it from the deployment.  Parsing is strict: an unknown profile name or a
non-numeric value is a deployment bug, reported at first use rather than
papered over with a default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# OWASP Password Storage Cheat Sheet, Argon2id: m=19 MiB, t=2, p=1 is the
# minimum recommended configuration.  ``test`` exists only so the test suite
# can run thousands of logins; a stage selects it explicitly.
ARGON2_PROFILES: Mapping[str, tuple[int, int, int]] = {
    #        (memory KiB, iterations, lanes)
    "owasp": (19 * 1024, 2, 1),
    "test": (64, 1, 1),
}


@dataclass(frozen=True)
class Settings:
    """Everything the backend reads from its environment."""

    stage: str
    users_table: str
    sessions_table: str
    attempts_table: str
    app_key_secret_id: str
    token_issuer: str
    token_audience: str
    access_token_ttl: int
    refresh_token_ttl: int
    argon2_profile: str
    app_key_cache_ttl: int
    region: str
    # Key directory (cards, backups).
    cards_table: str
    backups_table: str
    card_max_skew: int
    # Password hardening (docs/spec/oprf.md): the OPRF key's own secret.
    # Unset: the OPRF route answers 503 and accounts stay on the pre-OPRF
    # derivation (a stage that predates it).
    oprf_key_secret_id: str | None = None
    oprf_key_cache_ttl: int = 300
    # Key transparency (docs/spec/transparency.md): the log's signing key has
    # its own secret; the origin names the log in its checkpoints and is the
    # key's name.  No secret id: the log is off (cards carry no proofs).
    kt_log_key_secret_id: str | None = None
    kt_origin: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default: ``os.environ``).

        Raises:
            RuntimeError: a required variable is missing or malformed.
        """
        env = os.environ if env is None else env
        need, number = _readers(env)
        profile = env.get("SEALBOX_ARGON2_PROFILE", "owasp")
        if profile not in ARGON2_PROFILES:
            raise RuntimeError("setting SEALBOX_ARGON2_PROFILE names an unknown profile")
        return cls(
            stage=env.get("SEALBOX_STAGE", "dev"),
            users_table=need("SEALBOX_USERS_TABLE"),
            sessions_table=need("SEALBOX_SESSIONS_TABLE"),
            attempts_table=need("SEALBOX_ATTEMPTS_TABLE"),
            app_key_secret_id=need("SEALBOX_APP_KEY_SECRET_ID"),
            token_issuer=need("SEALBOX_TOKEN_ISSUER"),
            token_audience=need("SEALBOX_TOKEN_AUDIENCE"),
            # DESIGN §3: access tokens live at most 20 minutes.
            access_token_ttl=number("SEALBOX_ACCESS_TOKEN_TTL", 900, 60, 1200),
            refresh_token_ttl=number("SEALBOX_REFRESH_TOKEN_TTL", 30 * 86400, 300, 90 * 86400),
            argon2_profile=profile,
            app_key_cache_ttl=number("SEALBOX_APP_KEY_CACHE_TTL", 300, 0, 3600),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            cards_table=need("SEALBOX_CARDS_TABLE"),
            backups_table=need("SEALBOX_BACKUPS_TABLE"),
            # How far a published card's created_at may be from the server clock.
            card_max_skew=number("SEALBOX_CARD_MAX_SKEW", 300, 30, 3600),
            oprf_key_secret_id=env.get("SEALBOX_OPRF_KEY_SECRET_ID") or None,
            oprf_key_cache_ttl=number("SEALBOX_OPRF_KEY_CACHE_TTL", 300, 0, 3600),
            kt_log_key_secret_id=env.get("SEALBOX_KT_LOG_KEY_SECRET_ID") or None,
            kt_origin=_kt_origin(env),
        )


def _kt_origin(env: Mapping[str, str]) -> str:
    origin = env.get("SEALBOX_KT_ORIGIN", "")
    if env.get("SEALBOX_KT_LOG_KEY_SECRET_ID") and not origin:
        raise RuntimeError("missing required setting SEALBOX_KT_ORIGIN")
    if origin and (len(origin) > 200 or "+" in origin or any(c.isspace() for c in origin)):
        raise RuntimeError("setting SEALBOX_KT_ORIGIN must be a schema-less URL without spaces")
    return origin


def _readers(
    env: Mapping[str, str],
) -> tuple[Callable[[str], str], Callable[[str, int, int, int], int]]:
    """``need(name)`` and ``number(name, default, lo, hi)`` over ``env``: a
    required non-empty string, and an optional integer within bounds.

    Raises (from the readers):
        RuntimeError: a required variable is missing, or a number is not an
            integer or out of bounds.
    """

    def need(name: str) -> str:
        value = env.get(name)
        if not value:
            raise RuntimeError(f"missing required setting {name}")
        return value

    def number(name: str, default: int, lo: int, hi: int) -> int:
        raw = env.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError as exc:
            raise RuntimeError(f"setting {name} must be an integer") from exc
        if not lo <= value <= hi:
            raise RuntimeError(f"setting {name} must be within [{lo}, {hi}]")
        return value

    return need, number


# --- blobs ------------------------------------------------------------------------

_MIB = 1024 * 1024
_GIB = 1024 * _MIB


@dataclass(frozen=True)
class BlobSettings:
    """Settings of encrypted blob storage (``/v1/blobs`` and its S3 event handler).

    Read on first use of blob storage, so a container that only serves
    accounts and tokens never needs them.
    """

    bucket: str
    table: str
    grants_table: str
    usage_table: str
    events_queue: str
    #: The groups table (group heads, epochs, member index); group wraps
    #: objects live in ``bucket`` under ``groups/``.
    groups_table: str = ""
    #: Largest blob accepted at reservation.
    max_size: int = 5 * _GIB
    #: Multipart part size; blobs up to this size are one presigned PUT.
    #: S3's minimum part size is 5 MiB.
    part_size: int = 16 * _MIB
    #: Lifetime of presigned upload and download URLs (bearer credentials).
    upload_url_ttl: int = 900
    download_url_ttl: int = 300
    #: How long a reservation waits for its upload before it can be reclaimed.
    reservation_ttl: int = 86400
    #: Per-user quotas: bytes of reserved or stored blobs, and their number.
    quota_bytes: int = 10 * _GIB
    quota_count: int = 10_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BlobSettings:
        """Build blob settings from ``env`` (default: ``os.environ``).

        Raises:
            RuntimeError: a required variable is missing or malformed.
        """
        env = os.environ if env is None else env
        need, number = _readers(env)
        return cls(
            bucket=need("SEALBOX_BLOBS_BUCKET"),
            table=need("SEALBOX_BLOBS_TABLE"),
            grants_table=need("SEALBOX_BLOB_GRANTS_TABLE"),
            usage_table=need("SEALBOX_BLOB_USAGE_TABLE"),
            events_queue=need("SEALBOX_BLOB_EVENTS_QUEUE"),
            groups_table=need("SEALBOX_GROUPS_TABLE"),
            max_size=number("SEALBOX_BLOB_MAX_SIZE", 5 * _GIB, 1024, 50 * _GIB),
            part_size=number("SEALBOX_BLOB_PART_SIZE", 16 * _MIB, 5 * _MIB, 512 * _MIB),
            # Presigned URLs are bearer credentials: minutes, not hours.
            upload_url_ttl=number("SEALBOX_BLOB_UPLOAD_URL_TTL", 900, 60, 3600),
            download_url_ttl=number("SEALBOX_BLOB_DOWNLOAD_URL_TTL", 300, 60, 3600),
            reservation_ttl=number("SEALBOX_BLOB_RESERVATION_TTL", 86400, 600, 7 * 86400),
            quota_bytes=number("SEALBOX_BLOB_QUOTA_BYTES", 10 * _GIB, 1024, 1 << 50),
            quota_count=number("SEALBOX_BLOB_QUOTA_COUNT", 10_000, 1, 10_000_000),
        )
