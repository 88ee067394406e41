"""DynamoDB adapter of the key-transparency log, and its signing key in Secrets Manager.

The log lives in the stage's cards table, next to the cards whose changes it
records (docs/spec/transparency.md has the design), under three key shapes:

* ``kt#head``: ``size`` (N), ``frontier`` (B: the 32-byte hashes of the
  perfect subtrees of the tree, concatenated), ``edge`` (B: the leaf hashes
  of the level-0 tile being filled, ``size % 256`` of them, concatenated),
  ``pending`` (B: the leaves of the bundle being filled, ``size % 8`` of
  them, each as a 2-byte big-endian length and the leaf), ``checkpoint``
  (S: the signed note for that size), ``signed_at`` (N) and ``layout`` (N:
  :data:`LOG_LAYOUT`; a head without it, or with another, is refused);
* ``kt#bundle#<k>``: ``leaves`` (L of B), leaves ``8 k`` to ``8 k + 7``,
  put once, whole, by the append that completes it
  (``attribute_not_exists``);
* ``kt#tile#<level>#<index>``: ``h`` (L of B), the tile's hashes in order.
  A level-0 tile is put once, whole, by the append that completes it
  (``attribute_not_exists``); a tile of level >= 1 is extended by the
  append that completes each of its subtrees, with ``list_append`` under
  ``size(h) = position``.

:meth:`DynamoLogStore.append_items` gives the transaction items of one
append: the head, plus a bundle every 8 appends and a tile every 256.  The
card store adds them to the card change's transaction, so a card change and
its log entry commit together or not at all.  The head item's condition
(``size = n``) is what sequences appends.

The signing key is a C2SP note signer key (``PRIVATE+KEY+<origin>+…``) kept
in its own secret (never the app key's), read with ``VersionStage=AWSCURRENT``
and cached.  Its value never appears in a log line, an exception or a repr.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import InternalError, ServiceUnavailable, SigningUnavailable
from chalicelib.logs import log_event
from chalicelib.services.transparency import (
    LEAF_BUNDLE,
    MAX_ENTRIES_PAGE,
    TILE_WIDTH,
    LogHead,
    PlannedAppend,
    TileKey,
    empty_head,
    leaves_from_bundles,
    plan_append,
)
from chalicelib.storage.dynamo import translate
from chalicelib.wire.checkpoint import sign_checkpoint
from chalicelib.wire.ktleaf import MAX_LEAF_SIZE
from chalicelib.wire.merkle import HASH_SIZE
from chalicelib.wire.note import NoteError, NoteSigner, generate_signer, parse_signer_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = [
    "HEAD_PK",
    "LOG_LAYOUT",
    "DynamoLogStore",
    "LogKeySource",
    "ensure_log_key",
    "pack_leaves",
    "unpack_leaves",
]

_log = logging.getLogger(__name__)

#: The head item's layout: version 2 holds the unfinished tile's hashes
#: (``edge``) and the unbundled leaves (``pending``).  Version 1 (one item per
#: leaf, tiles extended in place) was never released.
LOG_LAYOUT: Final = 2

HEAD_PK: Final = "kt#head"
_HEAD_KEY: Final = {"pk": {"S": HEAD_PK}}
_BATCH_ROUNDS: Final = 5
# A stored checkpoint older than this is re-signed (same size and root) when
# read, so devices always get one younger than their freshness bound.
CHECKPOINT_REFRESH: Final = 60
_BACKOFF: Final = 0.05


def _bundle_key(index: int) -> dict[str, Any]:
    return {"pk": {"S": f"kt#bundle#{index}"}}


def _tile_key(key: TileKey) -> dict[str, Any]:
    return {"pk": {"S": f"kt#tile#{key[0]}#{key[1]}"}}


class LogKeySource:
    """The log's note signer, read from its own secret and cached for ``cache_ttl`` s."""

    def __init__(
        self,
        client: SecretsManagerClient,
        secret_id: str,
        *,
        origin: str,
        cache_ttl: int = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._secret_id = secret_id
        self._origin = origin
        self._ttl = cache_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, NoteSigner] | None = None

    def __repr__(self) -> str:
        return f"LogKeySource(secret_id={self._secret_id!r}, origin={self._origin!r})"

    def signer(self) -> NoteSigner:
        """The current signer.

        Raises:
            SigningUnavailable: the secret can't be read, or holds no valid
                signer key for this log's origin (a deployment error).
        """
        with self._lock:
            now = self._clock()
            if self._cached is not None and now - self._cached[0] < self._ttl:
                return self._cached[1]
            try:
                out = self._client.get_secret_value(
                    SecretId=self._secret_id, VersionStage="AWSCURRENT"
                )
                signer = parse_signer_key(str(out.get("SecretString", "")))
            except (ClientError, BotoCoreError) as exc:
                _log.warning("log key unreadable: secret=%s", self._secret_id)
                raise SigningUnavailable("The transparency log cannot sign right now.") from exc
            except NoteError as exc:
                _log.error("log key malformed: secret=%s", self._secret_id)
                raise SigningUnavailable("The transparency log cannot sign right now.") from exc
            if signer.name != self._origin:
                _log.error("log key names another origin: secret=%s", self._secret_id)
                raise SigningUnavailable("The transparency log cannot sign right now.")
            self._cached = (now, signer)
            return signer


