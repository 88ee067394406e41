"""The privacy audit: prove the server side holds nothing it shouldn't.

DESIGN invariant 1 says plaintext and private keys stay on the device.  The
audit checks it the blunt way: it reads *every byte* the server side holds
-- every S3 object and every version of it, every DynamoDB item, every
Secrets Manager secret except the app signing key, and the captured server
logs -- and searches all of it for *needles*: canary plaintexts planted
during a run, every simulated device's private key material, every password,
login key and backup key.  Each needle is searched in the encodings a
careless code path could use (raw, hex, base64 and base64url at each of the
three byte alignments, and text escaped as in a JSON string), also with line
breaks removed, so base64 wrapped into lines (MIME, PEM) is found too.  Zero
hits is the only pass.

It also checks that every stored blob (every S3 object outside the
quarantine prefix, every version) is shaped like an age v1 file, with the
same pure sniffer the backend runs at commit (:mod:`chalicelib.wire.agefile`):
the server must only ever hold ciphertext.  Rejected uploads are deleted at
once now (only their size and SHA-256 are kept in the record); objects under
the quarantine prefix can only be copies an older release kept, expired by
the bucket within a day.  They are searched for needles like everything
else but not required to be age files.

Where the needles come from: a fleet run (:mod:`sealbox_tools.fleet`) collects
them as it goes and writes them to a needles file (JSON, 0600) next to its
report, so ``sealbox audit`` can repeat the scan later against a running
``sealbox local``.

The search is one pass per haystack over fixed-length prefixes (a second
one without its line breaks if it has any), so its cost grows with the
bytes scanned, not with bytes × needles.  Forms at least
:data:`LONG` bytes long (every key, password and canary a fleet plants) are
found by looking at every :data:`STRIDE`-th position only: any occurrence
covers one of them, and a bitmap of the windows a form can show there
turns almost every look into one bit test (see :class:`NeedleIndex`).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from chalicelib.wire.agefile import SNIFF_WINDOW, NotAgeFile, sniff
from chalicelib.wire.b64 import b64url_decode, b64url_encode
from chalicelib.wire.group_wraps import WRAPS_MAGIC
from client_sim.files import atomic_write

# Every needle form is at least this long; shorter secrets are refused (a
# 12-byte prefix of random or encoded key material doesn't occur by chance).
PREFIX = 12

#: Objects under this prefix of the blob bucket are rejected uploads
#: (chalicelib.storage.blob_objects.QUARANTINE_PREFIX, which this module
#: does not import: it runs on the device side).
QUARANTINE_PREFIX: Final = "quarantine/"
NEEDLES_FILE_VERSION: Final = 1


@dataclass(frozen=True)
class Needle:
    """One secret, by label, with every encoded form it is searched in."""

    label: str
    forms: tuple[bytes, ...] = field(repr=False)


def needle(label: str, secret: bytes | str) -> Needle:
    """The searchable forms of ``secret``: raw, hex (both cases), standard
    and URL-safe base64 at each byte alignment, the bytes' Python repr, and,
    when it is UTF-8 text, as a JSON string's content (escaped, with and
    without ``ensure_ascii``).

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
    # Bytes formatted with %r, %s or str() (a careless log line) appear as
    # their Python repr, b'\x8f...', quoted with ' or " as the bytes need.
    forms.add(repr(raw)[2:-1].encode("ascii"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        pass  # not text: it can't be a JSON string
    else:
        # Text inside a JSON document (the app's log lines, a JSON body) has
        # its quotes, backslashes and control characters escaped, and with
        # ensure_ascii (json.dumps' default) every non-ASCII character too.
        for ensure_ascii in (True, False):
            forms.add(json.dumps(text, ensure_ascii=ensure_ascii)[1:-1].encode("utf-8"))
    return Needle(label=label, forms=tuple(sorted(f for f in forms if len(f) >= PREFIX)))


@dataclass(frozen=True)
class Haystack:
    """Bytes the server side holds, by kind and where they are.

    ``blob`` marks a stored blob: it must be an age file.
    """

    kind: str  # "s3-object", "dynamodb-item", "secret", "log"
    name: str
    data: bytes = field(repr=False)
    blob: bool = False
    #: A piece of a long haystack after its first (a captured log, read a
    #: chunk at a time): its first ``overlap`` bytes end the previous piece,
    #: so a needle across the seam is still found; counted once.
    overlap: int = 0


def is_age_file(data: bytes) -> bool:
    """True when ``data`` is shaped like an age v1 file (binary or armored)."""
    try:
        sniff(data[:SNIFF_WINDOW], len(data))
    except NotAgeFile:
        return False
    return True


@dataclass
class AuditReport:
    """What was scanned, what was found, and whether the audit passed."""

    scanned: dict[str, int] = field(default_factory=dict)  # kind -> count
    scanned_bytes: dict[str, int] = field(default_factory=dict)  # kind -> bytes
    hits: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, where, label)
    not_ciphertext: list[str] = field(default_factory=list)  # blob keys without an age header
    needles: int = 0
    blobs_checked: int = 0
    #: What could not be scanned and why (shown in the summary).
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No hit and no plaintext blob, after searching something for something.

        An audit that scanned no haystack, or searched for no needle, found
        nothing by construction: that is not a pass.
        """
        return (
            not self.hits
            and not self.not_ciphertext
            and sum(self.scanned.values()) > 0
            and self.needles > 0
        )

    def summary(self) -> str:
        lines = [f"privacy audit: {self.needles} secrets searched, in every encoding"]
        for kind in sorted(self.scanned):
            count, size = self.scanned[kind], self.scanned_bytes[kind]
            lines.append(f"  scanned {count:>7} {kind}(s), {size:>12,} bytes")
        lines.append(f"  {self.blobs_checked} stored blob(s) checked for an age header")
        for note in self.notes:
            lines.append(f"  note: {note}")
        for kind, where, label in self.hits:
            lines.append(f"  HIT  {label} in {kind} {where}")
        for key in self.not_ciphertext:
            lines.append(f"  NOT CIPHERTEXT  s3 object {key} has no age header")
        lines.append("  verdict: " + ("PASS (0 hits)" if self.passed else "FAIL"))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view (labels and places only: never a secret)."""
        return {
            "passed": self.passed,
            "needles": self.needles,
            "scanned": dict(sorted(self.scanned.items())),
            "scanned_bytes": dict(sorted(self.scanned_bytes.items())),
            "blobs_checked": self.blobs_checked,
            "hits": [{"kind": k, "where": w, "label": label} for k, w, label in self.hits],
            "not_ciphertext": list(self.not_ciphertext),
            "notes": list(self.notes),
            "summary": self.summary(),
        }


#: Forms at least this long are searched at every STRIDE-th position only.
STRIDE: Final = 16
LONG: Final = PREFIX + STRIDE - 1


class NeedleIndex:
    """All needle forms, indexed for a fast one-pass search.

    Short forms (under :data:`LONG` bytes) are looked up by their first
    :data:`PREFIX` bytes at every position.  A long form occurring at ``p``
    spans the positions ``p .. p + STRIDE - 1`` with ``PREFIX`` bytes to
    spare, and one of those is a multiple of ``STRIDE``: so the scan looks
    only at multiples of ``STRIDE``, asks a bitmap whether the ``PREFIX``
    bytes there can be part of a long form (a form's windows at offsets
    ``0 .. STRIDE - 1`` set its bits), and only on a yes looks up each of the
    ``STRIDE`` starts that window could belong to.  The bitmap answers a
    false yes about 1% of the time; it never answers a false no.
    """

    def __init__(self, needles: Iterable[Needle]) -> None:
        self._short: dict[bytes, list[tuple[bytes, str]]] = {}
        self._long: dict[bytes, list[tuple[bytes, str]]] = {}
        self.count = 0
        long_forms = 0
        for item in needles:
            self.count += 1
            for form in item.forms:
                if len(form) >= LONG:
                    self._long.setdefault(form[:PREFIX], []).append((form, item.label))
                    long_forms += 1
                else:
                    self._short.setdefault(form[:PREFIX], []).append((form, item.label))
        # About 64 bits per window keeps false yeses near 1%; 2^16 to 2^28 bits.
        bits = 1 << min(max((long_forms * STRIDE * 64).bit_length(), 16), 28)
        self._mask = bits - 1
        self._bitmap = bytearray(bits // 8)
        # Windows hashed as they are cut, not listed first: a 1,000-phone
        # fleet's needles have over a million windows, which as a list of
        # byte strings were part of the audit's peak memory.
        for entries in self._long.values():
            for form, _ in entries:
                for o in range(STRIDE):
                    h = hash(form[o : o + PREFIX]) & self._mask
                    self._bitmap[h >> 3] |= 1 << (h & 7)

    def find(self, data: bytes) -> set[str]:
        """Labels of every needle that occurs in ``data``, or in ``data`` with
        its line breaks (CR, LF) removed."""
        found = self._find(data)
        if b"\n" in data or b"\r" in data:
            # Base64 wrapped into lines (MIME, PEM, armor) is split wherever a
            # line ends, which may be inside a secret's encoding.
            found |= self._find(data.translate(None, b"\r\n"))
        return found

    def _find(self, data: bytes) -> set[str]:
        found: set[str] = set()
        if len(data) < PREFIX:
            return found
        if self._short:
            self._find_short(data, found)
        if self._long:
            self._find_long(data, found)
        return found

    def _find_short(self, data: bytes, found: set[str]) -> None:
        by_prefix = self._short
        view = memoryview(data)
        for i in range(len(data) - PREFIX + 1):
            candidates = by_prefix.get(view[i : i + PREFIX].tobytes())
            if candidates:
                for form, label in candidates:
                    if data.startswith(form, i):
                        found.add(label)

    def _find_long(self, data: bytes, found: set[str]) -> None:
        by_prefix, bitmap, mask = self._long, self._bitmap, self._mask
        for i in range(0, len(data) - PREFIX + 1, STRIDE):
            h = hash(data[i : i + PREFIX]) & mask
            if not bitmap[h >> 3] & (1 << (h & 7)):
                continue
            for start in range(i, max(i - STRIDE, -1), -1):
                candidates = by_prefix.get(data[start : start + PREFIX])
                if candidates:
                    for form, label in candidates:
                        if data.startswith(form, start):
                            found.add(label)


def audit(
    haystacks: Iterable[Haystack],
    needles: Iterable[Needle],
    *,
    is_blob: Callable[[Haystack], bool] = lambda h: h.blob,
) -> AuditReport:
    """Search every haystack for every needle; check blobs are age files."""
    index = NeedleIndex(needles)
    report = AuditReport(needles=index.count)
    previous: set[tuple[str, str, str]] = set()
    for stack in haystacks:
        if not stack.overlap:
            report.scanned[stack.kind] = report.scanned.get(stack.kind, 0) + 1
            previous = set()
        new_bytes = len(stack.data) - stack.overlap
        report.scanned_bytes[stack.kind] = report.scanned_bytes.get(stack.kind, 0) + new_bytes
        for label in sorted(index.find(stack.data)):
            hit = (stack.kind, stack.name, label)
            if hit not in previous:  # one hit per haystack, however many pieces
                report.hits.append(hit)
                previous.add(hit)
        if is_blob(stack):
            report.blobs_checked += 1
            if not (is_age_file(stack.data) or _is_wraps_object(stack)):
                report.not_ciphertext.append(stack.name)
    return report


def _is_wraps_object(stack: Haystack) -> bool:
    """A group epoch's wraps object (HPKE ciphertexts behind a versioned
    header, docs/spec/groups.md), stored under ``groups/`` in the blobs
    bucket: not an age file, and not plaintext either."""
    return (
        stack.kind == "s3-object"
        and "/groups/" in stack.name
        and stack.data.startswith(WRAPS_MAGIC)
    )


# --- needles files -----------------------------------------------------------------------


def write_needles(path: Path, secrets: Iterable[tuple[str, bytes]]) -> None:
    """Write ``(label, secret)`` pairs for a later ``sealbox audit``.

    The file holds the secrets themselves (simulated devices' keys and
    passwords), so it is created 0600 and renamed into place whole.
    """
    document = {
        "version": NEEDLES_FILE_VERSION,
        "needles": [{"label": label, "secret": b64url_encode(secret)} for label, secret in secrets],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(document, indent=1).encode("utf-8"))


def read_needles(path: Path) -> list[Needle]:
    """The needles of a file :func:`write_needles` wrote.

    Raises:
        ValueError: not a needles file (or a version this code doesn't read).
        OSError: the file can't be read.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("version") != NEEDLES_FILE_VERSION:
            raise ValueError("unsupported needles file version")
        return [
            needle(str(item["label"]), b64url_decode(str(item["secret"])))
            for item in document["needles"]
        ]
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path.name} is not a needles file") from exc


# --- logs ----------------------------------------------------------------------------------

# Attributes every LogRecord has; anything else on a record came from
# ``extra=`` and is searched too.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class LogCapture(logging.Handler):
    """Keeps the text of every log record it sees, for the audit.

    Installed on the root logger at DEBUG for an in-process run, it sees
    what CloudWatch would get if every logger without a level of its own
    were turned up to DEBUG.  Each record is kept as its logger name, level,
    message, any ``extra`` fields and its formatted exception, rendered at
    once (a record's arguments may change after it is emitted).

    Kept compressed: a fleet's DEBUG logs are hundreds of thousands of
    repetitive lines (a 150-phone run: 361,000 lines, 48 MB of text), which
    as Python strings were about a third of the run's memory.  Each
    logger's lines are encoded at once and deflated every
    :data:`LOG_CHUNK` bytes; :meth:`haystacks` inflates one chunk at a time
    (a whole logger's text, inflated and joined, was the peak of a fleet's
    audit: about a megabyte per phone).
    """

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        # logger name -> (deflated chunks, the lines not deflated yet)
        self._records: dict[str, tuple[list[bytes], bytearray]] = {}
        self._guard = threading.Lock()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            parts = [record.levelname, record.getMessage()]
            extras = {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRIBUTES}
            if extras:
                parts.append(repr(extras))
            if record.exc_info:
                parts.append(logging.Formatter().formatException(record.exc_info))
            if record.stack_info:
                parts.append(record.stack_info)
            text = " ".join(parts)
        except Exception:  # noqa: BLE001 - a broken record must not break the run
            text = f"{record.levelname} unrenderable record {record.msg!r}"
        line = text.encode("utf-8", "backslashreplace") + b"\n"
        with self._guard:
            chunks, tail = self._records.setdefault(record.name, ([], bytearray()))
            tail += line
            if len(tail) >= LOG_CHUNK:
                chunks.append(zlib.compress(bytes(tail), 1))
                tail.clear()
            self.count += 1

    def haystacks(self) -> Iterator[Haystack]:
        """One haystack per logger: its records, one per line, given in
        pieces of about :data:`LOG_CHUNK` bytes.

        Each piece after a logger's first starts with the last
        :data:`LOG_OVERLAP` bytes of the one before (its ``overlap``): a
        needle form up to that long is found wherever it lies, as in the
        whole text.  Only one piece is inflated at a time.
        """
        with self._guard:
            snapshot = {name: (list(c), bytes(t)) for name, (c, t) in self._records.items()}
        for name, (chunks, tail) in sorted(snapshot.items()):
            carried = b""
            pieces = len(chunks) + (1 if tail or not chunks else 0)
            for n in range(pieces):
                text = zlib.decompress(chunks[n]) if n < len(chunks) else tail
                if n == pieces - 1:
                    text = text.removesuffix(b"\n")  # as the whole text ended
                yield Haystack("log", name, carried + text, overlap=len(carried))
                carried = text[-LOG_OVERLAP:]


#: Bytes of log lines kept plain per logger before they are deflated.
LOG_CHUNK = 256 * 1024
#: Bytes a log piece repeats from the one before: longer than any needle
#: form (a secret's longest encoding is a few hundred bytes).
LOG_OVERLAP = 16 * 1024


def log_file_haystacks(paths: Iterable[Path]) -> Iterator[Haystack]:
    """Each log file whole (``sealbox local --log-file``, or a fleet's own)."""
    for path in paths:
        yield Haystack("log", str(path), path.read_bytes())


# --- reading everything the server side holds -----------------------------------------


def aws_haystacks(
    client: Callable[[str], Any],
    *,
    prefix: str,
    skip_secret_ids: Sequence[str] = (),
    notes: list[str] | None = None,
) -> Iterator[Haystack]:
    """Every S3 object version, DynamoDB item and secret whose name starts
    with ``prefix`` (e.g. ``sealbox-local`` / ``sealbox/local``), except the
    secrets named in ``skip_secret_ids`` (the app signing key).  Every S3
    object outside the quarantine prefix is marked as a blob.

    ``client(service)`` returns a boto3 client for the account to audit.
    What is stored but can't be read is appended to ``notes``: the parts of
    unfinished multipart uploads (S3 has no call that returns them).

    Raises:
        LookupError: no bucket, or no table, has a name starting with
            ``prefix`` (another stage, or another account or endpoint).  A
            stage always has both; without them the audit would read only
            the logs, and a clean log is no evidence of a clean stage.
    """
    s3 = client("s3")
    buckets = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    buckets = [name for name in buckets if name.startswith(prefix)]
    if not buckets:
        raise LookupError(f"no S3 bucket named {prefix}*: is the stage deployed there?")
    for name in buckets:
        unfinished = sum(
            len(page.get("Uploads", []))
            for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=name)
        )
        if unfinished and notes is not None:
            notes.append(
                f"s3://{name}: {unfinished} unfinished multipart upload(s); "
                "S3 can't return their parts, which were not scanned"
            )
        paginator = s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=name):
            for version in page.get("Versions", []):
                key = version["Key"]
                body = s3.get_object(Bucket=name, Key=key, VersionId=version["VersionId"])[
                    "Body"
                ].read()
                yield Haystack(
                    "s3-object",
                    f"s3://{name}/{key}",
                    body,
                    blob=not key.startswith(QUARANTINE_PREFIX),
                )
    ddb = client("dynamodb")
    tables = [table for table in _all_tables(ddb) if table.startswith(prefix)]
    if not tables:
        raise LookupError(f"no DynamoDB table named {prefix}*: is the stage deployed there?")
    for table in tables:
        for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            for item in page.get("Items", []):
                yield Haystack("dynamodb-item", table, _item_bytes(item))
    sm = client("secretsmanager")
    # Secrets are named after the stack (``sealbox-local-oprf-key``); secrets
    # of stages made before that were ``sealbox/local/...``: read both.
    secret_prefixes = (prefix, prefix.replace("-", "/", 1))
    for page in sm.get_paginator("list_secrets").paginate():
        for secret in page.get("SecretList", []):
            name = secret["Name"]
            if not name.startswith(secret_prefixes) or name in skip_secret_ids:
                continue
            for version_id in _all_secret_versions(sm, name):
                value = sm.get_secret_value(SecretId=name, VersionId=version_id)
                data = value.get("SecretBinary") or value.get("SecretString", "").encode()
                yield Haystack("secret", name, data)


def _all_secret_versions(sm: Any, secret_id: str) -> Iterator[str]:
    """Every version id of a secret, with a staging label or without.

    ListSecrets (``SecretVersionsToStages``) shows only versions that carry
    a staging label; a version that lost its last label (deprecated) still
    holds its value until Secrets Manager deletes it.
    """
    # botocore has no paginator for this operation: follow NextToken here.
    kwargs: dict[str, Any] = {"SecretId": secret_id, "IncludeDeprecated": True}
    while True:
        page = sm.list_secret_version_ids(**kwargs)
        for version in page.get("Versions", []):
            yield version["VersionId"]
        if not page.get("NextToken"):
            return
        kwargs["NextToken"] = page["NextToken"]


def _all_tables(ddb: Any) -> Iterator[str]:
    for page in ddb.get_paginator("list_tables").paginate():
        yield from page.get("TableNames", [])


def _item_bytes(item: Mapping[str, Any]) -> bytes:
    """An item as bytes: its JSON form, then every binary and string raw.

    Every attribute value at any depth (maps, lists, sets) and every map key
    is appended as stored (strings UTF-8): the JSON form escapes quotes,
    backslashes, control and non-ASCII characters, so a secret held in a
    string attribute would not occur in it byte for byte.
    """
    raw: list[bytes] = []

    def walk(value: Any) -> Any:
        if isinstance(value, bytes | bytearray):
            raw.append(bytes(value))
            return base64.b64encode(value).decode()
        if isinstance(value, str):
            raw.append(value.encode("utf-8", "surrogatepass"))
            return value
        if isinstance(value, Mapping):
            return {walk(k): walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set):
            return [walk(v) for v in value]
        return value

    text = json.dumps(walk(item), sort_keys=True, default=str).encode()
    return b"\n".join([text, *raw])
