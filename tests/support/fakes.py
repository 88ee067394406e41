"""In-memory stand-ins for the stores and the clock (unit tier: no I/O)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, replace

from chalicelib.errors import UsernameTaken
from chalicelib.services.accounts import (
    AttemptRecord,
    DeviceRecord,
    FamilyRecord,
    Revoked,
    SessionRecord,
    UserRecord,
)
from chalicelib.services.backups import (
    BackupEvent,
    BackupRecord,
    BackupState,
    backup_preconditions,
    backup_transition,
)
from chalicelib.services.cards import CardEvent, CardRecord, CardStatus, card_transition


@dataclass
class FakeClock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class MemoryUsers:
    def __init__(self) -> None:
        self.items: dict[str, UserRecord] = {}

    def create(self, user: UserRecord) -> None:
        if user.identity in self.items:
            raise UsernameTaken()
        self.items[user.identity] = user

    def get(self, identity: str) -> UserRecord | None:
        return self.items.get(identity)

    def update_login_hash(self, identity: str, old_hash: str, new_hash: str) -> bool:
        user = self.items.get(identity)
        if user is None or user.login_hash != old_hash:
            return False
        self.items[identity] = dataclasses.replace(user, login_hash=new_hash)
        return True

    def upgrade_login_hash(
        self, identity: str, old_hash: str, new_hash: str, oprf_version: int
    ) -> bool:
        user = self.items.get(identity)
        if user is None or user.login_hash != old_hash:
            return False
        self.items[identity] = dataclasses.replace(
            user, login_hash=new_hash, oprf_version=oprf_version
        )
        return True

    def change_login_key(
        self, identity: str, old_hash: str, new_hash: str, oprf_version: int = 0
    ) -> int | None:
        user = self.items.get(identity)
        if user is None or user.login_hash != old_hash:
            return None
        epoch = user.session_epoch + 1
        self.items[identity] = dataclasses.replace(
            user, login_hash=new_hash, session_epoch=epoch, oprf_version=oprf_version
        )
        return epoch


class MemorySessions:
    def __init__(self) -> None:
        self.items: dict[str, SessionRecord] = {}
        self.families: dict[str, FamilyRecord] = {}

    def open(self, token_hash: str, session: SessionRecord) -> None:
        assert token_hash not in self.items
        assert session.family not in self.families
        self.families[session.family] = FamilyRecord(
            session.identity, session.generation, session.expires_at
        )
        self.items[token_hash] = session

    def get(self, token_hash: str) -> SessionRecord | None:
        return self.items.get(token_hash)

    def family(self, family: str) -> FamilyRecord | None:
        return self.families.get(family)

    def rotate(
        self,
        family: str,
        generation: int,
        token_hash: str,
        session: SessionRecord,
        at: int,
        spent: int,
    ) -> bool:
        stored = self.families.get(family)
        if stored is None or stored.generation != generation or stored.revoked is not Revoked.NO:
            return False
        assert token_hash not in self.items
        self.families[family] = replace(
            stored, generation=session.generation, rotated_at=at, rotated_from=spent
        )
        self.items[token_hash] = session
        return True

    def revoke(self, family: str, why: Revoked) -> None:
        stored = self.families.get(family)
        if stored is not None and stored.revoked is Revoked.NO:
            self.families[family] = replace(stored, revoked=why)


class MemoryDevices:
    def __init__(self) -> None:
        self.items: dict[str, DeviceRecord] = {}

    def create(self, cookie_hash: str, device: DeviceRecord) -> None:
        assert cookie_hash not in self.items
        self.items[cookie_hash] = device

    def get(self, cookie_hash: str) -> DeviceRecord | None:
        return self.items.get(cookie_hash)

    def delete(self, cookie_hash: str) -> None:
        self.items.pop(cookie_hash, None)


class MemoryStepUps:
    def __init__(self) -> None:
        self.items: dict[str, tuple[str, int]] = {}
        self.ended: set[str] = set()

    def create(self, proof_hash: str, identity: str, expires_at: int) -> None:
        assert proof_hash not in self.items
        self.items[proof_hash] = (identity, expires_at)

    def consume(self, proof_hash: str, identity: str, now: int) -> bool:
        stored = self.items.get(proof_hash)
        if stored is None or stored[0] != identity or stored[1] <= now:
            return False
        del self.items[proof_hash]
        return True

    def mark_card_ended(self, identity: str) -> None:
        self.ended.add(identity)

    def card_ended(self, identity: str) -> bool:
        return identity in self.ended


class MemoryAttempts:
    def __init__(self) -> None:
        self.items: dict[str, AttemptRecord] = {}
        self.swaps = 0

    def get(self, identity: str) -> AttemptRecord | None:
        return self.items.get(identity)

    def swap(self, identity: str, expected: AttemptRecord | None, new: AttemptRecord) -> bool:
        self.swaps += 1
        if self.items.get(identity) != expected:
            return False
        self.items[identity] = new
        return True


class MemoryCards:
    """An in-memory CardStore with the same preconditions as the DynamoDB one."""

    def __init__(self) -> None:
        self.cards: dict[str, CardRecord] = {}
        self.heads: dict[str, str] = {}
        self.batch_reads = 0

    def publish(self, record: CardRecord, *, replaces: str | None) -> bool:
        identity = record.identity
        if record.card_id in self.cards or self.heads.get(identity) != replaces:
            return False
        if replaces is not None:
            previous = self.cards.get(replaces)
            if previous is None or previous.status is not CardStatus.ACTIVE:
                return False
            self.cards[replaces] = replace(
                previous,
                status=card_transition(previous.status, CardEvent.SUPERSEDE),
                status_changed_at=record.published_at,
                superseded_by=record.card_id,
            )
        self.cards[record.card_id] = record
        self.heads[identity] = record.card_id
        return True

    def revoke(self, identity: str, card_id: str, *, at: int) -> bool:
        record = self.cards.get(card_id)
        if self.heads.get(identity) != card_id or record is None or record.identity != identity:
            return False
        if record.status is not CardStatus.ACTIVE:
            return False
        self.cards[card_id] = replace(
            record, status=card_transition(record.status, CardEvent.REVOKE), status_changed_at=at
        )
        del self.heads[identity]
        return True

    def get(self, card_id: str) -> CardRecord | None:
        return self.cards.get(card_id)

    def active(self, identity: str) -> CardRecord | None:
        card_id = self.heads.get(identity)
        return None if card_id is None else self.cards[card_id]

    def active_many(self, identities: Sequence[str]) -> dict[str, CardRecord]:
        assert len(identities) <= 50
        assert len(set(identities)) == len(identities)
        self.batch_reads += 1
        found = {identity: self.active(identity) for identity in identities}
        return {identity: record for identity, record in found.items() if record is not None}


class MemoryBackups:
    """An in-memory BackupStore with tombstones and a never-repeating version."""

    def __init__(self) -> None:
        # (identity, name) -> (state, version, updated_at, ciphertext)
        self.items: dict[tuple[str, str], tuple[BackupState, int, int, bytes]] = {}

    def write(
        self,
        identity: str,
        name: str,
        ciphertext: bytes,
        *,
        event: BackupEvent,
        expected_version: int | None,
        at: int,
    ) -> int | None:
        stored = self.items.get((identity, name))
        state = stored[0] if stored else None
        version = stored[1] if stored else 0
        if state not in backup_preconditions(event):
            return None
        if event is BackupEvent.REPLACE and version != expected_version:
            return None
        new_state = backup_transition(state, event)
        self.items[(identity, name)] = (new_state, version + 1, at, ciphertext)
        return version + 1

    def delete(self, identity: str, name: str, *, expected_version: int | None, at: int) -> bool:
        stored = self.items.get((identity, name))
        if stored is None or stored[0] not in backup_preconditions(BackupEvent.DELETE):
            return False
        if expected_version is not None and stored[1] != expected_version:
            return False
        state = backup_transition(stored[0], BackupEvent.DELETE)
        self.items[(identity, name)] = (state, stored[1] + 1, at, b"")
        return True

    def get(self, identity: str, name: str) -> BackupRecord | None:
        stored = self.items.get((identity, name))
        if stored is None or stored[0] is not BackupState.PRESENT:
            return None
        return BackupRecord(
            name=name, version=stored[1], updated_at=stored[2], ciphertext=stored[3]
        )


class Zeros:
    """A readable of ``size`` zero bytes, made as they are read (no buffer of the whole)."""

    def __init__(self, size: int) -> None:
        self._left = size

    def read(self, n: int = -1, /) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        self._left -= n
        return bytes(n)
