"""Identity resets are surfaced, never silent; the card cache can't be planted (issue 11).

Each test is an attack on a contact's device that worked before devices
pinned the cards they had seen: a thief with a stolen access token revokes
the victim's card and publishes his own, or a hostile server shows a card
the victim never made, and every contact silently encrypted to the thief.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chalicelib.wire.safety import safety_number
from client_sim import errors
from client_sim.api import ApiClient
from client_sim.card_cache import CARD_CACHE_FILE
from client_sim.device import Device
from client_sim.identity import KeyBundle
from client_sim.keystore import Keystore
from client_sim.passwords import PASSWORD_KDF_SIMULATION, derive_password_keys
from client_sim.transport import HttpReply, Transport
from sealbox_tools.cli import main
from tests.support.fakes import FakeClock

PASSWORD = "correct horse battery staple"


class Hostile:
    """A transport whose server rewrites the card entries of lookups."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.rewrite: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        reply = self.inner.request(method, path, body=body, headers=headers)
        if self.rewrite is not None and method == "GET" and path.startswith("/v1/cards?"):
            out = self.rewrite(reply.json())
            return HttpReply(reply.status, reply.headers, json.dumps(out).encode())
        return reply


def _device(home: Path, transport: Transport, clock: FakeClock | None = None) -> Device:
    if clock is None:
        return Device(home, transport, kdf=PASSWORD_KDF_SIMULATION)
    return Device(home, transport, kdf=PASSWORD_KDF_SIMULATION, clock=clock)


def _token(api: ApiClient, identity: str) -> str:
    """An access token for ``identity`` (for reading cards)."""
    keys = derive_password_keys(identity, PASSWORD, PASSWORD_KDF_SIMULATION)
    session = api.login(identity, keys.login_key_b64)
    return api.access_token(session.refresh_token).access_token


def _takeover(api: ApiClient, identity: str, card_id: str, new_card: dict[str, Any]) -> None:
    """Revoke ``identity``'s card and publish ``new_card`` in its place.

    A stolen access token alone can't do this any more (each call needs a
    step-up proof: tests/regressions/test_step_up.py), so the attacker here
    holds the password too -- phished, or a backend operator acting for the
    server.  What these tests prove is the device side: whoever manages a
    reset, every contact that knew the old card is told.
    """
    keys = derive_password_keys(identity, PASSWORD, PASSWORD_KDF_SIMULATION)
    token = _token(api, identity)
    api.revoke_card(token, card_id, api.step_up(token, keys.login_key_b64))
    api.publish_card(token, new_card, step_up=api.step_up(token, keys.login_key_b64))


