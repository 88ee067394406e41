"""S3 adapter for blob content: presigned transfers, checks, digests, purge.

Layout of the bucket (versioned; keys are made here from server-generated
blob ids, never from client input)::

    blobs/<blob_id>        the age file; one version per header (re)write
    quarantine/<blob_id>   no longer written: where older releases kept a
                           rejected upload; purged with the blob, and
                           expired by the bucket's lifecycle rule

Uploads are presigned with SigV4 (``signature_version="s3v4"``) for exact
lengths and, for single PUTs, ``If-None-Match: *``: on AWS the signature
covers the ``Content-Length`` and the precondition, so a device can send
exactly the reserved number of bytes, once.  moto checks neither signatures
nor lengths, which is why the service re-checks every object before serving
it.  Presigned URLs are bearer credentials (DESIGN invariant 3): nothing here
logs them, and :func:`quiet_botocore_signature_logs` keeps botocore from
logging the signatures it computes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import crypto
from chalicelib.errors import InternalError, ServiceUnavailable
from chalicelib.services.blobs import StoredObject, UploadedPart, UploadTarget
from chalicelib.wire.blobids import BLOB_ID_RE

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CONTENT_PREFIX = "blobs/"
QUARANTINE_PREFIX = "quarantine/"
CONTENT_TYPE = "application/octet-stream"
_BLOB_ID_RE = BLOB_ID_RE  # one shape, in chalicelib.wire.blobids
# A header replacement reads objects up to this size whole (Lambda memory);
# larger ones are rebuilt as a multipart upload whose first part is the new
# header plus the start of the payload (S3 parts are at least 5 MiB) and
# whose other parts are server-side copies of the rest.
_REWRITE_IN_MEMORY = 8 * 1024 * 1024
_REWRITE_FIRST_PART = 6 * 1024 * 1024
_COPY_PART = 1024 * 1024 * 1024
# A rejected object is hashed in reads of this size (bounded memory).
_DIGEST_CHUNK = 1024 * 1024
_PRECONDITION_FAILED = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
_MISSING = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound", "405"})
# HEAD has no body, so S3's "invalid version id" arrives as a bare 400.
_BAD_VERSION = frozenset({"400", "InvalidArgument", "BadRequest"})
_TRANSIENT = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "503",
        "500",
        "Throttling",
        "ThrottlingException",
    }
)
_DELETE_BATCH = 1000


def quiet_botocore_signature_logs() -> None:
    """Keep botocore from logging request signatures.

    ``botocore.auth`` logs every SigV4 signature it computes at DEBUG; for a
    presigned URL that signature is the credential.  Raised to INFO, like
    the payload loggers in :mod:`chalicelib.storage.appkeys`.  Idempotent.
    """
    logger = logging.getLogger("botocore.auth")
    if logger.level < logging.INFO:
        logger.setLevel(logging.INFO)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _translate(exc: Exception) -> Exception:
    """A domain error for a botocore failure (the caller raises ``from``)."""
    if isinstance(exc, ClientError) and _code(exc) not in _TRANSIENT:
        return InternalError()
    return ServiceUnavailable()


class S3ObjectStore:
    """:class:`chalicelib.services.blobs.ObjectStore` on one versioned bucket."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket
        quiet_botocore_signature_logs()

    def _body(self, key: str, version_id: str, byte_range: str | None = None) -> Any:
        """The streaming body of one object version (``byte_range``: an HTTP
        Range value); None if it is gone.

        Raises:
            InternalError, ServiceUnavailable: S3 failed.
        """
        extra: dict[str, Any] = {} if byte_range is None else {"Range": byte_range}
        try:
            out = self._client.get_object(
                Bucket=self._bucket, Key=key, VersionId=version_id, **extra
            )
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise _translate(exc) from exc
        except BotoCoreError as exc:
            raise _translate(exc) from exc
        return out["Body"]

    @staticmethod
    def _key(prefix: str, blob_id: str) -> str:
        # Defence in depth: the service already refuses other ids.
        if not _BLOB_ID_RE.fullmatch(blob_id):
            raise InternalError()
        return prefix + blob_id

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, operation)(Bucket=self._bucket, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc) from exc

    # presigned transfers ---------------------------------------------------------

    def presign_put(self, blob_id: str, size: int, ttl: int) -> UploadTarget:
        params = {
            "Bucket": self._bucket,
            "Key": self._key(CONTENT_PREFIX, blob_id),
            "ContentLength": size,
            "ContentType": CONTENT_TYPE,
            "IfNoneMatch": "*",
        }
        url = self._client.generate_presigned_url(
            "put_object", Params=params, ExpiresIn=ttl, HttpMethod="PUT"
        )
        headers = {"Content-Length": str(size), "Content-Type": CONTENT_TYPE, "If-None-Match": "*"}
        return UploadTarget(url=url, headers=headers)

    def start_multipart(self, blob_id: str) -> str:
        out = self._call(
            "create_multipart_upload",
            Key=self._key(CONTENT_PREFIX, blob_id),
            ContentType=CONTENT_TYPE,
        )
        return str(out["UploadId"])

    def presign_parts(
        self, blob_id: str, upload_id: str, sizes: Sequence[int], ttl: int
    ) -> list[UploadTarget]:
        key = self._key(CONTENT_PREFIX, blob_id)
        targets = []
        for number, size in enumerate(sizes, start=1):
            params = {
                "Bucket": self._bucket,
                "Key": key,
                "UploadId": upload_id,
                "PartNumber": number,
                "ContentLength": size,
            }
            url = self._client.generate_presigned_url(
                "upload_part", Params=params, ExpiresIn=ttl, HttpMethod="PUT"
            )
            # Content-Type is not signed for parts; sending one explicitly
            # keeps HTTP clients from inventing a form type (DESIGN §8).
            headers = {"Content-Length": str(size), "Content-Type": CONTENT_TYPE}
            targets.append(UploadTarget(url=url, headers=headers, part_number=number))
        return targets

    def presign_get(self, blob_id: str, version_id: str, ttl: int) -> str:
        params = {
            "Bucket": self._bucket,
            "Key": self._key(CONTENT_PREFIX, blob_id),
            # Pinned to the version that passed the checks.
            "VersionId": version_id,
        }
        return str(
            self._client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=ttl, HttpMethod="GET"
            )
        )

    # multipart -----------------------------------------------------------------------

    def list_parts(self, blob_id: str, upload_id: str) -> list[UploadedPart] | None:
        key = self._key(CONTENT_PREFIX, blob_id)
        parts: list[UploadedPart] = []
        marker = 0
        while True:
            try:
                out = self._client.list_parts(
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=upload_id,
                    MaxParts=1000,
                    PartNumberMarker=marker,
                )
            except ClientError as exc:
                if _code(exc) in ("NoSuchUpload", "404"):
                    return None
                raise _translate(exc) from exc
            except BotoCoreError as exc:
                raise _translate(exc) from exc
            parts += [
                UploadedPart(number=int(p["PartNumber"]), size=int(p["Size"]), etag=str(p["ETag"]))
                for p in out.get("Parts", [])
            ]
            if not out.get("IsTruncated"):
                return parts
            marker = int(out["NextPartNumberMarker"])

    def complete_multipart(
        self, blob_id: str, upload_id: str, parts: Sequence[UploadedPart]
    ) -> StoredObject | None:
        key = self._key(CONTENT_PREFIX, blob_id)
        listed = [{"PartNumber": part.number, "ETag": part.etag} for part in parts]
        try:
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": listed},  # type: ignore[typeddict-item]
                # Write-once, like the single PUT.
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if _code(exc) in _PRECONDITION_FAILED or _code(exc) == "NoSuchUpload":
                return None
            raise _translate(exc) from exc
        except BotoCoreError as exc:
            raise _translate(exc) from exc
        return self.head(blob_id)

    def abort_multipart(self, blob_id: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key(CONTENT_PREFIX, blob_id), UploadId=upload_id
            )
        except ClientError as exc:
            if _code(exc) not in ("NoSuchUpload", "404"):
                raise _translate(exc) from exc
        except BotoCoreError as exc:
            raise _translate(exc) from exc

    # objects -------------------------------------------------------------------------

    def head(self, blob_id: str, version_id: str | None = None) -> StoredObject | None:
        kwargs: dict[str, Any] = {"Key": self._key(CONTENT_PREFIX, blob_id)}
        if version_id is not None:
            kwargs["VersionId"] = version_id
        try:
            out = self._client.head_object(Bucket=self._bucket, **kwargs)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            if version_id is not None and _code(exc) in _BAD_VERSION:
                # S3 answers a malformed version id (from a forged event)
                # with 400: no such version, like any other unknown one.
                return None
            raise _translate(exc) from exc
        except BotoCoreError as exc:
            raise _translate(exc) from exc
        return StoredObject(
            version_id=str(out.get("VersionId") or "null"),
            etag=str(out["ETag"]),
            size=int(out["ContentLength"]),
        )

    def read_prefix(self, blob_id: str, version_id: str, length: int) -> bytes | None:
        return self._read_range_or_none(CONTENT_PREFIX, blob_id, version_id, 0, length)

    def _read_range(
        self, prefix: str, blob_id: str, version_id: str, start: int, length: int
    ) -> bytes:
        """``length`` bytes of one version from ``start``; a missing version is an error."""
        data = self._read_range_or_none(prefix, blob_id, version_id, start, length)
        if data is None:
            raise InternalError()
        return data

    def _read_range_or_none(
        self, prefix: str, blob_id: str, version_id: str, start: int, length: int
    ) -> bytes | None:
        """``length`` bytes of one version from ``start``; None if the version is gone.

        Raises:
            InternalError, ServiceUnavailable: S3 failed.
        """
        if length <= 0:
            return b""
        body = self._body(
            self._key(prefix, blob_id), version_id, f"bytes={start}-{start + length - 1}"
        )
        if body is None:
            return None
        try:
            # Bounded: never more than asked for, whatever the server sends.
            data: bytes = body.read(length)
        except BotoCoreError as exc:
            raise _translate(exc) from exc
        finally:
            body.close()
        return data

    def put_new(self, blob_id: str, data: bytes) -> StoredObject | None:
        try:
            out = self._client.put_object(
                Bucket=self._bucket,
                Key=self._key(CONTENT_PREFIX, blob_id),
                Body=data,
                ContentType=CONTENT_TYPE,
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if _code(exc) in _PRECONDITION_FAILED:
                return None
            raise _translate(exc) from exc
        except BotoCoreError as exc:
            raise _translate(exc) from exc
        return StoredObject(
            version_id=str(out.get("VersionId") or "null"), etag=str(out["ETag"]), size=len(data)
        )

    def replace_header(
        self, blob_id: str, current: StoredObject, old_header_length: int, header: bytes
    ) -> StoredObject | None:
        key = self._key(CONTENT_PREFIX, blob_id)
        payload = current.size - old_header_length
        if current.size <= _REWRITE_IN_MEMORY:
            body = self._read_range(
                CONTENT_PREFIX, blob_id, current.version_id, old_header_length, payload
            )
            try:
                out = self._client.put_object(
                    Bucket=self._bucket,
                    Key=key,
                    Body=header + body,
                    ContentType=CONTENT_TYPE,
                    # Only over the version we read: a concurrent change wins
                    # or loses here, before any record is touched.
                    IfMatch=current.etag,
                )
            except ClientError as exc:
                if _code(exc) in _PRECONDITION_FAILED:
                    return None
                raise _translate(exc) from exc
            except BotoCoreError as exc:
                raise _translate(exc) from exc
            return StoredObject(
                version_id=str(out.get("VersionId") or "null"),
                etag=str(out["ETag"]),
                size=len(header) + payload,
            )
        return self._rewrite_multipart(key, blob_id, current, old_header_length, header)

    def _rewrite_multipart(
        self, key: str, blob_id: str, current: StoredObject, old_header_length: int, header: bytes
    ) -> StoredObject | None:
        upload_id = self.start_multipart(blob_id)
        try:
            first = min(_REWRITE_FIRST_PART, current.size - old_header_length)
            head_part = header + self._read_range(
                CONTENT_PREFIX, blob_id, current.version_id, old_header_length, first
            )
            etags = [
                self._call(
                    "upload_part", Key=key, UploadId=upload_id, PartNumber=1, Body=head_part
                )["ETag"]
            ]
            source = {"Bucket": self._bucket, "Key": key, "VersionId": current.version_id}
            start = old_header_length + first
            while start < current.size:
                end = min(start + _COPY_PART, current.size) - 1
                out = self._call(
                    "upload_part_copy",
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=len(etags) + 1,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                etags.append(out["CopyPartResult"]["ETag"])
                start = end + 1
            parts = [{"PartNumber": i, "ETag": etag} for i, etag in enumerate(etags, start=1)]
            try:
                self._client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                    IfMatch=current.etag,
                )
            except ClientError as exc:
                if _code(exc) in _PRECONDITION_FAILED:
                    self.abort_multipart(blob_id, upload_id)
                    return None
                raise _translate(exc) from exc
            except BotoCoreError as exc:
                raise _translate(exc) from exc
        except BaseException:
            self.abort_multipart(blob_id, upload_id)
            raise
        return self.head(blob_id)

    def delete_version(self, blob_id: str, version_id: str) -> None:
        self._delete([(self._key(CONTENT_PREFIX, blob_id), version_id)])

    def digest(self, blob_id: str, version_id: str) -> str | None:
        """SHA-256 (hex) of one version, streamed in ``_DIGEST_CHUNK`` reads so
        memory stays bounded whatever the object's size; None when that
        version no longer exists.

        Raises:
            InternalError, ServiceUnavailable: S3 failed.
        """
        body = self._body(self._key(CONTENT_PREFIX, blob_id), version_id)
        if body is None:
            return None
        hasher = crypto.sha256_hasher()
        try:
            for chunk in body.iter_chunks(_DIGEST_CHUNK):
                hasher.update(chunk)
        except BotoCoreError as exc:
            raise _translate(exc) from exc
        finally:
            body.close()
        return hasher.hexdigest()

    def purge(self, blob_id: str) -> None:
        for prefix in (CONTENT_PREFIX, QUARANTINE_PREFIX):
            key = self._key(prefix, blob_id)
            self._delete([(key, v["id"]) for v in self._versions(key)])

    def _versions(self, key: str) -> Iterator[dict[str, Any]]:
        """Every version and delete marker stored under exactly ``key``."""
        kwargs: dict[str, Any] = {"Prefix": key}
        while True:
            out = self._call("list_object_versions", **kwargs)
            for entry in out.get("Versions", []):
                if entry["Key"] == key:
                    yield {
                        "id": entry["VersionId"],
                        "marker": False,
                        "latest": bool(entry.get("IsLatest")),
                        "modified": entry.get("LastModified"),
                        "size": int(entry.get("Size", 0)),
                    }
            for entry in out.get("DeleteMarkers", []):
                if entry["Key"] == key:
                    yield {"id": entry["VersionId"], "marker": True, "latest": False}
            if not out.get("IsTruncated"):
                return
            kwargs = {
                "Prefix": key,
                "KeyMarker": out["NextKeyMarker"],
                "VersionIdMarker": out["NextVersionIdMarker"],
            }

    def _delete(self, versions: list[tuple[str, str]]) -> None:
        for start in range(0, len(versions), _DELETE_BATCH):
            batch = versions[start : start + _DELETE_BATCH]
            out = self._call(
                "delete_objects",
                Delete={
                    "Objects": [{"Key": key, "VersionId": version} for key, version in batch],
                    "Quiet": True,
                },
            )
            errors = [e for e in out.get("Errors", []) if e.get("Code") not in _MISSING]
            if errors:
                # Never report a deletion that didn't happen.
                transient = any(e.get("Code") in _TRANSIENT for e in errors)
                raise ServiceUnavailable() if transient else InternalError()
