"""Generate tests/vectors/data/sealbox-age/: Sealbox's own age vectors.

Run ``python -m tests.vectors.gen_sealbox_age [OUTDIR]``.  The output is a
pure function of this file: keys, file keys, nonces and ephemeral secrets
come from a counter-mode SHA-256 ``rand`` through the private seams, so
re-running it reproduces the committed files byte for byte (a test checks
that).  The files use the CCTV vector format and are mostly failure cases:
the rules CCTV does not pin down, and the limits Sealbox adds (header size,
work-factor syntax, armor whitespace bounds).
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from client_sim import _hazmat, age
from client_sim.age._format import (
    MAX_HEADER_SIZE,
    Stanza,
    b64_encode,
    serialize_header_without_mac,
    serialize_mac_line,
)

OUT = Path(__file__).resolve().parent / "data" / "sealbox-age"
CHUNK = 64 * 1024


def _rand_from(label: str) -> Callable[[int], bytes]:
    counter = 0

    def rand(n: int) -> bytes:
        nonlocal counter
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
            counter += 1
        return out[:n]

    return rand


RAND = _rand_from("sealbox-age vectors")
FILE_KEY = RAND(16)
NONCE = RAND(16)
IDENTITY = age.X25519Identity._from_secret(RAND(32))
OTHER = age.X25519Identity._from_secret(RAND(32))
PQ_IDENTITY = age.HybridIdentity._from_seed(RAND(32))
PASSPHRASE = "sealbox vectors"
PLAINTEXT = b"Sealbox age vector plaintext.\n"


@dataclass
class Case:
    name: str
    expect: str
    comment: str
    body: bytes
    released: bytes | None = None  # plaintext released (for payload hashes)
    identities: list[str] = field(default_factory=lambda: [IDENTITY.secret_string()])
    passphrases: list[str] = field(default_factory=list)
    armored: bool = False
    compress: bool = False

    def render(self) -> bytes:
        lines = [f"expect: {self.expect}"]
        if self.released is not None:
            lines.append(f"payload: {hashlib.sha256(self.released).hexdigest()}")
        lines.append(f"file key: {FILE_KEY.hex()}")
        lines += [f"identity: {i}" for i in self.identities]
        lines += [f"passphrase: {p}" for p in self.passphrases]
        if self.armored:
            lines.append("armored: yes")
        if self.compress:
            lines.append("compressed: zlib")
        lines.append(f"comment: {self.comment}")
        body = zlib.compress(self.body, 9) if self.compress else self.body
        return "\n".join(lines).encode() + b"\n\n" + body


def x25519_stanza(recipient: age.X25519Recipient | None = None) -> Stanza:
    (stanza,), _ = (recipient or IDENTITY.recipient())._wrap_with_labels(FILE_KEY, RAND)
    return stanza


def scrypt_stanza(work_factor: int = 4) -> Stanza:
    recipient = age.ScryptRecipient(PASSPHRASE, work_factor=work_factor)
    (stanza,), _ = recipient._wrap_with_labels(FILE_KEY, RAND)
    return stanza


def header(stanzas: list[Stanza], *, mac_key: bytes | None = None) -> bytes:
    """A header with a correct MAC (under ``mac_key``, default the file key)."""
    raw = serialize_header_without_mac(stanzas)
    key = _hazmat.hkdf_sha256(mac_key or FILE_KEY, salt=b"", info=b"header")
    return raw + serialize_mac_line(_hazmat.hmac_sha256(key, raw))


def raw_header(text: bytes) -> bytes:
    """A hand-written header (up to and including ``---``) with its MAC."""
    key = _hazmat.hkdf_sha256(FILE_KEY, salt=b"", info=b"header")
    return text + serialize_mac_line(_hazmat.hmac_sha256(key, text))


def payload(chunks: list[tuple[bytes, int, bool]], trailing: bytes = b"") -> bytes:
    key = _hazmat.hkdf_sha256(FILE_KEY, salt=NONCE, info=b"payload")
    out = NONCE
    for plain, counter, last in chunks:
        nonce = counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
        out += _hazmat.chacha20poly1305_seal(key, nonce, plain)
    return out + trailing


GOOD_PAYLOAD = payload([(PLAINTEXT, 0, True)])


def armor(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    return (
        b"-----BEGIN AGE ENCRYPTED FILE-----\n"
        + b"\n".join(lines)
        + b"\n-----END AGE ENCRYPTED FILE-----\n"
    )


def _pad_first_armor_line(text: bytes) -> bytes:
    lines = text.split(b"\n")
    lines[1] = lines[1][:-2] + b"=="  # still 64 columns, but padded mid-file
    return b"\n".join(lines)


def cases() -> list[Case]:
    good = header([x25519_stanza()]) + GOOD_PAYLOAD
    intro = b"age-encryption.org/v1\n"
    fake_enc = b64_encode(RAND(1120))
    hybrid_ids = [PQ_IDENTITY.secret_string()]
    big_a, big_b = RAND(CHUNK), RAND(CHUNK)
    return [
        Case("x25519_deterministic", "success", "control: a plain X25519 file", good, PLAINTEXT),
        Case(
            "armored_deterministic",
            "success",
            "control: the same file armored",
            armor(good),
            PLAINTEXT,
            armored=True,
        ),
        Case(
            "armor_padded_full_last_line",
            "success",
            "the last armor line may be 64 columns wide with padding (46 mod 48 bytes)",
            armor(header([x25519_stanza()]) + payload([(PLAINTEXT[:20], 0, True)])),
            PLAINTEXT[:20],
            armored=True,
        ),
        Case(
            "no_match_other_key",
            "no match",
            "the only stanza is for another key",
            header([x25519_stanza(OTHER.recipient())]) + GOOD_PAYLOAD,
        ),
        Case(
            "unknown_stanza_only",
            "no match",
            "unknown stanza types are ignored",
            raw_header(intro + b"-> example.com/other arg\nAAAA\n---") + GOOD_PAYLOAD,
        ),
        Case(
            "hmac_wrong_key",
            "HMAC failure",
            "the MAC was computed with another file key",
            header([x25519_stanza()], mac_key=bytes(16)) + GOOD_PAYLOAD,
        ),
        Case(
            "header_no_stanzas",
            "header failure",
            "a header needs at least one stanza",
            raw_header(intro + b"---") + GOOD_PAYLOAD,
        ),
        Case(
            "version_trailing_space",
            "header failure",
            "the version line is exact",
            raw_header(b"age-encryption.org/v1 \n" + x25519_stanza().serialize() + b"---")
            + GOOD_PAYLOAD,
        ),
        Case(
            "stanza_arg_high_byte",
            "header failure",
            "arguments are VCHAR only (0x80 here)",
            raw_header(intro + b"-> grease \x80\n\n" + x25519_stanza().serialize() + b"---")
            + GOOD_PAYLOAD,
        ),
        Case(
            "stanza_body_65_columns",
            "header failure",
            "body lines are at most 64 columns",
            raw_header(
                intro + b"-> grease\n" + b"A" * 65 + b"\n\n" + x25519_stanza().serialize() + b"---"
            )
            + GOOD_PAYLOAD,
        ),
        Case(
            "mac_tab_separator",
            "header failure",
            "the MAC follows '---' after one space",
            good.replace(b"\n--- ", b"\n---\t"),
        ),
        Case(
            "header_over_sealbox_limit",
            "header failure",
            f"Sealbox reads at most {MAX_HEADER_SIZE} header bytes",
            raw_header(
                intro
                + b"-> grease "
                + b"a" * MAX_HEADER_SIZE
                + b"\n\n"
                + x25519_stanza().serialize()
                + b"---"
            )
            + GOOD_PAYLOAD,
            compress=True,
        ),
        Case(
            "x25519_share_padded",
            "header failure",
            "the share must be unpadded base64",
            header([Stanza("X25519", (x25519_stanza().args[0] + "=",), bytes(32))]) + GOOD_PAYLOAD,
        ),
        Case(
            "x25519_empty_body",
            "header failure",
            "the body must be exactly 32 bytes",
            header([Stanza("X25519", x25519_stanza().args, b"")]) + GOOD_PAYLOAD,
        ),
        Case(
            "scrypt_work_factor_three_digits",
            "header failure",
            "work factors have at most two digits here (and are capped at 22)",
            header([Stanza("scrypt", (scrypt_stanza().args[0], "100"), bytes(32))]) + GOOD_PAYLOAD,
            identities=[],
            passphrases=[PASSPHRASE],
        ),
        Case(
            "scrypt_with_grease",
            "header failure",
            "scrypt must be alone, even with unknown stanzas",
            header([scrypt_stanza(), Stanza("grease")]) + GOOD_PAYLOAD,
            identities=[],
            passphrases=[PASSPHRASE],
        ),
        Case(
            "scrypt_deterministic",
            "success",
            "control: a passphrase file (work factor 4)",
            header([scrypt_stanza()]) + GOOD_PAYLOAD,
            PLAINTEXT,
            identities=[],
            passphrases=[PASSPHRASE],
        ),
        Case(
            "hybrid_enc_1119_bytes",
            "header failure",
            "enc must be exactly 1120 bytes",
            header([Stanza("mlkem768x25519", (b64_encode(RAND(1119)),), bytes(32))]) + GOOD_PAYLOAD,
            identities=hybrid_ids,
        ),
        Case(
            "hybrid_three_arguments",
            "header failure",
            "exactly two arguments",
            header([Stanza("mlkem768x25519", (fake_enc, "x"), bytes(32))]) + GOOD_PAYLOAD,
            identities=hybrid_ids,
        ),
        Case(
            "hybrid_body_33_bytes",
            "header failure",
            "the body must be exactly 32 bytes",
            header([Stanza("mlkem768x25519", (fake_enc,), bytes(33))]) + GOOD_PAYLOAD,
            identities=hybrid_ids,
        ),
        Case(
            "hybrid_random_enc",
            "no match",
            "a well-formed stanza for another key",
            header([Stanza("mlkem768x25519", (fake_enc,), RAND(32))]) + GOOD_PAYLOAD,
            identities=hybrid_ids,
        ),
        Case(
            "stream_counter_starts_at_one",
            "payload failure",
            "chunk counters start at 0",
            header([x25519_stanza()]) + payload([(PLAINTEXT, 1, True)]),
            b"",
        ),
        Case(
            "stream_chunk_skipped",
            "payload failure",
            "counter 1 is missing",
            header([x25519_stanza()]) + payload([(big_a, 0, False), (PLAINTEXT, 2, True)]),
            big_a,
            compress=False,
        ),
        Case(
            "stream_empty_nonfinal_chunk",
            "payload failure",
            "a non-final chunk is always full; an empty one can't authenticate",
            header([x25519_stanza()]) + payload([(b"", 0, False), (PLAINTEXT, 1, True)]),
            b"",
        ),
        Case(
            "stream_full_final_then_byte",
            "payload failure",
            "one byte after a full final chunk: the chunk is released, then the error",
            header([x25519_stanza()]) + payload([(big_a, 0, False), (big_b, 1, True)], b"\0"),
            big_a + big_b,
        ),
        Case(
            "armor_leading_whitespace_over_limit",
            "armor failure",
            "Sealbox allows at most 1024 bytes of whitespace before the armor",
            b" " * 1025 + armor(good),
            armored=True,
        ),
        Case(
            "armor_trailing_whitespace_over_limit",
            "armor failure",
            "and at most 1024 bytes after it",
            armor(good) + b"\n" * 1025,
            armored=True,
        ),
        Case(
            "armor_padding_not_last",
            "armor failure",
            "only the last line may be padded",
            armor(good).replace(b"\n", b"==\n", 2).replace(b"==\n", b"\n", 1),
            armored=True,
        ),
    ]


def main(out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for case in cases():
        path = out / case.name
        path.write_bytes(case.render())
        written.append(path)
    return written


if __name__ == "__main__":
    for path in main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT):
        print(path)
