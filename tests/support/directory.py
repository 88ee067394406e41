"""Helpers for the key-directory tests: signed-in users, cards, backups, a locked moto."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from chalicelib.wire.b64 import b64url_encode
from client_sim.api import ApiClient
from client_sim.identity import KeyBundle
from client_sim.passwords import PASSWORD_KDF_SIMULATION, PasswordKeys, derive_password_keys

PASSWORD = "a long enough test password"


@dataclass
class User:
    """An account with a live refresh session and access token."""

    identity: str
    keys: PasswordKeys = field(repr=False)
    refresh_token: str = field(repr=False)
    access_token: str = field(repr=False)


def make_user(api: ApiClient, username: str, password: str = PASSWORD) -> User:
    keys = derive_password_keys(username, password, PASSWORD_KDF_SIMULATION)
    identity = api.register(username, keys.login_key_b64)
    session = api.login(identity, keys.login_key_b64)
    access = api.access_token(session.refresh_token)
    # Renewal rotated the login's refresh token: keep the live one.
    return User(identity, keys, access.refresh_token, access.access_token)


def step_up(api: ApiClient, user: User) -> dict[str, str]:
    """Headers carrying a fresh step-up proof of ``user`` (re-authenticated with the login key)."""
    return {"Sealbox-Step-Up": api.step_up(user.access_token, user.keys.login_key_b64)}


def fresh_bundle(identity: str, *, created_at: int | None = None) -> KeyBundle:
    return KeyBundle.generate(
        identity, created_at=int(time.time()) if created_at is None else created_at
    )


def rotation_signature(previous: KeyBundle, new: KeyBundle) -> str:
    """The base64url rotation signature ``previous``'s key makes for ``new``'s card."""
    return b64url_encode(previous.sign_rotation(new.card))


def publish_rotation(api: ApiClient, user: User, previous: KeyBundle, new: KeyBundle) -> Any:
    """Publish ``new`` as the rotation of ``previous``, signed as devices sign it."""
    return api.publish_card(
        user.access_token, new.card.to_json(), rotation_signature(previous, new)
    )


@contextmanager
def atomic_moto_dynamodb() -> Iterator[None]:
    """Make in-process moto's DynamoDB writes atomic, as DynamoDB's are.

    moto checks a condition and then writes in plain Python with no lock,
    so two threads can both pass a condition that DynamoDB would let only
    one pass, and its transaction rollback restores whole-table snapshots
    over other threads' writes.  Serialising its write and read entry points
    with one lock gives moto DynamoDB's item-level atomicity; what remains
    racy is exactly what runs in our code between requests.
    """
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    names = (
        "put_item",
        "update_item",
        "delete_item",
        "get_item",
        "transact_write_items",
    )
    originals = {name: getattr(DynamoDBBackend, name) for name in names}

    def locked(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(*args, **kwargs)

        return wrapper

    for name, method in originals.items():
        setattr(DynamoDBBackend, name, locked(method))
    try:
        yield
    finally:
        for name, method in originals.items():
            setattr(DynamoDBBackend, name, method)
