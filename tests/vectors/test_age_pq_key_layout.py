"""The MLKEM768-X25519 public key layout, pinned by the C2SP age example key pair.

Sealbox cards carry the raw bytes of the ``age1pq1`` recipient.  This checks
our seed-to-public-key derivation against the specification's own example,
decoding its Bech32 strings here so the data file holds exactly the text of
the specification.
"""

from __future__ import annotations

import hashlib
import json

from chalicelib.wire import cards
from client_sim import _hazmat
from tests.conftest import VECTORS

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _polymod(values: list[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def bech32_decode(text: str) -> tuple[str, bytes]:
    """BIP 173 Bech32 without the 90-character limit (as age uses it)."""
    text = text.lower()
    hrp, _, rest = text.rpartition("1")
    data = [_CHARSET.index(c) for c in rest]
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    assert _polymod(expanded + data) == 1, "bad Bech32 checksum"
    acc = bits = 0
    out = bytearray()
    for value in data[:-6]:
        acc = (acc << 5) | value
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    assert bits < 5, "excess padding"
    assert acc & ((1 << bits) - 1) == 0, "non-zero padding"
    return hrp, bytes(out)


def test_c2sp_example_key_pair() -> None:
    doc = json.loads((VECTORS / "sealbox" / "age_pq_c2sp_example.json").read_text())
    hrp, seed = bech32_decode(doc["identity"])
    assert hrp == "age-secret-key-pq-"
    assert len(seed) == 32
    hrp, public = bech32_decode(doc["recipient"])
    assert hrp == "age1pq"
    assert len(public) == cards.MLKEM768X25519_KEY_SIZE == 1216
    assert _hazmat.mlkem768x25519_from_seed(seed).public_bytes == public
    # The last 32 bytes are an X25519 key: the one of the second half of
    # SHAKE256(seed, 96), i.e. ML-KEM-768 first and X25519 last.
    x25519_secret = hashlib.shake_256(seed).digest(96)[64:]
    assert public[1184:] == _hazmat.x25519_public_from_private(x25519_secret)


def test_bech32_decoder_rejects_a_typo() -> None:
    doc = json.loads((VECTORS / "sealbox" / "age_pq_c2sp_example.json").read_text())
    typo = doc["recipient"][:-1] + ("q" if doc["recipient"][-1] != "q" else "p")
    try:
        bech32_decode(typo)
    except AssertionError:
        return
    raise AssertionError("a corrupted Bech32 string decoded")
