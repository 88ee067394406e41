"""The one HTTP client of the device: every route of the Sealbox API (DESIGN §3).

Each method is one route and takes the credential it needs as an argument
(a refresh token or an access token), so whoever holds the session decides
when to renew it (:class:`client_sim.session.Session`).  Refusals become
:class:`~client_sim.errors.ServerError` with the server's stable error code,
a reply that can't be read is ``ServerError.malformed``, and no reply at all
is :class:`~client_sim.errors.ConnectionFailed` from the transport.  Nothing
here retries or caches: the objects above decide that.

The reply types of the blob routes (:class:`BlobInfo`, :class:`Reservation`,
:class:`BlobPage`) are defined here too: presigned URLs in them are bearer
credentials, so their ``repr`` hides them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.blobids import is_blob_id
from chalicelib.wire.identity import is_identity
from client_sim.errors import InvalidInput, ServerError
from client_sim.transport import HttpReply, Transport

__all__ = [
    "AccessToken",
    "ApiClient",
    "BlobInfo",
    "BlobPage",
    "Download",
    "RefreshSession",
    "Reservation",
    "UploadTarget",
    "server_error",
]


@dataclass(frozen=True)
class RefreshSession:
    identity: str
    expires_at: int
    refresh_token: str = field(repr=False)
    # From a login: the device cookie to present at this device's next login.
    device_cookie: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AccessToken:
    """A renewal's answer: the access token and the refresh token that replaces the one spent."""

    expires_in: int
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    refresh_token_expires_at: int
    token_type: str = "Bearer"  # noqa: S105 - a scheme name


@dataclass(frozen=True)
class Download:
    url: str = field(repr=False)
    expires_in: int


@dataclass(frozen=True)
class BlobInfo:
    """A blob as the server describes it to the caller."""

    blob_id: str
    owner: str
    recipients: tuple[str, ...]
    size: int
    created_at: int
    state: str
    version: int
    expires_at: int | None = None
    header_length: int | None = None
    armored: bool = False
    rejected_reason: str | None = None
    download: Download | None = None
    group: str | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> BlobInfo:
        """The blob described by a server reply.

        Every string that reaches a user is checked with the rules the
        server applies to input (a hostile server must not get terminal
        escapes or look-alike names onto a screen): the id has the blob id
        shape, owner and recipients are canonical identities, state and
        reason are short lower-case words.

        Raises:
            ValueError, KeyError, TypeError: the reply is not a valid blob.
        """
        download = obj.get("download")
        reason = obj.get("rejected_reason")
        return cls(
            blob_id=_checked(obj["blob_id"], is_blob_id, "blob id"),
            owner=_checked(obj["owner"], _is_identity, "owner"),
            recipients=tuple(_checked(r, _is_identity, "recipient") for r in obj["recipients"]),
            size=int(obj["size"]),
            created_at=int(obj["created_at"]),
            state=_checked(obj["state"], _is_word, "state"),
            version=int(obj["version"]),
            expires_at=_opt_int(obj.get("expires_at")),
            header_length=_opt_int(obj.get("header_length")),
            armored=bool(obj.get("armored", False)),
            rejected_reason=None if reason is None else _checked(reason, _is_word, "reason"),
            download=(
                Download(url=str(download["url"]), expires_in=int(download["expires_in"]))
                if isinstance(download, dict)
                else None
            ),
            group=None if obj.get("group") is None else _checked(obj["group"], _is_group, "group"),
        )


@dataclass(frozen=True)
class UploadTarget:
    url: str = field(repr=False)
    headers: Mapping[str, str]
    part_number: int | None = None

    @property
    def length(self) -> int:
        return int(self.headers["Content-Length"])


@dataclass(frozen=True)
class Reservation:
    """The answer to ``POST /v1/blobs``.  ``targets`` is empty when the blob
    is no longer waiting for an upload (an idempotent replay)."""

    blob_id: str
    state: str
    size: int
    version: int
    kind: str | None = None
    part_size: int | None = None
    expires_at: int | None = None
    expires_in: int | None = None
    targets: tuple[UploadTarget, ...] = ()

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Reservation:
        upload = obj.get("upload")
        targets: tuple[UploadTarget, ...] = ()
        kind = part_size = None
        if isinstance(upload, dict):
            kind = str(upload["kind"])
            if kind == "single":
                targets = (UploadTarget(url=str(upload["url"]), headers=dict(upload["headers"])),)
            else:
                part_size = int(upload["part_size"])
                targets = tuple(
                    UploadTarget(
                        url=str(p["url"]),
                        headers=dict(p["headers"]),
                        part_number=int(p["part_number"]),
                    )
                    for p in upload["parts"]
                )
        return cls(
            blob_id=_checked(obj["blob_id"], is_blob_id, "blob id"),
            state=_checked(obj["state"], _is_word, "state"),
            size=int(obj["size"]),
            version=int(obj["version"]),
            kind=kind,
            part_size=part_size,
            expires_at=_opt_int(obj.get("expires_at")),
            expires_in=_opt_int(obj.get("expires_in")),
            targets=targets,
        )


