"""In-memory stand-ins for the stores and the clock (unit tier: no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.errors import UsernameTaken
from chalicelib.services.accounts import AttemptRecord, SessionRecord, UserRecord


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
        self.items[identity] = UserRecord(identity, new_hash, user.created_at)
        return True


class MemorySessions:
    def __init__(self) -> None:
        self.items: dict[str, SessionRecord] = {}

    def create(self, token_hash: str, session: SessionRecord) -> None:
        assert token_hash not in self.items
        self.items[token_hash] = session

    def get(self, token_hash: str) -> SessionRecord | None:
        return self.items.get(token_hash)

    def delete(self, token_hash: str) -> bool:
        return self.items.pop(token_hash, None) is not None


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
