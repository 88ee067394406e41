"""DynamoDB adapters for users, refresh sessions and login attempts.

They speak the low-level client API (typed attribute values) because it is
cheaper to build in a cold Lambda than the resource layer.  Every read that
decides something is strongly consistent; every write that can race is
conditional (DESIGN invariant 5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import InternalError, ServiceUnavailable, UsernameTaken
from chalicelib.services.accounts import AttemptRecord, SessionRecord, UserRecord

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Error codes that mean "the service is overloaded or briefly unavailable":
# answered as 503 with Retry-After so well-behaved clients back off.
_TRANSIENT = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
    }
)
_CONDITION_FAILED = "ConditionalCheckFailedException"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(exc: Exception) -> Exception:
    """Map a botocore failure to a domain error (the caller raises ``from``)."""
    if isinstance(exc, ClientError) and _code(exc) not in _TRANSIENT:
        # Validation errors, missing tables, denied permissions: a deployment
        # or programming bug, never the client's fault.
        return InternalError()
    return ServiceUnavailable()


def conditional_write(operation: Callable[..., Any], **kwargs: Any) -> dict[str, Any] | None:
    """Run a conditional write; its response, or None when its condition failed.

    Any other botocore failure is raised as a domain error (``translate``).
    """
    try:
        out: dict[str, Any] = operation(**kwargs)
    except ClientError as exc:
        if _code(exc) == _CONDITION_FAILED:
            return None
        raise translate(exc) from exc
    except BotoCoreError as exc:
        raise translate(exc) from exc
    return out


class _Table:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        try:
            out = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        item = out.get("Item")
        return dict(item) if item else None

    def _put(
        self,
        item: dict[str, Any],
        condition: str,
        names: dict[str, str],
        values: dict[str, Any] | None = None,
    ) -> bool:
        """Conditional put; False when the condition failed.

        Attribute names always go through ``names`` placeholders: several of
        ours (``identity`` among them) are DynamoDB reserved words.
        """
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Item": item,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        return self._conditional(self._client.put_item, **kwargs)

    def _conditional(self, operation: Any, **kwargs: Any) -> bool:
        """Run a conditional write; False when its condition failed."""
        return conditional_write(operation, **kwargs) is not None


class DynamoUserStore(_Table):
    """Table ``users``: hash key ``identity``."""

    def create(self, user: UserRecord) -> None:
        item = {
            "identity": {"S": user.identity},
            "login_hash": {"S": user.login_hash},
            "created_at": {"N": str(user.created_at)},
        }
        if not self._put(item, "attribute_not_exists(#k)", {"#k": "identity"}):
            raise UsernameTaken()

    def get(self, identity: str) -> UserRecord | None:
        item = self._get({"identity": {"S": identity}})
        if item is None:
            return None
        return UserRecord(
            identity=item["identity"]["S"],
            login_hash=item["login_hash"]["S"],
            created_at=int(item["created_at"]["N"]),
            # Absent until the first login-key change.
            session_epoch=int(item.get("session_epoch", {"N": "0"})["N"]),
        )

    def update_login_hash(self, identity: str, old_hash: str, new_hash: str) -> bool:
        return self._conditional(
            self._client.update_item,
            TableName=self._table,
            Key={"identity": {"S": identity}},
            UpdateExpression="SET #h = :new",
            ConditionExpression="#h = :old",
            ExpressionAttributeNames={"#h": "login_hash"},
            ExpressionAttributeValues={":new": {"S": new_hash}, ":old": {"S": old_hash}},
        )

    def change_login_key(self, identity: str, old_hash: str, new_hash: str) -> int | None:
        out = conditional_write(
            self._client.update_item,
            TableName=self._table,
            Key={"identity": {"S": identity}},
            UpdateExpression="SET #h = :new, #e = if_not_exists(#e, :zero) + :one",
            ConditionExpression="#h = :old",
            ExpressionAttributeNames={"#h": "login_hash", "#e": "session_epoch"},
            ExpressionAttributeValues={
                ":new": {"S": new_hash},
                ":old": {"S": old_hash},
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
            },
            ReturnValues="UPDATED_NEW",
        )
        if out is None:
            return None
        return int(out["Attributes"]["session_epoch"]["N"])


class DynamoSessionStore(_Table):
    """Table ``sessions``: hash key ``token_hash``; TTL attribute ``expires_at``."""

    def create(self, token_hash: str, session: SessionRecord) -> None:
        item = {
            "token_hash": {"S": token_hash},
            "identity": {"S": session.identity},
            "expires_at": {"N": str(session.expires_at)},
            "epoch": {"N": str(session.epoch)},
        }
        # 256 random bits never collide; the condition makes sure that even a
        # broken RNG could not overwrite someone else's session.
        if not self._put(item, "attribute_not_exists(#k)", {"#k": "token_hash"}):
            raise InternalError()

    def get(self, token_hash: str) -> SessionRecord | None:
        item = self._get({"token_hash": {"S": token_hash}})
        if item is None:
            return None
        return SessionRecord(
            identity=item["identity"]["S"],
            expires_at=int(item["expires_at"]["N"]),
            epoch=int(item.get("epoch", {"N": "0"})["N"]),
        )

    def delete(self, token_hash: str) -> bool:
        return self._conditional(
            self._client.delete_item,
            TableName=self._table,
            Key={"token_hash": {"S": token_hash}},
            ConditionExpression="attribute_exists(#k)",
            ExpressionAttributeNames={"#k": "token_hash"},
        )


class DynamoAttemptStore(_Table):
    """Table ``login-attempts``: hash key ``identity``; TTL attribute ``expires_at``."""

    def get(self, identity: str) -> AttemptRecord | None:
        item = self._get({"identity": {"S": identity}})
        if item is None:
            return None
        return AttemptRecord(
            attempts=int(item["attempts"]["N"]),
            locked_until=int(item["locked_until"]["N"]),
            expires_at=int(item["expires_at"]["N"]),
        )

    def swap(self, identity: str, expected: AttemptRecord | None, new: AttemptRecord) -> bool:
        item = {
            "identity": {"S": identity},
            "attempts": {"N": str(new.attempts)},
            "locked_until": {"N": str(new.locked_until)},
            "expires_at": {"N": str(new.expires_at)},
        }
        if expected is None:
            return self._put(item, "attribute_not_exists(#k)", {"#k": "identity"})
        return self._put(
            item,
            "#a = :a AND #l = :l AND #e = :e",
            {"#a": "attempts", "#l": "locked_until", "#e": "expires_at"},
            {
                ":a": {"N": str(expected.attempts)},
                ":l": {"N": str(expected.locked_until)},
                ":e": {"N": str(expected.expires_at)},
            },
        )
