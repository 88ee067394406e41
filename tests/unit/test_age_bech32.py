"""Bech32 (BIP 173, without the length limit) and age key strings."""

from __future__ import annotations

import pytest

from client_sim import age
from client_sim.age import bech32

# BIP 173 "Test vectors": valid Bech32 strings.
VALID = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]

# BIP 173 invalid strings (the over-length one is omitted: age lifts the limit).
INVALID = [
    "\x201nwldj5",  # HRP character out of range
    "\x7f1axkwrx",  # HRP character out of range
    "\x801eym55h",  # HRP character out of range
    "pzry9x0s0muk",  # no separator
    "1pzry9x0s0muk",  # empty HRP
    "x1b4n0q5v",  # invalid data character
    "li1dgmt3",  # checksum too short
    "de1lg7wt\xff",  # invalid character in checksum
    "A1G7SGD8",  # checksum computed over an upper-case HRP
    "10a06t8",  # empty HRP
    "1qzzfhee",  # empty HRP
    "A12uEL5L",  # mixed case
]


@pytest.mark.parametrize("text", VALID)
def test_bip173_valid(text: str) -> None:
    hrp, data = bech32.decode(text)
    assert hrp == text[: text.rfind("1")]
    # Data parts of BIP 173's vectors are not all whole bytes; re-encoding
    # must at least reproduce the checksum of the byte-aligned ones.
    if len(text) - len(hrp) - 7 in (0, 8, 56):
        assert bech32.encode(hrp, data) == text


@pytest.mark.parametrize("text", INVALID)
def test_bip173_invalid(text: str) -> None:
    with pytest.raises(bech32.Bech32Error):
        bech32.decode(text)


def test_no_length_limit_and_padding_is_canonical() -> None:
    data = bytes(range(256)) * 5
    text = bech32.encode("age1pq", data)
    assert len(text) > 2000
    assert bech32.decode(text) == ("age1pq", data)
    # Flipping the last data character before the checksum changes padding
    # bits or the checksum; either way it is refused.
    broken = text[:-7] + ("q" if text[-7] != "q" else "p") + text[-6:]
    with pytest.raises(bech32.Bech32Error):
        bech32.decode(broken)


def test_non_zero_padding_bits_are_refused() -> None:
    # 32 bytes = 256 bits -> 52 groups of 5 with 4 padding bits; set them.
    good = bech32.encode("age", bytes(32))
    hrp, _ = bech32.decode(good)
    words = [bech32._CHARSET_REV[c] for c in good[4:-6]]
    words[-1] |= 0b00001
    polymod = bech32._polymod([*bech32._hrp_expand(hrp), *words, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    forged = "age1" + "".join(bech32._CHARSET[w] for w in words + checksum)
    with pytest.raises(bech32.Bech32Error, match="padding"):
        bech32.decode(forged)


# age's spec examples (c2sp.org/age).
SPEC_IDENTITY = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
SPEC_RECIPIENT = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"


def test_spec_x25519_example() -> None:
    identity = age.parse_identity(SPEC_IDENTITY)
    assert str(identity.recipient()) == SPEC_RECIPIENT
    assert identity.secret_string() == SPEC_IDENTITY
    assert age.parse_recipient(SPEC_RECIPIENT) == identity.recipient()


@pytest.mark.parametrize(
    "text",
    [
        SPEC_IDENTITY.lower(),  # identities are upper case
        SPEC_RECIPIENT,  # a recipient is not an identity
        SPEC_IDENTITY[:-1] + "Y",  # checksum
        SPEC_IDENTITY.replace("AGE-SECRET-KEY-1", "AGE-SECRET-KEY-PQ-1"),
        "AGE-PLUGIN-FOO-1QQQQQQ",
        "",
    ],
)
def test_bad_identities(text: str) -> None:
    with pytest.raises(age.InvalidKey) as info:
        age.parse_identity(text)
    assert text[10:] not in str(info.value) or not text  # never echoes the secret


@pytest.mark.parametrize(
    "text",
    [
        SPEC_RECIPIENT.upper(),  # recipients are lower case
        SPEC_RECIPIENT[:-1] + "q",
        "age1pq1" + SPEC_RECIPIENT[4:],  # wrong length for a hybrid key
        bech32.encode("age", bytes(31)),  # wrong length for X25519
        bech32.encode("age1pq", b"\xff" * 1216),  # right length, not an ML-KEM key
        "ssh-ed25519 AAAA",
    ],
)
def test_bad_recipients(text: str) -> None:
    with pytest.raises(age.InvalidKey):
        age.parse_recipient(text)


def test_identities_file_rules() -> None:
    a = age.X25519Identity.generate()
    b = age.HybridIdentity.generate()
    text = f"# comment\n\n{a.secret_string()}\r\n  {b.secret_string()}  \n# end"
    parsed = age.parse_identities_file(text)
    assert [str(i.recipient()) for i in parsed] == [str(a.recipient()), str(b.recipient())]
    with pytest.raises(age.InvalidKey, match="line 2"):
        age.parse_identities_file(f"{a.secret_string()}\nnot a key\n")
    with pytest.raises(age.InvalidKey, match="no identities"):
        age.parse_identities_file("# only a comment\n")
    with pytest.raises(age.InvalidKey, match="no recipients"):
        age.parse_recipients_file("\n\n")
