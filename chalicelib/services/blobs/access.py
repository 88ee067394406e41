"""Who may read a blob: its owner, its recipients, and for a group blob the
group's current members (asked of the group service at each read, so a
removed member loses access at once).

No chalice, no boto3 (a service module): the store and the membership check
are injected.
"""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.errors import InvalidRequest, NotFound
from chalicelib.services.blobs.ids import _BLOB_ID_RE
from chalicelib.services.blobs.inputs import valid_group
from chalicelib.services.blobs.model import BlobRecord
from chalicelib.services.blobs.ports import BlobStore


class Access:
    """Read access to blobs and the group of a new group blob."""

    def __init__(self, blobs: BlobStore, group_member: Callable[[str, str], bool] | None) -> None:
        # group_member(group_id, identity): is the identity a current member?
        self._blobs = blobs
        self._group_member = group_member

    def readable(self, caller: str, blob_id: str) -> BlobRecord:
        """The blob ``caller`` may read: its owner, a recipient, or (a group
        blob) a current member of its group.

        Raises:
            NotFound: no such blob, or one the caller may not read (the same
                answer, so a blob's existence isn't disclosed).
        """
        if not isinstance(blob_id, str) or not _BLOB_ID_RE.fullmatch(blob_id):
            raise NotFound()
        record = self._blobs.get(blob_id)
        if record is None or not (record.may_read(caller) or self._in_group(record, caller)):
            raise NotFound()
        return record

    def _in_group(self, record: BlobRecord, caller: str) -> bool:
        return (
            record.group is not None
            and self._group_member is not None
            and self._group_member(record.group, caller)
        )

    def valid_group(self, owner: str, group: object, members: tuple[str, ...]) -> str | None:
        """The group of a group blob (None for a shared one); the owner must be
        a current member (``NotFound`` otherwise, as for no such group), and
        a group blob names no recipients (``InvalidRequest``)."""
        group_id = valid_group(group, enabled=self._group_member is not None)
        if group_id is None:
            return None
        if not (self._group_member and self._group_member(group_id, owner)):
            raise NotFound("No such group.")
        if members:
            # Asked after membership: to anyone else the group doesn't exist.
            raise InvalidRequest("A group blob has no recipients: the group's members read it.")
        return group_id
