"""DynamoDB adapters for the key directory: cards and key backups.

**Cards** (table ``cards``, hash key ``pk``) hold two kinds of item:

* ``card#<card_id>``: every card ever published, whatever its status
  (``card`` = the canonical encoding, ``identity``, ``status``,
  ``published_at``, ``rotation_signature`` for a card published as a
  rotation (the previous card key's signature, checked by the service before
  the write), and once it leaves ACTIVE ``status_changed_at`` and, if
  superseded, ``superseded_by``);
* ``identity#<identity>``: the identity's *head*, present iff it has an
  active card, carrying that card's id and a copy of its encoding (and
  rotation signature), so a lookup of 50 identities is one ``BatchGetItem``
  over heads.

Every state change is one ``TransactWriteItems`` whose conditions are the
lifecycle's preconditions (``chalicelib.services.cards``):

* publish (first):  put card  [attribute_not_exists]
                    put head  [attribute_not_exists]
* publish (rotate): put card  [attribute_not_exists]
                    put head  [card_id = previous]
                    update previous card → superseded  [status = active, same identity]
* revoke:           delete head  [card_id = this card]
                    update card → revoked  [status = active, same identity]

so of two devices racing, exactly one transaction commits and the other
changes nothing; an identity never has two active cards, and a failed
rotation leaves the previous card active.

**Backups** (table ``backups``, hash key ``identity``, range key ``name``):
``state`` (present / deleted), ``version``, ``ciphertext`` (binary, absent on
tombstones), ``updated_at``.  Writes are single conditional ``UpdateItem``
calls that bump ``version`` with ``if_not_exists(version, 0) + 1``.

Botocore failures become domain errors (``translate``); a cancelled
transaction whose reasons include a failed condition is a lost race (False),
one cancelled only by a concurrent transaction is retried a few times.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import InternalError, ServiceUnavailable
from chalicelib.services.backups import (
    BackupEvent,
    BackupRecord,
    BackupState,
    backup_preconditions,
)
from chalicelib.services.cards import (
    MAX_LOOKUP_IDENTITIES,
    CardEvent,
    CardRecord,
    CardStatus,
    card_preconditions,
    card_transition,
)
from chalicelib.services.transparency import LogHead
from chalicelib.storage.dynamo import _code, conditional_write, translate
from chalicelib.storage.ktlog import HEAD_PK as KT_HEAD_PK
from chalicelib.storage.ktlog import DynamoLogStore
from chalicelib.wire.cards import Card, InvalidCard, decode_card
from chalicelib.wire.ktleaf import LogLeaf

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_CARD_PREFIX: Final = "card#"
_HEAD_PREFIX: Final = "identity#"
_TRANSACTION_CANCELED: Final = "TransactionCanceledException"
# Cancellation reasons that say "another transaction touched the same item
# right now": nothing is decided yet, so the same transaction is tried again.
_RETRYABLE_REASONS: Final = frozenset({"TransactionConflict", "ThrottlingError"})
_TRANSACTION_ROUNDS: Final = 3
# Concurrent card changes race for the log head; each lost round re-plans
# the append on the new head (cheap: one read and one signature).
_LOG_ROUNDS: Final = 20
# BatchGetItem may return part of the keys as UnprocessedKeys under load;
# they are asked for again with exponential backoff, a bounded number of
# times, before the request fails with 503.
_BATCH_ROUNDS: Final = 5
_BACKOFF: Final = 0.05


def _card_key(card_id: str) -> dict[str, Any]:
    return {"pk": {"S": _CARD_PREFIX + card_id}}


def _head_key(identity: str) -> dict[str, Any]:
    return {"pk": {"S": _HEAD_PREFIX + identity}}


class _Transactor:
    """``TransactWriteItems`` whose cancellation reasons decide: lost race, retry, or 503."""

    def __init__(self, client: DynamoDBClient, sleep: Callable[[float], None]) -> None:
        self._client = client
        self._sleep = sleep

    def transact(self, items: list[dict[str, Any]]) -> bool:
        """Run ``items`` as one transaction; False when a condition failed."""
        return self.transact_failures(items) is None

    def transact_failures(self, items: list[dict[str, Any]]) -> set[int] | None:
        """Run ``items`` as one transaction; None on success, else the
        positions of the items whose condition failed (never empty)."""
        for round_ in range(_TRANSACTION_ROUNDS):
            try:
                self._client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
            except ClientError as exc:
                if _code(exc) != _TRANSACTION_CANCELED:
                    raise translate(exc) from exc
                response: dict[str, Any] = dict(exc.response)
                listed = list(response.get("CancellationReasons", []))
                reasons = {str(reason.get("Code", "")) for reason in listed}
                if "ConditionalCheckFailed" in reasons:
                    return {
                        i
                        for i, reason in enumerate(listed)
                        if reason.get("Code") == "ConditionalCheckFailed"
                    }
                if not reasons & _RETRYABLE_REASONS or round_ == _TRANSACTION_ROUNDS - 1:
                    raise ServiceUnavailable() from exc
                self._sleep(_BACKOFF * 2**round_)
            except BotoCoreError as exc:
                raise translate(exc) from exc
            else:
                return None
        raise ServiceUnavailable()  # pragma: no cover - the loop returns or raises


class DynamoCardStore:
    """Cards and identity heads in one table (see the module docstring)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        log: DynamoLogStore | None = None,
    ) -> None:
        self._client = client
        self._table = table_name
        self._sleep = sleep
        self._tx = _Transactor(client, sleep)
        # The key-transparency log: when set, every card change appends its
        # leaf in the same transaction (chalicelib.storage.ktlog).
        self._log = log

    def _commit(self, items: list[dict[str, Any]], leaf: LogLeaf | None) -> bool:
        """Commit the card change ``items``, with ``leaf`` appended to the log if it is on.

        A failed card condition is a lost race (False).  A failed log-head
        condition only means another change was logged first: the append is
        planned again on the new head, a bounded number of times.
        """
        if self._log is None or leaf is None:
            return self._tx.transact(items)
        encoded = leaf.encode()
        for round_ in range(_LOG_ROUNDS):
            # First on the head this container last wrote; after a lost
            # race on the head, on a fresh read of it.
            planned = self._log.plan(encoded, fresh=round_ > 0)
            for item in items:
                # The card items learn their leaf's index (served with proofs).
                body = item.get("Put") or {}
                if "Item" in body and str(body["Item"]["pk"]["S"]).startswith(
                    (_CARD_PREFIX, _HEAD_PREFIX)
                ):
                    body["Item"]["kt_index"] = {"N": str(planned.index)}
            failed = self._tx.transact_failures(items + self._log.append_items(planned))
            if failed is None:
                self._log.committed(planned)
                return True
            if any(i < len(items) for i in failed):
                return False
            if round_:
                self._sleep(_BACKOFF * min(round_, 4))
        raise ServiceUnavailable()

    # --- writes -----------------------------------------------------------------

    def publish(self, record: CardRecord, *, replaces: str | None) -> bool:
        if record.status is not card_transition(None, CardEvent.PUBLISH):
            raise ValueError("only a newly published (active) card can be stored")
        card = record.card
        encoded = card.encode()
        card_item = {
            **_card_key(card.card_id),
            "kind": {"S": "card"},
            "card_id": {"S": card.card_id},
            "identity": {"S": card.identity},
            "card": {"B": encoded},
            "status": {"S": record.status.value},
            "published_at": {"N": str(record.published_at)},
        }
        head_item = {
            **_head_key(card.identity),
            "kind": {"S": "head"},
            "card_id": {"S": card.card_id},
            "identity": {"S": card.identity},
            "card": {"B": encoded},
            "published_at": {"N": str(record.published_at)},
        }
        if record.rotation_signature is not None:
            # Served with the card so devices can verify the chain themselves.
            card_item["rotation_signature"] = {"B": record.rotation_signature}
            head_item["rotation_signature"] = {"B": record.rotation_signature}
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": card_item,
                    # Card ids are content hashes: an old card can't be
                    # published a second time, whatever its status now.
                    "ConditionExpression": "attribute_not_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": "pk"},
                }
            }
        ]
        if replaces is None:
            # card_preconditions(PUBLISH) == {None}: no head, no active card.
            items.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": head_item,
                        "ConditionExpression": "attribute_not_exists(#pk)",
                        "ExpressionAttributeNames": {"#pk": "pk"},
                    }
                }
            )
        else:
            superseded = card_transition(CardStatus.ACTIVE, CardEvent.SUPERSEDE)
            items += [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": head_item,
                        "ConditionExpression": "#cid = :previous",
                        "ExpressionAttributeNames": {"#cid": "card_id"},
                        "ExpressionAttributeValues": {":previous": {"S": replaces}},
                    }
                },
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _card_key(replaces),
                        "UpdateExpression": "SET #st = :to, #chg = :at, #by = :by",
                        "ConditionExpression": _status_condition(CardEvent.SUPERSEDE),
                        "ExpressionAttributeNames": {
                            "#st": "status",
                            "#chg": "status_changed_at",
                            "#by": "superseded_by",
                            "#id": "identity",
                        },
                        "ExpressionAttributeValues": {
                            ":to": {"S": superseded.value},
                            ":at": {"N": str(record.published_at)},
                            ":by": {"S": card.card_id},
                            ":identity": {"S": card.identity},
                            ":from": {"S": CardStatus.ACTIVE.value},
                        },
                    }
                },
            ]
        leaf = LogLeaf.publish(
            card, time=record.published_at, rotation_signature=record.rotation_signature
        )
        return self._commit(items, leaf)

    def revoke(self, identity: str, card_id: str, *, at: int) -> bool:
        revoked = card_transition(CardStatus.ACTIVE, CardEvent.REVOKE)
        return self._commit(
            [
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": _head_key(identity),
                        "ConditionExpression": "#cid = :card",
                        "ExpressionAttributeNames": {"#cid": "card_id"},
                        "ExpressionAttributeValues": {":card": {"S": card_id}},
                    }
                },
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": _card_key(card_id),
                        "UpdateExpression": "SET #st = :to, #chg = :at",
                        "ConditionExpression": _status_condition(CardEvent.REVOKE),
                        "ExpressionAttributeNames": {
                            "#st": "status",
                            "#chg": "status_changed_at",
                            "#id": "identity",
                        },
                        "ExpressionAttributeValues": {
                            ":to": {"S": revoked.value},
                            ":at": {"N": str(at)},
                            ":identity": {"S": identity},
                            ":from": {"S": CardStatus.ACTIVE.value},
                        },
                    }
                },
            ],
            LogLeaf.revoke(identity, card_id, time=at),
        )

    # --- reads ------------------------------------------------------------------

    def get(self, card_id: str) -> CardRecord | None:
        item = self._get_item(_card_key(card_id))
        return None if item is None else _card_record(item)

    def active(self, identity: str) -> CardRecord | None:
        item = self._get_item(_head_key(identity))
        return None if item is None else _head_record(item)

    def active_many(self, identities: Sequence[str]) -> dict[str, CardRecord]:
        return self._active_many(identities, with_log_head=False)[0]

    def active_many_and_log_head(
        self, identities: Sequence[str]
    ) -> tuple[dict[str, CardRecord], LogHead | None]:
        """:meth:`active_many`, plus the transparency log's head read in the same
        ``BatchGetItem`` (None when the log is off)."""
        return self._active_many(identities, with_log_head=self._log is not None)

    def _active_many(
        self, identities: Sequence[str], *, with_log_head: bool
    ) -> tuple[dict[str, CardRecord], LogHead | None]:
        if len(identities) > MAX_LOOKUP_IDENTITIES or len(set(identities)) != len(identities):
            raise ValueError("active_many takes at most 50 distinct identities")
        keys = [_head_key(identity) for identity in identities]
        if with_log_head:
            keys.append({"pk": {"S": KT_HEAD_PK}})
        if not keys:
            return {}, None
        request: dict[str, Any] = {
            self._table: {
                "Keys": keys,
                # A device that just rotated must find its new card.
                "ConsistentRead": True,
            }
        }
        found: dict[str, CardRecord] = {}
        log_item: dict[str, Any] | None = None
        for round_ in range(_BATCH_ROUNDS):
            try:
                out = self._client.batch_get_item(RequestItems=request)
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc) from exc
            for item in out.get("Responses", {}).get(self._table, []):
                if item["pk"]["S"] == KT_HEAD_PK:
                    log_item = dict(item)
                    continue
                record = _head_record(dict(item))
                found[record.identity] = record
            unprocessed: dict[str, Any] = dict(out.get("UnprocessedKeys") or {})
            if not unprocessed.get(self._table, {}).get("Keys"):
                if not with_log_head or self._log is None:
                    return found, None
                return found, self._log.head_from_item(log_item)
            request = {self._table: dict(unprocessed[self._table])}
            if round_ < _BATCH_ROUNDS - 1:
                self._sleep(_BACKOFF * 2**round_)
        raise ServiceUnavailable()

    def _get_item(self, key: dict[str, Any]) -> dict[str, Any] | None:
        try:
            out = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        item = out.get("Item")
        return dict(item) if item else None


