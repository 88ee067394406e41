"""Structured logs with an allow-list of fields.

Log lines are JSON objects built only from the keys in :data:`ALLOWED_FIELDS`;
anything else passed to :func:`log_event` is dropped, so a careless call site
can't put a token, a key or a request body into CloudWatch (DESIGN
invariants 1 and 3).  Exceptions are logged by type and stack frames only,
never by message: messages of third-party exceptions can quote the input that
caused them.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

# A child of Chalice's app logger ("sealbox"), so records reach the handler
# Chalice installs (stdout, hence CloudWatch on Lambda) exactly once.
LOGGER_NAME = "sealbox.api"

# Everything here is non-secret by construction: identities are public
# (they are looked up in the key directory), and the rest is metadata.
ALLOWED_FIELDS = frozenset(
    {
        "event",
        "method",
        "route",
        "status",
        "code",
        "duration_ms",
        "request_id",
        "identity",
        "kid",
        "step",
        "reason",
        "error_type",
        "frames",
        "retry_after",
        "attempts",
        "stage",
        "count",
        # Blob ids are random names chosen by the server, not secrets.
        "blob_id",
    }
)

logger = logging.getLogger(LOGGER_NAME)


def log_event(event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Emit one JSON log line for ``event`` with the allowed ``fields``.

    Values must be JSON scalars; unknown keys are silently dropped (the
    allow-list is the contract, and a test holds every call site to it).
    """
    if not logger.isEnabledFor(level):
        return
    record: dict[str, Any] = {"event": event}
    for key, value in fields.items():
        if key in ALLOWED_FIELDS and (value is None or isinstance(value, str | int | float | bool)):
            record[key] = value
    logger.log(level, json.dumps(record, sort_keys=True, separators=(",", ":")))


def log_exception(event: str, exc: BaseException, **fields: Any) -> None:
    """Log ``exc`` by type and code location only (no message, no locals)."""
    frames = ";".join(
        f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}:{frame.name}"
        for frame in traceback.extract_tb(exc.__traceback__)
    )
    log_event(
        event,
        level=logging.ERROR,
        error_type=type(exc).__qualname__,
        frames=frames,
        **fields,
    )
