"""An app team's extension routes, as ``sealbox local`` serves and documents them.

The example notes app's route (examples/notes) is installed with
``--extension``; the stack's own ``/openapi.json`` must then describe it
(Sealbox's operations unchanged, the extension's added), and schemathesis
fuzzes the extension's operations from that served document, with the same
checks as Sealbox's own routes: no 5xx, answers that match the document,
invalid input refused, and no answer without the access token.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from chalice.app import Chalice

from chalicelib import extensions, openapi
from sealbox_tools.local_stack import free_port
from tests.conftest import ROOT
from tests.e2e.conftest import RunningStack, start_local, stop_local
from tests.e2e.fuzzing import FUZZ_SETTINGS, call_and_validate, make_credentials, schema_config

EXTENSION = "notes_server.routes"


@pytest.fixture(scope="module")
def notes_stack() -> Iterator[RunningStack]:
    with pytest.MonkeyPatch.context() as patch:
        # The stack puts its working directory first on the API process's
        # PYTHONPATH; the example app lives under examples/notes.
        patch.setenv("PYTHONPATH", str(ROOT / "examples" / "notes"))
        stack = start_local(free_port(), extra_args=["--extension", EXTENSION])
    try:
        yield stack
    finally:
        stop_local(stack)


@pytest.fixture(scope="module")
def served(notes_stack: RunningStack) -> dict[str, Any]:
    with urllib.request.urlopen(f"{notes_stack.url}/openapi.json", timeout=30) as reply:
        document: dict[str, Any] = json.load(reply)
    return document


def documented_with_the_extension() -> dict[str, Any]:
    """The document an app with the extension installed serves, built in
    process (the test below holds the running stack's to it)."""
    sys.path.insert(0, str(ROOT / "examples" / "notes"))
    try:
        scratch = Chalice(app_name="scratch")
        extensions.install(scratch, [EXTENSION])
    finally:
        sys.path.remove(str(ROOT / "examples" / "notes"))
    return openapi.served_document(scratch)


DOCUMENTED = documented_with_the_extension()
schema = schemathesis.openapi.from_dict(DOCUMENTED, config=schema_config()).include(
    path_regex="^/v1/notes"
)


@pytest.fixture(scope="module")
def credentials(notes_stack: RunningStack) -> dict[str, str]:
    return make_credentials(notes_stack.url, "notes-fuzzer")


def test_the_served_document_is_sealboxs_plus_the_extension(served: dict[str, Any]) -> None:
    assert served == DOCUMENTED  # what is fuzzed below is what the stack serves
    own = openapi.document()["paths"]
    assert {path: ops for path, ops in served["paths"].items() if path in own} == own
    added = {path: ops for path, ops in served["paths"].items() if path not in own}
    assert list(added) == ["/v1/notes"]
    listing = added["/v1/notes"]["get"]
    assert listing["x-sealbox-extension"] == EXTENSION
    assert listing["operationId"] == "listNotes"
    assert listing["security"] == [{"accessToken": []}]


@schema.parametrize()
@FUZZ_SETTINGS
def test_extension_routes_conform_to_the_served_document(
    case: Any, notes_stack: RunningStack, credentials: dict[str, str]
) -> None:
    call_and_validate(case, notes_stack.url, credentials)
