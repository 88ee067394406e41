"""The commit, the S3 event and a delete of one blob, interleaved at every storage call.

Each check of an upload can run twice at the same moment: the owner's
``POST .../commit`` and the S3 event for the new object (and the event can be
delivered twice).  The owner may also delete the blob while an event is being
handled.  Conditional writes settle the record, but the storage steps around
them (read the header of a version, hash a rejected one, list the
versions and delete them, release the quota) also race, and a version that vanished because the
other path finished the work must count as success.

These tests make every such interleaving happen deterministically: the first
path runs on its own AWS clients in a thread, is stopped just before its
k-th AWS call (S3 and DynamoDB alike), the second path runs to the end, and
the first resumes -- for every k until the first path no longer reaches a
k-th call.  Both orders, for accepted and rejected uploads.  After each
interleaving: the owner got the documented answer (422 ``blob_rejected``, the
READY blob, or 404 after a delete), the event handler raised nothing, and
the record, the object versions and the quota agree (a rejected upload's
bytes are gone, its fingerprint kept, its quota released exactly once).
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from chalicelib import wiring
from chalicelib.config import BlobSettings, Settings
from chalicelib.errors import BlobRejected, NotFound
from chalicelib.services.blobs import BlobService, BlobState
from client_sim import age
from sealbox_tools.provisioning import ProvisionReport
from tests.functional.blob_helpers import BUCKET, usage, versions
from tests.functional.conftest import STAGE_ENV, aws_client

pytestmark = pytest.mark.functional

OWNER = "race-owner"
# Far beyond any path's number of AWS calls: a pause never reached means the
# path finished first, and the sweep is complete.
_MAX_CALLS = 60


class Pause:
    """Stops the AWS calls of one path before its ``at``-th call until released."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.calls: list[str] = []
        self.reached = threading.Event()
        self.resume = threading.Event()

    def before_call(self, event_name: str, **_: Any) -> None:
        self.calls.append(event_name)
        if len(self.calls) == self.at:
            self.reached.set()
            if not self.resume.wait(30):
                raise RuntimeError("the paused path was never resumed")


def service() -> BlobService:
    """A blob service on AWS clients of its own."""
    env = {**STAGE_ENV, "AWS_REGION": "us-east-1"}
    container = wiring.Container(Settings.from_env(env), blob_settings=BlobSettings.from_env(env))
    return container.blobs


class Paths:
    """Two blob services, each with its own AWS clients; the first one's can be paused.

    Built once per test: making boto3 clients costs more than a whole path.
    """

    def __init__(self) -> None:
        self.plain = service()
        env = {**STAGE_ENV, "AWS_REGION": "us-east-1"}
        container = wiring.Container(
            Settings.from_env(env), blob_settings=BlobSettings.from_env(env)
        )
        self.pause: Pause | None = None
        for client in (container.s3, container.dynamodb):
            client.meta.events.register("before-call", self._before_call)
        self.pausable = container.blobs

    def _before_call(self, event_name: str, **kwargs: Any) -> None:
        if self.pause is not None:
            self.pause.before_call(event_name, **kwargs)


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None


def _run(path: Callable[[BlobService], Any], svc: BlobService, out: Outcome) -> None:
    try:
        out.value = path(svc)
    except BaseException as exc:
        out.error = exc


def interleave(
    paths: Paths,
    first: Callable[[BlobService], Any],
    second: Callable[[BlobService], Any],
    at: int,
) -> tuple[Outcome, Outcome, bool]:
    """Run ``first`` until just before its ``at``-th AWS call, then all of
    ``second``, then the rest of ``first``.  The bool says whether ``first``
    reached that call (False: it finished before, and ran wholly first)."""
    pause = paths.pause = Pause(at)
    a, b = Outcome(), Outcome()
    thread = threading.Thread(target=_run, args=(first, paths.pausable, a), daemon=True)
    thread.start()
    while not pause.reached.wait(0.01):
        if not thread.is_alive():
            break
    reached = pause.reached.is_set()
    _run(second, paths.plain, b)
    pause.resume.set()
    thread.join(30)
    paths.pause = None
    assert not thread.is_alive(), "the first path hung"
    return a, b, reached


# --- one upload ----------------------------------------------------------------------


def age_file() -> bytes:
    out = io.BytesIO()
    age.encrypt(io.BytesIO(b"race " * 100), out, [age.X25519Identity.generate().recipient()])
    return out.getvalue()


def uploaded(paths: Paths, *, good: bool) -> str:
    """A reserved blob whose object is in place: a valid age file, or one byte too many."""
    content = age_file()
    reservation = paths.plain.reserve(OWNER, size=len(content), recipients=["race-reader"])
    body = content if good else content + b"!"
    aws_client("s3").put_object(Bucket=BUCKET, Key=f"blobs/{reservation.record.blob_id}", Body=body)
    return reservation.record.blob_id


def commit(blob_id: str) -> Callable[[BlobService], Any]:
    return lambda svc: svc.commit(OWNER, blob_id)


def event(blob_id: str) -> Callable[[BlobService], Any]:
    return lambda svc: svc.inspect_upload(blob_id, None)


def delete(blob_id: str) -> Callable[[BlobService], Any]:
    return lambda svc: svc.delete(OWNER, blob_id)