def _replace_active(entry_card: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def rewrite(body: dict[str, Any]) -> dict[str, Any]:
        for entry in body["cards"]:
            if entry["card"]["identity"] == entry_card["identity"]:
                entry["card"] = entry_card
                entry.pop("rotation_signature", None)
        return body

    return rewrite


def test_revoke_then_republish_is_surfaced_to_contacts(transport, api, tmp_path) -> None:
    clock = FakeClock(time.time())
    alice = _device(tmp_path / "alice", transport)
    bob = _device(tmp_path / "bob", transport, clock)
    alice.register("alice", PASSWORD)
    bob.register("bob", PASSWORD)
    old = bob.find_users(["alice"])["alice"]  # first contact: pinned
    bob_card = bob.whoami().card_id
    assert bob_card is not None

    # The thief revokes alice's card and publishes his own as a first card.
    thief = KeyBundle.generate("alice")
    _takeover(api, "alice", old.card_id, thief.card.to_json())

    clock.advance(300)  # bob's cached card expires (the stated bound)
    with pytest.raises(errors.IdentityChanged) as reset:
        bob.encrypt(b"for alice only", to=["alice"])
    change = reset.value
    assert (change.identity, change.old_card_id, change.new_card_id) == (
        "alice",
        old.card_id,
        thief.card_id,
    )
    # The number both people compare: what each computes over the cards it sees.
    assert change.safety_number == safety_number("bob", bob_card, "alice", thief.card_id)
    assert change.safety_number != safety_number("bob", bob_card, "alice", old.card_id)
    # Nothing changes by asking again, on any path that encrypts.
    with pytest.raises(errors.IdentityChanged):
        bob.find_users(["alice"], refresh=True)
    source = tmp_path / "f"
    source.write_bytes(b"a file")
    with pytest.raises(errors.IdentityChanged):
        bob.upload(source, to=["alice"])
    assert list(bob.list_blobs("outbox").items) == []

    # Only an explicit decision switches keys.
    assert bob.trust("alice", thief.card_id).card_id == thief.card_id
    assert bob.find_users(["alice"])["alice"].card_id == thief.card_id


def test_a_card_the_server_made_up_is_an_identity_reset(transport, tmp_path) -> None:
    hostile = Hostile(transport)
    alice = _device(tmp_path / "alice", transport)
    bob = _device(tmp_path / "bob", hostile)
    alice.register("alice", PASSWORD)
    bob.register("bob", PASSWORD)
    real = bob.find_users(["alice"])["alice"]

    made_up = KeyBundle.generate("alice")
    hostile.rewrite = _replace_active(made_up.card.to_json())
    with pytest.raises(errors.IdentityChanged) as reset:
        bob.find_users(["alice"], refresh=True)
    assert (reset.value.old_card_id, reset.value.new_card_id) == (real.card_id, made_up.card_id)


def test_an_unsigned_rotation_shown_by_a_hostile_server_is_an_identity_reset(
    transport, tmp_path
) -> None:
    """The server refuses such a rotation, but a compromised one can still
    serve it: devices check the rotation signature themselves."""
    hostile = Hostile(transport)
    alice = _device(tmp_path / "alice", transport)
    bob = _device(tmp_path / "bob", hostile)
    alice.register("alice", PASSWORD)
    bob.register("bob", PASSWORD)
    real = bob.find_users(["alice"])["alice"]

    forged = KeyBundle.generate("alice", previous_card_id=real.card_id)
    hostile.rewrite = _replace_active(forged.card.to_json())
    with pytest.raises(errors.IdentityChanged):
        bob.find_users(["alice"], refresh=True)

    # A real rotation signature lifted onto the forged card doesn't help.
    genuine = alice.rotate_private_key()
    lifted = alice_rotation_signature(transport, genuine.card_id)

    def with_lifted(body: dict[str, Any]) -> dict[str, Any]:
        for entry in body["cards"]:
            entry["card"] = forged.card.to_json()
            entry["rotation_signature"] = lifted
        return body

    hostile.rewrite = with_lifted
    with pytest.raises(errors.IdentityChanged):
        bob.find_users(["alice"], refresh=True)


def alice_rotation_signature(transport: Transport, card_id: str) -> str:
    api = ApiClient(transport)
    token = _token(api, "alice")
    signature: str = api.get_card(token, card_id)["rotation_signature"]
    return signature


def test_signed_rotations_move_the_pin_silently(transport, tmp_path) -> None:
    alice = _device(tmp_path / "alice", transport)
    bob = _device(tmp_path / "bob", transport)
    alice.register("alice", PASSWORD)
    bob.register("bob", PASSWORD)
    bob.find_users(["alice"])
    alice.rotate_private_key()
    latest = alice.rotate_private_key()  # two rotations between bob's lookups
    assert bob.find_users(["alice"], refresh=True)["alice"].card_id == latest.card_id
    sealed = bob.encrypt(b"to the new card", to=["alice"])
    assert alice.decrypt(sealed).plaintext == b"to the new card"
    assert Keystore(tmp_path / "bob").load().pins["alice"] == latest.card_id


def test_pins_survive_a_restart_and_live_in_the_keystore(transport, api, tmp_path) -> None:
    alice = _device(tmp_path / "alice", transport)
    alice.register("alice", PASSWORD)
    bob = _device(tmp_path / "bob", transport)
    bob.register("bob", PASSWORD)
    first = bob.find_users(["alice"])["alice"]
    assert dict(Keystore(tmp_path / "bob").load().pins) == {"alice": first.card_id}

    _takeover(api, "alice", first.card_id, KeyBundle.generate("alice").card.to_json())
    # The app is closed and opened again; the cache is gone too.
    (tmp_path / "bob" / "keystore" / CARD_CACHE_FILE).unlink()
    with pytest.raises(errors.IdentityChanged):
        _device(tmp_path / "bob", transport).find_users(["alice"])


def test_a_planted_card_cache_is_refused(transport, tmp_path) -> None:
    """The cache used to be a plain cards.json beside the keystore: anyone
    who could write the home directory chose the keys of the next message."""
    alice = _device(tmp_path / "alice", transport)
    alice.register("alice", PASSWORD)
    bob = _device(tmp_path / "bob", transport)
    bob.register("bob", PASSWORD)
    real = alice.whoami().card_id
    planted = KeyBundle.generate("alice")
    item = {
        "card": planted.card.to_json(),
        "status": "active",
        "fetched_at": time.time(),
        "lookup": True,
    }
    (tmp_path / "bob" / "cards.json").write_text(json.dumps({"version": 1, "cards": [item]}))
    assert _device(tmp_path / "bob", transport).find_users(["alice"])["alice"].card_id == real
    assert not (tmp_path / "bob" / "cards.json").exists()

    # The sealed cache: any change to it is refused (read as empty, then refetched).
    sealed = tmp_path / "bob" / "keystore" / CARD_CACHE_FILE
    data = bytearray(sealed.read_bytes())
    data[-1] ^= 1
    sealed.write_bytes(bytes(data))
    assert _device(tmp_path / "bob", transport).find_users(["alice"])["alice"].card_id == real


def test_a_cache_entry_from_the_future_is_stale(transport, tmp_path) -> None:
    clock = FakeClock(time.time())
    alice = _device(tmp_path / "alice", transport)
    alice.register("alice", PASSWORD)
    bob = _device(tmp_path / "bob", transport, clock)
    bob.register("bob", PASSWORD)
    bob.find_users(["alice"])
    new = alice.rotate_private_key()
    clock.now -= 3600  # bob's clock goes back an hour: the entry looks fetched in the future
    assert bob.find_users(["alice"])["alice"].card_id == new.card_id


def test_a_revoked_contact_card_stops_being_used_within_five_minutes(transport, tmp_path) -> None:
    clock = FakeClock(time.time())
    alice = _device(tmp_path / "alice", transport)
    alice.register("alice", PASSWORD)
    bob = _device(tmp_path / "bob", transport, clock)
    bob.register("bob", PASSWORD)
    bob.encrypt(b"hello", to=["alice"])
    alice.unregister()
    clock.advance(299)
    bob.encrypt(b"still within the stated bound", to=["alice"])
    clock.advance(1)
    with pytest.raises(errors.UsersNotFound):
        bob.encrypt(b"too late", to=["alice"])


def test_the_card_cache_lifetime_is_bounded(transport, tmp_path) -> None:
    with pytest.raises(ValueError, match="at most 300"):
        Device(tmp_path / "bob", transport, kdf=PASSWORD_KDF_SIMULATION, card_cache_ttl=301)


def test_the_device_cli_warns_and_needs_an_explicit_acceptance(
    transport, api, tmp_path, monkeypatch
) -> None:
    from client_sim import device as device_module

    monkeypatch.setattr(
        device_module.Device,
        "connect",
        classmethod(lambda cls, home, url, **kw: cls(home, transport, **kw)),
    )
    monkeypatch.setenv("SEALBOX_PASSWORD", PASSWORD)
    runner = CliRunner()
    base = ["device", "--home", str(tmp_path / "bob"), "--url", "http://x", "--kdf", "simulation"]
    alice = _device(tmp_path / "alice", transport)
    alice.register("alice", PASSWORD)
    assert runner.invoke(main, [*base, "register", "bob"]).exit_code == 0
    assert runner.invoke(main, [*base, "find", "alice"]).exit_code == 0

    thief = KeyBundle.generate("alice")
    _takeover(api, "alice", alice.whoami().card_id or "", thief.card.to_json())

    src, dst = tmp_path / "plain", tmp_path / "sealed"
    src.write_bytes(b"secret")
    assert runner.invoke(main, [*base, "find", "--refresh", "alice"]).exit_code == 1
    refused = runner.invoke(main, [*base, "encrypt", "--to", "alice", str(src), str(dst)])
    assert refused.exit_code == 1
    assert "WARNING: alice's identity changed" in refused.stderr
    assert thief.card_id in refused.stderr
    assert "safety number: " in refused.stderr
    assert f"trust -- alice {thief.card_id}" in refused.stderr
    assert not dst.exists()

    accepted = runner.invoke(
        main, [*base, "encrypt", "--accept-new-identity", "--to", "alice", str(src), str(dst)]
    )
    assert accepted.exit_code == 0, accepted.output
    assert "trusting the new card" in accepted.stderr
    assert dst.exists()

    # The trust verb does the same for the next reset.
    again = KeyBundle.generate("alice")
    _takeover(api, "alice", thief.card_id, again.card.to_json())
    assert runner.invoke(main, [*base, "find", "--refresh", "alice"]).exit_code == 1
    # "--" as the warning says: a card id starts with "-" once in 64 times.
    trusted = runner.invoke(main, [*base, "trust", "--", "alice", again.card_id])
    assert trusted.exit_code == 0, trusted.output
    assert f"trusted alice: card {again.card_id}" in trusted.output
    assert runner.invoke(main, [*base, "find", "alice"]).exit_code == 0


def test_a_server_that_rolls_back_to_a_superseded_card_is_caught(transport, tmp_path) -> None:
    """After bob saw alice's rotation, a hostile server shows her old card again
    (to make bob encrypt to keys that may have been stolen): the old card is no
    successor of the pinned one, so it is a reset, not a silent rollback."""
    hostile = Hostile(transport)
    alice = _device(tmp_path / "alice", transport)
    bob = _device(tmp_path / "bob", hostile)
    alice.register("alice", PASSWORD)
    bob.register("bob", PASSWORD)
    old = bob.find_users(["alice"])["alice"]
    new = alice.rotate_private_key()
    assert bob.find_users(["alice"], refresh=True)["alice"].card_id == new.card_id
    hostile.rewrite = _replace_active(old.to_json())
    with pytest.raises(errors.IdentityChanged) as reset:
        bob.find_users(["alice"], refresh=True)
    assert (reset.value.old_card_id, reset.value.new_card_id) == (new.card_id, old.card_id)
    with pytest.raises(errors.IdentityChanged):
        bob.encrypt(b"to the old keys?", to=["alice"])


def test_a_card_id_starting_with_a_dash_reaches_the_trust_verb(monkeypatch, tmp_path) -> None:
    """Card ids are base64url hashes: one in 64 starts with "-", which click
    read as an option ('No such option') when the trust verb was given it
    as the warning printed it.  The warning now says "trust -- IDENTITY ID"."""
    seen: list[tuple[str, str]] = []

    class Phone:
        def trust(self, identity: str, card_id: str) -> KeyBundle:
            seen.append((identity, card_id))
            return KeyBundle.generate(identity)

    monkeypatch.setattr("client_sim.device_cli._Options.device", lambda self: Phone())
    dashed = "-" + "B" * 42
    base = ["device", "--home", str(tmp_path / "bob"), "--url", "http://x"]
    result = CliRunner().invoke(main, [*base, "trust", "--", "alice", dashed])
    assert result.exit_code == 0, result.output
    assert seen == [("alice", dashed)]
