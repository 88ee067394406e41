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
from chalicelib.services.accounts import (
    AttemptRecord,
    DeviceRecord,
    FamilyRecord,
    Revoked,
    SessionRecord,
    UserRecord,
)

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
        if user.oprf_version:
            item["oprf_version"] = {"N": str(user.oprf_version)}
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
            # Absent for login keys derived before the OPRF.
            oprf_version=int(item.get("oprf_version", {"N": "0"})["N"]),
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

    def upgrade_login_hash(
        self, identity: str, old_hash: str, new_hash: str, oprf_version: int
    ) -> bool:
        return self._conditional(
            self._client.update_item,
            TableName=self._table,
            Key={"identity": {"S": identity}},
            UpdateExpression="SET #h = :new, #o = :version",
            ConditionExpression="#h = :old",
            ExpressionAttributeNames={"#h": "login_hash", "#o": "oprf_version"},
            ExpressionAttributeValues={
                ":new": {"S": new_hash},
                ":old": {"S": old_hash},
                ":version": {"N": str(oprf_version)},
            },
        )

    def count_on_oprf_version(self, version: int) -> int:
        """How many accounts' login keys are still derived under OPRF key ``version``.

        A full scan: for the OPRF key rotation (an operator's action), never
        a request path.
        """
        paginator = self._client.get_paginator("scan")
        values: dict[str, Any] = {":v": {"N": str(version)}}
        condition = "#o = :v"
        if version == 0:
            condition = "attribute_not_exists(#o) OR #o = :v"
        total = 0
        for page in paginator.paginate(
            TableName=self._table,
            FilterExpression=condition,
            ExpressionAttributeNames={"#o": "oprf_version"},
            ExpressionAttributeValues=values,
            Select="COUNT",
        ):
            total += int(page.get("Count", 0))
        return total

    def change_login_key(
        self, identity: str, old_hash: str, new_hash: str, oprf_version: int
    ) -> int | None:
        out = conditional_write(
            self._client.update_item,
            TableName=self._table,
            Key={"identity": {"S": identity}},
            UpdateExpression="SET #h = :new, #o = :version, #e = if_not_exists(#e, :zero) + :one",
            ConditionExpression="#h = :old",
            ExpressionAttributeNames={
                "#h": "login_hash",
                "#e": "session_epoch",
                "#o": "oprf_version",
            },
            ExpressionAttributeValues={
                ":new": {"S": new_hash},
                ":old": {"S": old_hash},
                ":version": {"N": str(oprf_version)},
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
            },
            ReturnValues="UPDATED_NEW",
        )
        if out is None:
            return None
        return int(out["Attributes"]["session_epoch"]["N"])


# Family records share the sessions table with the tokens: a token's key is
# 43 base64url characters, so a key with a ':' can never be one.
_FAMILY_PREFIX = "family:"
_TRANSACTION_CANCELED = "TransactionCanceledException"


class DynamoSessionStore(_Table):
    """Table ``sessions``: hash key ``token_hash``; TTL attribute ``expires_at``.

    Two kinds of item: a refresh token (key: the token's digest; its
    identity, expiry, epoch, family and generation) and a family (key
    ``family:<id>``; identity, expiry, current generation, revocation).
    """

    def _token_item(self, token_hash: str, session: SessionRecord) -> dict[str, Any]:
        return {
            "token_hash": {"S": token_hash},
            "identity": {"S": session.identity},
            "expires_at": {"N": str(session.expires_at)},
            "epoch": {"N": str(session.epoch)},
            "family": {"S": session.family},
            "generation": {"N": str(session.generation)},
        }

    def _put_new(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": item,
                # 256 random bits never collide; the condition makes sure that
                # even a broken RNG could not overwrite someone else's session.
                "ConditionExpression": "attribute_not_exists(#k)",
                "ExpressionAttributeNames": {"#k": "token_hash"},
            }
        }

    def _transact(self, items: list[dict[str, Any]]) -> bool:
        """One transaction; False when one of its conditions failed."""
        try:
            self._client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as exc:
            if _code(exc) != _TRANSACTION_CANCELED:
                raise translate(exc) from exc
            response: dict[str, Any] = dict(exc.response)
            reasons = {
                str(reason.get("Code", "")) for reason in response.get("CancellationReasons", [])
            }
            if "ConditionalCheckFailed" in reasons:
                return False
            raise ServiceUnavailable() from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc
        return True

    def open(self, token_hash: str, session: SessionRecord) -> None:
        family = {
            "token_hash": {"S": _FAMILY_PREFIX + session.family},
            "identity": {"S": session.identity},
            "expires_at": {"N": str(session.expires_at)},
            "generation": {"N": str(session.generation)},
            "revoked": {"S": Revoked.NO.value},
        }
        items = [self._put_new(family), self._put_new(self._token_item(token_hash, session))]
        if not self._transact(items):
            raise InternalError()

    def get(self, token_hash: str) -> SessionRecord | None:
        if token_hash.startswith(_FAMILY_PREFIX):
            return None
        item = self._get({"token_hash": {"S": token_hash}})
        if item is None:
            return None
        return SessionRecord(
            identity=item["identity"]["S"],
            expires_at=int(item["expires_at"]["N"]),
            epoch=int(item.get("epoch", {"N": "0"})["N"]),
            # Absent on sessions stored before rotation: refused.
            family=item.get("family", {"S": ""})["S"],
            generation=int(item.get("generation", {"N": "0"})["N"]),
        )

    def family(self, family: str) -> FamilyRecord | None:
        item = self._get({"token_hash": {"S": _FAMILY_PREFIX + family}})
        if item is None:
            return None
        return FamilyRecord(
            identity=item["identity"]["S"],
            generation=int(item["generation"]["N"]),
            expires_at=int(item["expires_at"]["N"]),
            revoked=Revoked(item["revoked"]["S"]),
            rotated_at=int(item.get("rotated_at", {"N": "0"})["N"]),
            rotated_from=int(item["rotated_from"]["N"]) if "rotated_from" in item else None,
        )

    def rotate(
        self,
        family: str,
        generation: int,
        token_hash: str,
        session: SessionRecord,
        at: int,
        spent: int,
    ) -> bool:
        advance = {
            "Update": {
                "TableName": self._table,
                "Key": {"token_hash": {"S": _FAMILY_PREFIX + family}},
                "UpdateExpression": "SET #g = :next, #t = :at, #f = :from",
                "ConditionExpression": "#g = :current AND #r = :live",
                "ExpressionAttributeNames": {
                    "#g": "generation",
                    "#r": "revoked",
                    "#t": "rotated_at",
                    "#f": "rotated_from",
                },
                "ExpressionAttributeValues": {
                    ":next": {"N": str(session.generation)},
                    ":at": {"N": str(at)},
                    ":from": {"N": str(spent)},
                    ":current": {"N": str(generation)},
                    ":live": {"S": Revoked.NO.value},
                },
            }
        }
        return self._transact([advance, self._put_new(self._token_item(token_hash, session))])

    def revoke(self, family: str, why: Revoked) -> None:
        # Only a live family takes a reason: the first revocation's reason
        # stays (a reuse after a logout still reads "logout").  A family
        # already revoked, or gone, needs nothing more.
        self._conditional(
            self._client.update_item,
            TableName=self._table,
            Key={"token_hash": {"S": _FAMILY_PREFIX + family}},
            UpdateExpression="SET #r = :why",
            ConditionExpression="attribute_exists(#k) AND #r = :live",
            ExpressionAttributeNames={"#r": "revoked", "#k": "token_hash"},
            ExpressionAttributeValues={":why": {"S": why.value}, ":live": {"S": Revoked.NO.value}},
        )


