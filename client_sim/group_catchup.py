"""Following a group by deltas: catch-up frames (one binary reply per step),
or the JSON delta routes.

A device that already follows a group asks ``GET /v1/groups/{id}/catchup``
for the epochs after its verified head and receives, in one
``application/octet-stream`` body, each next epoch's delta with its own wrap
inline, and, when the frame reaches the server's head, an 8-byte check of
the roster the server holds under a nonce the device just drew
(:mod:`chalicelib.wire.group_catchup`, docs/spec/groups.md "Catch-up").
Moving on after one member's removal from a post-quantum group of any size
costs one reply of about 1.3 KB.

Nothing in a frame is trusted.  Every epoch is rebuilt from its delta and
the key id its wrap's secret derives, and checked exactly as a full epoch
(the chain, the signer an admin, the signature over the rebuilt epoch, the
wrap opening for this device's card); a frame that doesn't parse, a wrap
that isn't this device's, a delta that doesn't chain or a roster check that
doesn't match refuses the frame at that epoch (epochs before it that
verified are kept).  When the server can't put the next epoch in a frame
(no delta for it, or it moves this device to another card) the frame stops
before it and the device takes that epoch in full (``advance_full``).

:meth:`CatchUp.by_json_delta` moves one epoch by the JSON routes instead
(the epoch's delta with a presigned ranged GET of the wrap), with the same
checks; ``Groups.compact = False`` follows that way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from chalicelib.wire.b64 import b64url_decode
from chalicelib.wire.cards import Card, card_id_from_str, card_id_to_str
from chalicelib.wire.group_catchup import NONCE_SIZE, decode_catchup, roster_check
from chalicelib.wire.group_delta import EpochDelta, decode_delta, expand_delta
from chalicelib.wire.groups import Epoch, EpochChainError
from client_sim import _hazmat
from client_sim.api import ApiClient
from client_sim.errors import DecryptionFailed, GroupVerificationFailed
from client_sim.group_chain import GroupChain
from client_sim.group_keys import open_wrap
from client_sim.keystore import KeystoreState
from client_sim.session import Session

__all__ = ["CatchUp"]

#: Frames asked for in one sync before the device gives up (each one moves
#: it at least one epoch, so a server can't keep it looping for free).
MAX_FRAMES: Final = 100_000


class CatchUp:
    """Moves a followed group's verified chain to the server's head by frames.

    Args:
        api, session: the HTTP client and the token holder.
        signer: the verified card an epoch names as its signer.
        advance_full: take epoch ``n`` in its full form (the JSON route).
        get: a presigned storage GET of exactly ``length`` bytes.
    """

    def __init__(
        self,
        api: ApiClient,
        session: Session,
        *,
        signer: Callable[[Epoch], Card],
        advance_full: Callable[[KeystoreState, GroupChain, str, int], None],
        get: Callable[[str, dict[str, str], int], bytes],
    ) -> None:
        self._api = api
        self._session = session
        self._signer = signer
        self._advance_full = advance_full
        self._get = get

    def follow(self, state: KeystoreState, chain: GroupChain, gid: str) -> bool:
        """Move ``chain`` to the server's head; False (nothing asked) when this
        device holds no card of the chain's roster (the caller then syncs by
        the JSON routes, which tell a removed member it is out).

        Raises:
            ServerError: the server refused (404: not a member).
            EpochChainError, InvalidGroupObject: a frame or an epoch in it
                doesn't verify (``roster_mismatch`` for the roster check).
        """
        for _ in range(MAX_FRAMES):
            mine = {card_id_from_str(b.card_id): b for b in state.bundles}
            entry = next((m for m in chain.roster if m.card_id in mine), None)
            if entry is None:
                return False
            card_id = card_id_to_str(entry.card_id)
            nonce = _hazmat.random_bytes(NONCE_SIZE)
            after = chain.head.number
            frame = decode_catchup(self._fetch(gid, after, card_id, nonce))
            for item in frame.entries:
                delta = decode_delta(item.delta, chain.roster)
                if not self._apply(state, chain, delta, item.wrap, entry.card_id):
                    # The server serves a frame entry only with a wrap for
                    # this card, which the epoch's roster must still name.
                    raise EpochChainError("bad_wrap", "a frame wrap for a card the epoch drops")
            if frame.at_head:
                expected = roster_check(nonce, chain.head.roster_hash)
                if frame.roster_check is None or not _hazmat.timing_safe_equal(
                    frame.roster_check, expected
                ):
                    raise GroupVerificationFailed(
                        "roster_mismatch", "the server's roster is not the one the epochs sign"
                    )
                return True
            if not frame.entries:
                self._advance_full(state, chain, gid, chain.head.number + 1)
        raise GroupVerificationFailed("stale_epoch", "the server keeps the group moving")

    def by_json_delta(self, state: KeystoreState, chain: GroupChain, gid: str, number: int) -> bool:
        """Move to epoch ``number`` by its delta and this device's own wrap by
        the JSON routes: one API request and one ranged GET, O(1) bytes
        whatever the group's size (docs/spec/groups.md, "Delta").  False when
        the server offers no delta for it, or the epoch moves this device to
        another card (the caller then takes the full epoch).

        Raises:
            EpochChainError, InvalidGroupObject: the delta or wrap doesn't verify.
        """
        mine = {card_id_from_str(b.card_id) for b in state.bundles}
        entry = next((m for m in chain.roster if m.card_id in mine), None)
        if entry is None:
            return False
        card_id = card_id_to_str(entry.card_id)
        reply = self._session.authed(
            lambda token: self._api.get_group_epoch(token, gid, number, card_id, delta=True)
        )
        target = reply.get("wrap")
        if reply.get("form") != "delta" or target is None:
            return False
        delta = decode_delta(b64url_decode(str(reply["data"])), chain.roster)
        after = next((m for m in delta.roster_after(chain.roster) if m.card_id in mine), None)
        if after is None or after.card_id != entry.card_id:
            return False
        wrap = self._get(str(target["url"]), dict(target["headers"]), int(target["length"]))
        return self._apply(state, chain, delta, wrap, entry.card_id)

    def _apply(
        self,
        state: KeystoreState,
        chain: GroupChain,
        delta: EpochDelta,
        wrap: bytes,
        card_id: bytes,
    ) -> bool:
        """Move ``chain`` on by ``delta`` and this device's ``wrap`` for
        ``card_id``; False (nothing changed) when the delta's roster no longer
        gives this device's identity that card."""
        mine = {card_id_from_str(b.card_id): b for b in state.bundles}
        me = next(m for m in chain.roster if m.card_id == card_id)
        after = next(
            (m for m in delta.roster_after(chain.roster) if m.identity == me.identity), None
        )
        if after is None or after.card_id != card_id:
            return False
        try:
            secret = open_wrap(
                wrap,
                mine[card_id],
                group_id=chain.head.group_id,
                number=chain.head.number + 1,
                epoch_kind=delta.kind,
            )
        except DecryptionFailed as exc:
            raise EpochChainError("bad_wrap", "the wrap does not open") from exc
        # The signature covers the full epoch, key id included: a delta or a
        # wrap that doesn't rebuild the signed epoch fails here.
        epoch = expand_delta(delta, chain.head, chain.roster, secret.key_id())
        chain.advance(epoch, self._signer(epoch), state.bundles, wrap)
        return True

    def _fetch(self, gid: str, after: int, card_id: str, nonce: bytes) -> bytes:
        return self._session.authed(
            lambda token: self._api.group_catchup(token, gid, after, card_id, nonce)
        )
