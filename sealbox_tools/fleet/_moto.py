"""moto, made to scale for in-process fleets.

Two of moto 5.2's shortcuts cost time proportional to *everything stored*
on every call; a fleet stores more with every send, so without these
patches its run time grows with the square of its traffic (measured: 200
devices took 27 times as long as 20, and a gigabyte of memory):

* ``TransactWriteItems`` deep-copies every table the transaction touches,
  to roll back on failure.  The backend writes blobs, grants, usage and
  cards transactionally (DESIGN invariant 5).  Patched: the rollback
  snapshot holds only the items the transaction names (read with moto's
  own ``get_item`` first), and a failed transaction puts exactly those back
  with moto's own ``put_item`` / ``delete_item``; the whole-table copy is
  skipped by handing moto's module a ``copy`` whose ``deepcopy`` returns a
  table itself.  A transaction writes only the items it names, so the two
  rollbacks leave the same state.
* ``ListObjectVersions`` deep-copies every version of every object in the
  bucket (value included) before it filters by prefix.  The backend lists
  one blob's versions to delete them.  Patched: moto sees only the keys
  under the requested prefix, which it would have kept anyway.  And the
  copies are views: moto copies only to set ``is_latest`` on them, which a
  view of the stored version holds for itself (the privacy audit lists the
  whole bucket, page by page: each page copied every stored byte again).
* ``Query`` on a table's own key sorts *every item of the table* to find
  one partition.  Every inbox listing is such a query.  Patched: moto sees
  only the queried partition, the one it would have kept anyway.

Two more keep memory for nobody, in proportion to the traffic (measured
with ``bench.fleet_memory``):

* every moto model object ever made (each item copy a query returns, each
  object version ``ListObjectVersions`` copies, value included) is appended
  to its class's ``instances_tracked``, for moto's dashboard.  Patched: not
  tracked.  The backend's state holds its own references.
* moto's ``responses`` mock records every presigned transfer, request and
  response bodies included, twice (its call list and the matched
  response's).  Patched: nothing recorded while the context lasts.

``tests/functional/test_fleet_moto.py`` checks each against moto's own
results: a failed transaction of puts, updates and deletes leaves every
item as it was, prefixed listings (paged, with delimiters) and queries
(paged, both directions, with key conditions) are unchanged.  Only the
in-process fleet backend uses this, inside its ``mock_aws``, with the
server serialized (one warm container).
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator
from typing import Any, cast

__all__ = ["scaled_moto"]

_lock = threading.Lock()
_depth = 0
# What the patches replaced, restored when the last context exits.
_saved: dict[str, Any] = {}


class _TablesByReference:
    """The ``copy`` module, except that a moto table is not copied."""

    def __init__(self, table_type: type) -> None:
        self._table_type = table_type

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if isinstance(value, self._table_type):
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


class _Version:
    """A stored object version as a listing shows it: moto's own object,
    with an ``is_latest`` of its own (what moto sets on its deep copy).

    Everything else is read from the stored version; ``isinstance`` sees its
    class (a delete marker is told from a key that way).
    """

    def __init__(self, stored: Any) -> None:
        self._stored = stored
        self.is_latest = getattr(stored, "is_latest", False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stored, name)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # what isinstance reads
        return type(self._stored)


class _VersionsAsViews:
    """The ``copy`` module for moto's S3 models: a deep copy of a list of
    stored versions (its only use there) is a list of :class:`_Version`."""

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if isinstance(value, list):
            return [_Version(version) for version in value]
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


class _KeysUnder:
    """A bucket's key store, showing only the names under ``prefix``."""

    def __init__(self, keys: Any, prefix: str) -> None:
        self._keys = keys
        self._prefix = prefix

    def iterlists(self) -> Iterator[tuple[str, list[Any]]]:
        for name, versions in self._keys.iterlists():
            if name.startswith(self._prefix):
                yield name, versions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._keys, name)


class _NoCalls:
    """A ``responses`` call list that records nothing (moto's mock keeps
    every presigned transfer's bodies in one otherwise)."""

    def add(self, request: Any, response: Any) -> None:
        """Not recorded."""

    def add_call(self, call: Any) -> None:
        """Not recorded."""

    def reset(self) -> None:
        """Nothing to reset."""

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __getitem__(self, index: Any) -> Any:
        return [][index]


def _untracked_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    # moto's BaseModel.__new__ without its ``instances_tracked.append``.
    return object.__new__(cls)


