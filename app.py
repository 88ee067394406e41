"""Sealbox backend: the composition root.

Only wiring lives here: the Chalice app, its blueprints, the error-shape
middleware and the Lambda entry points.  Routes are in ``chalicelib.routes``,
logic in ``chalicelib.services``, AWS access in ``chalicelib.storage``.
Nothing here talks to AWS at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chalice.app import Chalice, Request, Response

from chalicelib import wiring
from chalicelib.http import normalize_chalice_error
from chalicelib.logs import LOGGER_NAME
from chalicelib.rotation import handle_rotation_event
from chalicelib.routes import accounts, backups, cards, meta, tokens

app = Chalice(app_name="sealbox")
# Chalice's own log records carry exception text; ours go through
# chalicelib.logs with an allow-list of fields.
app.log.setLevel(logging.CRITICAL)
logging.getLogger(LOGGER_NAME).setLevel(logging.INFO)

app.register_blueprint(accounts.api.blueprint)
app.register_blueprint(tokens.api.blueprint)
app.register_blueprint(meta.api.blueprint)
app.register_blueprint(cards.api.blueprint)
app.register_blueprint(backups.api.blueprint)


@app.middleware("http")
def sealbox_error_shape(event: Request, get_response: Callable[[Request], Response]) -> Any:
    """Give errors that Chalice produces itself (405, 415, ...) our JSON shape."""
    return normalize_chalice_error(get_response(event))


@app.lambda_function(name="rotate_app_key")
def rotate_app_key(event: dict[str, Any], context: Any) -> None:
    """Secrets Manager rotation for the app signing key (four steps)."""
    handle_rotation_event(event, wiring.container().secretsmanager)
