"""Regression tests for device SDK bugs, one per bug, named after it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from client_sim.api import ApiClient, BlobPage
from client_sim.blobs import BlobClient
from client_sim.device import Device
from client_sim.errors import CardVerificationFailed, ConnectionFailed, ServerError
from client_sim.passwords import PASSWORD_KDF_SIMULATION
from client_sim.transport import HttpReply, Transport
from sealbox_tools.cli import main

PASSWORD = "correct horse battery staple"


@dataclass
class Meddling:
    """A transport that can lose card publications and answer every card
    fetch by id with one other card (what a broken or hostile server may do)."""

    inner: Transport
    lose_publication: bool = False
    substitute: str | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        if self.lose_publication and (method, path) == ("POST", "/v1/cards"):
            self.lose_publication = False
            raise ConnectionFailed("connection reset")
        if self.substitute is not None and method == "GET" and path.startswith("/v1/cards/"):
            path = f"/v1/cards/{self.substitute}"
        return self.inner.request(method, path, body=body, headers=headers)


def test_settling_a_lost_card_publication_verifies_the_card_id(transport, tmp_path: Path) -> None:
    """A device whose card publication got no answer settles it on its next
    operation by fetching the pending card by id.  It accepted whatever
    valid card came back, without checking that it was the one asked for:
    any other card marked the pending one published, and the device went on
    signing with a key whose card the directory never had (recipients then
    refused everything it sent as signed by an unknown card)."""
    meddling = Meddling(transport)
    alice = Device(tmp_path / "alice", meddling, kdf=PASSWORD_KDF_SIMULATION)
    bob = Device(tmp_path / "bob", transport, kdf=PASSWORD_KDF_SIMULATION)
    alice.register("alice", PASSWORD)
    bob.register("bob", PASSWORD)
    published = alice.whoami().card_id
    assert published is not None
    meddling.lose_publication = True
    with pytest.raises(ConnectionFailed):
        alice.rotate_private_key()  # the request never reached the server
    meddling.substitute = published  # a valid card, but not the pending one
    with pytest.raises(CardVerificationFailed):
        alice.encrypt(b"signed by which card?", to=["bob"])
    # An honest answer (404: never published) settles it: the published key is current.
    meddling.substitute = None
    sealed = alice.encrypt(b"signed by the published card", to=["bob"])
    assert alice.whoami().card_id == published
    assert bob.decrypt(sealed, sender="alice").sender.card_id == published


# --- a hostile server's listing (issue: the device CLI against a hostile server) ------------

GOOD_ID = "A" * 22


def _blob(**changes: object) -> dict[str, object]:
    blob: dict[str, object] = {
        "blob_id": GOOD_ID,
        "owner": "alice",
        "recipients": ["bob"],
        "size": 10,
        "created_at": 0,
        "state": "ready",
        "version": 2,
    }
    blob.update(changes)
    return blob


@dataclass
class Listing:
    """Answers every ``GET /v1/blobs`` with one page: ``items`` and ``next_cursor``."""

    items: list[dict[str, object]]
    next_cursor: str | None = None
    pages: int = 0

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        assert (method, path.split("?")[0]) == ("GET", "/v1/blobs")
        self.pages += 1
        page = {"items": self.items, "next_cursor": self.next_cursor}
        return HttpReply(200, {}, json.dumps(page).encode())


@pytest.mark.parametrize(
    "hostile",
    [
        {"owner": "alice\x1b[2J\x1b]0;you have been hacked\x07"},  # terminal escapes
        {"owner": "ALICE"},  # not canonical: a look-alike of alice
        {"recipients": ["bob", "mallory\nroot\t0\tready\t-"]},  # a forged extra line
        {"blob_id": "../../etc/passwd"},
        {"state": "ready\x1b[31m"},
        {"rejected_reason": "size_mismatch; call +1 555 0100"},
    ],
)
def test_strings_from_a_hostile_server_are_checked_before_anyone_prints_them(
    hostile: dict[str, object],
) -> None:
    """Owner and recipient names, ids and states from the server were printed
    by ``sealbox device ls`` as they came: escape sequences reached the
    terminal.  They are now held to the input rules (identities canonical,
    ids of the blob id shape, states short words); anything else is a
    malformed reply."""
    api = ApiClient(Listing([_blob(**hostile)]))
    with pytest.raises(ServerError) as refused:
        api.list_blobs("token")
    assert refused.value.code == "malformed"
    assert "\x1b" not in str(refused.value)
    assert ApiClient(Listing([_blob()])).list_blobs("token").items[0].owner == "alice"


def test_a_repeated_cursor_ends_the_listing_instead_of_looping() -> None:
    """A server that answers every page with the same cursor kept
    ``BlobClient.iter_blobs`` (and ``sealbox device ls``) listing forever."""
    server = Listing([_blob()], next_cursor="same-cursor")
    blobs = BlobClient(server, lambda: "token")
    with pytest.raises(ServerError, match="malformed listing"):
        list(blobs.iter_blobs("inbox"))
    assert server.pages == 2


def test_device_ls_stops_on_a_repeated_cursor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Listing([_blob()], next_cursor="same-cursor")

    class Phone:
        def list_blobs(self, role: str, *, cursor: str | None = None) -> BlobPage:
            return ApiClient(server).list_blobs("token", role, cursor=cursor)

    monkeypatch.setattr(Device, "connect", staticmethod(lambda *_a, **_k: Phone()))
    result = CliRunner().invoke(
        main, ["device", "--home", str(tmp_path), "--url", "http://sealbox.invalid", "ls"]
    )
    assert result.exit_code == 1, result.output
    assert "malformed listing" in result.output
    assert server.pages == 2
