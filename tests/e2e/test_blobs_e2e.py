"""Blob storage over real HTTP: ``chalice local`` for the API, moto's server
for S3 (presigned URLs used as a device would), the local SQS poller for S3
events.  Includes the 100 MiB round trip with the client's memory measured
in a process of its own.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.wire.b64 import b64url_encode
from client_sim import age
from client_sim.api import ApiClient
from client_sim.blobs import BlobClient
from client_sim.errors import ServerError
from client_sim.transport import HttpObjectTransport, HttpTransport
from sealbox_tools.local_stack import LocalStack, stage_environment
from tests.conftest import ROOT

MIB = 1024 * 1024
BUCKET = stage_environment("local")["SEALBOX_BLOBS_BUCKET"]


class Stack:
    """A LocalStack whose API-side log (chalice local and the event poller,
    everything but moto) is kept for inspection."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self._devnull = open(os.devnull, "w")  # noqa: SIM115 - closed in stop()
        self.stack = LocalStack(log=self._log, aws_log=self._devnull)
        self.url = ""
        self.credentials: list[str] = []

    def start(self) -> Stack:
        self.stack.start()
        self.url = self.stack.url
        return self

    def stop(self) -> None:
        self.stack.stop()
        self._log.close()
        self._devnull.close()

    def s3(self) -> Any:
        return self.stack.client("s3")

    def versions(self, prefix: str = "") -> list[dict[str, Any]]:
        out = self.s3().list_object_versions(Bucket=BUCKET, Prefix=prefix)
        return list(out.get("Versions", [])) + list(out.get("DeleteMarkers", []))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("stack") / "api.log").start()
    try:
        yield running
    finally:
        running.stop()


class Device:
    def __init__(self, stack: Stack, name: str) -> None:
        api = ApiClient(HttpTransport(stack.url))
        login_key = b64url_encode(hashlib.sha256(name.encode()).digest())
        api.register(name, login_key)
        self.name = name
        self.token = api.access_token(api.login(name, login_key).refresh_token).access_token
        stack.credentials.append(self.token)
        self.key = age.X25519Identity.generate()
        self.blobs = BlobClient(
            HttpTransport(stack.url),
            lambda: self.token,
            storage_origins=[stack.stack.aws_endpoint],  # moto's S3 presigns there
        )

    def recipient(self) -> age.X25519Recipient:
        return self.key.recipient()


_names = iter(range(10_000))


@pytest.fixture
def device(stack: Stack):
    def make(prefix: str = "dev") -> Device:
        return Device(stack, f"{prefix}-{next(_names)}-{os.getpid()}")

    return make


def call(stack: Stack, device: Device, method: str, path: str, body: Any = None) -> Any:
    reply = HttpTransport(stack.url).request(
        method,
        path,
        body=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {device.token}"},
    )
    return reply


