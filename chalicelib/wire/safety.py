"""Safety numbers: what two people compare to check they see each other's real cards.

When a device meets an identity reset (docs/spec/cards.md, "Identity resets
and safety numbers") it shows this number; each person's device computes it
over its own current card and the card it sees for the other, so the numbers
match only if neither sees a substituted card.  Pure (no I/O), reaching
hashing only through :mod:`chalicelib.crypto`; shared by the devices and the
vectors.
"""

from __future__ import annotations

from typing import Final

from chalicelib import crypto
from chalicelib.wire.binary import lp16
from chalicelib.wire.cards import card_id_from_str
from chalicelib.wire.identity import normalize_identity

__all__ = ["SAFETY_NUMBER_GROUPS", "SAFETY_NUMBER_LABEL", "safety_number"]

SAFETY_NUMBER_LABEL: Final = b"sealbox/v1/safety-number"
# Six groups of five digits: about 100 bits to compare, read aloud in a minute.
SAFETY_NUMBER_GROUPS: Final = 6


def safety_number(identity_a: str, card_id_a: str, identity_b: str, card_id_b: str) -> str:
    """The number two people compare to check they see each other's real cards.

    ``SHA-256(lp16("sealbox/v1/safety-number") || lp16(id1) || lp16(card1) ||
    lp16(id2) || lp16(card2))`` with the two (identity, raw card id) pairs in
    ascending identity order, so both sides compute the same value; bytes
    ``5i .. 5i+5`` (big-endian) modulo 100000 give group ``i`` of six
    five-digit groups, e.g. ``"01234 56789 ..."``.

    Raises:
        ValueError: an identity is not canonical or both are the same; a
            card id is malformed (an :class:`InvalidCard`).
    """
    pairs = []
    for identity, card_id in ((identity_a, card_id_a), (identity_b, card_id_b)):
        if normalize_identity(identity) != identity:
            raise ValueError("safety numbers take canonical identities")
        pairs.append((identity, card_id_from_str(card_id)))
    if pairs[0][0] == pairs[1][0]:
        raise ValueError("a safety number is between two different identities")
    pairs.sort()
    digest = crypto.sha256(
        lp16(SAFETY_NUMBER_LABEL)
        + b"".join(lp16(identity.encode("ascii")) + lp16(raw) for identity, raw in pairs)
    )
    groups = (
        int.from_bytes(digest[5 * i : 5 * i + 5], "big") % 100_000
        for i in range(SAFETY_NUMBER_GROUPS)
    )
    return " ".join(f"{group:05d}" for group in groups)
