"""Regression tests for device SDK bugs, one per bug, named after it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from client_sim.device import Device
from client_sim.errors import CardVerificationFailed, ConnectionFailed
from client_sim.passwords import PASSWORD_KDF_SIMULATION
from client_sim.transport import HttpReply, Transport

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
