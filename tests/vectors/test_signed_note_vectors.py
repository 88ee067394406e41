"""Signed notes and checkpoints against the C2SP spec's and Go's published examples.

tests/vectors/data/signed-note/examples.json copies, with their sources, the
examples of c2sp.org/signed-note and c2sp.org/tlog-checkpoint and the keys,
notes and malformed inputs of golang.org/x/mod/sumdb/note's tests.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from chalicelib.wire import checkpoint, note
from tests.conftest import VECTORS

DOC: dict[str, Any] = json.loads(
    (VECTORS / "signed-note" / "examples.json").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("case", DOC["valid"], ids=lambda c: c["from"])
def test_valid_notes_open(case: dict[str, Any]) -> None:
    verifier = note.parse_verifier_key(case["vkey"])
    assert verifier.vkey == case["vkey"]
    assert note.open_note(case["note"], verifier) == case["text"]
    assert note.open_note(case["note"].encode("utf-8"), verifier) == case["text"]


@pytest.mark.parametrize("case", DOC["sign"], ids=lambda c: c["from"])
def test_signing_matches_go_byte_for_byte(case: dict[str, Any]) -> None:
    signer = note.parse_signer_key(case["skey"])
    assert signer.skey == case["skey"]
    assert signer.verifier.vkey == case["vkey"]
    assert note.sign_note(case["text"], signer) == case["note"]


@pytest.mark.parametrize("case", DOC["invalid"], ids=lambda c: c["from"])
def test_invalid_notes_are_refused_with_their_code(case: dict[str, Any]) -> None:
    verifier = note.parse_verifier_key(case["vkey"])
    with pytest.raises(note.NoteError) as info:
        note.open_note(case["note"], verifier)
    assert info.value.code == case["error"]


@pytest.mark.parametrize("case", DOC["invalid_vkeys"], ids=lambda c: c["from"])
def test_invalid_verifier_keys(case: dict[str, Any]) -> None:
    with pytest.raises(note.NoteKeyInvalid):
        note.parse_verifier_key(case["vkey"])


def test_every_mangled_verifier_key_is_refused() -> None:
    vkey = DOC["mangle_vkey"]["vkey"]
    note.parse_verifier_key(vkey)
    mangled = [vkey[i:j] for i in range(len(vkey) + 1) for j in range(i + 1, len(vkey) + 1)]
    mangled.remove(vkey)
    mangled += [vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1 :] for i in range(len(vkey))]
    accepted = []
    for text in mangled:
        try:
            note.parse_verifier_key(text)
        except note.NoteKeyInvalid:
            continue
        accepted.append(text)
    assert accepted == []


def test_the_c2sp_checkpoint_example_parses() -> None:
    case = DOC["checkpoint_example"]
    text = case["note"][: case["note"].rfind("\n\n") + 1]
    parsed = checkpoint.parse_checkpoint_text(text)
    assert parsed.origin == case["origin"]
    assert parsed.size == case["size"]
    assert parsed.root == base64.b64decode(case["root_b64"])
    # Signed by a key the spec does not publish: any verifier we hold refuses it.
    with pytest.raises(note.NoteUnverified):
        checkpoint.open_log_checkpoint(
            case["note"], note.generate_signer(case["origin"]).verifier, origin=case["origin"]
        )
