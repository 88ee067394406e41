"""Sealbox's own vectors (tests/vectors/data/sealbox/), checked against the library.

Every vector in every file is run; the generator is also re-run in process
to prove the committed files are exactly what it produces.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.wire import cards, safety
from chalicelib.wire.checkpoint import open_log_checkpoint
from chalicelib.wire.note import NoteBadSignature, NoteUnverified, parse_verifier_key
from client_sim import backup, keystore, sealed
from client_sim.identity import InvalidKeyBundle, KeyBundle
from tests.conftest import VECTORS
from tests.vectors import gen_sealbox

DATA = VECTORS / "sealbox"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    assert doc["numberOfTests"] == len(doc["tests"])
    return doc


def cases(name: str) -> list[Any]:
    return [pytest.param(t, id=f"{t['tcId']}-{t['comment']}") for t in load(name)["tests"]]


@pytest.mark.parametrize("name", sorted(gen_sealbox.FILES))
def test_files_are_what_the_generator_produces(name: str) -> None:
    expected = gen_sealbox.render(gen_sealbox.FILES[name]())
    assert (DATA / name).read_text(encoding="utf-8") == expected, (
        f"{name} is stale: run python -m tests.vectors.gen_sealbox"
    )


def test_every_file_has_mostly_failure_cases() -> None:
    for name in ("cards.json", "sealed.json", "keystore.json", "backup.json"):
        results = [t["result"] for t in load(name)["tests"]]
        assert results.count("invalid") > results.count("valid"), name


# --- identity ------------------------------------------------------------------------


@pytest.mark.parametrize("vector", cases("identity.json"))
def test_identity_vectors(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["bundle"])
    if vector["result"] == "invalid":
        with pytest.raises(InvalidKeyBundle):
            KeyBundle.from_bytes(data)
        return
    made = KeyBundle._from_seeds(
        vector["identity"],
        ed25519_seed=bytes.fromhex(vector["ed25519_seed"]),
        x25519_secret=bytes.fromhex(vector["x25519_secret"]),
        pq_seed=bytes.fromhex(vector["pq_seed"]),
        created_at=vector["created_at"],
        previous_card_id=vector["previous_card_id"],
    )
    assert made.card.to_json() == vector["card"]
    assert made.to_bytes() == data
    assert KeyBundle.from_bytes(data) == made
    assert cards.card_from_json(vector["card"]) == made.card


# --- cards --------------------------------------------------------------------------


def parse_card(vector: dict[str, Any]) -> cards.Card:
    encoding, value = vector["encoding"], vector["card"]
    if encoding == "json":
        return cards.card_from_json(value)
    if encoding == "json_text":
        return cards.card_from_json_text(value)
    assert encoding == "binary"
    return cards.decode_card(bytes.fromhex(value))


@pytest.mark.parametrize("vector", cases("cards.json"))
def test_card_vectors(vector: dict[str, Any]) -> None:
    if vector["result"] == "invalid":
        with pytest.raises(cards.InvalidCard) as info:
            parse_card(vector)
        assert info.value.code == vector["error"]
        return
    card = parse_card(vector)
    assert card.card_id == vector["card_id"]
    if vector["encoding"] == "json":
        assert card.to_json() == vector["card"]
        assert card.encode().hex() == vector["canonical"]
    else:
        assert card.encode().hex() == vector["card"]


# --- sealed framing ------------------------------------------------------------------------


SEALED = load("sealed.json")
SEALED_CARDS = {name: cards.card_from_json(obj) for name, obj in SEALED["cards"].items()}


@pytest.mark.parametrize("vector", cases("sealed.json"))
def test_sealed_vectors(vector: dict[str, Any]) -> None:
    out = io.BytesIO()

    expected = vector["expected_context"]

    def check(header: sealed.SealedHeader) -> None:
        # What a reader that knows the context it reads in does (the device
        # passes the blob id's context for a download).
        if expected is not None and header.context != expected.encode():
            raise sealed.ContextMismatch("context", "another context")

    def run() -> sealed.VerifiedSender:
        return sealed.unframe(
            io.BytesIO(bytes.fromhex(vector["stream"])),
            out,
            sender_cards=[SEALED_CARDS[name] for name in vector["sender_cards"]],
            opener_card_ids=vector["opener_card_ids"],
            opener_identity=vector["opener_identity"],
            check=check,
        )

    if vector["result"] == "invalid":
        error = getattr(sealed, vector["error"])
        with pytest.raises(error) as info:
            run()
        assert type(info.value) is error
        return
    who = run()
    assert out.getvalue().hex() == vector["plaintext"]
    assert who.card_id == vector["sender_card_id"]
    assert who.header.checkpoint == vector.get("checkpoint")
    if "checkpoint" in vector:
        _check_carried_checkpoint(vector["checkpoint"], vector["checkpoint_log"])


LOG_VERIFIER = parse_verifier_key(SEALED["log_key"])
CHECKPOINT_OUTCOMES: dict[str, type[Exception] | None] = {
    "valid": None,
    "other_log": NoteUnverified,
    "bad_signature": NoteBadSignature,
}


def _check_carried_checkpoint(note: str, outcome: str) -> None:
    """What a device pinning the vectors' log key finds in the carried note
    (it ignores another log's and refuses a bad signature, spec: sealed.md)."""
    error = CHECKPOINT_OUTCOMES[outcome]
    if error is None:
        assert open_log_checkpoint(note, LOG_VERIFIER, origin=LOG_VERIFIER.name).note == note
        return
    if outcome == "other_log":
        assert note.split("\n", 1)[0] != LOG_VERIFIER.name
    with pytest.raises(error):
        open_log_checkpoint(note, LOG_VERIFIER, origin=LOG_VERIFIER.name)


# --- keystore ---------------------------------------------------------------------------------


def test_device_key_file_vector() -> None:
    entry = load("keystore.json")["deviceKeyFile"]
    key = keystore.DeviceKey.from_file_bytes(bytes.fromhex(entry["file"]))
    assert key.to_file_bytes().hex() == entry["file"]
    assert entry["file"].endswith(entry["device_key"])


@pytest.mark.parametrize("vector", cases("keystore.json"))
def test_keystore_vectors(vector: dict[str, Any]) -> None:
    key = keystore.DeviceKey(bytes.fromhex(vector["device_key"]))
    data = bytes.fromhex(vector["keystore"])
    if vector["result"] == "invalid":
        error = getattr(keystore, vector["error"])
        with pytest.raises(error) as info:
            keystore.decode_keystore(data, key)
        assert type(info.value) is error
        return
    state = keystore.decode_keystore(data, key)
    assert state.identity == vector["identity"]
    assert list(state.card_ids) == vector["card_ids"]
    assert dict(state.settings) == vector["settings"]
    assert dict(state.pins) == vector["pins"]


# --- backup -----------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", cases("backup.json"))
def test_backup_vectors(vector: dict[str, Any]) -> None:
    blob = bytes.fromhex(vector["blob"])
    key = bytes.fromhex(vector["backup_key"])
    if vector["result"] == "invalid":
        error = getattr(backup, vector["error"])
        if vector["stage"] == "header":
            with pytest.raises(error):
                backup.parse_backup_header(blob)
        else:
            backup.parse_backup_header(blob)  # the header alone is acceptable
        with pytest.raises(error) as info:
            backup.open_backup(blob, key)
        assert type(info.value) is error
        return
    params = backup.parse_backup_header(blob)
    expected = vector["params"]
    assert params == backup.KdfParams(
        memory_kib=expected["memory_kib"],
        iterations=expected["iterations"],
        lanes=expected["lanes"],
        salt=bytes.fromhex(expected["salt"]),
        algorithm=expected["algorithm"],
    )
    contents = backup.open_backup(blob, key)
    assert contents.identity == vector["identity"]
    assert [b.card_id for b in contents.bundles] == vector["card_ids"]


def test_data_directory_holds_only_known_files() -> None:
    known = set(gen_sealbox.FILES) | {"age_pq_c2sp_example.json"}
    assert {p.name for p in Path(DATA).iterdir()} == known


# --- rotations and safety numbers ---------------------------------------------------


@pytest.mark.parametrize("vector", cases("rotations.json"))
def test_rotation_vectors(vector: dict[str, Any]) -> None:
    previous = cards.card_from_json(vector["previous"])
    new = cards.card_from_json(vector["new"])
    raw = vector["rotation_signature"]
    if vector["result"] == "valid":
        signature = cards.rotation_signature_from_json(raw)
        cards.verify_rotation(previous, new, signature)
        assert cards.rotation_message(previous, new).hex() == vector["message"]
        return

    def verify() -> None:
        signature = None if raw is None else cards.rotation_signature_from_json(raw)
        cards.verify_rotation(previous, new, signature)

    with pytest.raises(cards.InvalidCard) as refused:
        verify()
    assert refused.value.code == vector["code"]


def test_rotation_vectors_are_mostly_failures() -> None:
    results = [t["result"] for t in load("rotations.json")["tests"]]
    assert results.count("invalid") > 3 * results.count("valid")


@pytest.mark.parametrize(
    "vector", [pytest.param(v, id=v["comment"]) for v in load("rotations.json")["safety_numbers"]]
)
def test_safety_number_vectors(vector: dict[str, Any]) -> None:
    a = (vector["identity_a"], vector["card_id_a"])
    b = (vector["identity_b"], vector["card_id_b"])
    number = safety.safety_number(*a, *b)
    assert number == vector["safety_number"]
    # Both people compute the same number, whoever is "a".
    assert safety.safety_number(*b, *a) == number
    groups = number.split(" ")
    assert len(groups) == 6
    assert all(len(g) == 5 and g.isdigit() for g in groups)
