"""DynamoDB and S3 adapters for groups.

One table, ``groups`` (``infra/resources.json``), hash key ``pk``, range key
``sk``, three kinds of item:

* the head, ``pk = <group id>``, ``sk = "head"``: the latest epoch number,
  its hash, the encoded roster after it (who may read), the time;
* one item per epoch, ``pk = <group id>``, ``sk = "epoch#<20-digit
  number>"``: the signed epoch, its delta form (every epoch after the first;
  ``chalicelib.wire.group_delta``), its wraps object's key and the wraps
  index (card id, offset, length), so a member's ranged read is one lookup;
* one item per history share, ``pk = <group id>``, ``sk = "history#<member
  identity>#<share id>"``: the signed share, written once, served to that
  member only; and per member a count, ``sk = "history-count#<member
  identity>"``, ``shares`` (a number), written in the same transaction as
  each new share and conditioned on staying under the limit;
* the member index, ``pk = "member#<identity>"``, ``sk = <group id>``: what
  ``GET /v1/groups`` lists.  Group ids never contain ``#``, identities
  never do either, so the kinds can't collide.

An epoch is appended with one ``TransactWriteItems``: the head, conditioned
on the previous epoch number (or on not existing, for a creation), and the
epoch item, conditioned on not existing.  Of two concurrent changes exactly
one commits; the other changes nothing (DESIGN invariant 5).  The member
index is written after, idempotently: it only narrows what is listed, and
every listing is checked against the head's roster.

Wraps objects live in the blobs bucket under ``groups/<group id>/<epoch>/
<wraps id>``: a prefix the blob-events notification does not watch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import HistoryShareLimit, InternalError, InvalidRequest
from chalicelib.services.groups import GroupHead, StoredEpoch, WrapTarget
from chalicelib.storage.dynamo import _code, translate
from chalicelib.wire.cards import card_id_from_str, card_id_to_str

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

HEAD_SK: Final = "head"
HISTORY_PREFIX: Final = "history#"
HISTORY_COUNT_PREFIX: Final = "history-count#"
MEMBER_PREFIX: Final = "member#"
WRAPS_PREFIX: Final = "groups/"
_CANCELLED: Final = "TransactionCanceledException"
_BATCH: Final = 25
_BATCH_ROUNDS: Final = 5
_CONTENT_TYPE: Final = "application/octet-stream"


def _epoch_sk(number: int) -> str:
    return f"epoch#{number:020d}"


def _encode_index(index: dict[str, tuple[int, int]]) -> bytes:
    return b"".join(
        card_id_from_str(card) + offset.to_bytes(4, "big") + length.to_bytes(2, "big")
        for card, (offset, length) in sorted(index.items())
    )


def _decode_index(data: bytes) -> dict[str, tuple[int, int]]:
    if len(data) % 38:
        raise InternalError()
    out = {}
    for start in range(0, len(data), 38):
        entry = data[start : start + 38]
        out[card_id_to_str(entry[:32])] = (
            int.from_bytes(entry[32:36], "big"),
            int.from_bytes(entry[36:38], "big"),
        )
    return out


class DynamoGroupStore:
    """:class:`chalicelib.services.groups.GroupStore` on the ``groups`` table."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, operation)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    def head(self, group_id: str) -> GroupHead | None:
        out = self._call(
            "get_item",
            TableName=self._table,
            Key={"pk": {"S": group_id}, "sk": {"S": HEAD_SK}},
            ConsistentRead=True,
        )
        item = out.get("Item")
        if item is None:
            return None
        return GroupHead(
            group_id=group_id,
            number=int(item["number"]["N"]),
            epoch_hash=bytes(item["hash"]["B"]),
            roster=bytes(item["roster"]["B"]),
            updated_at=int(item["updated_at"]["N"]),
        )

    def epoch(self, group_id: str, number: int) -> StoredEpoch | None:
        out = self._call(
            "get_item",
            TableName=self._table,
            Key={"pk": {"S": group_id}, "sk": {"S": _epoch_sk(number)}},
            ConsistentRead=True,
        )
        item = out.get("Item")
        if item is None:
            return None
        return StoredEpoch(
            group_id=group_id,
            number=number,
            epoch=bytes(item["epoch"]["B"]),
            wraps_key=item["wraps_key"]["S"],
            index=_decode_index(bytes(item["index"]["B"])),
            delta=bytes(item["delta"]["B"]) if "delta" in item else None,
        )

    def append(
        self,
        before: GroupHead | None,
        after: GroupHead,
        epoch: StoredEpoch,
        *,
        joined: Sequence[str],
        left: Sequence[str],
    ) -> bool:
        head_put: dict[str, Any] = {
            "TableName": self._table,
            "Item": {
                "pk": {"S": after.group_id},
                "sk": {"S": HEAD_SK},
                "number": {"N": str(after.number)},
                "hash": {"B": after.epoch_hash},
                "roster": {"B": after.roster},
                "updated_at": {"N": str(after.updated_at)},
            },
        }
        if before is None:
            head_put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            # The head moves only from the epoch the proposal was checked
            # against: a concurrent change makes this fail, not fork.
            head_put["ConditionExpression"] = "#n = :previous"
            head_put["ExpressionAttributeNames"] = {"#n": "number"}
            head_put["ExpressionAttributeValues"] = {":previous": {"N": str(before.number)}}
        epoch_item: dict[str, Any] = {
            "pk": {"S": epoch.group_id},
            "sk": {"S": _epoch_sk(epoch.number)},
            "epoch": {"B": epoch.epoch},
            "wraps_key": {"S": epoch.wraps_key},
            "index": {"B": _encode_index(epoch.index)},
        }
        if epoch.delta is not None:
            epoch_item["delta"] = {"B": epoch.delta}
        epoch_put = {
            "TableName": self._table,
            "Item": epoch_item,
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        try:
            items: list[Any] = [{"Put": head_put}, {"Put": epoch_put}]
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if _code(exc) == _CANCELLED:
                reasons = exc.response.get("CancellationReasons", [])
                if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                    return False
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc
        self._index(after.group_id, joined, left)
        return True

    def _index(self, group_id: str, joined: Sequence[str], left: Sequence[str]) -> None:
        requests: list[dict[str, Any]] = [
            {"PutRequest": {"Item": {"pk": {"S": MEMBER_PREFIX + name}, "sk": {"S": group_id}}}}
            for name in joined
        ] + [
            {"DeleteRequest": {"Key": {"pk": {"S": MEMBER_PREFIX + name}, "sk": {"S": group_id}}}}
            for name in left
        ]
        for start in range(0, len(requests), _BATCH):
            pending = requests[start : start + _BATCH]
            for _ in range(_BATCH_ROUNDS):
                out = self._call("batch_write_item", RequestItems={self._table: pending})
                pending = out.get("UnprocessedItems", {}).get(self._table, [])
                if not pending:
                    break

    def put_share(
        self, group_id: str, member: str, share_id: str, share: bytes, *, limit: int
    ) -> None:
        # One transaction: the share, write-once, and the member's count,
        # conditioned on being under the limit, so racing admins can't pass
        # it either.  An existing share (the same bytes: the id is their
        # hash) cancels the whole transaction and is not counted again.
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {
                        "pk": {"S": group_id},
                        "sk": {"S": f"{HISTORY_PREFIX}{member}#{share_id}"},
                        "share": {"B": share},
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Update": {
                    "TableName": self._table,
                    "Key": {"pk": {"S": group_id}, "sk": {"S": f"{HISTORY_COUNT_PREFIX}{member}"}},
                    "UpdateExpression": "ADD shares :one",
                    "ConditionExpression": "attribute_not_exists(shares) OR shares < :limit",
                    "ExpressionAttributeValues": {
                        ":one": {"N": "1"},
                        ":limit": {"N": str(limit)},
                    },
                }
            },
        ]
        try:
            self._client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as exc:
            if _code(exc) == _CANCELLED:
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return  # already stored: write-once
                if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                    raise HistoryShareLimit() from exc
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc

    def shares(self, group_id: str, member: str) -> list[tuple[str, bytes]]:
        prefix = f"{HISTORY_PREFIX}{member}#"
        found: list[tuple[str, bytes]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": group_id}, ":prefix": {"S": prefix}},
            "ConsistentRead": True,
        }
        while True:
            out = self._call("query", **kwargs)
            found.extend(
                (item["sk"]["S"][len(prefix) :], bytes(item["share"]["B"]))
                for item in out.get("Items", [])
            )
            last = out.get("LastEvaluatedKey")
            if not last:
                return found
            kwargs["ExclusiveStartKey"] = last

    def groups_of(self, identity: str) -> list[str]:
        groups: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": MEMBER_PREFIX + identity}},
        }
        while True:
            out = self._call("query", **kwargs)
            groups.extend(item["sk"]["S"] for item in out.get("Items", []))
            last = out.get("LastEvaluatedKey")
            if not last:
                return groups
            kwargs["ExclusiveStartKey"] = last