@dataclass(frozen=True)
class BlobPage:
    """One page of ``GET /v1/blobs``; ``next_cursor`` is None on the last page."""

    items: tuple[BlobInfo, ...]
    next_cursor: str | None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> BlobPage:
        cursor = obj.get("next_cursor")
        return cls(
            items=tuple(BlobInfo.from_json(item) for item in obj["items"]),
            next_cursor=None if cursor is None else str(cursor),
        )


_WORD_RE = re.compile(r"[a-z_]{1,40}")


def _is_identity(value: object) -> bool:
    return isinstance(value, str) and is_identity(value)


def _is_group(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_-]{21}[AQgw]", value) is not None


def _is_word(value: object) -> bool:
    return isinstance(value, str) and _WORD_RE.fullmatch(value) is not None


def _checked(value: object, valid: Callable[[object], bool], what: str) -> str:
    """``value`` if ``valid`` accepts it; the caller's reply is malformed otherwise."""
    if not valid(value):
        raise ValueError(f"the server sent an invalid {what}")
    return str(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


_OCTETS = "application/octet-stream"


class ApiClient:
    """The HTTP contract as Python calls, over any :class:`Transport`."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def _call(
        self,
        method: str,
        path: str,
        *,
        payload: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        bearer: str | None = None,
        step_up: str | None = None,
        expect: int | tuple[int, ...] = 200,
    ) -> Any:
        """Send one request; return the parsed JSON body of an expected reply.

        ``payload`` goes as JSON, ``data`` as an octet stream; ``step_up``
        as the ``Sealbox-Step-Up`` header.

        Raises:
            ServerError: any other status, or a body that is not JSON.
            ConnectionFailed: no reply.
        """
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        if step_up is not None:
            headers["Sealbox-Step-Up"] = step_up
        body = None
        if payload is not None:
            body = json.dumps(payload).encode("utf-8")
        elif data is not None:
            body = data
            headers["Content-Type"] = "application/octet-stream"
        reply = self.transport.request(method, path, body=body, headers=headers)
        if reply.status not in (expect if isinstance(expect, tuple) else (expect,)):
            raise server_error(reply)
        try:
            return reply.json()
        except ValueError as exc:
            raise ServerError.malformed("reply") from exc

    # accounts ---------------------------------------------------------------

    def register(
        self, username: str, login_key_b64: str, oprf_key_version: int | None = None
    ) -> str:
        """Create the account; return the canonical identity."""
        payload: dict[str, Any] = {"username": username, "login_key": login_key_b64}
        if oprf_key_version is not None:
            payload["oprf_key_version"] = oprf_key_version
        out = self._call("POST", "/v1/users", payload=payload, expect=201)
        return str(out["identity"])

    def evaluate_oprf(
        self, username: str, blinded_element_b64: str, device_cookie: str | None = None
    ) -> list[Any]:
        """``POST /v1/oprf``: the server's evaluations, unchecked (client_sim.hardening checks)."""
        payload = {"username": username, "blinded_element": blinded_element_b64}
        if device_cookie is not None:
            payload["device_cookie"] = device_cookie
        out = self._call("POST", "/v1/oprf", payload=payload, expect=200)
        evaluations = out.get("evaluations")
        if not isinstance(evaluations, list):
            raise ServerError.malformed("oprf")
        return evaluations

    def login(
        self,
        username: str,
        login_key_b64: str,
        device_cookie: str | None = None,
        *,
        oprf_key_version: int | None = None,
        legacy_login_keys: Mapping[int, str] | None = None,
    ) -> RefreshSession:
        """``POST /v1/sessions``; ``device_cookie``: from this device's last login, if any.

        ``legacy_login_keys``: this password's login keys under older
        derivations, by OPRF key version, so the server can migrate the account.
        """
        payload: dict[str, Any] = {"username": username, "login_key": login_key_b64}
        if device_cookie is not None:
            payload["device_cookie"] = device_cookie
        if oprf_key_version is not None:
            payload["oprf_key_version"] = oprf_key_version
        if legacy_login_keys:
            payload["legacy_login_keys"] = {str(v): k for v, k in legacy_login_keys.items()}
        out = self._call("POST", "/v1/sessions", payload=payload, expect=201)
        cookie = out.get("device_cookie")
        return RefreshSession(
            identity=str(out["identity"]),
            expires_at=int(out["expires_at"]),
            refresh_token=str(out["refresh_token"]),
            device_cookie=cookie if isinstance(cookie, str) else None,
        )

    def logout(self, refresh_token: str) -> None:
        self._call("DELETE", "/v1/sessions/current", bearer=refresh_token, expect=204)

    # tokens -----------------------------------------------------------------

    def access_token(self, refresh_token: str) -> AccessToken:
        """``POST /v1/tokens``: spends ``refresh_token``; keep the one returned.

        Presenting a token twice revokes its whole session family
        (``ServerError`` 401 ``refresh_token_reused``).
        """
        out = self._call("POST", "/v1/tokens", bearer=refresh_token)
        return AccessToken(
            access_token=str(out["access_token"]),
            token_type=str(out["token_type"]),
            expires_in=int(out["expires_in"]),
            refresh_token=str(out["refresh_token"]),
            refresh_token_expires_at=int(out["refresh_token_expires_at"]),
        )

    def me(self, access_token: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("GET", "/v1/me", bearer=access_token)
        return out

    def app_call(
        self,
        access_token: str,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None = None,
        *,
        expect: int | tuple[int, ...] = (200, 201, 204),
    ) -> Any:
        """One request to an app's own route (a backend extension); its JSON
        body, or None for an empty one.

        Raises:
            InvalidInput: ``path`` is not a path on this API (an absolute
                URL, ``//host``, a ``..`` segment, a control character): the
                access token must never be sent anywhere else.
            ServerError: an unexpected status or a body that is not JSON.
            ConnectionFailed: no reply.
        """
        if method.upper() not in _APP_METHODS:
            raise InvalidInput(f"method must be one of {', '.join(sorted(_APP_METHODS))}")
        if not _is_app_path(path):
            raise InvalidInput("path must be a path on this API, starting with one '/'")
        headers = {"Authorization": f"Bearer {access_token}"}
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        reply = self.transport.request(method.upper(), path, body=body, headers=headers)
        if reply.status not in (expect if isinstance(expect, tuple) else (expect,)):
            raise server_error(reply)
        if not reply.body:
            return None
        try:
            return reply.json()
        except ValueError as exc:
            raise ServerError.malformed("reply") from exc

    def jwks(self) -> dict[str, Any]:
        out: dict[str, Any] = self._call("GET", "/.well-known/jwks.json")
        return out

    def change_login_key(
        self,
        access_token: str,
        current_login_key_b64: str,
        new_login_key_b64: str,
        oprf_key_version: int | None = None,
    ) -> RefreshSession:
        """Replace the login key; every other session ends and a new one is returned."""
        payload: dict[str, Any] = {
            "current_login_key": current_login_key_b64,
            "new_login_key": new_login_key_b64,
        }
        if oprf_key_version is not None:
            payload["oprf_key_version"] = oprf_key_version
        out = self._call("PUT", "/v1/users/me/login-key", payload=payload, bearer=access_token)
        return RefreshSession(
            identity=str(out["identity"]),
            expires_at=int(out["expires_at"]),
            refresh_token=str(out["refresh_token"]),
        )

    # key directory: cards ------------------------------------------------------

    def step_up(self, access_token: str, login_key_b64: str) -> str:
        """``POST /v1/step-up``: a single-use proof for one destructive call (5 minutes)."""
        out = self._call(
            "POST",
            "/v1/step-up",
            payload={"login_key": login_key_b64},
            bearer=access_token,
            expect=201,
        )
        return str(out["step_up_token"])

    def publish_card(
        self,
        access_token: str,
        card: Mapping[str, Any],
        rotation_signature: str | None = None,
        step_up: str | None = None,
    ) -> dict[str, Any]:
        """Publish a card; the reply is ``{card, status, published_at, ...}``.

        ``rotation_signature`` (base64url) is required for a rotation: the
        previous card key's signature (``chalicelib.wire.cards.sign_rotation``).
        An identity reset (not a rotation, the identity has or had a card)
        needs ``step_up``.
        """
        payload: dict[str, Any] = {"card": card}
        if rotation_signature is not None:
            payload["rotation_signature"] = rotation_signature
        out: dict[str, Any] = self._call(
            "POST",
            "/v1/cards",
            payload=payload,
            bearer=access_token,
            step_up=step_up,
            expect=201,
        )
        return out

    def find_cards(self, access_token: str, identities: Sequence[str]) -> list[dict[str, Any]]:
        """Active card entries of up to 50 identities (absent ones are left out)."""
        query = urlencode([("identity", identity) for identity in identities])
        out = self._call("GET", f"/v1/cards?{query}", bearer=access_token)
        return list(out["cards"])

    def find_cards_proven(
        self, access_token: str, identities: Sequence[str]
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Like :meth:`find_cards`, with the log checkpoint the cards' proofs lead to
        (None from a stage without a transparency log)."""
        query = urlencode([("identity", identity) for identity in identities])
        out = self._call("GET", f"/v1/cards?{query}", bearer=access_token)
        checkpoint = out.get("checkpoint")
        return list(out["cards"]), checkpoint if isinstance(checkpoint, str) else None

    # key transparency (public routes) -------------------------------------------

    def kt_checkpoint(self) -> str:
        """The log's latest signed checkpoint (unverified: the caller verifies it)."""
        return str(self._call("GET", "/v1/kt/checkpoint")["checkpoint"])

    def kt_consistency(self, old_size: int, new_size: int) -> list[str]:
        """The consistency proof hashes (base64url) from ``old_size`` to ``new_size``."""
        out = self._call("GET", f"/v1/kt/consistency?from={int(old_size)}&to={int(new_size)}")
        return [str(h) for h in out["proof"]]

    def kt_entries(self, start: int, limit: int = 100) -> tuple[list[tuple[int, str]], int | None]:
        """Log leaves (index, base64url) from ``start``, and the next start if more exist."""
        out = self._call("GET", f"/v1/kt/entries?start={int(start)}&limit={int(limit)}")
        entries = [(int(e["index"]), str(e["leaf"])) for e in out["entries"]]
        following = out.get("next")
        return entries, int(following) if following is not None else None

    def get_card(self, access_token: str, card_id: str) -> dict[str, Any]:
        """One card entry by id, whatever its status."""
        out: dict[str, Any] = self._call(
            "GET", f"/v1/cards/{quote(card_id, safe='')}", bearer=access_token
        )
        return out

    def revoke_card(self, access_token: str, card_id: str, step_up: str | None = None) -> None:
        """Revoke this identity's active card; needs ``step_up``."""
        self._call(
            "POST",
            f"/v1/cards/{quote(card_id, safe='')}/revoke",
            bearer=access_token,
            step_up=step_up,
            expect=204,
        )

    # key directory: backups ----------------------------------------------------

    def put_backup(
        self,
        access_token: str,
        name: str,
        ciphertext_b64: str,
        version: int | None = None,
        step_up: str | None = None,
    ) -> dict[str, Any]:
        """Create (``version=None``) or compare-and-swap replace a backup.

        Replacing needs ``step_up``.

        Returns ``{name, version, updated_at}``.
        """
        payload: dict[str, Any] = {"ciphertext": ciphertext_b64}
        if version is not None:
            payload["version"] = version
        # 201 for a creation, 200 for a replacement.
        out: dict[str, Any] = self._call(
            "PUT",
            f"/v1/backups/{quote(name, safe='')}",
            payload=payload,
            bearer=access_token,
            step_up=step_up,
            expect=(200, 201),
        )
        return out

    def get_backup(self, access_token: str, name: str) -> dict[str, Any]:
        """``{name, ciphertext, version, updated_at}``; ServerError 404 when absent."""
        out: dict[str, Any] = self._call(
            "GET", f"/v1/backups/{quote(name, safe='')}", bearer=access_token
        )
        return out

    def delete_backup(
        self,
        access_token: str,
        name: str,
        version: int | None = None,
        step_up: str | None = None,
    ) -> None:
        """Delete a backup (at ``version`` only, if given); needs ``step_up``."""
        path = f"/v1/backups/{quote(name, safe='')}"
        if version is not None:
            path += f"?version={version}"
        self._call("DELETE", path, bearer=access_token, step_up=step_up, expect=204)

    # blobs --------------------------------------------------------------------

    def reserve_blob(
        self,
        access_token: str,
        size: int,
        recipients: Sequence[str],
        *,
        idempotency_key: str | None = None,
        group: str | None = None,
    ) -> Reservation:
        """``POST /v1/blobs``: reserve ``size`` bytes readable by ``recipients``
        (or, with ``group``, by the group's current members)."""
        payload: dict[str, Any] = {"size": size, "recipients": list(recipients)}
        if idempotency_key is not None:
            payload["idempotency_key"] = idempotency_key
        if group is not None:
            payload["group"] = group
        out = self._call("POST", "/v1/blobs", payload=payload, bearer=access_token, expect=201)
        return _parsed(Reservation.from_json, out, "reservation")

    def put_blob_content(self, access_token: str, blob_id: str, data: bytes) -> BlobInfo:
        """``PUT /v1/blobs/{id}/content``: a small ciphertext, stored and READY at once."""
        out = self._call("PUT", _blob_path(blob_id, "content"), data=data, bearer=access_token)
        return _parsed(BlobInfo.from_json, out, "blob")

    def commit_blob(self, access_token: str, blob_id: str) -> BlobInfo:
        """``POST /v1/blobs/{id}/commit``: have the upload checked."""
        out = self._call("POST", _blob_path(blob_id, "commit"), bearer=access_token)
        return _parsed(BlobInfo.from_json, out, "blob")

    def get_blob(self, access_token: str, blob_id: str) -> BlobInfo:
        """``GET /v1/blobs/{id}``: metadata and, when READY, a download URL."""
        out = self._call("GET", _blob_path(blob_id), bearer=access_token)
        return _parsed(BlobInfo.from_json, out, "blob")

    def list_blobs(
        self,
        access_token: str,
        role: str = "outbox",
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> BlobPage:
        """``GET /v1/blobs``: one page of the outbox or the inbox."""
        query: dict[str, str] = {"role": role}
        if limit is not None:
            query["limit"] = str(limit)
        if cursor is not None:
            query["cursor"] = cursor
        out = self._call("GET", "/v1/blobs?" + urlencode(query), bearer=access_token)
        return _parsed(BlobPage.from_json, out, "blob listing")

    def set_blob_recipients(
        self,
        access_token: str,
        blob_id: str,
        recipients: Sequence[str],
        *,
        version: int,
        header: bytes | None = None,
    ) -> BlobInfo:
        """``PUT /v1/blobs/{id}/recipients``.  Without ``header`` the new set
        must be a subset of the current one."""
        payload: dict[str, Any] = {"recipients": list(recipients), "version": version}
        if header is not None:
            payload["header"] = b64url_encode(header)
        out = self._call(
            "PUT", _blob_path(blob_id, "recipients"), payload=payload, bearer=access_token
        )
        return _parsed(BlobInfo.from_json, out, "blob")

    def delete_blob(self, access_token: str, blob_id: str) -> None:
        """``DELETE /v1/blobs/{id}``: content (every version) and metadata."""
        self._call("DELETE", _blob_path(blob_id), bearer=access_token, expect=204)

    # groups -------------------------------------------------------------------

    def list_groups(self, access_token: str) -> list[dict[str, Any]]:
        """``GET /v1/groups``: the groups this identity is a current member of."""
        out = self._call("GET", "/v1/groups", bearer=access_token)
        return _parsed(lambda o: [dict(item) for item in o["items"]], out, "group listing")

    def get_group(self, access_token: str, group_id: str, *, roster: bool = True) -> dict[str, Any]:
        """``GET /v1/groups/{id}``: ``group_id``, ``epoch``, ``head`` and ``roster``;
        without ``roster``, ``group_id``, ``epoch`` and ``roster_hash`` only."""
        path = _group_path(group_id) + ("" if roster else "?roster=false")
        return dict(self._call("GET", path, bearer=access_token))

    def get_group_epoch(
        self,
        access_token: str,
        group_id: str,
        number: int,
        card_id: str | None,
        *,
        delta: bool = False,
    ) -> dict[str, Any]:
        """``GET /v1/groups/{id}/epochs/{n}``: the epoch and the ranged GET of our wrap
        (with ``delta``, the epoch's delta form when the wrap is given)."""
        path = _group_path(group_id, "epochs", str(number))
        query = {} if card_id is None else {"card_id": card_id}
        if delta:
            query["form"] = "delta"
        if query:
            path += "?" + urlencode(query)
        return dict(self._call("GET", path, bearer=access_token))

    def group_catchup(
        self, access_token: str, group_id: str, after: int, card_id: str, nonce: bytes
    ) -> bytes:
        """``GET /v1/groups/{id}/catchup``: the binary catch-up frame after epoch
        ``after`` for our card ``card_id`` (parsed and checked by the caller).

        Raises:
            ServerError: a refusal, or a reply that is not an octet stream.
        """
        query = {"after": str(after), "card_id": card_id, "nonce": b64url_encode(nonce)}
        path = _group_path(group_id, "catchup") + "?" + urlencode(query)
        headers = {"Authorization": f"Bearer {access_token}", "Accept": _OCTETS}
        reply = self.transport.request("GET", path, headers=headers)
        if reply.status != 200:
            raise server_error(reply)
        kind = str(reply.headers.get("content-type", "")).split(";")[0].strip().lower()
        if kind != _OCTETS:
            raise ServerError.malformed("catch-up frame")
        return reply.body

    def reserve_group_wraps(
        self, access_token: str, group_id: str, number: int, size: int
    ) -> dict[str, Any]:
        """``POST /v1/groups/{id}/epochs/{n}/wraps``: where to upload the wraps object."""
        path = _group_path(group_id, "epochs", str(number), "wraps")
        return dict(
            self._call("POST", path, payload={"size": size}, bearer=access_token, expect=201)
        )

    def append_group_epoch(
        self, access_token: str, group_id: str, epoch: bytes, wraps_id: str
    ) -> dict[str, Any]:
        """``POST /v1/groups/{id}/epochs``: append a signed epoch."""
        payload = {"epoch": b64url_encode(epoch), "wraps_id": wraps_id}
        out = self._call(
            "POST", _group_path(group_id, "epochs"), payload=payload, bearer=access_token,
            expect=201,
        )  # fmt: skip
        return dict(out)

    def share_group_history(self, access_token: str, group_id: str, share: bytes) -> str:
        """``POST /v1/groups/{id}/history``: store a signed history share; its id."""
        out = self._call(
            "POST", _group_path(group_id, "history"), payload={"share": b64url_encode(share)},
            bearer=access_token, expect=201,
        )  # fmt: skip
        return _parsed(lambda o: str(o["share_id"]), out, "history share")

    def get_group_history(self, access_token: str, group_id: str) -> list[tuple[str, bytes]]:
        """``GET /v1/groups/{id}/history``: ``(share id, share)`` stored for this identity."""
        out = self._call("GET", _group_path(group_id, "history"), bearer=access_token)
        return _parsed(
            lambda o: [(str(i["share_id"]), b64url_decode(str(i["data"]))) for i in o["items"]],
            out,
            "history shares",
        )


def server_error(reply: HttpReply) -> ServerError:
    """The :class:`ServerError` for a reply that isn't the expected success."""
    retry_after: int | None = None
    raw_retry = reply.headers.get("retry-after")
    if raw_retry and raw_retry.isdigit():
        retry_after = int(raw_retry)
    try:
        err = reply.json()["error"]
        return ServerError(reply.status, str(err["code"]), str(err["message"]), retry_after)
    except (ValueError, KeyError, TypeError):
        return ServerError(reply.status, f"http_{reply.status}", "unexpected response", retry_after)


_R = TypeVar("_R")


def _parsed(parse: Callable[[Any], _R], out: Any, what: str) -> _R:
    """``parse(out)``, or ``ServerError.malformed`` for an answer of the wrong shape."""
    try:
        return parse(out)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ServerError.malformed(what) from exc


def _blob_path(blob_id: str, *rest: str) -> str:
    # Quoted, so an id can never add path segments (the server checks ids too).
    return "/".join(["/v1/blobs", quote(blob_id, safe=""), *rest])


_APP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


def _is_app_path(path: object) -> bool:
    """A path (and query) on the API's own origin: one leading '/', no
    scheme, no ``..`` segment, printable ASCII only, bounded."""
    if not isinstance(path, str) or not 1 < len(path) <= 2048:
        return False
    if not path.startswith("/") or path.startswith("//") or "\\" in path or "#" in path:
        return False
    if any(not 0x21 <= ord(ch) <= 0x7E for ch in path):
        return False
    route = path.split("?", 1)[0]
    if "%2e" in route.lower() or "%2f" in route.lower():
        return False  # an encoded dot or slash a proxy might decode into a climb
    return all(segment not in (".", "..") for segment in route.split("/"))


def _group_path(group_id: str, *rest: str) -> str:
    return "/".join(["/v1/groups", quote(group_id, safe=""), *rest])