def sweep(
    good: bool,
    first: Callable[[str], Callable[[BlobService], Any]],
    second: Callable[[str], Callable[[BlobService], Any]],
) -> Iterator[tuple[str, Outcome, Outcome]]:
    """Every interleaving of ``second`` before ``first``'s k-th call, for each k;
    each on a fresh upload, cleaned away after the caller's checks."""
    paths = Paths()
    for at in range(1, _MAX_CALLS):
        blob_id = uploaded(paths, good=good)
        a, b, reached = interleave(paths, first(blob_id), second(blob_id), at)
        yield blob_id, a, b
        _clean(paths.plain, blob_id)
        if not reached:
            assert at > 3, "the sweep never paused the first path"
            return
    raise AssertionError(f"a path made more than {_MAX_CALLS} AWS calls")


# --- what must hold ----------------------------------------------------------------------


def record_state(blob_id: str) -> BlobState | None:
    item = aws_client("dynamodb").get_item(
        TableName=STAGE_ENV["SEALBOX_BLOBS_TABLE"], Key={"blob_id": {"S": blob_id}}
    )
    record = item.get("Item")
    return None if record is None else BlobState(record["state"]["S"])


def keys(prefix: str) -> list[str]:
    return [v["Key"] for v in versions(prefix) if "Size" in v]


def assert_rejected(blob_id: str) -> None:
    assert record_state(blob_id) is BlobState.REJECTED
    assert versions(f"blobs/{blob_id}") == []  # no version, no delete marker left
    assert versions(f"quarantine/{blob_id}") == []  # and no copy kept
    item = aws_client("dynamodb").get_item(
        TableName=STAGE_ENV["SEALBOX_BLOBS_TABLE"], Key={"blob_id": {"S": blob_id}}
    )["Item"]
    assert len(item["rejected_sha256"]["S"]) == 64  # what was rejected stays provable
    assert item["charge_held"] == {"BOOL": False}
    assert usage(OWNER) == (0, 0)  # the quota came back, once


def assert_ready(blob_id: str, size: int) -> None:
    assert record_state(blob_id) is BlobState.READY
    assert len(keys(f"blobs/{blob_id}")) == 1
    assert keys(f"quarantine/{blob_id}") == []
    assert usage(OWNER)[0] >= size


def assert_gone(blob_id: str) -> None:
    assert record_state(blob_id) is None
    assert keys(f"blobs/{blob_id}") == []
    assert keys(f"quarantine/{blob_id}") == []


def event_answer(outcome: Outcome) -> None:
    """The event handler never fails (a failure retries the whole batch)."""
    assert outcome.error is None, repr(outcome.error)


@pytest.fixture
def stage(stack: ProvisionReport) -> None:
    """The test stage, provisioned."""


def _clean(svc: BlobService, blob_id: str) -> None:
    """Remove the blob (record, quota, every object) before the next interleaving."""
    with contextlib.suppress(NotFound):
        svc.delete(OWNER, blob_id)
    svc._objects.purge(blob_id)
    assert_gone(blob_id)
    assert usage(OWNER) == (0, 0)


# --- the sweeps -----------------------------------------------------------------------------


@pytest.mark.parametrize("commit_first", [True, False], ids=["commit-paused", "event-paused"])
def test_commit_and_event_on_a_rejected_upload(stage: None, commit_first: bool) -> None:
    paths = (commit, event) if commit_first else (event, commit)
    for blob_id, a, b in sweep(False, *paths):
        owner, handler = (a, b) if commit_first else (b, a)
        assert isinstance(owner.error, BlobRejected), repr(owner.error)
        event_answer(handler)
        assert_rejected(blob_id)


@pytest.mark.parametrize("commit_first", [True, False], ids=["commit-paused", "event-paused"])
def test_commit_and_event_on_a_good_upload(stage: None, commit_first: bool) -> None:
    paths = (commit, event) if commit_first else (event, commit)
    for blob_id, a, b in sweep(True, *paths):
        owner, handler = (a, b) if commit_first else (b, a)
        assert owner.error is None, repr(owner.error)
        assert owner.value.record.state is BlobState.READY
        event_answer(handler)
        assert_ready(blob_id, owner.value.record.size)


@pytest.mark.parametrize("good", [True, False], ids=["good", "rejected"])
def test_an_event_delivered_twice(stage: None, good: bool) -> None:
    for blob_id, a, b in sweep(good, event, event):
        event_answer(a)
        event_answer(b)
        if good:
            assert record_state(blob_id) is BlobState.READY
        else:
            assert_rejected(blob_id)


@pytest.mark.parametrize("good", [True, False], ids=["good", "rejected"])
@pytest.mark.parametrize("delete_first", [True, False], ids=["delete-paused", "event-paused"])
def test_a_delete_racing_the_event(stage: None, good: bool, delete_first: bool) -> None:
    paths = (delete, event) if delete_first else (event, delete)
    for blob_id, a, b in sweep(good, *paths):
        owner, handler = (a, b) if delete_first else (b, a)
        # The owner's delete succeeds (a repeat of it finds nothing: 404).
        assert owner.error is None, repr(owner.error)
        event_answer(handler)
        assert_gone(blob_id)
        assert usage(OWNER) == (0, 0)