def _status_condition(event: CardEvent) -> str:
    """The ConditionExpression for ``event`` on a card item.

    The lifecycle allows SUPERSEDE and REVOKE only from ACTIVE; the condition
    says exactly that (the caller binds ``:from`` to ACTIVE) and that the card
    belongs to the identity whose head changes in the same transaction
    (``:identity``).
    """
    if card_preconditions(event) != {CardStatus.ACTIVE}:
        raise RuntimeError(f"{event.value} has preconditions this store doesn't encode")
    return "#st = :from AND #id = :identity"


def _decode(item: dict[str, Any]) -> Card:
    try:
        return decode_card(bytes(item["card"]["B"]))
    except (InvalidCard, KeyError) as exc:
        # Only verified cards are ever written; anything else is corruption.
        raise InternalError() from exc


def _card_record(item: dict[str, Any]) -> CardRecord:
    changed = item.get("status_changed_at")
    by = item.get("superseded_by")
    return CardRecord(
        card=_decode(item),
        status=CardStatus(item["status"]["S"]),
        published_at=int(item["published_at"]["N"]),
        status_changed_at=int(changed["N"]) if changed else None,
        superseded_by=by["S"] if by else None,
        rotation_signature=_rotation_signature(item),
        log_index=_log_index(item),
    )


