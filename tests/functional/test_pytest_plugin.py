"""Sealbox's pytest plugin as an app team uses it: a suite of theirs, run by pytest.

The suite runs in a subprocess (pytester), as it would in the team's own
repository: the plugin comes from the ``pytest11`` entry point, the team's
backend extension from ``--sealbox-extension``, and pytest-xdist spreads it
over two worker processes.  The over-HTTP form is tested in
tests/e2e/test_pytest_plugin_http.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sealbox_tools.fleet.runner import FleetResult
from sealbox_tools.pytest_plugin.fleet import FleetOutcome
from tests.conftest import ROOT

TEAM_EXTENSION = """
from chalicelib.extensions import ApiRequest, ApiResponse, Auth, blueprint

api = blueprint(__name__)

@api.route("/v1/team/whoami", methods=["GET"], auth=Auth.ACCESS)
def whoami(request: ApiRequest) -> ApiResponse:
    return ApiResponse(200, {"identity": request.identity})

@api.route("/v1/team/echo", methods=["POST"], auth=Auth.ACCESS)
def echo(request: ApiRequest) -> ApiResponse:
    body = request.json(required=("text",))
    return ApiResponse(201, {"text": body["text"], "by": request.identity})
"""

TEAM_SUITE = """
import os
import pytest
from client_sim import InvalidInput, ServerError


def _mark(name):
    path = os.path.join(os.environ["TEAM_MARKS"], name)
    with open(path, "w") as out:
        out.write(os.environ.get("PYTEST_XDIST_WORKER", "main"))


def test_two_phones_exchange_a_message(sealbox_phone):
    import logging

    alice, bob = sealbox_phone("alice"), sealbox_phone("bob")
    # A phone test leaves logging alone (only a fleet's audit captures at DEBUG).
    assert logging.getLogger().getEffectiveLevel() > logging.DEBUG
    sealed = alice.encrypt(b"hi bob", to=[sealbox_phone.identity("bob")])
    assert bob.decrypt(sealed, sender=sealbox_phone.identity("alice")).plaintext == b"hi bob"
    _mark("exchange")


def test_the_same_person_again_is_a_new_phone_with_the_keys(sealbox_phone):
    sealed = sealbox_phone("alice").encrypt(b"old", to=[])
    assert sealbox_phone("alice").decrypt(sealed).plaintext == b"old"
    _mark("second_phone")


def test_the_extension_reads_the_callers_identity(sealbox_phone):
    phone = sealbox_phone("carol")
    assert phone.call("GET", "/v1/team/whoami") == {"identity": sealbox_phone.identity("carol")}
    reply = phone.call("POST", "/v1/team/echo", {"text": "yo"})
    assert reply == {"text": "yo", "by": sealbox_phone.identity("carol")}
    with pytest.raises(ServerError) as bad:
        phone.call("POST", "/v1/team/echo", {"text": "yo", "extra": 1})
    assert (bad.value.status, bad.value.code) == (400, "invalid_request")
    with pytest.raises(InvalidInput):
        phone.call("GET", "https://elsewhere.example/v1/team/whoami")
    _mark("extension")


@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "Basic YTpi"])
def test_the_extension_route_refuses_without_an_access_token(sealbox_backend, header):
    headers = {} if header is None else {"Authorization": header}
    reply = sealbox_backend.backend.api().request("GET", "/v1/team/whoami", headers=headers)
    assert reply.status == 401
    assert reply.json()["error"]["code"] == "invalid_token"


def test_a_refresh_token_is_not_an_access_token(sealbox_phone, sealbox_backend, tmp_path):
    phone = sealbox_phone("erin")
    from client_sim.store import DeviceStore
    from client_sim.session import REFRESH_TOKEN

    refresh = DeviceStore(phone._home).require_session().settings[REFRESH_TOKEN]
    reply = sealbox_backend.backend.api().request(
        "GET", "/v1/team/whoami", headers={"Authorization": f"Bearer {refresh}"}
    )
    assert reply.status == 401


