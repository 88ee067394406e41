"""A key its owner retired can't pass new data off as current.

Before signed sealing times, a message signed by a superseded or revoked
card verified like any other: whoever kept an old key (a thief, a lost
phone) could keep sending "from Alice" after she rotated or unregistered,
and the recipient saw no difference.  Now the sealed header carries the
sender's time of sealing, the device reports the sender card's status
(active, superseded at T, revoked at T), and data sealed with a card more
than RETIRED_KEY_SKEW after the directory retired it is refused.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from client_sim.device import Device
from client_sim.errors import RetiredKeyUsed
from client_sim.messages import RETIRED_KEY_SKEW
from client_sim.passwords import PASSWORD_KDF_SIMULATION
from client_sim.sealed import seal_bytes

PASSWORD = "correct horse battery staple"


@pytest.fixture
def pair(transport, tmp_path: Path) -> tuple[Device, Device]:
    alice = Device(tmp_path / "alice", transport, kdf=PASSWORD_KDF_SIMULATION)
    bob = Device(tmp_path / "bob", transport, kdf=PASSWORD_KDF_SIMULATION)
    alice.register("alice", PASSWORD)
    bob.register("bob", PASSWORD)
    return alice, bob


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_a_superseded_key_cant_sign_new_messages(pair) -> None:
    alice, bob = pair
    bob_card = bob.find_users(["bob"])["bob"]
    _, stolen = alice._require_keys()  # what a thief copied off Alice's old phone
    before = alice.encrypt(b"sent before the rotation", ["bob"])
    alice.rotate_private_key()

    # Old data still verifies, and says the card has been superseded since.
    opened = bob.decrypt(before)
    assert opened.plaintext == b"sent before the rotation"
    assert opened.sender.card_status == "superseded"
    assert opened.sender.card_id == stolen.card_id
    assert opened.sender.status_changed_at is not None
    changed_ms = opened.sender.status_changed_at * 1000

    # The thief seals new data with the superseded key: refused.
    forged = seal_bytes(
        b"send the money to my new account",
        sender=stolen,
        recipients=[bob_card, stolen.card],
        sealed_at_ms=changed_ms + (RETIRED_KEY_SKEW + 1) * 1000,
    )
    with pytest.raises(RetiredKeyUsed) as info:
        bob.decrypt(forged)
    assert (info.value.card_id, info.value.card_status) == (stolen.card_id, "superseded")
    # Within the clock skew allowance it still opens (a sender's clock may run ahead).
    close = seal_bytes(
        b"sealed just as Alice rotated",
        sender=stolen,
        recipients=[bob_card, stolen.card],
        sealed_at_ms=changed_ms + RETIRED_KEY_SKEW * 1000,
    )
    assert bob.decrypt(close).sender.card_status == "superseded"


def test_a_revoked_key_cant_sign_new_messages(pair, tmp_path) -> None:
    alice, bob = pair
    bob_card = bob.find_users(["bob"])["bob"]
    _, stolen = alice._require_keys()
    alice.unregister()
    forged = seal_bytes(
        b"I'm back",
        sender=stolen,
        recipients=[bob_card, stolen.card],
        sealed_at_ms=_now_ms() + (RETIRED_KEY_SKEW + 60) * 1000,
    )
    out = tmp_path / "forged.txt"
    with pytest.raises(RetiredKeyUsed) as info:
        bob.decrypt_file(_written(tmp_path / "forged.age", forged), out)
    assert info.value.card_status == "revoked"
    assert not out.exists()  # nothing released


def test_the_cli_shows_the_status_next_to_the_sender(pair) -> None:
    from client_sim import device_cli

    alice, bob = pair
    sealed = alice.encrypt(b"before", ["bob"])
    alice.rotate_private_key()
    sender = bob.decrypt(sealed).sender
    # What `sealbox device decrypt` and `get` print for a verified sender.
    lines = _echoed(device_cli._echo_verified, sender)
    assert lines[0].startswith(f"verified sender: alice (card {sender.card_id}, superseded 20")
    assert lines[0].endswith("Z)")
    current = bob.decrypt(alice.encrypt(b"after", ["bob"])).sender
    assert _echoed(device_cli._echo_verified, current)[0] == "verified sender: alice"


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _echoed(function, *args) -> list[str]:
    import click

    @click.command()
    def run() -> None:
        function(*args)

    result = CliRunner().invoke(run, [])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()