def _head_record(item: dict[str, Any]) -> CardRecord:
    return CardRecord(
        card=_decode(item),
        status=CardStatus.ACTIVE,
        published_at=int(item["published_at"]["N"]),
        rotation_signature=_rotation_signature(item),
        log_index=_log_index(item),
    )


def _log_index(item: dict[str, Any]) -> int | None:
    value = item.get("kt_index")
    return None if value is None else int(value["N"])


def _rotation_signature(item: dict[str, Any]) -> bytes | None:
    value = item.get("rotation_signature")
    return None if value is None else bytes(value["B"])


class DynamoBackupStore:
    """Backups keyed by (identity, name), with a version counter per key."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def write(
        self,
        identity: str,
        name: str,
        ciphertext: bytes,
        *,
        event: BackupEvent,
        expected_version: int | None,
        at: int,
    ) -> int | None:
        names = {
            "#st": "state",
            "#v": "version",
            "#c": "ciphertext",
            "#u": "updated_at",
        }
        values: dict[str, Any] = {
            ":c": {"B": ciphertext},
            ":present": {"S": BackupState.PRESENT.value},
            ":at": {"N": str(at)},
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
        }
        if event is BackupEvent.CREATE and expected_version is None:
            # From "never written" or a tombstone.
            _check_preconditions(event, {None, BackupState.DELETED})
            condition = "attribute_not_exists(#n) OR #st = :deleted"
            names["#n"] = "name"
            values[":deleted"] = {"S": BackupState.DELETED.value}
        elif event is BackupEvent.REPLACE and expected_version is not None:
            _check_preconditions(event, {BackupState.PRESENT})
            condition = "#st = :present AND #v = :expected"
            values[":expected"] = {"N": str(expected_version)}
        else:
            raise ValueError("CREATE takes no expected version; REPLACE needs one")
        out = conditional_write(
            self._client.update_item,
            TableName=self._table,
            Key={"identity": {"S": identity}, "name": {"S": name}},
            # The version counter survives deletes (tombstones), so a
            # version number is never reused for one name.
            UpdateExpression=(
                "SET #c = :c, #st = :present, #u = :at, #v = if_not_exists(#v, :zero) + :one"
            ),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="UPDATED_NEW",
        )
        if out is None:
            return None
        return int(out["Attributes"]["version"]["N"])

    def delete(self, identity: str, name: str, *, expected_version: int | None, at: int) -> bool:
        _check_preconditions(BackupEvent.DELETE, {BackupState.PRESENT})
        condition = "#st = :present"
        values: dict[str, Any] = {
            ":present": {"S": BackupState.PRESENT.value},
            ":deleted": {"S": BackupState.DELETED.value},
            ":at": {"N": str(at)},
            ":one": {"N": "1"},
        }
        if expected_version is not None:
            condition += " AND #v = :expected"
            values[":expected"] = {"N": str(expected_version)}
        out = conditional_write(
            self._client.update_item,
            TableName=self._table,
            Key={"identity": {"S": identity}, "name": {"S": name}},
            # A tombstone keeps (and bumps) the version; the ciphertext goes.
            UpdateExpression="SET #st = :deleted, #u = :at, #v = #v + :one REMOVE #c",
            ConditionExpression=condition,
            ExpressionAttributeNames={
                "#st": "state",
                "#v": "version",
                "#u": "updated_at",
                "#c": "ciphertext",
            },
            ExpressionAttributeValues=values,
        )
        return out is not None

    def get(self, identity: str, name: str) -> BackupRecord | None:
        try:
            out = self._client.get_item(
                TableName=self._table,
                Key={"identity": {"S": identity}, "name": {"S": name}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        item = out.get("Item")
        if not item or item["state"]["S"] != BackupState.PRESENT.value:
            return None
        return BackupRecord(
            name=name,
            version=int(item["version"]["N"]),
            updated_at=int(item["updated_at"]["N"]),
            ciphertext=bytes(item["ciphertext"]["B"]),
        )


def _check_preconditions(event: BackupEvent, encoded: set[BackupState | None]) -> None:
    """Fail loudly if the lifecycle and the condition written for ``event`` disagree."""
    if backup_preconditions(event) != encoded:
        raise RuntimeError(f"{event.value} has preconditions this store doesn't encode")
