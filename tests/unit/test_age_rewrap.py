"""age.rewrap_header: share a stored file by re-wrapping only its header."""

from __future__ import annotations

import pytest

from chalicelib.wire.agefile import sniff
from client_sim import age

ALICE = age.X25519Identity.generate()
BOB = age.X25519Identity.generate()
CAROL = age.X25519Identity.generate()
PLAINTEXT = bytes(range(256)) * 700


def split(data: bytes) -> tuple[bytes, bytes]:
    length = sniff(data).header_length
    return data[:length], data[length:]


def test_the_new_header_opens_the_unchanged_payload_for_the_new_recipients() -> None:
    header, payload = split(age.encrypt_bytes(PLAINTEXT, [ALICE.recipient()]))
    new_header = age.rewrap_header(header, [ALICE], [ALICE.recipient(), BOB.recipient()])
    shared = new_header + payload
    assert age.decrypt_bytes(shared, [BOB]) == PLAINTEXT
    assert age.decrypt_bytes(shared, [ALICE]) == PLAINTEXT
    with pytest.raises(age.NoIdentityMatch):
        age.decrypt_bytes(shared, [CAROL])


def test_a_removed_recipient_cannot_open_the_new_header() -> None:
    header, payload = split(age.encrypt_bytes(PLAINTEXT, [ALICE.recipient(), BOB.recipient()]))
    narrowed = age.rewrap_header(header, [BOB], [ALICE.recipient()])
    with pytest.raises(age.NoIdentityMatch):
        age.decrypt_bytes(narrowed + payload, [BOB])


def test_post_quantum_recipients_can_be_added_to_a_pq_file() -> None:
    pq_alice, pq_bob = age.HybridIdentity.generate(), age.HybridIdentity.generate()
    header, payload = split(age.encrypt_bytes(PLAINTEXT, [pq_alice.recipient()]))
    new_header = age.rewrap_header(header, [pq_alice], [pq_alice.recipient(), pq_bob.recipient()])
    assert age.decrypt_bytes(new_header + payload, [pq_bob]) == PLAINTEXT


def test_only_an_authentic_complete_header_is_rewrapped() -> None:
    header, payload = split(age.encrypt_bytes(PLAINTEXT, [ALICE.recipient()]))
    with pytest.raises(age.NoIdentityMatch):
        age.rewrap_header(header, [BOB], [BOB.recipient()])
    with pytest.raises(age.DecryptionError):
        age.rewrap_header(header + payload[:1], [ALICE], [BOB.recipient()])
    # The MAC's last base64 character carries 2 bits, so it is one of A, Q, g
    # and w: a fixed replacement left it unchanged one run in four.
    other = b"Q" if header[-2:-1] == b"A" else b"A"
    with pytest.raises(age.DecryptionError):
        age.rewrap_header(header[:-2] + other + b"\n", [ALICE], [BOB.recipient()])  # MAC changed
    with pytest.raises(age.DecryptionError):
        age.rewrap_header(header[:-5], [ALICE], [BOB.recipient()])
    with pytest.raises(TypeError):
        age.rewrap_header(bytearray(header), [ALICE], [BOB.recipient()])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no recipients"):
        age.rewrap_header(header, [ALICE], [])


def test_classic_and_post_quantum_recipients_still_do_not_mix() -> None:
    header, _ = split(age.encrypt_bytes(PLAINTEXT, [ALICE.recipient()]))
    with pytest.raises(ValueError, match="post-quantum"):
        age.rewrap_header(
            header, [ALICE], [ALICE.recipient(), age.HybridIdentity.generate().recipient()]
        )
