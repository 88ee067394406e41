"""The group handle an app holds: ``Device.group(id)`` and ``Device.create_group``.

It carries the group id, the device's :class:`~client_sim.groups.Groups`
object and a way to this device's keys, never the facade itself; every
public method reports server refusals like the facade's (``reported``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from typing import IO

from client_sim.api import BlobInfo
from client_sim.errors import NotAMember, reported
from client_sim.files import atomic_output
from client_sim.groups import GroupInfo, Groups
from client_sim.identity import KeyBundle
from client_sim.keystore import KeystoreState
from client_sim.messages import Decrypted

__all__ = ["Group"]


class Group:
    """One group as the app uses it (from :meth:`client_sim.Device.group` or
    :meth:`~client_sim.Device.create_group`).  Every call verifies what the
    server serves; membership calls re-base and retry when another admin's
    change wins (:class:`~client_sim.errors.StaleEpoch` after
    :data:`MAX_CHANGE_ATTEMPTS`)."""

    def __init__(
        self,
        groups: Groups,
        keys: Callable[[], tuple[KeystoreState, KeyBundle]],
        group_id: str,
    ) -> None:
        self._groups = groups
        self._keys = keys
        self.group_id = Groups._group_id(group_id)

    def __repr__(self) -> str:
        return f"Group({self.group_id!r})"

    @reported
    def info(self) -> GroupInfo:
        """The group's current epoch, members and admins (synced and verified).

        Raises:
            NotAMember, GroupVerificationFailed.
        """
        state, _ = self._keys()
        return GroupInfo.of(self._groups.sync(state, self.group_id))

    @reported
    def add_members(self, identities: Iterable[str], *, admin: bool = False) -> GroupInfo:
        """Add members (admins with ``admin``); they read what is sealed from now on.

        Raises:
            NotAMember, NotAnAdmin, MemberNotFound, StaleEpoch, InvalidInput.
        """
        state, current = self._keys()
        return self._groups.add_members(state, current, self.group_id, identities, admin=admin)

    @reported
    def remove_members(self, identities: Iterable[str]) -> GroupInfo:
        """Remove members: nothing sealed from the new epoch on opens for them.

        Raises:
            NotAMember, NotAnAdmin, MemberNotFound, StaleEpoch, InvalidInput
            (the last admin can't remove itself).
        """
        state, current = self._keys()
        return self._groups.remove_members(state, current, self.group_id, identities)

    @reported
    def set_admin(self, identity: str, admin: bool = True) -> GroupInfo:
        """Make a member an admin (or not).  Raises as :meth:`add_members`."""
        state, current = self._keys()
        return self._groups.set_admin(state, current, self.group_id, identity, admin)

    @reported
    def rekey(self) -> GroupInfo:
        """A fresh epoch with the same members; rotated members are re-wrapped."""
        state, current = self._keys()
        return self._groups.rekey(state, current, self.group_id)

    @reported
    def share_history(
        self, member: str, *, from_epoch: int, to_epoch: int | None = None
    ) -> tuple[int, int]:
        """Share the secrets of epochs ``from_epoch..to_epoch`` (default: up to the
        one before the current epoch) with ``member``, a current member; the
        range shared.  Without this a member reads nothing sealed before it
        joined (the default).  The share is wrapped to the member's current
        card, signed by this admin, and checked by the member's device.

        Raises:
            NotAMember, NotAnAdmin, MemberNotFound, StaleEpoch, InvalidInput
            (a bad range, or an epoch this device holds no secret of).
        """
        state, current = self._keys()
        return self._groups.history.share(
            state, current, self.group_id, member, first=from_epoch, last=to_epoch
        )

    @reported
    def receive_history(self) -> list[int]:
        """Take the history shares admins made for this identity; the epochs gained.
        (:meth:`decrypt` and :meth:`download` do it by themselves when content
        is for an epoch this device holds no secret of.)

        Raises:
            NotAMember, GroupVerificationFailed (a share that doesn't verify is
            refused; the others are kept).
        """
        state, _ = self._keys()
        return self._groups.history.receive(state, self.group_id)

    @reported
    def leave(self) -> None:
        """Leave the group (this device forgets it).  Raises NotAMember, StaleEpoch."""
        state, current = self._keys()
        self._groups.leave(state, current, self.group_id)

    @reported
    def encrypt(self, data: bytes, *, context: str | None = None) -> bytes:
        """Sign ``data`` and encrypt it for the group's current epoch.

        The result is an ordinary age file with one recipient, the epoch's
        key; its cost does not depend on the group's size.

        Raises:
            NotAMember, InvalidInput (a bad context), GroupVerificationFailed.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("data must be bytes")
        state, current = self._keys()
        out = io.BytesIO()
        self._groups.seal(state, current, self.group_id, io.BytesIO(bytes(data)), out, context)
        return out.getvalue()

    @reported
    def decrypt(self, data: bytes, *, context: str | None = None) -> Decrypted:
        """Decrypt group content and verify its sender was a member of its epoch.

        Raises:
            DecryptionFailed, ContextMismatch, NotAMember.
            SplitView, LogVerificationFailed: as :meth:`Device.decrypt`
                (the sender's carried log checkpoint).
        """
        state, _ = self._keys()
        return self._groups.open(state, self.group_id, bytes(data), context)

    @reported
    def upload(
        self,
        source: bytes | str | os.PathLike[str] | IO[bytes],
        *,
        idempotency_key: str | None = None,
    ) -> BlobInfo:
        """Seal ``source`` (bytes, a file path or a binary stream) for the
        group's current epoch and store it as a group blob that the group's
        current members may download (its id is in the result).  A path or a
        stream is sealed and sent in constant memory (the ciphertext is
        spooled, to disk past a megabyte), as :meth:`Device.upload` does.

        Raises:
            NotAMember, ServerError (quota, size), StorageTransferFailed,
            SourceChanged (the file changed size while it was read; nothing
            stored).
        """
        if isinstance(source, bytes | bytearray | memoryview):
            source = io.BytesIO(bytes(source))
        elif not isinstance(source, str | os.PathLike) and not hasattr(source, "read"):
            raise TypeError("source must be bytes, a path or a binary stream")
        state, current = self._keys()
        return self._groups.upload(state, current, self.group_id, source, idempotency_key)

    @reported
    def encrypt_stream(self, src: IO[bytes], dst: IO[bytes], *, context: str | None = None) -> None:
        """:meth:`encrypt` in constant memory, from ``src`` to ``dst``.  On
        failure ``dst`` may hold a partial, unusable file (no signature):
        :meth:`encrypt_file` discards it for you.

        Raises:
            NotAMember, InvalidInput (a bad context), GroupVerificationFailed.
        """
        state, current = self._keys()
        self._groups.seal(state, current, self.group_id, src, dst, context)

    @reported
    def encrypt_file(
        self, src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
        context: str | None = None,
    ) -> None:  # fmt: skip
        """Encrypt the file ``src`` to ``dst``; ``dst`` appears only when complete."""
        with open(src, "rb") as source, atomic_output(dst) as out:
            self.encrypt_stream(source, out, context=context)

    @reported
    def download(self, blob_id: str) -> Decrypted:
        """Download a group blob, decrypt it and verify its sender and blob.

        Raises:
            ContextMismatch, DecryptionFailed, NotAMember, ServerError (404 for
            a blob this identity may not read: e.g. after being removed).
        """
        state, _ = self._keys()
        return self._groups.download(state, self.group_id, blob_id)

    @reported
    def export_epoch_identity(self, epoch: int | None = None) -> str:
        """The age identity of an epoch this device holds (default: the current one):
        ``age -d -i`` with it decrypts the epoch's content.  It *is* the key:
        for interop tests and audits only.

        Raises:
            NotAMember: this device holds no secret of that epoch.
        """
        state, _ = self._keys()
        chain = self._groups.sync(state, self.group_id)
        secret = chain.secrets.get(chain.head.number if epoch is None else epoch)
        if secret is None:
            raise NotAMember("this device holds no secret of that epoch")
        return secret.export_identity()