class S3WrapsStore:
    """:class:`chalicelib.services.groups.WrapsStore` in the blobs bucket."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    @staticmethod
    def _check(key: str) -> str:
        # Defence in depth: the service builds every key from checked parts.
        if not key.startswith(WRAPS_PREFIX) or ".." in key:
            raise InternalError()
        return key

    def presign_put(self, key: str, size: int, ttl: int) -> tuple[str, dict[str, str]]:
        params = {
            "Bucket": self._bucket,
            "Key": self._check(key),
            "ContentLength": size,
            "ContentType": _CONTENT_TYPE,
            "IfNoneMatch": "*",
        }
        url = self._client.generate_presigned_url(
            "put_object", Params=params, ExpiresIn=ttl, HttpMethod="PUT"
        )
        headers = {"Content-Length": str(size), "Content-Type": _CONTENT_TYPE, "If-None-Match": "*"}
        return str(url), headers

    def read(self, key: str, max_size: int) -> bytes | None:
        out = self._get(key)
        if out is None:
            return None
        body = out["Body"]
        try:
            if int(out.get("ContentLength", 0)) > max_size:
                raise InvalidRequest("The wraps object is too large.")
            data: bytes = body.read(max_size + 1)
        except BotoCoreError as exc:
            raise translate(exc) from exc
        finally:
            body.close()
        if len(data) > max_size:
            raise InvalidRequest("The wraps object is too large.")
        return data

    def _get(self, key: str, byte_range: str | None = None) -> Any:
        """``GetObject`` of ``key`` (of ``byte_range`` only, if given); None when absent.

        Raises:
            InternalError, ServiceUnavailable: any other failure (:func:`translate`).
        """
        try:
            if byte_range is None:
                return self._client.get_object(Bucket=self._bucket, Key=self._check(key))
            return self._client.get_object(
                Bucket=self._bucket, Key=self._check(key), Range=byte_range
            )
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc

    def presign_range(self, key: str, offset: int, length: int, ttl: int) -> WrapTarget:
        byte_range = f"bytes={offset}-{offset + length - 1}"
        params = {"Bucket": self._bucket, "Key": self._check(key), "Range": byte_range}
        url = self._client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=ttl, HttpMethod="GET"
        )
        return WrapTarget(
            url=str(url), headers={"Range": byte_range}, expires_in=ttl, length=length
        )

    def read_range(self, key: str, offset: int, length: int) -> bytes | None:
        out = self._get(key, f"bytes={offset}-{offset + length - 1}")
        if out is None:
            return None
        body = out["Body"]
        try:
            data: bytes = body.read(length + 1)
        except BotoCoreError as exc:
            raise translate(exc) from exc
        finally:
            body.close()
        if len(data) != length:
            # The index was checked against the object when the epoch was
            # appended; a write-once object that no longer matches it is ours.
            raise InternalError()
        return data

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self._bucket, Key=self._check(key))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
