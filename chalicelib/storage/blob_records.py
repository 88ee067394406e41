"""DynamoDB adapter for blob records, recipient grants and usage counters.

Three tables (``infra/resources.json``):

* ``blobs``: one item per blob, hash key ``blob_id``.  GSI ``owner-index``
  (``owner``, ``created_key``, all attributes) lists an owner's blobs newest
  first; GSI ``reserved-index`` (``owner``, ``reserved_until``, keys only)
  is sparse -- only RESERVED items carry ``reserved_until`` -- and finds an
  owner's expired reservations without scanning.
* ``blob-grants``: one item per (recipient, READY blob), hash key
  ``recipient``, range key ``created_key``: the inbox.
* ``blob-usage``: hash key ``identity``; ``bytes`` and ``blobs`` of the
  identity's RESERVED and READY blobs, and of its REJECTED blobs whose bytes
  may still be stored (``charge_held``).

Every change that touches more than one item is one ``TransactWriteItems``
whose first item is the blob record under a condition on its state and
version, so a lost race changes nothing anywhere (DESIGN invariant 5), and
the usage counters can't drift from the records they count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import InternalError, ServiceUnavailable
from chalicelib.services.blobs import (
    BlobRecord,
    BlobState,
    CreateOutcome,
    Quota,
    UpdateOutcome,
    Usage,
)
from chalicelib.storage.dynamo import translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

OWNER_INDEX = "owner-index"
RESERVED_INDEX = "reserved-index"
_CANCELLED = "TransactionCanceledException"
_CONDITION_FAILED = "ConditionalCheckFailed"
# Reasons inside a cancelled transaction that mean "try again shortly".
_TRANSIENT_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)
# Attribute names always go through placeholders: several of ours (owner,
# size, state) are DynamoDB reserved words.  These are the partition keys
# listings query by.
_NAMES = {"#owner": "owner", "#recipient": "recipient"}

# BatchGetItem leaves keys unprocessed under load; retry them this often.
_BATCH_ROUNDS = 5


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def record_item(record: BlobRecord) -> dict[str, Any]:
    """The DynamoDB item for ``record``."""
    item: dict[str, Any] = {
        "blob_id": _s(record.blob_id),
        "owner": _s(record.owner),
        "recipients": {"L": [_s(r) for r in record.recipients]},
        **({"group": _s(record.group)} if record.group else {}),
        "size": _n(record.size),
        "created_at": _n(record.created_at),
        "created_key": _s(record.created_key),
        "state": _s(record.state.value),
        "version": _n(record.version),
        "expires_at": _n(record.expires_at),
        "fingerprint": _s(record.fingerprint),
        "armored": {"BOOL": record.armored},
        "updated_at": _n(record.updated_at),
    }
    if record.state is BlobState.RESERVED:
        # Only reservations are in the sparse reserved-index.
        item["reserved_until"] = _n(record.expires_at)
    optional: dict[str, dict[str, str] | None] = {
        "part_size": None if record.part_size is None else _n(record.part_size),
        "upload_id": None if record.upload_id is None else _s(record.upload_id),
        "object_version": None if record.object_version is None else _s(record.object_version),
        "etag": None if record.etag is None else _s(record.etag),
        "header_length": None if record.header_length is None else _n(record.header_length),
        "reject_reason": None if record.reject_reason is None else _s(record.reject_reason),
        "rejected_size": None if record.rejected_size is None else _n(record.rejected_size),
        "rejected_sha256": None if record.rejected_sha256 is None else _s(record.rejected_sha256),
    }
    if record.state is BlobState.REJECTED:
        item["charge_held"] = {"BOOL": record.charge_held}
    item.update({name: value for name, value in optional.items() if value is not None})
    return item


def record_from_item(item: dict[str, Any]) -> BlobRecord:
    """The record stored as ``item``.

    Raises:
        InternalError: the item is not a blob record (a bug or manual edit).
    """
    try:

        def opt_n(name: str) -> int | None:
            return int(item[name]["N"]) if name in item else None

        def opt_s(name: str) -> str | None:
            return str(item[name]["S"]) if name in item else None

        return BlobRecord(
            blob_id=item["blob_id"]["S"],
            owner=item["owner"]["S"],
            recipients=tuple(entry["S"] for entry in item["recipients"]["L"]),
            group=item["group"]["S"] if "group" in item else None,
            size=int(item["size"]["N"]),
            created_at=int(item["created_at"]["N"]),
            state=BlobState(item["state"]["S"]),
            version=int(item["version"]["N"]),
            expires_at=int(item["expires_at"]["N"]),
            fingerprint=item["fingerprint"]["S"],
            part_size=opt_n("part_size"),
            upload_id=opt_s("upload_id"),
            object_version=opt_s("object_version"),
            etag=opt_s("etag"),
            header_length=opt_n("header_length"),
            armored=bool(item["armored"]["BOOL"]),
            reject_reason=opt_s("reject_reason"),
            updated_at=int(item["updated_at"]["N"]),
            rejected_size=opt_n("rejected_size"),
            rejected_sha256=opt_s("rejected_sha256"),
            # Records rejected before the charge was held have no attribute:
            # their charge was released when they were rejected.
            charge_held=bool(item.get("charge_held", {}).get("BOOL", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InternalError() from exc


class DynamoBlobStore:
    """:class:`chalicelib.services.blobs.BlobStore` on three DynamoDB tables."""

    def __init__(
        self, client: DynamoDBClient, *, table: str, grants_table: str, usage_table: str
    ) -> None:
        self._client = client
        self._table = table
        self._grants = grants_table
        self._usage = usage_table

    # reads -----------------------------------------------------------------------

    def get(self, blob_id: str) -> BlobRecord | None:
        try:
            out = self._client.get_item(
                TableName=self._table, Key={"blob_id": _s(blob_id)}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        item = out.get("Item")
        return record_from_item(dict(item)) if item else None

    def usage(self, identity: str) -> Usage:
        try:
            out = self._client.get_item(
                TableName=self._usage, Key={"identity": _s(identity)}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        item = out.get("Item") or {}
        return Usage(
            bytes=int(item["bytes"]["N"]) if "bytes" in item else 0,
            blobs=int(item["blobs"]["N"]) if "blobs" in item else 0,
        )

    def list_owned(
        self, owner: str, *, limit: int, before: str | None
    ) -> tuple[list[BlobRecord], str | None]:
        items, more = self._query(
            self._table, OWNER_INDEX, "#owner", owner, limit=limit, before=before
        )
        records = [record_from_item(item) for item in items]
        return records, records[-1].created_key if more and records else None

    def list_granted(
        self, recipient: str, *, limit: int, before: str | None
    ) -> tuple[list[BlobRecord], str | None]:
        grants, more = self._query(
            self._grants, None, "#recipient", recipient, limit=limit, before=before
        )
        ids = [grant["blob_id"]["S"] for grant in grants]
        found = self._batch_get(ids)
        records = [found[blob_id] for blob_id in ids if blob_id in found]
        last = grants[-1]["created_key"]["S"] if more and grants else None
        return records, last

    def expired_reservations(self, owner: str, now: int, *, limit: int) -> list[str]:
        try:
            out = self._client.query(
                TableName=self._table,
                IndexName=RESERVED_INDEX,
                KeyConditionExpression="#owner = :owner AND #until <= :now",
                ExpressionAttributeNames={"#owner": "owner", "#until": "reserved_until"},
                ExpressionAttributeValues={":owner": _s(owner), ":now": _n(now)},
                Limit=limit,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        return [item["blob_id"]["S"] for item in out.get("Items", [])]

    def _query(
        self,
        table: str,
        index: str | None,
        key_name: str,
        key: str,
        *,
        limit: int,
        before: str | None,
    ) -> tuple[list[dict[str, Any]], bool]:
        condition = f"{key_name} = :key"
        names = {key_name: _NAMES[key_name]}
        values: dict[str, Any] = {":key": _s(key)}
        if before is not None:
            # The cursor is a sort-key value, so continuing is a key condition
            # on this caller's own partition: it can't reach anyone else's.
            condition += " AND #ck < :before"
            names["#ck"] = "created_key"
            values[":before"] = _s(before)
        kwargs: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if index is not None:
            kwargs["IndexName"] = index
        try:
            out = self._client.query(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        return [dict(item) for item in out.get("Items", [])], "LastEvaluatedKey" in out

    def _batch_get(self, ids: Sequence[str]) -> dict[str, BlobRecord]:
        """Records for ``ids`` in one batched read (plus retries of keys
        DynamoDB leaves unprocessed)."""
        found: dict[str, BlobRecord] = {}
        pending: dict[str, Any] = {
            self._table: {
                "Keys": [{"blob_id": _s(blob_id)} for blob_id in dict.fromkeys(ids)],
                "ConsistentRead": True,
            }
        }
        for _ in range(_BATCH_ROUNDS):
            if not pending[self._table]["Keys"]:
                return found
            try:
                out = self._client.batch_get_item(RequestItems=pending)
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc) from exc
            for item in out.get("Responses", {}).get(self._table, []):
                record = record_from_item(dict(item))
                found[record.blob_id] = record
            unprocessed = out.get("UnprocessedKeys", {}).get(self._table)
            pending = {self._table: unprocessed or {"Keys": []}}
        if pending[self._table]["Keys"]:
            raise ServiceUnavailable()
        return found

    # writes ----------------------------------------------------------------------

    def create(self, record: BlobRecord, *, quota: Quota) -> CreateOutcome:
        room = quota.max_bytes - record.size
        if room < 0:
            return CreateOutcome.OVER_QUOTA
        items = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": record_item(record),
                    "ConditionExpression": "attribute_not_exists(#id)",
                    "ExpressionAttributeNames": {"#id": "blob_id"},
                }
            },
            {
                "Update": {
                    "TableName": self._usage,
                    "Key": {"identity": _s(record.owner)},
                    "UpdateExpression": "ADD #bytes :size, #blobs :one",
                    # Both limits in the same condition as the increment:
                    # parallel reservations can't overshoot together.
                    "ConditionExpression": (
                        "(attribute_not_exists(#bytes) OR #bytes <= :room) AND "
                        "(attribute_not_exists(#blobs) OR #blobs < :max_blobs)"
                    ),
                    "ExpressionAttributeNames": {"#bytes": "bytes", "#blobs": "blobs"},
                    "ExpressionAttributeValues": {
                        ":size": _n(record.size),
                        ":one": _n(1),
                        ":room": _n(room),
                        ":max_blobs": _n(quota.max_blobs),
                    },
                }
            },
        ]
        failed = self._transact(items)
        if failed is None:
            return CreateOutcome.CREATED
        return CreateOutcome.EXISTS if 0 in failed else CreateOutcome.OVER_QUOTA

    def settle(self, before: BlobRecord, after: BlobRecord) -> bool:
        items = [self._swap(before, after)]
        if after.state is BlobState.READY:
            items += [self._put_grant(recipient, after) for recipient in after.recipients]
        if after.state is BlobState.REJECTED and not after.charge_held:
            items.append(self._charge(before.owner, -before.size, -1))
        return self._transact(items) is None

    def release_rejected(self, before: BlobRecord, after: BlobRecord) -> bool:
        if before.state is not BlobState.REJECTED or not before.charge_held or after.charge_held:
            return False
        # The swap's condition (state and version) makes a second release of
        # the same rejection lose: the charge goes exactly once.
        items = [self._swap(before, after), self._charge(before.owner, -before.size, -1)]
        return self._transact(items) is None

    def update_recipients(
        self, before: BlobRecord, after: BlobRecord, *, quota: Quota
    ) -> UpdateOutcome:
        items = [self._swap(before, after)]
        removed = sorted(set(before.recipients) - set(after.recipients))
        added = sorted(set(after.recipients) - set(before.recipients))
        items += [self._delete_grant(recipient, before) for recipient in removed]
        items += [self._put_grant(recipient, after) for recipient in added]
        delta = after.size - before.size
        if delta > 0:
            items.append(self._charge(before.owner, delta, 0, room=quota.max_bytes - delta))
        elif delta < 0:
            items.append(self._charge(before.owner, delta, 0))
        failed = self._transact(items)
        if failed is None:
            return UpdateOutcome.DONE
        return UpdateOutcome.CONFLICT if 0 in failed else UpdateOutcome.OVER_QUOTA

    def delete(self, record: BlobRecord) -> bool:
        items: list[dict[str, Any]] = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": {"blob_id": _s(record.blob_id)},
                    "ConditionExpression": "#version = :version",
                    "ExpressionAttributeNames": {"#version": "version"},
                    "ExpressionAttributeValues": {":version": _n(record.version)},
                }
            }
        ]
        if record.state is BlobState.READY:
            items += [self._delete_grant(recipient, record) for recipient in record.recipients]
        if record.state is not BlobState.REJECTED or record.charge_held:
            # A rejected blob's charge is released once its bytes are gone.
            items.append(self._charge(record.owner, -record.size, -1))
        return self._transact(items) is None

    # transaction items ---------------------------------------------------------------

    def _swap(self, before: BlobRecord, after: BlobRecord) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": record_item(after),
                "ConditionExpression": "#state = :state AND #version = :version",
                "ExpressionAttributeNames": {"#state": "state", "#version": "version"},
                "ExpressionAttributeValues": {
                    ":state": _s(before.state.value),
                    ":version": _n(before.version),
                },
            }
        }

    def _put_grant(self, recipient: str, record: BlobRecord) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._grants,
                "Item": {
                    "recipient": _s(recipient),
                    "created_key": _s(record.created_key),
                    "blob_id": _s(record.blob_id),
                    "owner": _s(record.owner),
                },
            }
        }

    def _delete_grant(self, recipient: str, record: BlobRecord) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self._grants,
                "Key": {"recipient": _s(recipient), "created_key": _s(record.created_key)},
            }
        }

    def _charge(
        self, identity: str, size: int, count: int, *, room: int | None = None
    ) -> dict[str, Any]:
        update: dict[str, Any] = {
            "TableName": self._usage,
            "Key": {"identity": _s(identity)},
            "UpdateExpression": "ADD #bytes :bytes, #blobs :blobs",
            "ExpressionAttributeNames": {"#bytes": "bytes", "#blobs": "blobs"},
            "ExpressionAttributeValues": {":bytes": _n(size), ":blobs": _n(count)},
        }
        if room is not None:
            update["ConditionExpression"] = "attribute_not_exists(#bytes) OR #bytes <= :room"
            update["ExpressionAttributeValues"][":room"] = _n(room)
        return {"Update": update}

    def _transact(self, items: list[dict[str, Any]]) -> set[int] | None:
        """Run one transaction.  None on success; on a failed condition, the
        positions of the items whose conditions failed.

        Raises:
            ServiceUnavailable: throttled, or a concurrent transaction on the
                same items (retryable).
            InternalError: anything else (a bug or a broken deployment).
        """
        try:
            self._client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != _CANCELLED:
                raise translate(exc) from exc
            cancelled: list[Any] = list(exc.response.get("CancellationReasons", []))
            reasons = [str(reason.get("Code", "None")) for reason in cancelled]
            if any(code in _TRANSIENT_REASONS for code in reasons):
                raise ServiceUnavailable() from exc
            failed = {i for i, code in enumerate(reasons) if code == _CONDITION_FAILED}
            if not failed:
                raise InternalError() from exc
            return failed
        except BotoCoreError as exc:
            raise translate(exc) from exc
        return None
