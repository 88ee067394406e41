"""The local stack's moto completes multipart uploads as moto does, without
holding the object in memory (sealbox_tools.moto_multipart).

Each upload runs twice in a fresh ``mock_aws``: with moto's own
``CompleteMultipartUpload`` and with the streaming one; every answer a
client can see must be the same.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from typing import Any, cast

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.s3.models import FakeKey, FakeMultipart

from sealbox_tools import moto_multipart, moto_server

_MIB = 1024 * 1024
_BUCKET = "sealbox-multipart-test"
_CLIENT_SIDE = ("CRC32", "SHA1", "SHA256")


@pytest.fixture(autouse=True)
def _restore_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever a test patches is put back (moto is shared by the suite).
    monkeypatch.setattr(FakeMultipart, "complete", FakeMultipart.complete)
    monkeypatch.setattr(FakeKey, "value", FakeKey.value)
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)


def _streaming() -> None:
    moto_multipart.assemble_by_streaming()


def _upload(
    parts: list[bytes],
    *,
    create: dict[str, Any] | None = None,
    complete_parts: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] = lambda p: p,
) -> dict[str, Any]:
    """A multipart upload of ``parts`` in a fresh moto; what a client sees of it."""
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=_BUCKET)
        s3.put_bucket_versioning(Bucket=_BUCKET, VersioningConfiguration={"Status": "Enabled"})
        upload = s3.create_multipart_upload(Bucket=_BUCKET, Key="k", **(create or {}))
        algorithm = (create or {}).get("ChecksumAlgorithm")
        sent = []
        for number, data in enumerate(parts, start=1):
            # botocore computes CRC32C and CRC64NVME only with awscrt: those
            # parts go with boto3's default checksum; moto's rule decides.
            extra = {"ChecksumAlgorithm": algorithm} if algorithm in _CLIENT_SIDE else {}
            answer = s3.upload_part(
                Bucket=_BUCKET,
                Key="k",
                UploadId=upload["UploadId"],
                PartNumber=number,
                Body=data,
                **extra,
            )
            sent.append(
                {"PartNumber": number, "ETag": answer["ETag"]}
                | {k: v for k, v in answer.items() if k.startswith("Checksum")}
            )
        try:
            done = s3.complete_multipart_upload(
                Bucket=_BUCKET,
                Key="k",
                UploadId=upload["UploadId"],
                MultipartUpload={"Parts": cast(Any, complete_parts(sent))},
            )
        except ClientError as exc:
            return {"error": exc.response["Error"]["Code"]}
        head = s3.head_object(Bucket=_BUCKET, Key="k", ChecksumMode="ENABLED")
        body = s3.get_object(Bucket=_BUCKET, Key="k")["Body"].read()
        # Across the first parts' boundary (or the middle of a small object).
        first = 5242870 if len(parts) > 1 else 10
        ranged = s3.get_object(Bucket=_BUCKET, Key="k", Range=f"bytes={first}-{first + 19}")["Body"]
        second = b""
        if len(parts) > 1:
            second = s3.get_object(Bucket=_BUCKET, Key="k", PartNumber=2)["Body"].read()
        return {
            "etag": done["ETag"],
            "complete_checksums": {k: v for k, v in done.items() if k.startswith("Checksum")},
            "head_checksums": {k: v for k, v in head.items() if k.startswith("Checksum")},
            "length": head["ContentLength"],
            "head_etag": head["ETag"],
            "parts_count": head.get("PartsCount"),
            "body_ok": body == b"".join(parts),
            "ranged": ranged.read(),
            "second_part": len(parts) == 1 or second == parts[1],
            "versions": len(s3.list_object_versions(Bucket=_BUCKET)["Versions"]),
        }


def _both(parts: list[bytes], **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    theirs = _upload(parts, **kwargs)
    _streaming()
    ours = _upload(parts, **kwargs)
    return theirs, ours


def _parts() -> list[bytes]:
    # Parts past moto's in-memory limit (5 MiB - 1 KiB): on disk, like real uploads.
    return [os.urandom(5 * _MIB), os.urandom(5 * _MIB + 7), os.urandom(1000)]


@pytest.mark.parametrize(
    "create",
    [
        {},
        {"ChecksumAlgorithm": "CRC32"},
        {"ChecksumAlgorithm": "CRC32C"},
        {"ChecksumAlgorithm": "SHA1"},
        {"ChecksumAlgorithm": "SHA256"},
        {"ChecksumAlgorithm": "CRC64NVME"},
        {"ChecksumAlgorithm": "CRC32", "ChecksumType": "FULL_OBJECT"},
    ],
    ids=lambda c: "-".join(c.values()) or "default",
)
def test_a_completed_upload_looks_the_same_as_moto_makes_it(create: dict[str, Any]) -> None:
    theirs, ours = _both(_parts(), create=create)
    assert ours == theirs
    assert ours["body_ok"]
    assert ours["length"] == 10 * _MIB + 1007
    assert ours["etag"].endswith('-3"')


def test_an_upload_with_one_part_looks_the_same() -> None:
    theirs, ours = _both([os.urandom(3000)])
    assert ours == theirs
    assert ours["body_ok"]
    assert ours["etag"].endswith('-1"')


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("wrong etag", lambda p: [p[0], {**p[1], "ETag": '"' + "0" * 32 + '"'}, p[2]]),
        ("missing part", lambda p: [p[0], {**p[1], "PartNumber": 9}, p[2]]),
        ("no parts", lambda p: []),
    ],
)
def test_a_refused_completion_is_refused_the_same_way(
    name: str, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
) -> None:
    theirs, ours = _both(_parts(), complete_parts=change)
    assert "error" in theirs, name
    assert ours == theirs


def test_a_small_part_before_the_last_is_refused_the_same_way() -> None:
    theirs, ours = _both([os.urandom(5 * _MIB), os.urandom(1000), os.urandom(1000)])
    assert theirs == {"error": "EntityTooSmall"}
    assert ours == theirs


def test_the_object_is_not_held_in_memory_while_it_is_assembled() -> None:
    """moto's own completion holds the 20 MiB object four times over (84 MB
    measured); the streaming one holds what any new object's spooled file
    keeps in memory before it moves to disk (5 MiB) and one 1 MiB block."""

    def peak_while_completing() -> int:
        with mock_aws():
            s3 = boto3.client("s3", region_name="us-east-1")
            s3.create_bucket(Bucket=_BUCKET)
            upload = s3.create_multipart_upload(Bucket=_BUCKET, Key="k")["UploadId"]
            block = os.urandom(5 * _MIB)
            sent = [
                {
                    "PartNumber": n,
                    "ETag": s3.upload_part(
                        Bucket=_BUCKET, Key="k", UploadId=upload, PartNumber=n, Body=block
                    )["ETag"],
                }
                for n in range(1, 5)
            ]
            tracemalloc.start()
            try:
                s3.complete_multipart_upload(
                    Bucket=_BUCKET,
                    Key="k",
                    UploadId=upload,
                    MultipartUpload={"Parts": cast(Any, sent)},
                )
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

    theirs = peak_while_completing()
    _streaming()
    ours = peak_while_completing()
    assert theirs > 40 * _MIB  # the object (20 MiB), at least twice
    print(theirs, ours)
    assert ours < 8 * _MIB


def test_patching_twice_patches_once() -> None:
    _streaming()
    complete, value = FakeMultipart.complete, FakeKey.value
    _streaming()
    assert (FakeMultipart.complete, FakeKey.value) == (complete, value)


def test_assembled_parts_become_one_object_only() -> None:
    _streaming()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=_BUCKET)
        s3.put_object(Bucket=_BUCKET, Key="a", Body=b"before")
        upload = s3.create_multipart_upload(Bucket=_BUCKET, Key="k")["UploadId"]
        etag = s3.upload_part(Bucket=_BUCKET, Key="k", UploadId=upload, PartNumber=1, Body=b"part")[
            "ETag"
        ]
        multipart = next(iter(_backend_bucket().multiparts.values()))
        assembled, _, _ = moto_multipart.complete_by_parts(multipart, iter([(1, etag)]))
        key = _backend_bucket().keys["a"]
        assembled.hand_to(key)
        assert key.value == b"part"
        with pytest.raises(RuntimeError, match="already"):
            assembled.hand_to(key)
        # Any other value is set as moto sets it.
        key.value = b"plain bytes"
        assert key.value == b"plain bytes"
        assert key.size == 11


def _backend_bucket() -> Any:
    from moto.s3.models import s3_backends

    return s3_backends["123456789012"]["aws"].buckets[_BUCKET]


def test_the_local_stacks_moto_server_assembles_by_streaming(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import moto.server

    monkeypatch.setattr(moto.server, "main", lambda: None)
    from moto.dynamodb.responses import DynamoHandler
    from moto.moto_api._internal.recorder.models import Recorder

    monkeypatch.setattr(DynamoHandler, "call_action", DynamoHandler.call_action)
    monkeypatch.setattr(Recorder, "_record_request", Recorder._record_request)
    moto_server.main()
    assert getattr(FakeMultipart.complete, "sealbox_streaming", False)
