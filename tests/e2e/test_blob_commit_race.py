"""The owner's commit racing the S3 event poller, over real HTTP against ``sealbox local``.

A stack of its own: moto's ListObjectVersions copies every object version in
the bucket before it filters by prefix, so next to test_blobs_e2e.py's
100 MiB objects each rejection's listing takes seconds and the commits time
out on the stack, not on the race (a local-stack cost: on S3 a prefixed
listing costs what it returns).
"""

from __future__ import annotations

import io
import random
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from client_sim import age
from client_sim.transport import HttpObjectTransport
from sealbox_tools.local_stack import stage_environment
from tests.e2e.test_blobs_e2e import Device, Stack, call, wait_for_state

_names = iter(range(10_000))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("race-stack") / "api.log").start()
    try:
        yield running
    finally:
        running.stop()


HAMMER_ROUNDS = 200
HAMMER_THREADS = 4
HAMMER_SPREAD = 0.08  # seconds


def test_commits_racing_the_event_on_oversized_uploads_never_fail(stack: Stack) -> None:
    """Oversize a presigned upload (moto doesn't enforce the signed length),
    then commit at once, while the local event poller checks the same object:
    every commit answers 422 ``blob_rejected``, no request or event fails,
    and every blob ends rejected with nothing servable left and its quota back."""
    log_start = stack.log_path.stat().st_size
    # One owner per round, so each blob's quota charge and release are
    # checked on their own (a count shared by 200 blobs would hide a release
    # that happened twice for one and never for another).
    owners = [Device(stack, f"hammer-{next(_names)}") for _ in range(HAMMER_ROUNDS)]
    data = age.encrypt_bytes(b"h" * 2000, [owners[0].recipient()])
    reserved = len(data) - 16

    def one_round(round_: int) -> tuple[str, int, str]:
        owner = owners[round_]
        body = call(stack, owner, "POST", "/v1/blobs", {"size": reserved, "recipients": []}).json()
        stack.credentials.append(body["upload"]["url"])
        headers = {k: v for k, v in body["upload"]["headers"].items() if k != "Content-Length"}
        put = HttpObjectTransport().put(
            body["upload"]["url"], io.BytesIO(data), length=len(data), headers=headers
        )
        assert put.status == 200
        # S3's report reaches the event poller a few milliseconds after the
        # PUT; a spread of delays makes the commit land on every part of
        # the poller's check, not always before it.
        time.sleep(random.Random(round_).uniform(0, HAMMER_SPREAD))
        reply = call(stack, owner, "POST", f"/v1/blobs/{body['blob_id']}/commit")
        return body["blob_id"], reply.status, (reply.json() or {}).get("error", {}).get("code", "")

    with ThreadPoolExecutor(HAMMER_THREADS) as pool:
        results = list(pool.map(one_round, range(HAMMER_ROUNDS)))
    answers = Counter((status, code) for _, status, code in results)
    assert answers == {(422, "blob_rejected"): HAMMER_ROUNDS}

    blob_ids = [blob_id for blob_id, _, _ in results]
    for owner, blob_id in zip(owners, blob_ids, strict=True):
        wait_for_state(owner, blob_id, "rejected")
    # The event poller may still be handling the last reports: wait until
    # nothing is left, then judge the final state.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        keys = [v["Key"] for v in stack.versions()]
        if not any(key.endswith(blob_id) for key in keys for blob_id in blob_ids):
            break
        time.sleep(0.5)
    keys = [v["Key"] for v in stack.versions()]
    for blob_id in blob_ids:
        assert f"blobs/{blob_id}" not in keys  # no version, no delete marker
        assert f"quarantine/{blob_id}" not in keys  # and no copy kept
    usage_table = stage_environment("local")["SEALBOX_BLOB_USAGE_TABLE"]
    dynamodb = stack.stack.client("dynamodb")
    for owner in owners:
        item = dynamodb.get_item(TableName=usage_table, Key={"identity": {"S": owner.name}})
        usage = (int(item["Item"]["bytes"]["N"]), int(item["Item"]["blobs"]["N"]))
        assert usage == (0, 0), owner.name  # every quota came back, exactly once
    time.sleep(2)  # let the poller log its last batch
    with stack.log_path.open("rb") as handle:
        handle.seek(log_start)
        log = handle.read().decode("utf-8", "replace")
    assert "blob_events" in log  # the poller did run alongside the commits
    assert '"status":500' not in log.replace(" ", "")
    assert "internal_error" not in log
    assert "blob_event_failed" not in log