def ensure_log_key(client: SecretsManagerClient, secret_id: str, origin: str) -> str:
    """Give the (existing, empty) secret a fresh log key; the verifier key either way.

    An existing valid key is kept: the log's key is pinned in every device,
    so it never changes behind their back (docs/spec/transparency.md, key
    rotation).
    """
    try:
        out = client.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
        return parse_signer_key(str(out.get("SecretString", ""))).verifier.vkey
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) != "ResourceNotFoundException":
            raise
    signer = generate_signer(origin)
    client.put_secret_value(SecretId=secret_id, SecretString=signer.skey)
    return signer.verifier.vkey


class DynamoLogStore:
    """The log's items in the cards table (see the module docstring)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        keys: LogKeySource,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table = table_name
        self._keys = keys
        self._clock = clock
        self._sleep = sleep
        # The head this container last wrote: a warm container usually is the
        # only writer, so planning on it saves a read per append.  Only an
        # optimisation: the head's size condition refuses a plan made on a
        # stale head, and the caller then plans again with fresh=True.
        self._last_head: LogHead | None = None

    # --- appending ---------------------------------------------------------------

    def plan(self, leaf: bytes, *, fresh: bool = True) -> PlannedAppend:
        """Plan appending ``leaf`` to the head (signs the new checkpoint).

        ``fresh=False`` plans on the head this store last committed, if any,
        instead of reading it.
        """
        head = None if fresh else self._last_head
        if head is None:
            head = self._stored_head() or LogHead(0, (), "")
        signer = self._keys.signer()
        return plan_append(head, leaf, signer=signer, now=int(self._clock()))

    def committed(self, planned: PlannedAppend) -> None:
        """Record that ``planned`` was written (the next plan may start from it)."""
        self._last_head = planned.head

    def append_items(self, planned: PlannedAppend) -> list[dict[str, Any]]:
        """The transaction items that write ``planned``; the head's comes first."""
        head = planned.head
        head_item = {
            **_HEAD_KEY,
            "size": {"N": str(head.size)},
            "frontier": {"B": b"".join(head.frontier)},
            "edge": {"B": b"".join(head.edge)},
            # One binary value, not a list: every element of a list is one
            # more value for botocore to validate and moto to model, on
            # every append.
            "pending": {"B": pack_leaves(head.pending)},
            "checkpoint": {"S": head.checkpoint},
            "signed_at": {"N": str(planned.signed_at)},
            "layout": {"N": str(LOG_LAYOUT)},
        }
        if planned.index == 0:
            head_put: dict[str, Any] = {
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": "pk"},
            }
        else:
            head_put = {
                "ConditionExpression": "#size = :n",
                "ExpressionAttributeNames": {"#size": "size"},
                "ExpressionAttributeValues": {":n": {"N": str(planned.index)}},
            }
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": self._table, "Item": head_item, **head_put}}
        ]
        if planned.completed_bundle is not None:
            number, leaves = planned.completed_bundle
            items.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            **_bundle_key(number),
                            "leaves": {"L": [{"B": leaf} for leaf in leaves]},
                        },
                        # Written once: stored leaves are never rewritten.
                        "ConditionExpression": "attribute_not_exists(#pk)",
                        "ExpressionAttributeNames": {"#pk": "pk"},
                    }
                }
            )
        puts: list[tuple[TileKey, Sequence[bytes]]] = []
        if planned.completed_tile is not None:
            puts.append(planned.completed_tile)
        for key, position, value in planned.tile_entries:
            if position == 0:
                puts.append((key, [value]))
                continue
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _tile_key(key),
                        "UpdateExpression": "SET #h = list_append(#h, :v)",
                        "ConditionExpression": "size(#h) = :pos",
                        "ExpressionAttributeNames": {"#h": "h"},
                        "ExpressionAttributeValues": {
                            ":v": {"L": [{"B": value}]},
                            ":pos": {"N": str(position)},
                        },
                    }
                }
            )
        for key, hashes in puts:
            # attribute_not_exists: a level-0 tile is written once, whole;
            # a higher tile's first entry creates it.
            items.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {**_tile_key(key), "h": {"L": [{"B": h} for h in hashes]}},
                        "ConditionExpression": "attribute_not_exists(#pk)",
                        "ExpressionAttributeNames": {"#pk": "pk"},
                    }
                }
            )
        return items

    # --- reads (chalicelib.services.transparency.LogReader) ---------------------------

    def head(self) -> LogHead:
        return self.head_from_item(self._get_head_item())

    def head_from_item(self, item: dict[str, Any] | None) -> LogHead:
        """The head served from the stored head ``item`` (None: nothing logged yet).

        For callers that read the head item in a batch of their own (a card
        lookup reads it with the cards, in one ``BatchGetItem``).
        """
        now = int(self._clock())
        stored = None if item is None else _head_and_time(item)
        if stored is None:
            # Nothing logged yet: a checkpoint of the empty tree, signed now.
            return empty_head(signer=self._keys.signer(), now=now)
        head, signed_at = stored
        if now - signed_at < CHECKPOINT_REFRESH:
            return head
        # The same tree, signed again with the current time: devices refuse
        # checkpoints older than their bound, and a quiet log must not look
        # like a frozen one.  Not stored (a read must not write).
        signer = self._keys.signer()
        note = sign_checkpoint(signer.name, head.size, head.root, now, signer)
        return replace(head, checkpoint=note)

    def _stored_head(self) -> LogHead | None:
        item = self._get_head_item()
        return None if item is None else _head(item)

    def _get_head_item(self) -> dict[str, Any] | None:
        try:
            out = self._client.get_item(TableName=self._table, Key=_HEAD_KEY, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        item = out.get("Item")
        return dict(item) if item else None

    def tiles(self, keys: Iterable[TileKey]) -> dict[TileKey, list[bytes]]:
        wanted = {f"kt#tile#{k[0]}#{k[1]}": k for k in keys}
        items = self._batch_get([{"pk": {"S": pk}} for pk in wanted])
        out: dict[TileKey, list[bytes]] = {}
        for item in items:
            hashes = [bytes(v["B"]) for v in item["h"]["L"]]
            if any(len(h) != HASH_SIZE for h in hashes):
                raise InternalError()
            out[wanted[item["pk"]["S"]]] = hashes
        return out

    def bundles(self, keys: Iterable[int]) -> dict[int, list[bytes]]:
        wanted = {f"kt#bundle#{k}": k for k in keys}
        if len(wanted) > MAX_ENTRIES_PAGE:
            raise ValueError("too many bundles for one read")
        items = self._batch_get([{"pk": {"S": pk}} for pk in wanted])
        out: dict[int, list[bytes]] = {}
        for item in items:
            try:
                out[wanted[item["pk"]["S"]]] = [bytes(v["B"]) for v in item["leaves"]["L"]]
            except (KeyError, TypeError) as exc:
                raise InternalError() from exc
        return out

    def leaves(self, indexes: Sequence[int]) -> dict[int, bytes]:
        """Leaves by index, of the current head (see :func:`leaves_from_bundles`)."""
        if len(indexes) > MAX_ENTRIES_PAGE:
            raise ValueError("too many leaves for one read")
        return leaves_from_bundles(self, self.head(), indexes)

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for chunk_start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self._table: {"Keys": keys[chunk_start : chunk_start + 100], "ConsistentRead": True}
            }
            for round_ in range(_BATCH_ROUNDS):
                try:
                    out = self._client.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise translate(exc) from exc
                found += [dict(item) for item in out.get("Responses", {}).get(self._table, [])]
                unprocessed: dict[str, Any] = dict(out.get("UnprocessedKeys") or {})
                if not unprocessed.get(self._table, {}).get("Keys"):
                    break
                request = {self._table: dict(unprocessed[self._table])}
                if round_ == _BATCH_ROUNDS - 1:
                    raise ServiceUnavailable()
                self._sleep(_BACKOFF * 2**round_)
        return found


