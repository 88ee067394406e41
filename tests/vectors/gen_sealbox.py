"""Generate Sealbox's own test vectors (tests/vectors/data/sealbox/*.json).

    python -m tests.vectors.gen_sealbox           # rewrite the files
    python -m tests.vectors.gen_sealbox --check   # exit 1 if they would change

Everything is deterministic: keys come from fixed seeds, timestamps are
fixed, nonces come from a counter-based ``rand`` passed through each
module's private seam, and Ed25519 signing is deterministic by design.  The
vector tests check every file against the library *and* that this script
still reproduces it byte for byte, so a format change shows up as a diff.

Most vectors are failure cases: each names the stable error (a card error
``code`` or an exception class) that a conforming reader must raise.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.binary import lp16
from chalicelib.wire.cards import Card, CardContent, sign_card
from chalicelib.wire.checkpoint import checkpoint_text, sign_checkpoint
from chalicelib.wire.note import NoteSigner
from client_sim.backup import KdfParams, seal_backup
from client_sim.identity import KeyBundle
from client_sim.keystore import DeviceKey, KeystoreState, encode_keystore
from client_sim.sealed import SealedWriter

OUT = Path(__file__).resolve().parent / "data" / "sealbox"
CREATED_AT = 1_700_000_000
Vector = dict[str, Any]


def seed(*parts: object) -> bytes:
    return hashlib.sha256(("sealbox-vectors/" + "/".join(map(str, parts))).encode()).digest()


def counter_rand(label: str) -> Callable[[int], bytes]:
    """A deterministic stand-in for the CSPRNG (SHA-256 in counter mode)."""
    state = {"n": 0}

    def rand(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{label}/{state['n']}".encode()).digest()
            state["n"] += 1
        return out[:n]

    return rand


def make_bundle(identity: str, generation: int = 0) -> KeyBundle:
    previous = make_bundle(identity, generation - 1).card_id if generation else None
    return KeyBundle._from_seeds(
        identity,
        ed25519_seed=seed(identity, generation, "ed25519"),
        x25519_secret=seed(identity, generation, "x25519"),
        pq_seed=seed(identity, generation, "pq"),
        created_at=CREATED_AT + 100 * generation,
        previous_card_id=previous,
    )


ALICE, ALICE1, BOB, CAROL = (
    make_bundle("alice"),
    make_bundle("alice", 1),
    make_bundle("bob"),
    make_bundle("carol"),
)


def numbered(vectors: list[Vector]) -> list[Vector]:
    return [{"tcId": i, **v} for i, v in enumerate(vectors, start=1)]


def document(description: str, vectors: list[Vector], **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "generator": "tests/vectors/gen_sealbox.py",
        **extra,
        "numberOfTests": len(vectors),
        "tests": numbered(vectors),
    }


# --- identity ---------------------------------------------------------------------


def identity_vectors() -> dict[str, Any]:
    vectors: list[Vector] = []
    for identity, generation in (("alice", 0), ("alice", 1), ("bob", 0)):
        bundle = make_bundle(identity, generation)
        vectors.append(
            {
                "comment": f"{identity} after {generation} rotation(s)",
                "identity": identity,
                "created_at": bundle.card.created_at,
                "previous_card_id": bundle.card.previous_card_id,
                "ed25519_seed": seed(identity, generation, "ed25519").hex(),
                "x25519_secret": seed(identity, generation, "x25519").hex(),
                "pq_seed": seed(identity, generation, "pq").hex(),
                "card": bundle.card.to_json(),
                "bundle": bundle.to_bytes().hex(),
                "result": "valid",
            }
        )
    good = ALICE.to_bytes()
    other = BOB.to_bytes()
    label_len = 2 + len(b"sealbox/v1/key-bundle")
    invalid = [
        ("truncated", good[:-1]),
        ("trailing byte", good + b"\x00"),
        ("wrong label", lp16(b"sealbox/v1/key-bundlf") + good[label_len:]),
        ("unsupported version", good[:label_len] + lp16(b"\x02") + good[label_len + 3 :]),
        ("ed25519 seed of another identity", good[:-102] + other[-102:-68] + good[-68:]),
        ("pq seed flipped", good[:-1] + bytes([good[-1] ^ 1])),
        ("empty", b""),
    ]
    for comment, data in invalid:
        vectors.append(
            {
                "comment": comment,
                "bundle": data.hex(),
                "result": "invalid",
                "error": "InvalidKeyBundle",
            }
        )
    return document(
        "Sealbox key bundles: seeds, the card they produce, and the private bundle encoding.",
        vectors,
    )


# --- cards ------------------------------------------------------------------------


def card_vectors() -> dict[str, Any]:
    base = ALICE.card
    no_pq_content = CardContent(
        identity="carol",
        created_at=CREATED_AT,
        ed25519_public_key=CAROL.card.ed25519_public_key,
        x25519_public_key=CAROL.card.x25519_public_key,
    )
    no_pq = sign_card(no_pq_content, CAROL.sign)
    vectors: list[Vector] = []

    def valid(comment: str, card: Card) -> None:
        vectors.append(
            {
                "comment": comment,
                "encoding": "json",
                "card": card.to_json(),
                "result": "valid",
                "card_id": card.card_id,
                "canonical": card.encode().hex(),
            }
        )
        vectors.append(
            {
                "comment": comment + " (binary)",
                "encoding": "binary",
                "card": card.encode().hex(),
                "result": "valid",
                "card_id": card.card_id,
            }
        )

    valid("first card with a post-quantum key", base)
    valid("rotation naming the previous card", ALICE1.card)
    valid("card without a post-quantum key", no_pq)

    def bad_json(comment: str, error: str, change: Callable[[dict[str, Any]], None]) -> None:
        obj = copy.deepcopy(base.to_json())
        change(obj)
        vectors.append(
            {
                "comment": comment,
                "encoding": "json",
                "card": obj,
                "result": "invalid",
                "error": error,
            }
        )

    def setter(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
        def change(obj: dict[str, Any]) -> None:
            *parents, leaf = path.split(".")
            for p in parents:
                obj = obj[p]
            obj[leaf] = value

        return change

    def deleter(path: str) -> Callable[[dict[str, Any]], None]:
        def change(obj: dict[str, Any]) -> None:
            *parents, leaf = path.split(".")
            for p in parents:
                obj = obj[p]
            del obj[leaf]

        return change

    def flip(path: str) -> Callable[[dict[str, Any]], None]:
        def change(obj: dict[str, Any]) -> None:
            *parents, leaf = path.split(".")
            for p in parents:
                obj = obj[p]
            raw = bytearray(b64url_decode(obj[leaf]))
            raw[-1] ^= 1
            obj[leaf] = b64url_encode(bytes(raw))

        return change

    sig = base.to_json()["signature"]
    bad_json("unknown top-level field", "card_unknown_field", setter("expires_at", 1))
    bad_json("unknown key type", "card_unknown_field", setter("keys.rsa", "AAAA"))
    bad_json("missing signature", "card_missing_field", deleter("signature"))
    bad_json("missing card_id", "card_missing_field", deleter("card_id"))
    bad_json(
        "missing previous_card_id (null is required)",
        "card_missing_field",
        deleter("previous_card_id"),
    )
    bad_json("missing ed25519 key", "card_missing_field", deleter("keys.ed25519"))
    bad_json("version as a string", "card_wrong_type", setter("version", "1"))
    bad_json("version 2", "unsupported_card_version", setter("version", 2))
    bad_json("version true", "card_wrong_type", setter("version", True))
    bad_json("identity not a string", "card_wrong_type", setter("identity", ["alice"]))
    bad_json("identity not lower-case", "invalid_card_identity", setter("identity", "Alice"))
    bad_json("identity full-width", "invalid_card_identity", setter("identity", "ａｌｉｃｅ"))
    bad_json("identity too short", "invalid_card_identity", setter("identity", "al"))
    bad_json("created_at as a string", "card_wrong_type", setter("created_at", "1700000000"))
    bad_json("created_at as a float", "card_wrong_type", setter("created_at", 1700000000.0))
    bad_json("created_at negative", "card_value_out_of_range", setter("created_at", -1))
    bad_json("created_at beyond 2^53-1", "card_value_out_of_range", setter("created_at", 2**53))
    bad_json("keys not an object", "card_wrong_type", setter("keys", []))
    bad_json(
        "pq key null instead of absent", "card_wrong_type", setter("keys.mlkem768x25519", None)
    )
    bad_json(
        "ed25519 key 31 bytes",
        "card_wrong_length",
        setter("keys.ed25519", b64url_encode(bytes(31))),
    )
    bad_json(
        "x25519 key 33 bytes", "card_wrong_length", setter("keys.x25519", b64url_encode(bytes(33)))
    )
    bad_json(
        "pq key 1184 bytes (ML-KEM part only)",
        "card_wrong_length",
        setter("keys.mlkem768x25519", b64url_encode(base.pq_public_key[:1184])),  # type: ignore[index]
    )
    bad_json(
        "signature 65 bytes", "card_wrong_length", setter("signature", b64url_encode(bytes(65)))
    )
    bad_json("signature with padding", "card_wrong_length", setter("signature", sig + "=="))
    bad_json(
        "signature in standard base64", "card_bad_encoding", setter("signature", "+/" + sig[2:])
    )
    bad_json(
        "x25519 key with non-zero trailing bits",
        "card_bad_encoding",
        setter("keys.x25519", base.to_json()["keys"]["x25519"][:-1] + "B"),
    )
    bad_json(
        "previous_card_id not a card id", "card_wrong_length", setter("previous_card_id", "alice")
    )
    bad_json("card_id of another card", "card_id_mismatch", setter("card_id", BOB.card_id))
    bad_json("x25519 key replaced, card_id not updated", "card_id_mismatch", flip("keys.x25519"))
    bad_json(
        "created_at changed, card_id not updated",
        "card_id_mismatch",
        setter("created_at", CREATED_AT + 1),
    )
    bad_json("signature flipped", "bad_card_signature", flip("signature"))
    bad_json(
        "signature of another card",
        "bad_card_signature",
        setter("signature", BOB.card.to_json()["signature"]),
    )

    def resigned(obj: dict[str, Any]) -> None:
        # A changed key with a correctly recomputed card_id, signed by the
        # wrong key: only the signature check can catch it.
        content = CardContent(
            identity="alice",
            created_at=CREATED_AT,
            ed25519_public_key=base.ed25519_public_key,
            x25519_public_key=BOB.card.x25519_public_key,
            pq_public_key=base.pq_public_key,
        )
        obj["keys"]["x25519"] = b64url_encode(BOB.card.x25519_public_key)
        obj["card_id"] = content.card_id
        obj["signature"] = b64url_encode(BOB.sign(content.signing_message()))

    bad_json(
        "key swapped, card_id recomputed, signed by another key", "bad_card_signature", resigned
    )

    def unsigned_label(obj: dict[str, Any]) -> None:
        # Signed over the content without the signature label.
        obj["signature"] = b64url_encode(ALICE.sign(base.content.encode()))

    bad_json("signature without the signature label", "bad_card_signature", unsigned_label)

    text = json.dumps(base.to_json())
    for comment, raw, error in (
        ("duplicate field", text[:-1] + ', "version": 1}', "card_malformed"),
        ("NaN", text.replace('"created_at": 1700000000', '"created_at": NaN'), "card_malformed"),
        ("not JSON", text[:-1], "card_malformed"),
        ("a JSON array", "[" + text + "]", "card_malformed"),
        ("oversized (8193 bytes)", text + " " * (8193 - len(text)), "card_too_large"),
    ):
        vectors.append(
            {
                "comment": comment,
                "encoding": "json_text",
                "card": raw,
                "result": "invalid",
                "error": error,
            }
        )

    encoded = base.encode()
    label = lp16(b"sealbox/v1/card")
    for comment, data, error in (
        ("trailing byte", encoded + b"\x00", "card_malformed"),
        ("truncated signature", encoded[:-1], "card_malformed"),
        ("wrong label", lp16(b"sealbox/v2/card") + encoded[len(label) :], "card_malformed"),
        ("signature flipped", encoded[:-1] + bytes([encoded[-1] ^ 1]), "bad_card_signature"),
        (
            "identity byte changed",
            encoded.replace(b"\x00\x05alice", b"\x00\x05alicf", 1),
            "bad_card_signature",
        ),
        (
            "identity upper-case",
            encoded.replace(b"\x00\x05alice", b"\x00\x05Alice", 1),
            "invalid_card_identity",
        ),
        ("oversized", encoded + bytes(2000), "card_too_large"),
        (
            "version byte 2",
            encoded.replace(label + b"\x00\x01\x01", label + b"\x00\x01\x02", 1),
            "unsupported_card_version",
        ),
        (
            "version field 2 bytes",
            encoded.replace(label + b"\x00\x01\x01", label + b"\x00\x02\x00\x01", 1),
            "card_wrong_length",
        ),
    ):
        vectors.append(
            {
                "comment": comment,
                "encoding": "binary",
                "card": data.hex(),
                "result": "invalid",
                "error": error,
            }
        )
    return document(
        "Sealbox cards: valid cards in JSON and binary form, and failures with their error codes.",
        vectors,
    )


# --- sealed framing -------------------------------------------------------------------


SEALED_AT_MS = CREATED_AT * 1000 + 123
BLOB_A = b"sealbox/v1/blob-context/AAAAAAAAAAAAAAAAAAAAAA"
# The transparency log whose checkpoints senders carry (flag bit 0), and
# another log (another origin).
LOG = NoteSigner.from_seed("sealbox.example/log", seed("log key"))
OTHER_LOG = NoteSigner.from_seed("other.example/log", seed("other log key"))
LOG_ROOT = hashlib.sha256(b"sealbox-vectors/log root").digest()


def log_note(signer: NoteSigner = LOG, *, size: int = 42) -> str:
    return sign_checkpoint(signer.name, size, LOG_ROOT, CREATED_AT, signer)


def forged_log_note() -> str:
    """LOG's checkpoint text under a signature line that names LOG's key but
    was made by another key: shaped right, but the log signature fails."""
    impostor = NoteSigner.from_seed(LOG.name, seed("not the log key"))
    text = checkpoint_text(LOG.name, 42, LOG_ROOT, CREATED_AT)
    signature = LOG.key_id.to_bytes(4, "big") + impostor.sign(text.encode())
    return f"{text}\n\u2014 {LOG.name} {base64.b64encode(signature).decode()}\n"


def frame(
    plaintext: bytes,
    *,
    sender: Any = ALICE,
    recipients: tuple[Any, ...] = (BOB, ALICE),
    context: bytes = b"",
    checkpoint: str | None = None,
) -> bytes:
    out = io.BytesIO()
    with SealedWriter(
        out,
        sender=sender,
        recipients=recipients,
        context=context,
        sealed_at_ms=SEALED_AT_MS,
        checkpoint=checkpoint,
    ) as w:
        w.write(plaintext)
    return out.getvalue()


def signed_stream(header: bytes, plaintext: bytes, *, sender: Any = ALICE) -> bytes:
    """A stream with ``header`` as given, correctly signed (for headers no
    writer makes)."""
    length = len(plaintext).to_bytes(8, "big")
    message = (
        lp16(b"sealbox/v1/sealed-signature") + header + length + hashlib.sha512(plaintext).digest()
    )
    signature: bytes = sender.sign(message)
    return header + plaintext + length + signature


def frame_v1(
    plaintext: bytes, *, sender: Any = ALICE, recipients: tuple[KeyBundle, ...] = (BOB, ALICE)
) -> bytes:
    """A legacy format 1 stream, built from the spec (writers no longer make them)."""
    ids = sorted({b64url_decode(r.card_id) for r in recipients})
    header = (
        b"SBSEALED\x01\x00"
        + b64url_decode(sender.card_id)
        + len(ids).to_bytes(2, "big")
        + b"".join(ids)
    )
    length = len(plaintext).to_bytes(8, "big")
    message = (
        lp16(b"sealbox/v1/sealed-signature") + header + length + hashlib.sha512(plaintext).digest()
    )
    signature: bytes = sender.sign(message)
    return header + plaintext + length + signature


class Named:
    """A recipient entry naming ``card_id`` with ``identity`` (for lying headers)."""

    def __init__(self, card_id: str, identity: str) -> None:
        self.card_id, self.identity = card_id, identity


def sealed_vectors() -> dict[str, Any]:
    vectors: list[Vector] = []
    by_name = {"alice": ALICE, "alice.1": ALICE1, "bob": BOB, "carol": CAROL}
    name_of = {bundle.card_id: name for name, bundle in by_name.items()}
    default_senders = ["alice", "alice.1", "carol"]

    def add(
        comment: str,
        stream: bytes,
        *,
        opener: KeyBundle = BOB,
        error: str | None = None,
        plaintext: bytes | None = None,
        sender: KeyBundle | None = None,
        cards: list[Card] | None = None,
        expected_context: bytes | None = None,
        checkpoint: tuple[str, str] | None = None,
    ) -> None:
        senders = [name_of[c.card_id] for c in cards] if cards is not None else default_senders
        v: Vector = {
            "comment": comment,
            "sender_cards": senders,
            "opener_card_ids": [opener.card_id],
            "opener_identity": opener.identity,
            "expected_context": None if expected_context is None else expected_context.decode(),
            "stream": stream.hex(),
        }
        if error is None:
            assert plaintext is not None
            assert sender is not None
            v |= {"result": "valid", "plaintext": plaintext.hex(), "sender_card_id": sender.card_id}
            if checkpoint is not None:
                # The note the header carries, and what a device pinning
                # log_key finds when it checks it.
                v |= {"checkpoint": checkpoint[0], "checkpoint_log": checkpoint[1]}
        else:
            v |= {"result": "invalid", "error": error}
        vectors.append(v)

    def mutate(data: bytes, offset: int, value: int) -> bytes:
        out = bytearray(data)
        out[offset] = value
        return bytes(out)

    hello = b"hello, bob"
    good = frame(hello, context=BLOB_A)
    # Layout of ``good``: 51 fixed bytes, the context, the count, then one
    # entry per recipient (card id, length, identity) in card id order.
    ctx_end = 51 + len(BLOB_A)
    entries = sorted((b64url_decode(b.card_id), b.identity) for b in (BOB, ALICE))
    spans, pos = [], ctx_end + 2
    for _, name in entries:
        spans.append((pos, pos + 33 + len(name)))
        pos += 33 + len(name)
    header_len = pos
    assert header_len == len(good) - len(hello) - 72

    add("empty plaintext, no context", frame(b""), plaintext=b"", sender=ALICE)
    add("short plaintext to bob and alice, bound to a blob", good, plaintext=hello, sender=ALICE)
    add(
        "the expected context",
        good,
        plaintext=hello,
        sender=ALICE,
        expected_context=BLOB_A,
    )
    add("read by alice, also a recipient", good, opener=ALICE, plaintext=hello, sender=ALICE)
    every_byte = bytes(range(256))
    add("every byte value", frame(every_byte), plaintext=every_byte, sender=ALICE)
    add(
        "a context of 255 bytes",
        frame(b"m", context=b"~" * 255),
        plaintext=b"m",
        sender=ALICE,
    )
    add(
        "sender has rotated since: its superseded card verifies",
        frame(b"old", sender=ALICE, recipients=(BOB,)),
        plaintext=b"old",
        sender=ALICE,
        cards=[ALICE1.card, ALICE.card],
    )
    add("legacy format 1 still opens", frame_v1(hello), plaintext=hello, sender=ALICE)

    # --- format ---
    add("bad magic", mutate(good, 0, ord("X")), error="SealedFormatError")
    add("version 3", mutate(good, 8, 3), error="SealedFormatError")
    add("version 0", mutate(good, 8, 0), error="SealedFormatError")
    add(
        "flag bit 0 set but no checkpoint follows the recipients",
        mutate(good, 9, 1),
        error="SealedFormatError",
    )
    add("reserved flag bit 1 set", mutate(good, 9, 2), error="SealedFormatError")
    add("reserved flag bit 7 set", mutate(good, 9, 0x80), error="SealedFormatError")
    add("sealing time with the top bit set", mutate(good, 42, 0x80), error="SealedFormatError")
    add("a space in the context", mutate(good, 52, 0x20), error="SealedFormatError")
    add("an escape byte in the context", mutate(good, 52, 0x1B), error="SealedFormatError")
    add("a DEL byte in the context", mutate(good, 52, 0x7F), error="SealedFormatError")
    add(
        "zero recipients",
        good[:ctx_end] + b"\x00\x00" + good[ctx_end + 2 :],
        error="SealedFormatError",
    )
    add(
        "1025 recipients",
        good[:ctx_end] + b"\x04\x01" + good[ctx_end + 2 :],
        error="SealedFormatError",
    )
    (a0, a1), (b0, b1) = spans
    add(
        "recipients not sorted",
        good[:a0] + good[b0:b1] + good[a0:a1] + good[b1:],
        error="SealedFormatError",
    )
    add(
        "recipient listed twice",
        good[:a0] + good[a0:a1] * 2 + good[b1:],
        error="SealedFormatError",
    )
    first_name_at = a0 + 33
    add(
        "a recipient identity in upper case",
        good[:first_name_at] + good[first_name_at:a1].upper() + good[a1:],
        error="SealedFormatError",
    )
    add(
        "a recipient identity of length 0",
        good[: a0 + 32] + b"\x00" + good[a1:],
        error="SealedFormatError",
    )
    add(
        "a recipient identity that is not UTF-8",
        good[:first_name_at] + b"\xff" * (a1 - first_name_at) + good[a1:],
        error="SealedFormatError",
    )
    add("truncated inside the context", good[:60], error="SealedFormatError")
    add("truncated inside a recipient identity", good[: a1 - 1], error="SealedFormatError")
    add("empty stream", b"", error="SealedFormatError")
    add(
        "a format 2 stream relabelled as format 1",
        mutate(good, 8, 1),
        error="SealedFormatError",
    )
    add(
        "the sender's own card named as carol",
        frame(hello, recipients=(BOB, Named(ALICE.card_id, "carol"))),
        error="SealedFormatError",
    )

    # --- the sender's log checkpoint (flag bit 0) ---
    note = log_note()
    with_cp = frame(hello, context=BLOB_A, checkpoint=note)
    cp_at = header_len  # the u16 length, right after the recipient entries
    note_at = cp_at + 2
    cp_header_len = note_at + len(note.encode())
    assert with_cp[:cp_at] == mutate(good[:cp_at], 9, 1)
    add(
        "carries the sender's log checkpoint",
        with_cp,
        plaintext=hello,
        sender=ALICE,
        checkpoint=(note, "valid"),
    )
    add(
        "carries a checkpoint of another log (a device ignores it)",
        frame(hello, checkpoint=log_note(OTHER_LOG)),
        plaintext=hello,
        sender=ALICE,
        checkpoint=(log_note(OTHER_LOG), "other_log"),
    )
    forged = forged_log_note()
    add(
        "carries a checkpoint whose log signature fails (a device refuses it)",
        frame(hello, checkpoint=forged),
        plaintext=hello,
        sender=ALICE,
        checkpoint=(forged, "bad_signature"),
    )
    big = sign_checkpoint(
        "o" * 256, 2**63, LOG_ROOT, 2**63 - 1, NoteSigner.from_seed("o" * 256, seed("big"))
    )
    add(
        "the largest checkpoint a Sealbox log signs (256-byte origin, 20-digit size)",
        frame(b"", checkpoint=big),
        plaintext=b"",
        sender=ALICE,
        checkpoint=(big, "other_log"),
    )
    pre = with_cp[:cp_at]  # the header up to the checkpoint, flag bit 0 set

    def with_note(raw: bytes, *, length: int | None = None) -> bytes:
        size = len(raw) if length is None else length
        return signed_stream(pre + size.to_bytes(2, "big") + raw, hello)

    add("checkpoint length 0", with_note(b""), error="SealedFormatError")
    add(
        "checkpoint length 1025",
        with_note(note.encode() + b"x" * (1025 - len(note.encode()))),
        error="SealedFormatError",
    )
    add(
        "checkpoint length 65535, stream shorter",
        with_note(note.encode(), length=0xFFFF),
        error="SealedFormatError",
    )
    add(
        "stream ends inside the checkpoint",
        with_cp[: note_at + 10],
        error="SealedFormatError",
    )
    add("stream ends inside the checkpoint length", with_cp[: cp_at + 1], error="SealedFormatError")
    add(
        "checkpoint that is not a signed note (no signature block)",
        with_note(checkpoint_text(LOG.name, 42, LOG_ROOT, CREATED_AT).encode()),
        error="SealedFormatError",
    )
    root_b64 = base64.b64encode(LOG_ROOT).decode()
    add(
        "checkpoint whose root is not base64",
        with_note(note.replace(root_b64, "!" + root_b64[1:]).encode()),
        error="SealedFormatError",
    )
    add(
        "checkpoint with a leading zero in its size",
        with_note(note.replace("\n42\n", "\n042\n").encode()),
        error="SealedFormatError",
    )
    add(
        "checkpoint that is not UTF-8",
        with_note(note.encode().replace(b"\xe2\x80\x94", b"\xff\x80\x94")),
        error="SealedFormatError",
    )
    add(
        "checkpoint with a control character",
        with_note(note.replace("sealbox.example", "sealbox\x1bexample", 1).encode()),
        error="SealedFormatError",
    )
    add(
        "flag bit 0 on a legacy format 1 stream",
        mutate(frame_v1(hello), 9, 1),
        error="SealedFormatError",
    )
    root_at = note_at + note.index(root_b64) + 5
    swapped = b"A" if with_cp[root_at : root_at + 1] != b"A" else b"B"
    add(
        "checkpoint root changed after signing",
        with_cp[:root_at] + swapped + with_cp[root_at + 1 :],
        error="SignatureError",
    )
    add(
        "checkpoint removed after signing (flag cleared, field cut)",
        good[:cp_at] + with_cp[cp_header_len:],
        error="SignatureError",
    )
    add(
        "checkpoint added after signing",
        mutate(good[:cp_at], 9, 1)
        + len(note.encode()).to_bytes(2, "big")
        + note.encode()
        + good[cp_at:],
        error="SignatureError",
    )

    # --- who may open it ---
    add("sender card not among the accepted cards", good, error="UnknownSender", cards=[CAROL.card])
    add(
        "superseded sender card missing from the accepted cards",
        frame(b"old", sender=ALICE, recipients=(BOB,)),
        error="UnknownSender",
        cards=[ALICE1.card],
    )
    add(
        "opener not among the signed recipients (forwarded)",
        good,
        opener=CAROL,
        error="RecipientMismatch",
    )
    add(
        "the opener's card named as another identity",
        frame(hello, recipients=(ALICE, Named(BOB.card_id, "carol"))),
        error="RecipientMismatch",
    )

    # --- context ---
    add(
        "sealed for another blob",
        good,
        expected_context=BLOB_A.replace(b"AAAA", b"BBBB"),
        error="ContextMismatch",
    )
    add(
        "sealed with no context, one expected",
        frame(hello),
        expected_context=BLOB_A,
        error="ContextMismatch",
    )
    add(
        "legacy format 1 has no context to match",
        frame_v1(hello),
        expected_context=BLOB_A,
        error="ContextMismatch",
    )

    # --- signature ---
    add("signature flipped", mutate(good, len(good) - 1, good[-1] ^ 1), error="SignatureError")
    add(
        "plaintext byte flipped",
        mutate(good, header_len, good[header_len] ^ 1),
        error="SignatureError",
    )
    add(
        "sealing time one millisecond later", mutate(good, 49, good[49] ^ 1), error="SignatureError"
    )
    add(
        "context changed after signing (another blob id)",
        mutate(good, ctx_end - 1, ord("B")),
        error="SignatureError",
    )
    add("truncated trailer", good[:-1], error="SignatureError")
    add("trailer missing", good[:-72], error="SignatureError")
    add("header only", good[:header_len], error="SignatureError")
    add("trailing byte", good + b"\x00", error="SignatureError")
    add("trailing copy of the trailer", good + good[-72:], error="SignatureError")
    length_off = len(good) - 72
    add(
        "length field off by one",
        good[:length_off] + (len(hello) + 1).to_bytes(8, "big") + good[-64:],
        error="SignatureError",
    )

    class Impostor:
        card_id = ALICE.card_id

        @staticmethod
        def sign(message: bytes) -> bytes:
            return CAROL.sign(message)

    add("header names alice, carol signed", frame(hello, sender=Impostor()), error="SignatureError")
    sent_to_bob = frame(hello, recipients=(BOB,))
    bob_entry_at = 51 + 2
    add(
        "recipient set changed after signing (carol's card swapped in)",
        sent_to_bob[:bob_entry_at]
        + b64url_decode(CAROL.card_id)
        + b"\x05carol"
        + sent_to_bob[bob_entry_at + 36 :],
        opener=CAROL,
        error="SignatureError",
    )
    bob_name_at = next(
        start for (start, _), (_, name) in zip(spans, entries, strict=True) if name == "bob"
    )
    add(
        "a recipient's identity changed after signing (bob's card renamed bot)",
        good[: bob_name_at + 33] + b"bot" + good[bob_name_at + 36 :],
        opener=ALICE,
        error="SignatureError",
    )

    class NoLabel:
        card_id = ALICE.card_id

        @staticmethod
        def sign(message: bytes) -> bytes:
            return ALICE.sign(message[2 + len(b"sealbox/v1/sealed-signature") :])

    add(
        "signature made without the domain label",
        frame(hello, sender=NoLabel()),
        error="SignatureError",
    )
    legacy = frame_v1(hello)
    add(
        "legacy format 1 with a flipped signature",
        mutate(legacy, len(legacy) - 1, legacy[-1] ^ 1),
        error="SignatureError",
    )
    return document(
        "Sealbox sealed-message inner framing (the age payload), valid and failing streams. "
        "Writers make format 2; readers also accept format 1.",
        vectors,
        cards={name: bundle.card.to_json() for name, bundle in by_name.items()},
        log_key=LOG.verifier.vkey,
    )


# --- keystore ---------------------------------------------------------------------------


def keystore_vectors() -> dict[str, Any]:
    key = DeviceKey(seed("device key"))
    other = DeviceKey(seed("another device key"))
    state = KeystoreState(
        "alice",
        (ALICE1, ALICE),
        {"backup_version": "7", "server": "http://127.0.0.1:8000"},
        {"bob": BOB.card_id, "carol": CAROL.card_id},
    )
    data = encode_keystore(state, key, rand=counter_rand("keystore"))
    unpinned = KeystoreState("alice", state.bundles, state.settings)
    version1 = encode_keystore(unpinned, key, rand=counter_rand("keystore-v1"), version=1)
    vectors: list[Vector] = []

    def add(
        comment: str, blob: bytes, *, error: str | None = None, device_key: DeviceKey = key
    ) -> None:
        v: Vector = {
            "comment": comment,
            "device_key": device_key._key.hex(),
            "keystore": blob.hex(),
        }
        if error is None:
            v |= {
                "result": "valid",
                "identity": state.identity,
                "card_ids": list(state.card_ids),
                "settings": dict(state.settings),
                "pins": dict(state.pins),
            }
        else:
            v |= {"result": "invalid", "error": error}
        vectors.append(v)

    def flip(offset: int) -> bytes:
        out = bytearray(data)
        out[offset] ^= 0x01
        return bytes(out)

    empty = encode_keystore(KeystoreState("bob"), key, rand=counter_rand("keystore-empty"))
    vectors.append(
        {
            "comment": "identity only, no keys yet",
            "device_key": key._key.hex(),
            "keystore": empty.hex(),
            "result": "valid",
            "identity": "bob",
            "card_ids": [],
            "settings": {},
            "pins": {},
        }
    )
    add("current bundle, one previous bundle, two settings, two pins", data)
    vectors.append(
        {
            "comment": "version 1 (before pins): read as a keystore without pins",
            "device_key": key._key.hex(),
            "keystore": version1.hex(),
            "result": "valid",
            "identity": "alice",
            "card_ids": list(state.card_ids),
            "settings": dict(state.settings),
            "pins": {},
        }
    )
    add("wrong device key", data, error="KeystoreTampered", device_key=other)
    add("magic changed", flip(0), error="KeystoreCorrupted")
    add("version 3", data[:8] + b"\x03" + data[9:], error="KeystoreCorrupted")
    add("version 0", data[:8] + b"\x00" + data[9:], error="KeystoreCorrupted")
    # The version is in the authenticated header: a v2 file relabelled v1
    # (to drop its pins) fails authentication.
    add(
        "version 2 file relabelled version 1",
        data[:8] + b"\x01" + data[9:],
        error="KeystoreTampered",
    )
    add("reserved flag set", data[:9] + b"\x01" + data[10:], error="KeystoreCorrupted")
    add("nonce bit flipped", flip(20), error="KeystoreTampered")
    add("ciphertext bit flipped", flip(100), error="KeystoreTampered")
    add("tag bit flipped", flip(len(data) - 1), error="KeystoreTampered")
    add("truncated by one byte", data[:-1], error="KeystoreTampered")
    add("header only", data[:42], error="KeystoreTampered")
    add("truncated inside the header", data[:20], error="KeystoreCorrupted")
    add("trailing byte", data + b"\x00", error="KeystoreTampered")
    add("empty file", b"", error="KeystoreCorrupted")
    return document(
        "Sealbox keystore files (keystore/keystore.sbk) under a device key.",
        vectors,
        deviceKeyFile={
            "comment": "keystore/device.key for the device key of these vectors",
            "device_key": key._key.hex(),
            "file": key.to_file_bytes().hex(),
        },
    )


# --- backup -------------------------------------------------------------------------------


def backup_vectors() -> dict[str, Any]:
    backup_key = seed("backup key")
    params = KdfParams(memory_kib=64 * 1024, iterations=3, lanes=4, salt=seed("salt")[:16])
    data = seal_backup([ALICE1, ALICE], backup_key, params, rand=counter_rand("backup"))
    vectors: list[Vector] = []
    expected_params = {
        "algorithm": params.algorithm,
        "memory_kib": params.memory_kib,
        "iterations": params.iterations,
        "lanes": params.lanes,
        "salt": params.salt.hex(),
    }

    def add(
        comment: str,
        blob: bytes,
        *,
        error: str | None = None,
        stage: str = "open",
        key: bytes = backup_key,
    ) -> None:
        v: Vector = {"comment": comment, "backup_key": key.hex(), "blob": blob.hex()}
        if error is None:
            v |= {
                "result": "valid",
                "params": expected_params,
                "identity": "alice",
                "card_ids": [ALICE1.card_id, ALICE.card_id],
            }
        else:
            # "stage" is where a conforming reader fails: "header" means
            # parse_backup_header already refuses it, before any derivation.
            v |= {"result": "invalid", "error": error, "stage": stage}
        vectors.append(v)

    def factors(memory: int, iterations: int, lanes: int) -> bytes:
        return (
            data[:10]
            + memory.to_bytes(4, "big")
            + iterations.to_bytes(4, "big")
            + lanes.to_bytes(4, "big")
            + data[22:]
        )

    def flip(offset: int) -> bytes:
        out = bytearray(data)
        out[offset] ^= 0x01
        return bytes(out)

    add("current and previous bundle, 64 MiB / 3 passes / 4 lanes", data)
    add(
        "wrong backup key (wrong password)",
        data,
        error="BackupAuthenticationError",
        key=seed("wrong"),
    )
    add("magic changed", flip(0), error="BackupFormatError", stage="header")
    add("version 2", data[:8] + b"\x02" + data[9:], error="BackupFormatError", stage="header")
    add(
        "unknown KDF algorithm",
        data[:9] + b"\x02" + data[10:],
        error="BackupFormatError",
        stage="header",
    )
    add(
        "memory 4 GiB - 1 KiB (hostile)",
        factors(2**32 - 1, 3, 4),
        error="KdfParamsOutOfRange",
        stage="header",
    )
    add("memory 1 MiB (too weak)", factors(1024, 3, 4), error="KdfParamsOutOfRange", stage="header")
    add("iterations 0", factors(64 * 1024, 0, 4), error="KdfParamsOutOfRange", stage="header")
    add(
        "iterations 2^32-1 (hostile)",
        factors(64 * 1024, 2**32 - 1, 4),
        error="KdfParamsOutOfRange",
        stage="header",
    )
    add("lanes 0", factors(64 * 1024, 3, 0), error="KdfParamsOutOfRange", stage="header")
    add("lanes 255", factors(64 * 1024, 3, 255), error="KdfParamsOutOfRange", stage="header")
    add(
        "salt length 15",
        data[:22] + b"\x0f" + data[23:],
        error="KdfParamsOutOfRange",
        stage="header",
    )
    add(
        "iterations 3 -> 4, within bounds: only the AEAD notices",
        factors(64 * 1024, 4, 4),
        error="BackupAuthenticationError",
    )
    add("salt bit flipped", flip(30), error="BackupAuthenticationError")
    add("nonce bit flipped", flip(50), error="BackupAuthenticationError")
    add("ciphertext bit flipped", flip(200), error="BackupAuthenticationError")
    add("tag bit flipped", flip(len(data) - 1), error="BackupAuthenticationError")
    add("truncated inside the header", data[:30], error="BackupFormatError", stage="header")
    add("truncated by one byte", data[:-1], error="BackupAuthenticationError")
    add("trailing byte", data + b"\x00", error="BackupAuthenticationError")
    return document("Sealbox key backup blobs under a 32-byte backup key.", vectors)


def rotation_vectors() -> dict[str, Any]:
    # Its own module (it imports this one for the fixed keys).
    from tests.vectors.gen_sealbox_rotations import rotation_vectors as build

    return build()


def group_vectors() -> dict[str, Any]:
    # Its own module too (docs/spec/groups.md).
    from tests.vectors.gen_sealbox_groups import group_vectors as build

    return build()


FILES: dict[str, Callable[[], dict[str, Any]]] = {
    "identity.json": identity_vectors,
    "cards.json": card_vectors,
    "sealed.json": sealed_vectors,
    "keystore.json": keystore_vectors,
    "backup.json": backup_vectors,
    "rotations.json": rotation_vectors,
    "groups.json": group_vectors,
}


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    OUT.mkdir(parents=True, exist_ok=True)
    stale = []
    for name, build in FILES.items():
        text = render(build())
        path = OUT / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