_DEVICE_PREFIX = "device:"


class DynamoDeviceStore(_Table):
    """Device cookies, in the sessions table under ``device:<digest>`` (TTL ``expires_at``)."""

    def create(self, cookie_hash: str, device: DeviceRecord) -> None:
        item = {
            "token_hash": {"S": _DEVICE_PREFIX + cookie_hash},
            "identity": {"S": device.identity},
            "expires_at": {"N": str(device.expires_at)},
        }
        # 256 random bits never collide; never overwrite another's cookie.
        if not self._put(item, "attribute_not_exists(#k)", {"#k": "token_hash"}):
            raise InternalError()

    def get(self, cookie_hash: str) -> DeviceRecord | None:
        item = self._get({"token_hash": {"S": _DEVICE_PREFIX + cookie_hash}})
        if item is None:
            return None
        return DeviceRecord(identity=item["identity"]["S"], expires_at=int(item["expires_at"]["N"]))

    def delete(self, cookie_hash: str) -> None:
        try:
            self._client.delete_item(
                TableName=self._table, Key={"token_hash": {"S": _DEVICE_PREFIX + cookie_hash}}
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc


_STEP_UP_PREFIX = "stepup:"
# "This identity revoked a card": no TTL attribute, kept for good.
_CARD_ENDED_PREFIX = "card-ended:"


class DynamoStepUpStore(_Table):
    """Step-up proofs, in the sessions table under ``stepup:<digest>`` (TTL ``expires_at``)."""

    def create(self, proof_hash: str, identity: str, expires_at: int) -> None:
        item = {
            "token_hash": {"S": _STEP_UP_PREFIX + proof_hash},
            "identity": {"S": identity},
            "expires_at": {"N": str(expires_at)},
        }
        if not self._put(item, "attribute_not_exists(#k)", {"#k": "token_hash"}):
            raise InternalError()

    def consume(self, proof_hash: str, identity: str, now: int) -> bool:
        # One conditional delete: of two requests presenting one proof, one
        # deletes it and the other's condition fails (single use).
        return self._conditional(
            self._client.delete_item,
            TableName=self._table,
            Key={"token_hash": {"S": _STEP_UP_PREFIX + proof_hash}},
            ConditionExpression="attribute_exists(#k) AND #i = :identity AND #e > :now",
            ExpressionAttributeNames={"#k": "token_hash", "#i": "identity", "#e": "expires_at"},
            ExpressionAttributeValues={":identity": {"S": identity}, ":now": {"N": str(now)}},
        )

    def mark_card_ended(self, identity: str) -> None:
        item = {"token_hash": {"S": _CARD_ENDED_PREFIX + identity}, "identity": {"S": identity}}
        try:
            self._client.put_item(TableName=self._table, Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    def card_ended(self, identity: str) -> bool:
        return self._get({"token_hash": {"S": _CARD_ENDED_PREFIX + identity}}) is not None


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
