"""GroupService.catch_up over injected stores: what a frame holds and where it stops."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from chalicelib.errors import InvalidRequest, NotFound
from chalicelib.services.groups import GroupHead, GroupService, StoredEpoch, WrapTarget
from chalicelib.wire.b64 import b64url_encode
from chalicelib.wire.cards import card_id_to_str
from chalicelib.wire.group_catchup import (
    MAX_CATCHUP_EPOCHS,
    MAX_PART,
    NONCE_SIZE,
    decode_catchup,
    roster_check,
)
from chalicelib.wire.groups import Member, encode_roster, roster_hash

pytestmark = pytest.mark.unit

GID = bytes(range(16))
GID_STR = b64url_encode(GID)
ALICE_CARD, BOB_CARD = b"\x01" * 32, b"\x02" * 32
ROSTER = (Member("alice", ALICE_CARD, True), Member("bob", BOB_CARD, False))
NONCE = bytes(range(NONCE_SIZE))
WRAP = b"\x01" + b"w" * 1168


class Store:
    def __init__(self, head: int, deltas: dict[int, bytes]) -> None:
        self._head = GroupHead(GID_STR, head, b"h" * 32, encode_roster(ROSTER), 0)
        self._deltas = deltas

    def head(self, group_id: str) -> GroupHead | None:
        return self._head if group_id == GID_STR else None

    def epoch(self, group_id: str, number: int) -> StoredEpoch | None:
        index = {
            card_id_to_str(c): (100 * i, len(WRAP)) for i, c in enumerate([ALICE_CARD, BOB_CARD])
        }
        return StoredEpoch(
            GID_STR, number, b"e", f"groups/{number}", index, self._deltas.get(number)
        )


class Wraps:
    def read_range(self, key: str, offset: int, length: int) -> bytes | None:
        return WRAP

    def presign_range(self, key: str, offset: int, length: int, ttl: int) -> WrapTarget:
        raise AssertionError("the frame carries the wrap itself")


def service(head: int, deltas: dict[int, bytes]) -> GroupService:
    cards = {card_id_to_str(ALICE_CARD): "alice", card_id_to_str(BOB_CARD): "bob"}

    def card(card_id: str) -> Any:
        return SimpleNamespace(identity=cards[card_id]) if card_id in cards else None

    return GroupService(Store(head, deltas), Wraps(), card, clock=lambda: 0.0)  # type: ignore[arg-type]


def frame(svc: GroupService, after: int, who: str = "bob", card: bytes = BOB_CARD) -> Any:
    raw = svc.catch_up(who, GID_STR, str(after), card_id_to_str(card), b64url_encode(NONCE))
    return decode_catchup(raw)


def test_a_frame_carries_every_epoch_to_the_head_with_the_roster_check() -> None:
    parsed = frame(service(3, {1: b"d1", 2: b"d2", 3: b"d3"}), 0)
    assert [e.delta for e in parsed.entries] == [b"d1", b"d2", b"d3"]
    assert all(e.wrap == WRAP for e in parsed.entries)
    assert parsed.at_head
    assert parsed.roster_check == roster_check(NONCE, roster_hash(GID, ROSTER))


def test_a_frame_stops_before_an_epoch_without_delta_or_too_long_for_it() -> None:
    for deltas in ({1: b"d1"}, {1: b"d1", 2: b"x" * (MAX_PART + 1)}):
        parsed = frame(service(2, deltas), 0)
        assert [e.delta for e in parsed.entries] == [b"d1"]
        assert (parsed.at_head, parsed.roster_check) == (False, None)


def test_a_frame_holds_at_most_32_epochs() -> None:
    count = MAX_CATCHUP_EPOCHS + 5
    parsed = frame(service(count, {n: b"d" for n in range(1, count + 1)}), 0)
    assert len(parsed.entries) == MAX_CATCHUP_EPOCHS
    assert not parsed.at_head


def test_another_members_card_gets_no_wrap_and_outsiders_the_404() -> None:
    svc = service(1, {1: b"d1"})
    parsed = frame(svc, 0, "bob", ALICE_CARD)
    assert (parsed.entries, parsed.at_head) == ((), False)
    with pytest.raises(NotFound):
        frame(svc, 0, "mallory", BOB_CARD)
    with pytest.raises(NotFound):
        frame(svc, 2)  # past the head


@pytest.mark.parametrize("nonce", ["", "AAAA", b64url_encode(bytes(17)), "not base64!"])
def test_a_bad_nonce_is_refused(nonce: str) -> None:
    with pytest.raises(InvalidRequest):
        service(1, {1: b"d1"}).catch_up("bob", GID_STR, "0", card_id_to_str(BOB_CARD), nonce)