@pytest.mark.parametrize("run", [1, 2])
def test_every_test_starts_from_an_empty_backend(sealbox_phone, run):
    phone = sealbox_phone("alice", password=f"password number {run} is long")
    assert phone.list_blobs("outbox").items == ()
    phone.upload(__import__("io").BytesIO(b"x" * 10), to=[])
    _mark(f"isolated{run}")


def test_a_fleet_passes_and_explains_itself(sealbox_fleet):
    outcome = sealbox_fleet(devices=6, mix={"rounds": 1})
    outcome.assert_passed()
    assert outcome.audit is not None and outcome.audit.passed
    assert outcome.audit.scanned["log"] > 0  # the server's logs were captured and read
    assert outcome.ledger.delivered() == outcome.outcome["deliveries_expected"] > 0
    assert "passed" in outcome.explain()
    _mark("fleet")
"""


@pytest.mark.slow
def test_a_team_suite_runs_on_two_xdist_workers(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    pytester.makepyfile(team_ext=TEAM_EXTENSION, test_team=TEAM_SUITE)
    pytester.makeini("[pytest]\npythonpath = .\n")
    monkeypatch.setenv("TEAM_MARKS", str(marks))
    result = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:cacheprovider", "--sealbox-extension", "team_ext", timeout=300
    )
    result.assert_outcomes(passed=10)
    workers = {path.name: path.read_text() for path in marks.iterdir()}
    assert set(workers) == {
        "exchange",
        "second_phone",
        "extension",
        "isolated1",
        "isolated2",
        "fleet",
    }
    # Spread over both workers (xdist's load scheduling with 10 tests).
    assert set(workers.values()) == {"gw0", "gw1"}


def test_the_plugin_is_loaded_from_its_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        ["*--sealbox-url=URL*", "*--sealbox-local*", "*sealbox_extensions*"]
    )


def test_a_missing_extension_fails_the_test_that_needs_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x(sealbox_backend):\n    pass\n")
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--sealbox-extension", "no_such_module_here"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ModuleNotFoundError*no_such_module_here*"])


def _failed_outcome(tmp_path: Path) -> FleetOutcome:
    report = {
        "run": {"devices": 4, "scenario": "standard", "seed": 7, "mode": "in-process"},
        "outcome": {
            "deliveries_verified": 3,
            "deliveries_expected": 5,
            "sends_completed": 4,
            "sends_planned": 4,
            "undelivered_sample": ["m-0001 -> bob-t1"],
        },
        "metrics": {"errors": {"read:crash_KeyError": 1}},
        "crashes": ["read: KeyError at phone.py:12"],
        "audit": {"passed": False, "summary": "privacy audit: 1 hit\n  verdict: FAIL"},
        "verdict": {"passed": False, "reasons": ["2 deliveries never arrived"]},
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    return FleetOutcome(FleetResult(report, {}, None, []), path)


def test_a_failed_fleet_says_what_failed_first(tmp_path: Path) -> None:
    outcome = _failed_outcome(tmp_path)
    with pytest.raises(AssertionError) as failed:
        outcome.assert_passed()
    message = str(failed.value)
    lines = message.splitlines()
    assert lines[0] == "fleet of 4 phones, scenario 'standard', seed 7 (in-process): FAILED"
    assert lines[1] == "  - 2 deliveries never arrived"
    for expected in (
        "deliveries verified 3/5",
        "never arrived: m-0001 -> bob-t1",
        "read:crash_KeyError 1",
        "crash: read: KeyError at phone.py:12",
        "verdict: FAIL",
        f"full report: {tmp_path / 'report.json'}",
    ):
        assert expected in message


def _python_block(text: str, after: str = "") -> str:
    section = text.split(after, 1)[1] if after else text
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize(
    ("doc", "heading"),
    [("README.md", "## Testing your app with the plugin"), ("docs/testing.md", "")],
)
def test_the_documented_plugin_examples_run_as_written(
    pytester: pytest.Pytester, doc: str, heading: str
) -> None:
    source = _python_block((ROOT / doc).read_text(encoding="utf-8"), heading)
    pytester.makepyfile(test_documented=source)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
