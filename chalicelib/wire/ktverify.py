"""What a device (or an auditor) checks of a card answer: its leaf is in the log.

Pure and shared: ``client_sim`` calls it on every card it is about to use,
``sealbox kt audit`` on what it downloads.  A card answer (``GET /v1/cards``
and ``GET /v1/cards/{id}``) carries, next to the card, ``published_at``, the
``rotation_signature`` (for a rotation), ``log_index`` and ``log_proof``;
the answer also carries the ``checkpoint``.  The device rebuilds the
card's publish leaf from the card itself (:class:`~chalicelib.wire.ktleaf.LogLeaf`),
so a card the log does not hold, or holds with another key, another
identity or another predecessor, cannot verify.

Failures raise :class:`CardNotInLog` (a ``ValueError``) with a stable ``code``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Final

from chalicelib.wire import merkle
from chalicelib.wire.cards import Card, InvalidCard, rotation_signature_from_json
from chalicelib.wire.checkpoint import Checkpoint
from chalicelib.wire.ktleaf import InvalidLeaf, LogLeaf

__all__ = ["CardNotInLog", "publish_leaf_of", "verify_card_in_log"]

_HASH_B64_LEN: Final = 43  # 32 bytes, unpadded base64url


class CardNotInLog(ValueError):
    """A card answer's inclusion proof is missing or does not verify."""

    code = "card_not_in_log"


def _hash(text: object) -> bytes:
    # A hot path (50 cards x ~20 hashes per lookup): no canonical-form
    # check, which buys nothing here -- the proof verifies the decoded bytes,
    # so any other encoding either decodes to the same hash or fails.
    if not isinstance(text, str) or len(text) != _HASH_B64_LEN:
        raise ValueError("a proof hash is 43 base64url characters")
    try:
        return base64.urlsafe_b64decode(text + "=")
    except binascii.Error as exc:
        raise ValueError("a proof hash is not base64url") from exc


def publish_leaf_of(card: Card, entry: Mapping[str, Any]) -> LogLeaf:
    """The publish (or rotate) leaf a card answer claims is in the log.

    Raises:
        CardNotInLog: the answer lacks or garbles the fields the leaf needs.
    """
    try:
        published_at = entry["published_at"]
        if not isinstance(published_at, int) or isinstance(published_at, bool):
            raise CardNotInLog("published_at is not an integer")
        raw_sig = entry.get("rotation_signature")
        signature = None if raw_sig is None else rotation_signature_from_json(raw_sig)
        return LogLeaf.publish(card, time=published_at, rotation_signature=signature)
    except (KeyError, InvalidCard, InvalidLeaf) as exc:
        raise CardNotInLog("the answer does not describe a logged card") from exc


def verify_card_in_log(card: Card, entry: Mapping[str, Any], checkpoint: Checkpoint) -> int:
    """Check that ``card``'s publish leaf is in the tree ``checkpoint`` signs.

    ``checkpoint`` must already be verified (``open_log_checkpoint``).
    Returns the leaf index.

    Raises:
        CardNotInLog: no proof, a malformed one, or one that does not lead
            to the checkpoint's root.
    """
    leaf = publish_leaf_of(card, entry)
    index, proof = entry.get("log_index"), entry.get("log_proof")
    if not isinstance(index, int) or isinstance(index, bool) or not isinstance(proof, list):
        raise CardNotInLog("the card comes without an inclusion proof")
    try:
        hashes = [_hash(h) for h in proof]
        merkle.verify_inclusion(
            merkle.leaf_hash(leaf.encode()), index, checkpoint.size, hashes, checkpoint.root
        )
    except ValueError as exc:
        raise CardNotInLog("the card's inclusion proof does not verify") from exc
    return index
