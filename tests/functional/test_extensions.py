"""Backend extensions (chalicelib/extensions.py) and Device.call's path rule.

Each test installs on a fresh Chalice app, never on ``app.app``: Sealbox's
own suite (the OpenAPI document, the 405 answers) must not see test routes.
The extension modules are written to a temporary directory on sys.path.
"""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from chalice.app import Chalice

from chalicelib import extensions
from client_sim.api import ApiClient
from client_sim.errors import InvalidInput
from client_sim.transport import HttpReply

GOOD = """
from chalicelib.extensions import ApiRequest, ApiResponse, Auth, blueprint

api = blueprint(__name__)

@api.route("/v1/x-notes", methods=["GET"], auth=Auth.ACCESS)
def list_notes(request: ApiRequest) -> ApiResponse:
    return ApiResponse(200, {"identity": request.identity})

@api.route("/v1/x-notes/{note}", methods=["POST", "DELETE"], auth=Auth.ACCESS)
def change_note(request: ApiRequest, note: str) -> ApiResponse:
    return ApiResponse(204)
"""

# A plain Chalice route slipped onto the blueprint: nobody checks its token.
UNCHECKED = (
    GOOD
    + """
@api.blueprint.route("/v1/x-open", methods=["GET"])
def wide_open():
    return {"secret": "everyone's"}
"""
)

# Another method on a path Sealbox serves.
TAKEOVER = """
from chalicelib.extensions import ApiRequest, ApiResponse, Auth, blueprint

api = blueprint(__name__)

@api.route("/v1/me", methods=["PATCH"], auth=Auth.NONE)
def rename(request: ApiRequest) -> ApiResponse:
    return ApiResponse(200, {})
"""

PLAIN_BLUEPRINT = """
from chalice.app import Blueprint

api = Blueprint(__name__)

@api.route("/v1/x-plain", methods=["GET"])
def plain():
    return {}
"""


@pytest.fixture
def module(tmp_path: Path) -> Iterator[object]:
    sys.path.insert(0, str(tmp_path))
    written: list[str] = []

    def write(source: str) -> str:
        name = f"ext_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        written.append(name)
        return name

    yield write
    sys.path.remove(str(tmp_path))
    for name in written:
        sys.modules.pop(name, None)


def sealbox_like_app() -> Chalice:
    app = Chalice(app_name="t")

    @app.route("/v1/me", methods=["GET"])
    def me() -> dict[str, str]:
        return {}

    return app


def test_an_extension_route_keeps_its_auth_and_gets_405_answers(module) -> None:
    app = sealbox_like_app()
    name = module(GOOD)
    assert extensions.install(app, [name]) == (name,)
    entries = app.routes["/v1/x-notes"]
    assert entries["GET"].view_function.sealbox_auth is extensions.Auth.ACCESS  # type: ignore[attr-defined]
    # Every other method answers 405, like Sealbox's own paths.
    assert {"POST", "DELETE", "OPTIONS"} <= set(entries)
    assert extensions.installed(app) == (name,)
    # The methods it declared, not Chalice's default GET (a blueprint's route
    # arguments are consumed by its first registration: registering it on a
    # scratch app to check it first turned POST /v1/x-notes/{note} into GET).
    changes = app.routes["/v1/x-notes/{note}"]
    assert {m for m, e in changes.items() if e.view_name == "change_note"} == {"POST", "DELETE"}
    assert changes["GET"].view_function.sealbox_method_not_allowed  # type: ignore[attr-defined]
    # Idempotent: installing again adds nothing.
    assert extensions.install(app, [name, " ", ""]) == ()


def test_a_route_that_skips_the_token_check_is_refused(module) -> None:
    app = sealbox_like_app()
    with pytest.raises(extensions.ExtensionError, match=r"not declared with api\.route"):
        extensions.install(app, [module(UNCHECKED)])
    # Nothing reached the app: not even the extension's checked route.
    assert set(app.routes) == {"/v1/me"}


def test_an_extension_can_not_take_over_a_sealbox_path(module) -> None:
    app = sealbox_like_app()
    with pytest.raises(extensions.ExtensionError, match="/v1/me is a path Sealbox serves"):
        extensions.install(app, [module(TAKEOVER)])
    assert set(app.routes["/v1/me"]) == {"GET"}


def test_a_method_the_app_already_answers_is_refused(module) -> None:
    # The real app answers every method of its paths (405 views): Chalice
    # itself refuses the duplicate, and nothing stays half-registered.
    from chalicelib.http import answer_undeclared_methods

    app = sealbox_like_app()
    answer_undeclared_methods(app)
    routes = {path: dict(entries) for path, entries in app.routes.items()}
    with pytest.raises(extensions.ExtensionError, match="Duplicate method"):
        extensions.install(app, [module(TAKEOVER)])
    assert {path: dict(entries) for path, entries in app.routes.items()} == routes
    assert extensions.installed(app) == ()


def test_a_plain_chalice_blueprint_is_refused(module) -> None:
    with pytest.raises(extensions.ExtensionError, match="blueprint"):
        extensions.install(sealbox_like_app(), [module(PLAIN_BLUEPRINT)])


def test_the_environment_names_the_modules(module, monkeypatch: pytest.MonkeyPatch) -> None:
    app = sealbox_like_app()
    name = module(GOOD)
    monkeypatch.setenv(extensions.EXTENSIONS_ENV, f" {name} ,")
    assert extensions.install_from_environment(app) == (name,)
    monkeypatch.delenv(extensions.EXTENSIONS_ENV)
    assert extensions.install_from_environment(sealbox_like_app()) == ()


