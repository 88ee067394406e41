"""The device's group state, sealed under the device key like the keystore.

For every group this device follows: the last verified epoch, the roster
after it, and the epoch secrets it holds (with, per epoch, the key id and
the member cards, so content of that epoch can be checked).  Epoch secrets
are as sensitive as private keys, so the file lives in the keystore
directory as ``keystore/groups.sbs``, sealed with the device key (label
``sealbox/v1/group-state``; docs/spec/keystore.md's sealed-file format).  A
file that fails authentication is refused: the groups are then re-joined
from their current head (older epochs' secrets are lost on this device).

The keystore's own binary format is unchanged.
"""

from __future__ import annotations

import json
from typing import Any, Final

from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.groups import InvalidGroupObject, decode_epoch, decode_roster, encode_roster
from client_sim.group_chain import GroupChain
from client_sim.group_keys import EpochSecret
from client_sim.keystore import Keystore, KeystoreCorrupted

__all__ = ["GROUP_STATE_FILE", "GROUP_STATE_LABEL", "GROUP_STATE_MAGIC", "GroupState"]

GROUP_STATE_FILE: Final = "groups.sbs"
GROUP_STATE_MAGIC: Final = b"SBGSTATE"
GROUP_STATE_LABEL: Final = b"sealbox/v1/group-state"
_BODY_VERSION: Final = 1
MAX_GROUP_STATE_SIZE: Final = 64 * 1024 * 1024


class GroupState:
    """Reads and writes the sealed group state of one device."""

    def __init__(self, keystore: Keystore) -> None:
        self._keystore = keystore

    def load(self) -> dict[str, GroupChain]:
        """Every followed group (group id -> chain); a bad file reads as empty.

        Raises:
            KeystorePermissionError: the keystore directory is not owner-only.
        """
        try:
            body = self._keystore.read_sealed(
                GROUP_STATE_FILE, GROUP_STATE_MAGIC, GROUP_STATE_LABEL, MAX_GROUP_STATE_SIZE
            )
        except KeystoreCorrupted:
            return {}
        if body is None:
            return {}
        try:
            document = json.loads(body)
            if document.get("version") != _BODY_VERSION:
                return {}
            return {gid: _chain(item) for gid, item in document["groups"].items()}
        except (InvalidGroupObject, KeyError, TypeError, ValueError, AttributeError):
            return {}

    def save(self, chains: dict[str, GroupChain]) -> None:
        """Replace the state with ``chains``."""
        document = {
            "version": _BODY_VERSION,
            "groups": {gid: _item(chain) for gid, chain in sorted(chains.items())},
        }
        body = json.dumps(document, sort_keys=True).encode("utf-8")
        self._keystore.write_sealed(GROUP_STATE_FILE, GROUP_STATE_MAGIC, GROUP_STATE_LABEL, body)

    def clear(self) -> None:
        self._keystore.remove(GROUP_STATE_FILE)


def _item(chain: GroupChain) -> dict[str, Any]:
    return {
        "head": b64url_encode(chain.head.encoded),
        "roster": b64url_encode(encode_roster(chain.roster)),
        "shares": sorted(chain.shares),
        "epochs": {
            str(n): {
                "secret": b64url_encode(secret.to_bytes()),
                "kind": secret.kind,
                "key_id": b64url_encode(chain.key_ids[n]),
                "readers": [b64url_encode(card) for card in sorted(chain.readers[n])],
            }
            for n, secret in chain.secrets.items()
        },
    }


def _chain(item: Any) -> GroupChain:
    head = decode_epoch(b64url_decode(item["head"]))
    chain = GroupChain(head=head, roster=decode_roster(b64url_decode(item["roster"])))
    # Absent from files written before history shares existed.
    chain.shares = {str(sid) for sid in item.get("shares", [])}
    for text, entry in item["epochs"].items():
        number = int(text)
        chain.secrets[number] = EpochSecret(
            b64url_decode(entry["secret"]),
            group_id=head.group_id,
            number=number,
            kind=int(entry["kind"]),
        )
        chain.key_ids[number] = b64url_decode(entry["key_id"])
        chain.readers[number] = frozenset(b64url_decode(card) for card in entry["readers"])
    return chain
