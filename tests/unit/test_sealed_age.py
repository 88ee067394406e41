"""client_sim.sealed composed with age: seal, open, open to a path.

End to end: the signed inner framing inside real age files.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from chalicelib.wire.b64 import b64url_decode
from chalicelib.wire.cards import Card
from client_sim import age, sealed
from client_sim.identity import KeyBundle, age_recipients_for
from client_sim.sealed import (
    RecipientMismatch,
    SealedDecryptionError,
    SignatureError,
    UnknownSender,
    open_sealed,
    open_sealed_bytes,
    open_sealed_to_path,
    seal,
    seal_bytes,
)
from tests.identities import bundle

ALICE, BOB, CAROL = bundle("alice"), bundle("bob"), bundle("carol")


def test_round_trip_to_several_recipients() -> None:
    ciphertext = seal_bytes(b"hi all", sender=ALICE, recipients=[BOB.card, CAROL.card, ALICE.card])
    for reader in (BOB, CAROL, ALICE):
        opened = open_sealed_bytes(ciphertext, reader, [ALICE.card])
        assert opened.plaintext == b"hi all"
        assert opened.sender.identity == "alice"
        assert opened.sender.card_id == ALICE.card_id


def test_the_sender_is_not_visible_outside_the_age_payload() -> None:
    ciphertext = seal_bytes(b"x", sender=ALICE, recipients=[BOB.card])
    assert b64url_decode(ALICE.card_id) not in ciphertext
    assert b"SBSEALED" not in ciphertext


def test_streaming_seal_and_open() -> None:
    data = os.urandom(300_000)
    encrypted = io.BytesIO()
    seal(io.BytesIO(data), encrypted, sender=ALICE, recipients=[BOB.card])
    out = io.BytesIO()
    who = open_sealed(io.BytesIO(encrypted.getvalue()), out, [BOB], [ALICE.card])
    assert out.getvalue() == data
    assert who.plaintext_length == len(data)


def test_non_recipient_cannot_decrypt() -> None:
    ciphertext = seal_bytes(b"x", sender=ALICE, recipients=[BOB.card])
    with pytest.raises(SealedDecryptionError):
        open_sealed_bytes(ciphertext, CAROL, [ALICE.card])


def test_tampered_ciphertext_is_a_decryption_error() -> None:
    ciphertext = bytearray(seal_bytes(b"x" * 1000, sender=ALICE, recipients=[BOB.card]))
    ciphertext[-20] ^= 0x01
    with pytest.raises(SealedDecryptionError):
        open_sealed_bytes(bytes(ciphertext), BOB, [ALICE.card])


def test_unknown_sender() -> None:
    ciphertext = seal_bytes(b"x", sender=ALICE, recipients=[BOB.card])
    with pytest.raises(UnknownSender) as info:
        open_sealed_bytes(ciphertext, BOB, [CAROL.card])
    assert info.value.card_id == ALICE.card_id


def inner_stream(ciphertext: bytes, keys: KeyBundle) -> bytes:
    """What a plain age decryption of a sealed message yields."""
    reader = age.decrypt_reader(io.BytesIO(ciphertext), keys.age_identities())
    out = io.BytesIO()
    while chunk := reader.read(65536):
        out.write(chunk)
    return out.getvalue()


def age_encrypt(inner: bytes, card: Card) -> bytes:
    out = io.BytesIO()
    with age.encrypt_writer(out, age_recipients_for([card])) as writer:
        writer.write(inner)
    return out.getvalue()


def test_plain_age_decryption_yields_the_framed_stream() -> None:
    inner = inner_stream(seal_bytes(b"payload", sender=ALICE, recipients=[BOB.card]), BOB)
    assert inner.startswith(b"SBSEALED\x02\x00" + b64url_decode(ALICE.card_id))
    assert inner[-72 - 7 : -72] == b"payload"


def test_forwarded_message_is_refused() -> None:
    # Bob decrypts Alice's message and re-encrypts the signed inner stream to Carol.
    ciphertext = seal_bytes(b"for bob", sender=ALICE, recipients=[BOB.card])
    forwarded = age_encrypt(inner_stream(ciphertext, BOB), CAROL.card)
    with pytest.raises(RecipientMismatch):
        open_sealed_bytes(forwarded, CAROL, [ALICE.card])


def test_old_messages_open_after_both_sides_rotated() -> None:
    ciphertext = seal_bytes(b"old", sender=ALICE, recipients=[BOB.card])
    alice_new, bob_new = bundle("alice", 1), bundle("bob", 1)
    opened = open_sealed_bytes(ciphertext, [bob_new, BOB], [alice_new.card, ALICE.card])
    assert opened.plaintext == b"old"
    assert opened.sender.card_id == ALICE.card_id


def test_seal_validates_recipients_before_writing() -> None:
    out = io.BytesIO()
    with pytest.raises(ValueError, match="recipient"):
        seal(io.BytesIO(b"x"), out, sender=ALICE, recipients=[])
    assert out.getvalue() == b""
    with pytest.raises(ValueError, match="key bundle"):
        open_sealed_bytes(b"", [], [ALICE.card])


def test_open_to_path_publishes_only_verified_plaintext(tmp_path: Path) -> None:
    ciphertext = seal_bytes(b"verified", sender=ALICE, recipients=[BOB.card])
    target = tmp_path / "out.txt"
    who = open_sealed_to_path(io.BytesIO(ciphertext), target, BOB, [ALICE.card])
    assert target.read_bytes() == b"verified"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert who.identity == "alice"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


@pytest.mark.parametrize("failure", ["unknown_sender", "tampered", "bad_signature"])
def test_open_to_path_leaves_nothing_on_failure(tmp_path: Path, failure: str) -> None:
    ciphertext = seal_bytes(b"v" * 200_000, sender=ALICE, recipients=[BOB.card])
    senders = [ALICE.card]
    expected: type[Exception] = sealed.SealedError
    if failure == "unknown_sender":
        senders = [CAROL.card]
        expected = UnknownSender
    elif failure == "tampered":
        mutated = bytearray(ciphertext)
        mutated[-10] ^= 1
        ciphertext = bytes(mutated)
        expected = SealedDecryptionError
    else:
        # A valid age file around an inner stream whose signature is wrong.
        inner = bytearray(inner_stream(ciphertext, BOB))
        inner[-1] ^= 0x01
        ciphertext = age_encrypt(bytes(inner), BOB.card)
        expected = SignatureError
    target = tmp_path / "out.txt"
    target.write_bytes(b"previous contents")
    with pytest.raises(expected):
        open_sealed_to_path(io.BytesIO(ciphertext), target, BOB, senders)
    assert target.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


# --- resolving the sender card by id -------------------------------------------------


def test_the_resolver_finds_a_sender_card_not_given_up_front() -> None:
    ciphertext = seal_bytes(b"x", sender=ALICE, recipients=[BOB.card])
    asked: list[str] = []

    def resolve(card_id: str) -> Card | None:
        asked.append(card_id)
        return ALICE.card

    opened = open_sealed_bytes(ciphertext, BOB, [], resolve_sender=resolve)
    assert (opened.plaintext, opened.sender.identity) == (b"x", "alice")
    assert asked == [ALICE.card_id]


def test_the_resolver_is_not_asked_for_a_known_card() -> None:
    ciphertext = seal_bytes(b"x", sender=ALICE, recipients=[BOB.card])

    def resolve(card_id: str) -> Card | None:
        raise AssertionError("not needed")

    assert (
        open_sealed_bytes(ciphertext, BOB, [ALICE.card], resolve_sender=resolve).plaintext == b"x"
    )


@pytest.mark.parametrize("answer", [None, CAROL.card, bundle("alice", 1).card])
def test_a_resolver_answer_other_than_the_named_card_is_unknown(answer: Card | None) -> None:
    ciphertext = seal_bytes(b"x", sender=ALICE, recipients=[BOB.card])
    with pytest.raises(UnknownSender):
        open_sealed_bytes(ciphertext, BOB, [], resolve_sender=lambda _: answer)


def test_a_resolver_refusal_propagates_before_any_plaintext() -> None:
    ciphertext = seal_bytes(b"secret", sender=ALICE, recipients=[BOB.card])

    class Refused(Exception):
        pass

    def refuse(card_id: str) -> Card | None:
        raise Refused(card_id)

    out = io.BytesIO()
    with pytest.raises(Refused):
        open_sealed(io.BytesIO(ciphertext), out, BOB, [], resolve_sender=refuse)
    assert out.getvalue() == b""


def test_a_message_for_someone_else_never_reaches_the_resolver() -> None:
    ciphertext = seal_bytes(b"for bob", sender=ALICE, recipients=[BOB.card])
    forwarded = age_encrypt(inner_stream(ciphertext, BOB), CAROL.card)

    def resolve(card_id: str) -> Card | None:
        raise AssertionError("no lookup for a message not addressed to us")

    with pytest.raises(RecipientMismatch):
        open_sealed_bytes(forwarded, CAROL, [], resolve_sender=resolve)