def test_the_documented_extension_installs(module) -> None:
    from tests.conftest import ROOT

    doc = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    source = doc.split("```python\n", 1)[1].split("```", 1)[0]
    app = sealbox_like_app()
    extensions.install(app, [module(source)])
    assert set(app.routes["/v1/notes"]) >= {"GET", "POST"}


# A route documented by its team: kept, with Sealbox's security and errors.
DOCUMENTED = """
from chalicelib.extensions import ApiRequest, ApiResponse, Auth, blueprint

api = blueprint(__name__)

@api.route(
    "/v1/x-docs/{doc}",
    methods=["PUT"],
    auth=Auth.ACCESS,
    openapi={"summary": "Replace a doc.", "responses": {"204": {"description": "Stored."}}},
)
def put_doc(request: ApiRequest, doc: str) -> ApiResponse:
    return ApiResponse(204)
"""

# A team that tries to document its guarded route as public.
MISDOCUMENTED = (
    GOOD
    + """
@api.route("/v1/x-public", methods=["GET"], auth=Auth.ACCESS, openapi={"security": []})
def claims_public(request: ApiRequest) -> ApiResponse:
    return ApiResponse(200, {})
"""
)


def test_installed_routes_join_the_served_openapi_document(module) -> None:
    from chalicelib import openapi

    app = sealbox_like_app()
    good, documented = module(GOOD), module(DOCUMENTED)
    extensions.install(app, [good])
    extensions.install(app, [documented])
    paths = openapi.served_document(app)["paths"]
    # Sealbox's own routes are still all there, and the served copy is not
    # the shared document (installing never edits Sealbox's own).
    assert set(openapi.document()["paths"]) < set(paths)
    assert "/v1/x-notes" not in openapi.document()["paths"]
    listing = paths["/v1/x-notes"]["get"]
    assert listing["security"] == [{"accessToken": []}]
    assert listing["x-sealbox-extension"] == good
    change = paths["/v1/x-notes/{note}"]
    assert set(change) == {"post", "delete"}  # the declared methods, not the 405s
    assert change["post"]["parameters"][0]["name"] == "note"
    put = paths["/v1/x-docs/{doc}"]["put"]
    assert put["summary"] == "Replace a doc."
    assert {"204", "400", "401", "413", "415", "500", "503"} == set(put["responses"])


def test_a_route_documented_as_what_it_is_not_is_refused(module) -> None:
    from chalicelib import openapi

    app = sealbox_like_app()
    with pytest.raises(extensions.ExtensionError, match="may not set"):
        extensions.install(app, [module(MISDOCUMENTED)])
    # Nothing installed, nothing published.
    assert set(app.routes) == {"/v1/me"}
    assert extensions.installed(app) == ()
    assert openapi.served_document(app) is openapi.document()


def test_the_openapi_route_serves_the_apps_document(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalice.test import Client

    from app import app
    from chalicelib import openapi

    served = openapi.with_operations(
        openapi.document(),
        {
            ("/v1/x-served", "get"): openapi.extension_operation(
                "/v1/x-served", "get", security="access", declared=None, module="m"
            )
        },
    )
    monkeypatch.setattr(app, "sealbox_openapi_document", served, raising=False)
    with Client(app) as client:
        body = client.http.get("/openapi.json").json_body
    assert body["paths"]["/v1/x-served"]["get"]["x-sealbox-extension"] == "m"


def test_sealbox_itself_loads_no_extension() -> None:
    from app import app

    assert extensions.installed(app) == ()


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, str]]] = []

    def request(self, method, path, *, body=None, headers=None) -> HttpReply:
        self.sent.append((method, path, dict(headers or {})))
        return HttpReply(200, {"content-type": "application/json"}, b'{"ok": true}')


@pytest.mark.parametrize(
    "path",
    [
        "https://evil.example/steal",
        "//evil.example/steal",
        "v1/notes",
        "/v1/../v1/tokens",
        "/v1/%2e%2e/tokens",
        "/v1/notes\r\nHost: evil",
        "/v1/notes#x",
        "/v1/\\evil",
        "/",
        "/" + "a" * 3000,
    ],
)
def test_an_app_call_never_sends_the_token_off_the_api(path: str) -> None:
    # A hostile or careless caller hands the SDK a URL or a climbing path:
    # refused before anything (the access token above all) is sent.
    transport = Recorder()
    with pytest.raises(InvalidInput):
        ApiClient(transport).app_call("token", "GET", path)
    assert transport.sent == []


def test_an_app_call_sends_the_bearer_token_to_a_path() -> None:
    transport = Recorder()
    assert ApiClient(transport).app_call("tok", "get", "/v1/notes?limit=3") == {"ok": True}
    assert transport.sent == [("GET", "/v1/notes?limit=3", {"Authorization": "Bearer tok"})]
    with pytest.raises(InvalidInput):
        ApiClient(transport).app_call("tok", "CONNECT", "/v1/notes")


def test_sealbox_local_hands_its_extensions_to_the_api_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from sealbox_tools import cli
    from sealbox_tools.local_stack import LocalStack

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", "/opt/team")
    env = LocalStack(extensions=("notes_server.routes", "other.mod"))._extension_env()
    assert env["SEALBOX_EXTENSIONS"] == "notes_server.routes,other.mod"
    assert env["PYTHONPATH"].split(":") == [str(tmp_path), "/opt/team"]
    assert LocalStack()._extension_env() == {}
    # The command line passes --extension through to the stack.
    seen: list[tuple[str, ...]] = []
    monkeypatch.setattr(
        cli, "_run_local", lambda stack, stopping, sdk_config: seen.append(stack.extensions)
    )
    result = CliRunner().invoke(cli.main, ["local", "--port", "1", "--extension", "a.b"])
    assert result.exit_code == 0, result.output
    assert seen == [("a.b",)]
