"""The privacy audit: prove the server side holds nothing it shouldn't.

DESIGN invariant 1 says plaintext and private keys stay on the device.  The
audit checks it the blunt way: it reads *every byte* the server side holds --
every S3 object and every version of it, every DynamoDB item, every Secrets
Manager secret except the app signing key, and the captured server logs --
and searches all of it for *needles*: canary plaintexts planted during a run,
every simulated device's private key material, every password, login key and
backup key.  Each needle is searched in the encodings a careless code path
could use (raw, hex, base64 and base64url at each of the three byte
alignments).  Zero hits is the only pass.

It also checks that every stored blob (outside the quarantine prefix) begins
with an age header: the server must only ever hold ciphertext.

The search is one pass per haystack over fixed-length prefixes, so its cost
grows with the bytes scanned, not with bytes × needles.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Every needle form is at least this long; shorter secrets are refused (a
# 12-byte prefix of random or encoded key material doesn't occur by chance).
PREFIX = 12

AGE_MAGICS = (b"age-encryption.org/v1\n", b"-----BEGIN AGE ENCRYPTED FILE-----")


@dataclass(frozen=True)
class Needle:
    """One secret, by label, with every encoded form it is searched in."""

    label: str
    forms: tuple[bytes, ...] = field(repr=False)


def needle(label: str, secret: bytes | str) -> Needle:
    """The searchable forms of ``secret``.

    Raises:
        ValueError: the secret is shorter than :data:`PREFIX` bytes (too short
            to search for without false positives).
    """
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(raw) < PREFIX:
        raise ValueError(f"needle {label!r} is shorter than {PREFIX} bytes")
    forms = {raw, raw.hex().encode(), raw.hex().upper().encode()}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for offset in range(3):
            # A secret embedded in a larger base64 field is encoded at one of
            # three alignments; the middle of each encoding is stable.
            encoded = encode(b"\x00" * offset + raw).rstrip(b"=")
            # Characters wholly inside the secret: from ceil(8*offset/6) up to
            # the last two, which may straddle the secret's end.
            middle = encoded[(8 * offset + 5) // 6 : len(encoded) - 2]
            if len(middle) >= PREFIX:
                forms.add(middle)
        forms.add(encode(raw).rstrip(b"="))
    return Needle(label=label, forms=tuple(sorted(f for f in forms if len(f) >= PREFIX)))


@dataclass(frozen=True)
class Haystack:
    kind: str  # "s3-object", "dynamodb-item", "secret", "log"
    name: str
    data: bytes = field(repr=False)


@dataclass
class AuditReport:
    """What was scanned, what was found, and whether the audit passed."""

    scanned: dict[str, int] = field(default_factory=dict)  # kind -> count
    scanned_bytes: dict[str, int] = field(default_factory=dict)  # kind -> bytes
    hits: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, where, label)
    not_ciphertext: list[str] = field(default_factory=list)  # blob keys without an age header
    needles: int = 0

    @property
    def passed(self) -> bool:
        return not self.hits and not self.not_ciphertext and sum(self.scanned.values()) > 0

    def summary(self) -> str:
        lines = [f"privacy audit: {self.needles} secrets searched, in every encoding"]
        for kind in sorted(self.scanned):
            count, size = self.scanned[kind], self.scanned_bytes[kind]
            lines.append(f"  scanned {count:>7} {kind}(s), {size:>12,} bytes")
        for kind, where, label in self.hits:
            lines.append(f"  HIT  {label} in {kind} {where}")
        for key in self.not_ciphertext:
            lines.append(f"  NOT CIPHERTEXT  s3 object {key} has no age header")
        lines.append("  verdict: " + ("PASS (0 hits)" if self.passed else "FAIL"))
        return "\n".join(lines)


class NeedleIndex:
    """All needle forms, indexed by their first :data:`PREFIX` bytes."""

    def __init__(self, needles: Iterable[Needle]) -> None:
        self._by_prefix: dict[bytes, list[tuple[bytes, str]]] = {}
        self.count = 0
        for item in needles:
            self.count += 1
            for form in item.forms:
                self._by_prefix.setdefault(form[:PREFIX], []).append((form, item.label))

    def find(self, data: bytes) -> set[str]:
        """Labels of every needle that occurs in ``data``."""
        found: set[str] = set()
        by_prefix = self._by_prefix
        if not by_prefix or len(data) < PREFIX:
            return found
        view = memoryview(data)
        for i in range(len(data) - PREFIX + 1):
            candidates = by_prefix.get(view[i : i + PREFIX].tobytes())
            if candidates:
                for form, label in candidates:
                    if data.startswith(form, i):
                        found.add(label)
        return found


def audit(
    haystacks: Iterable[Haystack],
    needles: Iterable[Needle],
    *,
    is_blob: Callable[[Haystack], bool] = lambda h: False,
) -> AuditReport:
    """Search every haystack for every needle; check blobs are age files."""
    index = NeedleIndex(needles)
    report = AuditReport(needles=index.count)
    for stack in haystacks:
        report.scanned[stack.kind] = report.scanned.get(stack.kind, 0) + 1
        report.scanned_bytes[stack.kind] = report.scanned_bytes.get(stack.kind, 0) + len(stack.data)
        for label in sorted(index.find(stack.data)):
            report.hits.append((stack.kind, stack.name, label))
        if is_blob(stack) and not stack.data.startswith(AGE_MAGICS):
            report.not_ciphertext.append(stack.name)
    return report


# --- reading everything the server side holds -----------------------------------------


def aws_haystacks(
    client: Callable[[str], Any],
    *,
    prefix: str,
    skip_secret_ids: Sequence[str] = (),
) -> Iterator[Haystack]:
    """Every S3 object version, DynamoDB item and secret whose name starts
    with ``prefix`` (e.g. ``sealbox-local`` / ``sealbox/local``), except the
    secrets named in ``skip_secret_ids`` (the app signing key).

    ``client(service)`` returns a boto3 client for the account to audit.
    """
    s3 = client("s3")
    for bucket in s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        if not name.startswith(prefix):
            continue
        paginator = s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=name):
            for version in page.get("Versions", []):
                body = s3.get_object(
                    Bucket=name, Key=version["Key"], VersionId=version["VersionId"]
                )["Body"].read()
                yield Haystack("s3-object", f"s3://{name}/{version['Key']}", body)
    ddb = client("dynamodb")
    for table in _all_tables(ddb):
        if not table.startswith(prefix):
            continue
        for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            for item in page.get("Items", []):
                yield Haystack("dynamodb-item", table, _item_bytes(item))
    sm = client("secretsmanager")
    secret_prefix = prefix.replace("-", "/", 1)
    for page in sm.get_paginator("list_secrets").paginate():
        for secret in page.get("SecretList", []):
            name = secret["Name"]
            if not name.startswith(secret_prefix) or name in skip_secret_ids:
                continue
            for version_id in secret.get("SecretVersionsToStages", {}):
                value = sm.get_secret_value(SecretId=name, VersionId=version_id)
                data = value.get("SecretBinary") or value.get("SecretString", "").encode()
                yield Haystack("secret", name, data)


def _all_tables(ddb: Any) -> Iterator[str]:
    for page in ddb.get_paginator("list_tables").paginate():
        yield from page.get("TableNames", [])


def _item_bytes(item: Mapping[str, Any]) -> bytes:
    """An item as bytes: its JSON form plus every binary attribute raw."""
    binaries: list[bytes] = []

    def walk(value: Any) -> Any:
        if isinstance(value, bytes | bytearray):
            binaries.append(bytes(value))
            return base64.b64encode(value).decode()
        if isinstance(value, Mapping):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set):
            return [walk(v) for v in value]
        return value

    text = json.dumps(walk(item), sort_keys=True, default=str).encode()
    return b"\n".join([text, *binaries])
