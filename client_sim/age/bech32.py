"""Bech32 (BIP 173) as age uses it: no length limit, one case per string.

age encodes keys with Bech32 (not Bech32m): recipients as ``age1...`` and
``age1pq1...`` in lower case, identities as ``AGE-SECRET-KEY-1...`` and
``AGE-SECRET-KEY-PQ-1...`` in upper case.  BIP 173's 90-character limit is
lifted because a hybrid recipient is about 1,950 characters long.

Decoding is strict: mixed case, characters outside the alphabet, a bad
checksum, a missing separator, a too-short checksum and non-zero padding bits
are all refused, so every byte string has exactly one encoding per case.
"""

from __future__ import annotations

__all__ = ["Bech32Error", "decode", "encode"]

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_REV = {c: i for i, c in enumerate(_CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_CHECKSUM_LENGTH = 6


class Bech32Error(ValueError):
    """The string is not valid Bech32."""


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, *, pad: bool) -> list[int]:
    acc = 0
    bits = 0
    out: list[int] = []
    max_value = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & max_value)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & max_value)
    elif bits >= from_bits or (acc << (to_bits - bits)) & max_value:
        # Leftover bits must be fewer than one input group and all zero, or
        # the same bytes would have several encodings.
        raise Bech32Error("non-canonical Bech32 padding")
    return out


def encode(hrp: str, data: bytes) -> str:
    """Encode ``data`` under ``hrp``; the result has the case of ``hrp``.

    Raises:
        ValueError: ``hrp`` is empty, mixed-case, or has characters outside
            ASCII 33..126.
    """
    if not hrp or any(not 33 <= ord(c) <= 126 for c in hrp):
        raise ValueError("invalid Bech32 human-readable part")
    if hrp.lower() != hrp and hrp.upper() != hrp:
        raise ValueError("mixed-case Bech32 human-readable part")
    upper = hrp.upper() == hrp and hrp.lower() != hrp
    low_hrp = hrp.lower()
    words = _convert_bits(data, 8, 5, pad=True)
    polymod = _polymod([*_hrp_expand(low_hrp), *words, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(_CHECKSUM_LENGTH)]
    text = low_hrp + "1" + "".join(_CHARSET[w] for w in words + checksum)
    return text.upper() if upper else text


def decode(text: str) -> tuple[str, bytes]:
    """Decode a Bech32 string; returns ``(hrp, data)`` with ``hrp`` in the
    case the string was written in.

    Raises:
        Bech32Error: the string is not valid, canonical Bech32.
    """
    if not isinstance(text, str):
        raise Bech32Error("Bech32 strings are str")
    if any(not 33 <= ord(c) <= 126 for c in text):
        raise Bech32Error("invalid character in Bech32 string")
    lower = text.lower()
    if lower != text and text.upper() != text:
        raise Bech32Error("mixed-case Bech32 string")
    pos = lower.rfind("1")
    if pos < 1 or pos + 1 + _CHECKSUM_LENGTH > len(lower):
        raise Bech32Error("Bech32 separator misplaced")
    hrp = lower[:pos]
    try:
        values = [_CHARSET_REV[c] for c in lower[pos + 1 :]]
    except KeyError:
        raise Bech32Error("invalid character in Bech32 data") from None
    if _polymod([*_hrp_expand(hrp), *values]) != 1:
        raise Bech32Error("invalid Bech32 checksum")
    data = bytes(_convert_bits(values[:-_CHECKSUM_LENGTH], 5, 8, pad=False))
    return text[:pos], data
