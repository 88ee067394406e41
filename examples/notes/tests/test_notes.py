"""The notes app, tested the way an app team tests: phones from Sealbox's plugin."""

from __future__ import annotations

import pytest
from notes_app import Notebook

from client_sim import DecryptionFailed, NotLoggedIn, ServerError
from sealbox_tools.pytest_plugin.backend import PhoneFactory
from sealbox_tools.pytest_plugin.fleet import FleetRunner


def test_a_shared_note_opens_for_its_reader_with_its_author(sealbox_phone: PhoneFactory) -> None:
    alice, bob = Notebook(sealbox_phone("alice")), Notebook(sealbox_phone("bob"))
    note = alice.write("groceries: oat milk", share_with=[sealbox_phone.identity("bob")])

    opened = bob.read(note)
    assert (opened.text, opened.author) == ("groceries: oat milk", sealbox_phone.identity("alice"))
    [listed] = bob.list()
    assert (listed.id, listed.mine, listed.author) == (note, False, sealbox_phone.identity("alice"))
    assert [n.id for n in alice.list() if n.mine] == [note]


def test_nobody_else_lists_or_opens_a_note(sealbox_phone: PhoneFactory) -> None:
    alice = Notebook(sealbox_phone("alice"))
    carol_phone = sealbox_phone("carol")
    carol = Notebook(carol_phone)
    note = alice.write("private")
    assert carol.list() == []
    with pytest.raises(ServerError) as refused:
        carol.read(note)  # no existence oracle: the same 404 as a missing note
    assert refused.value.status == 404


def test_the_route_needs_a_logged_in_phone(sealbox_phone: PhoneFactory) -> None:
    phone = sealbox_phone("dave")
    phone.logout()
    with pytest.raises(NotLoggedIn):
        Notebook(phone).list()


def test_sharing_later_reseals_for_the_new_reader(sealbox_phone: PhoneFactory) -> None:
    alice, bob = Notebook(sealbox_phone("alice")), Notebook(sealbox_phone("bob"))
    note = alice.write("draft")
    with pytest.raises(ServerError):
        bob.read(note)
    shared = alice.share(note, [sealbox_phone.identity("bob")])
    assert bob.read(shared).text == "draft"
    assert [n.id for n in bob.list()] == [shared]


def test_a_new_phone_reads_old_notes_from_the_backup(sealbox_phone: PhoneFactory) -> None:
    note = Notebook(sealbox_phone("alice")).write("kept")
    second = Notebook(sealbox_phone("alice"))  # the same person: a new phone
    assert second.read(note).text == "kept"


def test_a_note_sealed_for_someone_else_never_opens(sealbox_phone: PhoneFactory) -> None:
    alice, bob = sealbox_phone("alice"), sealbox_phone("bob")
    sealed = alice.encrypt(b"notes/v1\nfor alice only", to=[])
    with pytest.raises(DecryptionFailed):
        bob.decrypt(sealed)


def test_a_fleet_passes_on_the_same_backend(
    sealbox_phone: PhoneFactory, sealbox_fleet: FleetRunner
) -> None:
    Notebook(sealbox_phone("alice")).write("the fleet must not see this")
    outcome = sealbox_fleet(devices=8, mix={"rounds": 1})
    outcome.assert_passed()
    assert outcome.ledger.delivered() == outcome.outcome["deliveries_expected"]


def test_the_notes_route_is_in_the_apis_document(sealbox_phone: PhoneFactory) -> None:
    # Installed extensions are published in /openapi.json next to
    # Sealbox's routes, behind the same token check.
    document = sealbox_phone("erin").call("GET", "/openapi.json")
    listing = document["paths"]["/v1/notes"]["get"]
    assert listing["operationId"] == "listNotes"
    assert listing["security"] == [{"accessToken": []}]
    assert "401" in listing["responses"]
