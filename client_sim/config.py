"""The app's SDK trust configuration: one small JSON file of public values.

A backend's deployer writes it (``make deploy`` to ``out/<stage>/sdk-config.json``,
``sealbox local`` to its state directory) and an app ships it::

    {"version": 1,
     "url": "https://abc.execute-api.eu-west-1.amazonaws.com/api/",
     "log_key": "sealbox.invalid/prod/kt+1a2b3c4d+AQ...",
     "oprf_roots": {"1": "<base64url of the 32-byte Ed25519 root public key>"},
     "storage_origins": ["https://sealbox-prod-blobs-1-eu-west-1.s3.amazonaws.com"]}

It pins what the device must never learn from the server it checks: the
transparency log's verifier key (docs/spec/transparency.md), the OPRF root
public keys by key version (docs/spec/oprf.md) and where presigned transfer
URLs may point (:mod:`client_sim.origins`).  Nothing in it is secret.

:meth:`SdkConfig.load` is strict: an unknown or missing field, a wrong type,
an unknown ``version``, a malformed key or origin is refused with
:class:`ConfigError` naming the file and the field; nothing is guessed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.note import NoteError, parse_verifier_key
from client_sim.errors import InvalidInput
from client_sim.origins import parse_origin

__all__ = ["CONFIG_ENV", "CONFIG_VERSION", "ConfigError", "SdkConfig"]

#: The configuration format this SDK reads.
CONFIG_VERSION: Final = 1
#: The environment variable ``sealbox device`` reads the file's path from.
CONFIG_ENV: Final = "SEALBOX_CONFIG"
_MAX_BYTES: Final = 64 * 1024
_FIELDS: Final = frozenset({"version", "url", "log_key", "oprf_roots", "storage_origins"})
_ROOT_SIZE: Final = 32


class ConfigError(InvalidInput):
    """The SDK configuration is missing, unreadable or invalid (the message says where)."""


@dataclass(frozen=True)
class SdkConfig:
    """The trust anchors of one backend (public values only).

    ``log_key`` None: no transparency log pinned; ``oprf_roots`` empty: no
    password hardening (the version-1 derivation).
    """

    url: str
    log_key: str | None = None
    oprf_roots: Mapping[int, bytes] = field(default_factory=dict)
    storage_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check(self.url, self.log_key, self.oprf_roots, self.storage_origins, where="config")

    def device_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~client_sim.device.Device` (all but the URL)."""
        return {
            "log_key": self.log_key,
            "oprf_roots": dict(self.oprf_roots) or None,
            "storage_origins": self.storage_origins,
        }

    def to_json(self) -> dict[str, Any]:
        """The file's content (:meth:`load` reads it back)."""
        return {
            "version": CONFIG_VERSION,
            "url": self.url,
            "log_key": self.log_key,
            "oprf_roots": {str(v): b64url_encode(r) for v, r in sorted(self.oprf_roots.items())},
            "storage_origins": list(self.storage_origins),
        }

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the file (atomically, readable by all: nothing in it is secret)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SdkConfig:
        """Read and validate the file at ``path``.

        Raises:
            ConfigError: the file can't be read, is not JSON, or breaks a
                rule of this module (the message names the field).
        """
        where = str(path)
        try:
            with open(path, "rb") as handle:
                raw = handle.read(_MAX_BYTES + 1)
        except OSError as exc:
            raise ConfigError(
                f"{where}: can't read the SDK configuration ({exc.strerror})"
            ) from exc
        if len(raw) > _MAX_BYTES:
            raise ConfigError(f"{where}: larger than {_MAX_BYTES} bytes")
        try:
            value = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{where}: not a JSON document") from exc
        return cls.from_json(value, where=where)

    @classmethod
    def from_json(cls, value: object, *, where: str = "config") -> SdkConfig:
        """Validate a parsed configuration document.

        Raises:
            ConfigError: as :meth:`load`.
        """
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: must be a JSON object")
        unknown = sorted(set(value) - _FIELDS)
        if unknown:
            raise ConfigError(f"{where}: unknown field {unknown[0]!r}")
        version = value.get("version")
        if type(version) is not int:
            raise ConfigError(f"{where}: 'version' must be an integer")
        if version != CONFIG_VERSION:
            raise ConfigError(
                f"{where}: configuration version {version} is not supported "
                f"(this SDK reads version {CONFIG_VERSION})"
            )
        for name in ("url", "log_key", "oprf_roots", "storage_origins"):
            if name not in value:
                raise ConfigError(f"{where}: missing field {name!r}")
        roots = value["oprf_roots"]
        if not isinstance(roots, dict):
            raise ConfigError(f"{where}: 'oprf_roots' must be an object of version: key")
        parsed: dict[int, bytes] = {}
        for version_text, root in roots.items():
            if not (version_text.isascii() and version_text.isdigit()) or version_text != str(
                int(version_text)
            ):
                raise ConfigError(f"{where}: oprf_roots: {version_text[:20]!r} is not a version")
            if not isinstance(root, str):
                raise ConfigError(f"{where}: oprf_roots[{version_text}] must be a string")
            try:
                parsed[int(version_text)] = b64url_decode(root, max_len=_ROOT_SIZE)
            except ValueError as exc:
                raise ConfigError(f"{where}: oprf_roots[{version_text}] is not base64url") from exc
        origins = value["storage_origins"]
        if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
            raise ConfigError(f"{where}: 'storage_origins' must be a list of strings")
        _check(value["url"], value["log_key"], parsed, tuple(origins), where=where)
        return cls(
            url=value["url"],
            log_key=value["log_key"],
            oprf_roots=parsed,
            storage_origins=tuple(origins),
        )


def _check(
    url: object,
    log_key: object,
    oprf_roots: Mapping[int, bytes],
    storage_origins: tuple[str, ...],
    *,
    where: str,
) -> None:
    """Raise :class:`ConfigError` unless every value is well formed."""
    if not isinstance(url, str):
        raise ConfigError(f"{where}: 'url' must be a string")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{where}: 'url' must be an http(s) URL")
    if log_key is not None:
        if not isinstance(log_key, str):
            raise ConfigError(f"{where}: 'log_key' must be a string or null")
        try:
            parse_verifier_key(log_key)
        except NoteError as exc:
            raise ConfigError(f"{where}: 'log_key' is not a log verifier key") from exc
    for version, root in oprf_roots.items():
        if type(version) is not int or not 1 <= version < 2**32:
            raise ConfigError(f"{where}: OPRF key version {version!r} is out of range")
        if not isinstance(root, bytes) or len(root) != _ROOT_SIZE:
            raise ConfigError(f"{where}: oprf_roots[{version}] must be a 32-byte key")
    if isinstance(storage_origins, str):
        raise ConfigError(f"{where}: 'storage_origins' must be a list")
    for origin in storage_origins:
        try:
            parse_origin(origin)
        except InvalidInput as exc:
            raise ConfigError(f"{where}: storage_origins: {exc}") from exc
