"""The pytest plugin over HTTP: ``--sealbox-local`` starts ``sealbox local``
(with the team's extension) once, and the same team suite runs against it,
each test under usernames of its own; a fleet is audited through the
stack's AWS endpoint."""

from __future__ import annotations

import pytest

from tests.functional.test_pytest_plugin import TEAM_EXTENSION

HTTP_SUITE = """
import pytest
from client_sim import ServerError


def test_phones_and_the_extension_over_http(sealbox_phone, sealbox_backend):
    assert sealbox_backend.mode == "http"
    alice, bob = sealbox_phone("alice"), sealbox_phone("bob")
    sealed = alice.encrypt(b"over the wire", to=[sealbox_phone.identity("bob")])
    assert bob.decrypt(sealed).plaintext == b"over the wire"
    assert bob.call("GET", "/v1/team/whoami") == {"identity": sealbox_phone.identity("bob")}
    reply = sealbox_backend.backend.api().request("GET", "/v1/team/whoami")
    assert reply.status == 401


def test_the_same_names_in_another_test_do_not_collide(sealbox_phone):
    # "alice" again: a test of its own has usernames of its own on the shared stack.
    assert sealbox_phone("alice").whoami().logged_in


def test_time_can_not_be_faked_over_http(sealbox_backend):
    with pytest.raises(RuntimeError):
        sealbox_backend.advance_time(60)


def test_an_audited_fleet_over_http(sealbox_fleet):
    outcome = sealbox_fleet(devices=4, mix={"rounds": 1}, concurrency=4)
    outcome.assert_passed()
    assert outcome.audit is not None and outcome.audit.passed
"""


@pytest.mark.slow
def test_a_team_suite_over_http_against_sealbox_local(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(team_ext=TEAM_EXTENSION, test_http=HTTP_SUITE)
    pytester.makeini("[pytest]\npythonpath = .\n")
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--sealbox-local",
        "--sealbox-extension",
        "team_ext",
        timeout=300,
    )
    result.assert_outcomes(passed=4)