def _head_and_time(item: dict[str, Any]) -> tuple[LogHead, int]:
    try:
        signed_at = int(item["signed_at"]["N"])
    except (KeyError, ValueError) as exc:
        raise InternalError() from exc
    return _head(item), signed_at


def _head(item: dict[str, Any]) -> LogHead:
    layout = item.get("layout", {}).get("N")
    if layout != str(LOG_LAYOUT):
        # A head this code can't read (a log written before the head held the
        # edge and the pending leaves has no layout): an operator's problem,
        # named in the log; clients see a 500 and nothing is written.
        log_event(
            "kt_head_layout_unsupported",
            level=logging.ERROR,
            reason=f"head layout {layout or 'missing'}, this code reads {LOG_LAYOUT}",
        )
        raise InternalError()
    try:
        raw = bytes(item["frontier"]["B"])
        raw_edge = bytes(item["edge"]["B"])
        pending = unpack_leaves(bytes(item["pending"]["B"]))
        size = int(item["size"]["N"])
        checkpoint = str(item["checkpoint"]["S"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InternalError() from exc
    frontier, edge = _hashes(raw), _hashes(raw_edge)
    if (
        len(raw) % HASH_SIZE
        or len(raw_edge) % HASH_SIZE
        or len(frontier) != size.bit_count()
        or len(edge) != size % TILE_WIDTH
        or len(pending) != size % LEAF_BUNDLE
    ):
        raise InternalError()
    return LogHead(size, frontier, checkpoint, edge, pending)


def pack_leaves(leaves: Sequence[bytes]) -> bytes:
    """``u16(len) || leaf`` for each leaf (leaves are at most MAX_LEAF_SIZE bytes)."""
    out = bytearray()
    for leaf in leaves:
        if len(leaf) > MAX_LEAF_SIZE:
            raise ValueError("leaf too long")
        out += len(leaf).to_bytes(2, "big") + leaf
    return bytes(out)


def unpack_leaves(raw: bytes) -> tuple[bytes, ...]:
    """The leaves :func:`pack_leaves` packed.

    Raises:
        InternalError: a truncated list.
    """
    leaves, at = [], 0
    while at < len(raw):
        if at + 2 > len(raw):
            raise InternalError()
        end = at + 2 + int.from_bytes(raw[at : at + 2], "big")
        if end > len(raw):
            raise InternalError()
        leaves.append(raw[at + 2 : end])
        at = end
    return tuple(leaves)


def _hashes(raw: bytes) -> tuple[bytes, ...]:
    return tuple(raw[i : i + HASH_SIZE] for i in range(0, len(raw), HASH_SIZE))
