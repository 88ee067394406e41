"""Sealbox backend: the composition root.

Only wiring lives here: the Chalice app, its blueprints, the error-shape
middleware and the Lambda entry points.  Routes are in ``chalicelib.routes``,
logic in ``chalicelib.services``, AWS access in ``chalicelib.storage``.
Nothing here talks to AWS at import time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from chalice.app import Chalice, Request, Response, SQSEvent

from chalicelib import wiring
from chalicelib.blob_events import handle_blob_events
from chalicelib.http import answer_undeclared_methods, declared_methods, normalize_chalice_error
from chalicelib.logs import LOGGER_NAME
from chalicelib.rotation import handle_rotation_event
from chalicelib.routes import (
    accounts,
    backups,
    blobs,
    cards,
    groups,
    meta,
    oprf,
    stepup,
    tokens,
    transparency,
)

app = Chalice(app_name="sealbox")
# Chalice's own log records carry exception text; ours go through
# chalicelib.logs with an allow-list of fields.
app.log.setLevel(logging.CRITICAL)
logging.getLogger(LOGGER_NAME).setLevel(logging.INFO)

app.register_blueprint(accounts.api.blueprint)
app.register_blueprint(tokens.api.blueprint)
app.register_blueprint(stepup.api.blueprint)
app.register_blueprint(meta.api.blueprint)
app.register_blueprint(cards.api.blueprint)
app.register_blueprint(backups.api.blueprint)
app.register_blueprint(blobs.api.blueprint)
app.register_blueprint(oprf.api.blueprint)
app.register_blueprint(groups.api.blueprint)
app.register_blueprint(transparency.api.blueprint)
# Last: every path answers every method, so API Gateway forwards an
# undeclared one to us (405 + Allow) instead of answering it itself.
# An app team's own blueprints (SEALBOX_EXTENSIONS) come just before, behind
# the same token check; they may not take over a path (chalicelib/extensions.py).
# Imported only when named: a stage without extensions doesn't pay for it.
if os.environ.get("SEALBOX_EXTENSIONS", "").strip():
    from chalicelib import extensions

    extensions.install_from_environment(app)
answer_undeclared_methods(app)


@app.middleware("http")
def sealbox_error_shape(event: Request, get_response: Callable[[Request], Response]) -> Any:
    """Give errors that Chalice produces itself (405, 415, ...) our JSON shape."""
    entries = app.routes.get(str((event.context or {}).get("resourcePath", "")))
    allow = declared_methods(entries) if entries else None
    return normalize_chalice_error(get_response(event), allow)


@app.lambda_function(name="rotate_app_key")
def rotate_app_key(event: dict[str, Any], context: Any) -> None:
    """Secrets Manager rotation for the app signing key (four steps)."""
    handle_rotation_event(event, wiring.container().secretsmanager)


# Chalice reads the queue name when it loads the app for `chalice package`,
# `deploy` or `local`, with the stage's environment applied; it names the
# event source of the function, nothing else.  Tests invoke the handler
# directly.
BLOB_EVENTS_QUEUE = os.environ.get("SEALBOX_BLOB_EVENTS_QUEUE", "sealbox-blob-events")


@app.on_sqs_message(queue=BLOB_EVENTS_QUEUE, batch_size=10, name="blob_events")
def blob_events(event: SQSEvent) -> None:
    """S3 reports of new objects under ``blobs/``: check each like a commit."""
    container = wiring.container()
    handle_blob_events(
        (record.body for record in event),
        container.blobs,
        bucket=container.blob_settings.bucket,
    )
