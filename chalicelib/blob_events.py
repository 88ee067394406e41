"""The S3 event handler: every object created under ``blobs/`` gets checked.

S3 reports new objects to an SQS queue (``infra/resources.json``); the
``blob_events`` Lambda (``app.py``) receives them in batches and passes the
message bodies here.  Each report runs the same check as a commit
(:meth:`BlobService.inspect_upload`), so an upload that its owner never
commits is still judged, and content whose blob is gone is removed.

Messages are untrusted input like any other: anything that isn't an S3
notification for our bucket's ``blobs/`` prefix is logged by kind and
dropped (retrying it could never help).  A failure that retrying can help
(a throttled dependency) is raised after the whole batch has been tried, so
SQS redelivers the batch; every check is idempotent, so messages that
already succeeded cost only a repeated read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

from chalicelib.errors import SealboxError
from chalicelib.logs import log_event, log_exception
from chalicelib.services.blobs import BlobService
from chalicelib.wire.strictjson import StrictJSONError, loads_strict

CONTENT_PREFIX = "blobs/"
# An SQS message body is at most 256 KiB; S3 notifications are ~1 KiB.
_MAX_BODY = 256 * 1024
#: Records checked per message.  S3 sends one record per notification; a
#: message with more did not come from S3, and checking them all would let
#: one message keep the handler busy for minutes (each check is a few AWS
#: calls) while real uploads wait.  The excess is dropped, logged with a count.
MAX_RECORDS_PER_MESSAGE = 10


class RetryableBatchError(RuntimeError):
    """Some messages failed in a way a redelivery may fix."""


def object_reports(body: str, bucket: str) -> list[tuple[str, str | None]]:
    """(blob id, version id) for each object-created record in ``body`` that
    concerns ``bucket``'s content prefix.  Anything else yields nothing."""
    if len(body) > _MAX_BODY:
        log_event("blob_event_ignored", reason="oversized")
        return []
    try:
        message = loads_strict(body)
    except StrictJSONError:
        log_event("blob_event_ignored", reason="not_json")
        return []
    if not isinstance(message, dict) or not isinstance(message.get("Records"), list):
        # Includes the s3:TestEvent S3 sends when notifications are set up.
        log_event("blob_event_ignored", reason="not_a_notification")
        return []
    records = message["Records"]
    if len(records) > MAX_RECORDS_PER_MESSAGE:
        log_event(
            "blob_event_ignored",
            reason="too_many_records",
            count=len(records) - MAX_RECORDS_PER_MESSAGE,
        )
        records = records[:MAX_RECORDS_PER_MESSAGE]
    found: list[tuple[str, str | None]] = []
    for record in records:
        report = _object_report(record, bucket)
        if report is not None:
            found.append(report)
    return found


def _object_report(record: Any, bucket: str) -> tuple[str, str | None] | None:
    try:
        if not str(record["eventName"]).startswith("ObjectCreated:"):
            return None
        s3 = record["s3"]
        if s3["bucket"]["name"] != bucket:
            log_event("blob_event_ignored", reason="foreign_bucket")
            return None
        # Keys arrive URL-encoded, with '+' for spaces.
        key = unquote_plus(str(s3["object"]["key"]))
        version = s3["object"].get("versionId")
    except (KeyError, TypeError, AttributeError):
        log_event("blob_event_ignored", reason="malformed_record")
        return None
    if not key.startswith(CONTENT_PREFIX):
        return None
    return key[len(CONTENT_PREFIX) :], version if isinstance(version, str) else None


def handle_blob_events(bodies: Iterable[str], service: BlobService, *, bucket: str) -> int:
    """Check every object reported in ``bodies``; return how many were checked.

    Raises:
        RetryableBatchError: at least one check failed; the others ran.
    """
    checked = failed = 0
    for body in bodies:
        for blob_id, version_id in object_reports(body, bucket):
            try:
                service.inspect_upload(blob_id, version_id)
                checked += 1
            except SealboxError as exc:
                failed += 1
                log_event("blob_event_failed", code=exc.code, blob_id=blob_id[:22])
            except Exception as exc:  # noqa: BLE001 - logged by type, then retried
                failed += 1
                log_exception("blob_event_failed", exc)
    log_event("blob_events", count=checked)
    if failed:
        raise RetryableBatchError(f"{failed} blob check(s) failed")
    return checked