def _record_no_calls() -> None:
    """moto's ``responses`` mock and its registered responses record nothing."""
    from moto.core.models import responses_mock

    responses_mock._calls = cast(Any, _NoCalls())
    for registered in responses_mock.registered():
        registered._calls = cast(Any, _NoCalls())


def _item_key(table: Any, op: dict[str, Any]) -> dict[str, Any]:
    if "Key" in op:
        return dict(op["Key"])
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {name: op["Item"][name] for name in names}


def _patch() -> None:
    from moto.core.common_models import BaseModel
    from moto.core.model_instances import reset_model_data
    from moto.dynamodb import models as ddb
    from moto.dynamodb.models.table import Table
    from moto.s3 import models as s3
    from moto.s3.models import S3Backend

    transact = ddb.DynamoDBBackend.transact_write_items
    list_versions = S3Backend.list_object_versions
    query = Table.query

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        before: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        for entry in transact_items:
            op = next(iter(entry.values()))
            name = op.get("TableName")
            if name not in self.tables:
                continue
            key = _item_key(self.get_table(name), op)
            current = self.get_item(name, key)
            before.append((name, key, current.to_json()["Attributes"] if current else None))
        try:
            transact(self, transact_items)
        except Exception:
            for name, key, attributes in reversed(before):
                if attributes is None:
                    with contextlib.suppress(Exception):  # it was never written
                        self.delete_item(name, key)
                else:
                    self.put_item(name, attributes)
            raise

    def list_object_versions(self: Any, bucket_name: str, *args: Any, **kwargs: Any) -> Any:
        prefix = kwargs.get("prefix") or (args[3] if len(args) > 3 else "")
        if not prefix:
            return list_versions(self, bucket_name, *args, **kwargs)
        bucket = self.get_bucket(bucket_name)
        keys = bucket.keys
        bucket.keys = _KeysUnder(keys, prefix)
        try:
            return list_versions(self, bucket_name, *args, **kwargs)
        finally:
            bucket.keys = keys

    def partition_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        # Positional order of moto's call: range_comparison, range_objs,
        # limit, exclusive_start_key, scan_index_forward,
        # projection_expressions, index_name, ...
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name is not None or hash_key is None:
            return query(self, hash_key, *args, **kwargs)
        items = self.items
        partition = items.get(hash_key)  # .get: never create one (a defaultdict)
        self.items = {hash_key: partition} if partition is not None else {}
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            self.items = items

    _saved.update(
        transact=transact,
        copy=vars(ddb)["copy"],
        list_versions=list_versions,
        query=query,
        new=vars(BaseModel)["__new__"],
        s3_copy=vars(s3)["copy"],
    )
    vars(s3)["copy"] = _VersionsAsViews()
    BaseModel.__new__ = staticmethod(_untracked_new)  # type: ignore[method-assign]
    reset_model_data()  # what was tracked before (the stage's provisioning)
    ddb.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    vars(ddb)["copy"] = _TablesByReference(Table)
    S3Backend.list_object_versions = list_object_versions  # type: ignore[method-assign]
    Table.query = partition_query  # type: ignore[method-assign]


def _unpatch() -> None:
    from moto.core.common_models import BaseModel
    from moto.core.models import responses_mock
    from moto.dynamodb import models as ddb
    from moto.dynamodb.models.table import Table
    from moto.s3 import models as s3
    from moto.s3.models import S3Backend

    vars(s3)["copy"] = _saved["s3_copy"]
    Table.query = _saved["query"]  # type: ignore[method-assign]
    ddb.DynamoDBBackend.transact_write_items = _saved["transact"]  # type: ignore[method-assign]
    vars(ddb)["copy"] = _saved["copy"]
    S3Backend.list_object_versions = _saved["list_versions"]  # type: ignore[method-assign]
    BaseModel.__new__ = _saved["new"]  # type: ignore[method-assign]
    _saved.clear()
    import responses

    # Recording again (a mock_aws started later registers its responses afresh).
    responses_mock._calls = responses.CallList()
    for registered in responses_mock.registered():
        if isinstance(registered._calls, _NoCalls):
            registered._calls = responses.CallList()


@contextlib.contextmanager
def scaled_moto() -> Iterator[None]:
    """Within the context, moto's transactions, version listings and
    queries cost what they touch, not what is stored, and moto keeps no
    model objects or transfers for its dashboard and call lists.
    Re-entrant; the patches go when the outermost context exits."""
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            _patch()
        # On every entry: a mock_aws started since registered new responses.
        _record_no_calls()
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _unpatch()
