"""The OpenAPI 3.1 document of every route, served at ``GET /openapi.json``.

Hand-written JSON next to this module, read once per warm container.  A test
holds it to the app: every route Chalice knows appears here with the same
methods and the security scheme its ``Auth`` declares, and nothing else does.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

DOCUMENT_PATH = Path(__file__).with_name("openapi.json")


@cache
def document() -> dict[str, Any]:
    """The parsed document (shared; callers must not mutate it)."""
    loaded: dict[str, Any] = json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))
    return loaded
