"""Where presigned transfer URLs may point: the configured storage origins.

The server answers a reservation with upload URLs and a blob lookup with a
download URL, and the device sends ciphertext to (or reads it from) wherever
they point.  A hostile or compromised server could name a host it controls,
collect the ciphertext, serve its own, or probe the device's network.  So
the device holds a list of storage origins (scheme, host, port) and checks
every transfer URL against it *before* any connection is made; anything
else is :class:`~client_sim.errors.StorageOriginRefused`.

A transfer URL is accepted only when (docs/security.md, "Storage origins"):

* it is ASCII with no whitespace, control character or backslash, so every
  URL parser on the way (ours, ``http.client``, urllib3) reads the same host;
* its scheme is ``http`` or ``https``;
* its authority is exactly ``host[:port]``: no user info (``http://a@b`` is
  refused, whatever ``a`` says); the host is a DNS name or IPv4 address in
  ``[a-z0-9.-]`` (compared lower-cased: DNS is case-insensitive) or a
  bracketed IPv6 literal, so percent-encoded and non-ASCII (IDN) hosts,
  which resolvers may map onto other names, are refused;
* its port is 1-65535, the scheme's default when absent (``https://h`` is
  ``https://h:443``);
* ``(scheme, host, port)`` equals one configured origin.  No wildcards: an
  S3 wildcard such as ``*.s3.amazonaws.com`` would admit every bucket,
  including one the attacker owns.

Configured origins are written ``scheme://host[:port]`` (a trailing ``/``
is allowed) under the same host rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

from client_sim.errors import InvalidInput, StorageOriginRefused
from client_sim.transport import HttpTransport, Transport

__all__ = ["Origin", "StorageOrigins", "parse_origin", "s3_bucket_origins"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_AUTHORITY_RE = re.compile(
    r"(?P<host>[a-z0-9.-]{1,253}|\[[0-9a-f:.]{2,45}\])(?::(?P<port>[0-9]{1,5}))?", re.IGNORECASE
)
# Characters that can make two parsers disagree about where a URL goes.
_UNSAFE_RE = re.compile(r"[\x00-\x20\x7f\\]")
# How a refused origin is shown: anything else is percent-encoded.
_SHOWN = "abcdefghijklmnopqrstuvwxyz0123456789.-:[]%"


@dataclass(frozen=True)
class Origin:
    """A normalised origin: lower-case scheme and host, explicit port."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        default = _DEFAULT_PORTS[self.scheme] == self.port
        return f"{self.scheme}://{self.host}" + ("" if default else f":{self.port}")


def _origin(scheme: str, authority: str) -> Origin | None:
    """The origin of an already split URL, or None if it breaks a rule above."""
    scheme = scheme.lower()
    match = _AUTHORITY_RE.fullmatch(authority)
    if scheme not in _DEFAULT_PORTS or match is None:
        return None
    port = int(match["port"]) if match["port"] else _DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        return None
    return Origin(scheme, match["host"].lower(), port)


def parse_origin(text: str) -> Origin:
    """The origin written ``scheme://host[:port]`` (configuration, not a transfer URL).

    Raises:
        InvalidInput: not an http(s) origin by the rules of this module
            (a path, query, user info, wildcard or unusual host is refused).
    """
    if not isinstance(text, str):
        raise TypeError("a storage origin is a string")
    if "*" in text:
        raise InvalidInput("storage origins take no wildcards: list each origin")
    parts = _split(text)
    origin = None
    if parts is not None and parts.path in ("", "/") and not (parts.query or parts.fragment):
        origin = _origin(parts.scheme, parts.netloc)
    if origin is None:
        raise InvalidInput(f"not a storage origin (scheme://host[:port]): {_shown(text[:300])}")
    return origin


def _split(url: str) -> SplitResult | None:
    """``url`` split, or None if it holds a character parsers may read differently."""
    if not url.isascii() or _UNSAFE_RE.search(url):
        return None
    try:
        return urlsplit(url)
    except ValueError:  # a broken IPv6 literal
        return None


def s3_bucket_origins(bucket: str, region: str) -> tuple[str, ...]:
    """The origins of an S3 bucket's presigned URLs, virtual-hosted style over HTTPS.

    botocore presigns with the global name ``https://BUCKET.s3.amazonaws.com``
    whatever the region, and S3 may answer it with a redirect to the
    regional name ``https://BUCKET.s3.REGION.amazonaws.com``; both name this
    bucket alone.  Path-style origins (``https://s3.REGION.amazonaws.com``)
    are left out on purpose: every bucket shares them, so pinning one pins
    nothing.  (Bucket names with dots force path style; Sealbox's don't
    have any.)

    Raises:
        InvalidInput: the names can't form an origin.
    """
    names = (f"https://{bucket}.s3.amazonaws.com", f"https://{bucket}.s3.{region}.amazonaws.com")
    for name in names:
        parse_origin(name)
    return names


class StorageOrigins:
    """The storage origins a device sends presigned transfers to, and the check.

    ``StorageOrigins(["https://sealbox-prod-blobs-111122223333-eu-west-1.s3.amazonaws.com"])``;
    :meth:`for_transport` adds the API's own origin when the transport is
    HTTP (the device already trusts it with its tokens and ciphertext).
    An empty set refuses every presigned transfer.

    Raises (constructor):
        InvalidInput: an origin breaks the rules of this module.
    """

    def __init__(self, origins: Iterable[str]) -> None:
        if isinstance(origins, str):
            raise TypeError("origins must be a collection of strings, not a string")
        self._allowed = frozenset(parse_origin(origin) for origin in origins)

    @classmethod
    def for_transport(cls, transport: Transport, origins: Iterable[str] = ()) -> StorageOrigins:
        """``origins`` plus, over HTTP, the API's own origin."""
        if isinstance(origins, str):
            raise TypeError("origins must be a collection of strings, not a string")
        listed = list(origins)
        if isinstance(transport, HttpTransport):
            parts = urlsplit(transport.base_url)
            listed.append(f"{parts.scheme}://{parts.netloc}")
        return cls(listed)

    @property
    def origins(self) -> tuple[str, ...]:
        """The allowed origins, sorted (not secrets)."""
        return tuple(sorted(str(origin) for origin in self._allowed))

    def check(self, url: str) -> None:
        """Return if ``url`` may be contacted; refuse it otherwise.

        Raises:
            StorageOriginRefused: the URL breaks a rule of this module or
                names another origin; its ``origin`` says which (never the
                rest of the URL, a credential).
        """
        parts = _split(url)
        origin = None if parts is None else _origin(parts.scheme, parts.netloc)
        if origin is None or origin not in self._allowed:
            raise StorageOriginRefused(describe(url))

    def __repr__(self) -> str:
        return f"StorageOrigins({list(self.origins)!r})"


def describe(url: str) -> str:
    """Where ``url`` points, for a message: ``scheme://host[:port]``, escaped.

    The user info, path and query are left out (the query of a presigned URL
    is a bearer credential); every character outside ``[a-z0-9.:[]%-]`` is
    percent-encoded, so a hostile host name can't write to a terminal.
    """
    try:
        parts = urlsplit(url[:2048])
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "a malformed URL"
    shown = f"{_shown(parts.scheme)}://{_shown(host)}"
    return shown + (f":{port}" if port is not None else "")


def _shown(text: str) -> str:
    return quote(text.lower()[:255], safe=_SHOWN)