def wait_for_state(device: Device, blob_id: str, state: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if device.blobs.get(blob_id).state == state:
            return
        time.sleep(0.2)
    pytest.fail(f"blob never became {state}")


# --- large files, flat memory ---------------------------------------------------------------


def make_file(path: Path, size: int) -> str:
    block = os.urandom(MIB)
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            chunk = block[: min(left, MIB)]
            out.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def worker(stack: Stack, device: Device, *args: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "SEALBOX_E2E_TOKEN": device.token,
        "SEALBOX_E2E_IDENTITY": device.key.secret_string(),
        "SEALBOX_STORAGE_ORIGINS": stack.stack.aws_endpoint,
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.e2e.blob_worker", args[0], stack.url, *args[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.slow
def test_100_mib_round_trip_with_flat_client_memory(stack: Stack, device, tmp_path: Path) -> None:
    alice = device("alice")
    peaks = {}
    for size in (1 * MIB, 100 * MIB):
        source, target = tmp_path / f"in-{size}", tmp_path / f"out-{size}"
        digest = make_file(source, size)
        up = worker(stack, alice, "upload", str(source))
        down = worker(stack, alice, "download", up["blob_id"], str(target))
        assert sha256_of(target) == digest
        peaks[size] = (up["peak_rss_kib"], down["peak_rss_kib"])
        source.unlink()
        target.unlink()
    small, large = peaks[1 * MIB], peaks[100 * MIB]
    print(f"peak RSS KiB (upload, download): 1 MiB {small}, 100 MiB {large}")
    # 100 times the data, and at most a few MiB more memory in either direction.
    assert large[0] - small[0] < 8 * 1024, peaks
    assert large[1] - small[1] < 8 * 1024, peaks


# --- the checks, over HTTP --------------------------------------------------------------------


def test_a_plaintext_upload_nobody_commits_is_rejected_and_deleted(stack: Stack, device) -> None:
    alice, bob = device("alice"), device("bob")
    canary = b"E2E-CANARY plaintext, uploaded by mistake " * 200
    reply = call(stack, alice, "POST", "/v1/blobs", {"size": len(canary), "recipients": [bob.name]})
    body = reply.json()
    stack.credentials.append(body["upload"]["url"])
    put = HttpObjectTransport().put(
        body["upload"]["url"],
        io.BytesIO(canary),
        length=len(canary),
        headers=body["upload"]["headers"],
    )
    assert put.status == 200
    wait_for_state(alice, body["blob_id"], "rejected")  # settled by the S3 event alone
    assert bob.blobs.get(body["blob_id"]).download is None
    # The event handler deletes the bytes right after settling the verdict.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
        v["Key"].endswith(body["blob_id"]) for v in stack.versions()
    ):
        time.sleep(0.2)
    keys = {v["Key"] for v in stack.versions()}
    assert f"quarantine/{body['blob_id']}" not in keys
    assert f"blobs/{body['blob_id']}" not in keys


def test_an_upload_of_the_wrong_size_is_rejected(stack: Stack, device) -> None:
    alice = device("alice")
    data = age.encrypt_bytes(b"x" * 1000, [alice.recipient()])
    body = call(
        stack, alice, "POST", "/v1/blobs", {"size": len(data) - 10, "recipients": []}
    ).json()
    headers = {k: v for k, v in body["upload"]["headers"].items() if k != "Content-Length"}
    HttpObjectTransport().put(
        body["upload"]["url"], io.BytesIO(data), length=len(data), headers=headers
    )
    reply = call(stack, alice, "POST", f"/v1/blobs/{body['blob_id']}/commit")
    assert (reply.status, reply.json()["error"]["code"]) in ((422, "blob_rejected"),)
    assert alice.blobs.get(body["blob_id"]).rejected_reason == "size_mismatch"


def test_sharing_access_and_deletion_over_http(stack: Stack, device) -> None:
    alice, bob, carol = device("alice"), device("bob"), device("carol")
    plaintext = os.urandom(3 * MIB)
    info = alice.blobs.upload(
        io.BytesIO(plaintext), to=[bob.name], recipients=[alice.recipient(), bob.recipient()]
    )
    with pytest.raises(ServerError) as hidden:
        carol.blobs.get(info.blob_id)
    assert hidden.value.status == 404
    unauthenticated = HttpTransport(stack.url).request("GET", f"/v1/blobs/{info.blob_id}")
    assert unauthenticated.status == 401
    alice.blobs.share(
        info.blob_id,
        [carol.name],
        identities=[alice.key],
        recipients=[alice.recipient(), carol.recipient()],
    )
    out = io.BytesIO()
    carol.blobs.download(info.blob_id, out, identities=[carol.key])
    assert out.getvalue() == plaintext
    with pytest.raises(ServerError) as removed:
        bob.blobs.get(info.blob_id)
    assert removed.value.status == 404
    assert len(stack.versions(f"blobs/{info.blob_id}")) == 1
    alice.blobs.delete(info.blob_id)
    assert stack.versions(f"blobs/{info.blob_id}") == []
    with pytest.raises(ServerError) as gone:
        alice.blobs.get(info.blob_id)
    assert gone.value.status == 404


def test_concurrent_retries_of_one_reservation_make_one_blob(stack: Stack, device) -> None:
    alice = device("alice")
    request = {"size": 1234, "recipients": [], "idempotency_key": "e2e-retry-" + "r" * 20}
    results: list[Any] = []

    def attempt() -> None:
        results.append(call(stack, alice, "POST", "/v1/blobs", request))

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {r.status for r in results} == {201}
    assert len({r.json()["blob_id"] for r in results}) == 1
    assert len(list(alice.blobs.iter_blobs("outbox"))) == 1


def test_no_credential_appears_in_the_api_logs(stack: Stack, device) -> None:
    alice, bob = device("alice"), device("bob")
    info = alice.blobs.upload(
        io.BytesIO(os.urandom(200_000)), to=[bob.name], recipients=[bob.recipient()]
    )
    view = bob.blobs.get(info.blob_id)
    assert view.download is not None
    stack.credentials.append(view.download.url)
    bob.blobs.download(info.blob_id, io.BytesIO(), identities=[bob.key])
    time.sleep(1.5)  # let the event poller log its batch
    text = stack.log_path.read_text()
    assert '"event":"request"' in text
    assert '"route":"/v1/blobs/{blob_id}/commit"' in text
    signatures = {
        parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
        for url in stack.credentials
        if url.startswith("http")
    }
    assert signatures
    for secret in [*stack.credentials, *signatures]:
        assert secret not in text, "a credential reached the API logs"


def test_nothing_but_ciphertext_reaches_the_bucket(stack: Stack, device) -> None:
    alice = device("alice")
    canary = b"E2E-HONEST-CANARY " * 10_000
    alice.blobs.upload(io.BytesIO(canary), recipients=[alice.recipient()])
    s3 = stack.s3()
    for version in stack.versions():
        if "VersionId" not in version or version.get("Size") is None:
            continue
        data = s3.get_object(Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"])[
            "Body"
        ].read()
        assert b"E2E-HONEST-CANARY" not in data
        if version["Key"].startswith("blobs/"):
            assert data.startswith(b"age-encryption.org/v1\n")
