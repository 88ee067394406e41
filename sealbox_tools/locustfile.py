"""Locust users that are simulated phones: load beyond one machine.

    locust -f sealbox_tools/locustfile.py --master --host https://api.example.com \\
        --sealbox-storage-origin https://BUCKET.s3.amazonaws.com
    locust -f sealbox_tools/locustfile.py --worker --master-host MASTER   # on every machine

Every Locust user is one phone running the real device SDK
(:class:`client_sim.Device` over HTTP): it signs up (account, keys made on
the phone, card published, keys backed up), then sends sealed messages and
files to other phones of its worker process and reads its inbox, in the
proportions of the fleet's ``standard`` scenario mix (docs/fleet.md).
Every API request and presigned transfer is reported to Locust's
statistics by route template (``GET /v1/blobs/{id}``, ``PUT object``);
a 4xx or 5xx answer is a Locust failure.

Deliveries are verified without a central ledger
(:mod:`sealbox_tools.fleet.derived`): every plaintext is derived from the
run's seed and its message id, so the recipient re-derives it, compares
content hashes, and checks that the signer the SDK verified is the sender
the id names.  Each check is reported as ``verify delivery``; a mismatch is
a Locust failure named after its kind.  Every worker must get the same
``--sealbox-seed``.
"""

from __future__ import annotations

import io
import itertools
import random
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from locust import User, between, events, task
from locust.env import Environment

from client_sim.device import Device
from client_sim.errors import DeviceError
from client_sim.passwords import PASSWORD_KDF_SIMULATION
from client_sim.transport import (
    HttpObjectTransport,
    HttpReply,
    HttpTransport,
    ObjectResponse,
    Readable,
)
from sealbox_tools.fleet.derived import Judgement, derive, judge, message_id
from sealbox_tools.fleet.metrics import route_template
from sealbox_tools.fleet.plan import scenario

# Phones of this worker process that have signed up (recipients for sends).
_REGISTERED: list[str] = []
# Unique per process: usernames never collide across workers or runs.
_PROCESS_TAG = f"lc{secrets.token_hex(3)}"
_NUMBERS = itertools.count()
_MIX = scenario("standard")
VERIFY = "verify delivery"


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _options(parser: Any) -> None:
    group = parser.add_argument_group("sealbox")
    group.add_argument(
        "--sealbox-seed",
        default="1",
        help="Seed every plaintext derives from (the same on every worker).",
    )
    group.add_argument(
        "--sealbox-storage-origin",
        action="append",
        default=[],
        help="Where the stage's presigned URLs may point (sealbox local: its aws "
        "endpoint; a deployed stage: its bucket's origin); repeatable.",
    )


class _Reported:
    """Reports every API request to Locust's statistics."""

    def __init__(self, inner: HttpTransport, environment: Environment) -> None:
        self._inner = inner
        self._events = environment.events

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        started = time.perf_counter()
        exception: Exception | None = None
        reply: HttpReply | None = None
        try:
            reply = self._inner.request(method, path, body=body, headers=headers)
        except Exception as exc:  # reported, then re-raised
            exception = exc
            raise
        finally:
            # A 4xx is often the SDK's expected answer (no backup yet, a
            # token to renew): the operation's outcome is judged per task.
            if reply is not None and reply.status >= 500:
                exception = RuntimeError(f"HTTP {reply.status}")
            self._events.request.fire(  # type: ignore[no-untyped-call]
                request_type=method,
                name=route_template(method, path).partition(" ")[2],
                response_time=(time.perf_counter() - started) * 1000,
                response_length=len(reply.body) if reply is not None else 0,
                exception=exception,
                context={},
            )
        return reply


class _ReportedObjects:
    """Reports presigned transfers (``PUT object``, ``GET object``)."""

    def __init__(self, inner: HttpObjectTransport, environment: Environment) -> None:
        self._inner = inner
        self._events = environment.events

    def _fire(self, name: str, started: float, status: int | None, length: int) -> None:
        failed = status is None or status >= 300
        self._events.request.fire(  # type: ignore[no-untyped-call]
            request_type="S3",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=RuntimeError(f"HTTP {status}") if failed else None,
            context={},
        )

    def put(
        self, url: str, body: Readable, *, length: int, headers: Mapping[str, str]
    ) -> HttpReply:
        started = time.perf_counter()
        try:
            reply = self._inner.put(url, body, length=length, headers=headers)
        except Exception:
            self._fire("PUT object", started, None, 0)
            raise
        self._fire("PUT object", started, reply.status, length)
        return reply

    def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> ObjectResponse:
        # Timed to the response's headers; the body streams into decryption.
        started = time.perf_counter()
        try:
            response = self._inner.get(url, headers=headers)
        except Exception:
            self._fire("GET object", started, None, 0)
            raise
        self._fire("GET object", started, response.status, 0)
        return response


class Phone(User):
    """One simulated phone (see the module docstring)."""

    wait_time = between(0.0, 0.2)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.seed = str(getattr(options, "sealbox_seed", "1"))
        assert self.host, "give the API's URL with --host"
        # The API's own origin too: the wrapper below hides the HttpTransport
        # that would otherwise tell the SDK.
        origins = (*(getattr(options, "sealbox_storage_origin", []) or []), _origin(self.host))
        self.rng = random.Random()  # noqa: S311 - load shape, not secrets
        self.home = tempfile.mkdtemp(prefix="sealbox-locust-")
        self.device = Device(
            self.home,
            _Reported(HttpTransport(self.host), self.environment),
            kdf=PASSWORD_KDF_SIMULATION,
            objects=_ReportedObjects(HttpObjectTransport(), self.environment),
            storage_origins=origins,
        )
        self.identity = f"{_PROCESS_TAG}-{next(_NUMBERS):05d}"
        self.sent = 0
        self.seen: set[str] = set()
        self._operation("sign up", self._sign_up)

    def _sign_up(self) -> None:
        self.device.register(self.identity, secrets.token_urlsafe(18))
        self.device.backup_private_key()
        _REGISTERED.append(self.identity)

    def on_stop(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    # --- the mix ---------------------------------------------------------------------

    def _send(self, sizes: tuple[int, int]) -> None:
        peers = [p for p in _REGISTERED if p != self.identity]
        if not peers:
            return
        k = 1 if self.rng.random() < 0.7 else self.rng.randint(2, _MIX.max_recipients)
        to = self.rng.sample(peers, min(k, len(peers)))
        mid = message_id(self.identity, self.sent, self.rng.randint(*sizes))
        self.sent += 1
        self.device.upload(io.BytesIO(derive(self.seed, mid)), to)

    @task(3)
    def send_message(self) -> None:
        self._operation("send message", lambda: self._send(_MIX.message_bytes))

    @task(1)
    def send_file(self) -> None:
        self._operation("send file", lambda: self._send(_MIX.file_bytes))

    def _operation(self, name: str, run: Callable[[], None]) -> None:
        """Run one SDK operation; report it (a DeviceError is a failure)."""
        started = time.perf_counter()
        failure: Exception | None = None
        try:
            run()
        except DeviceError as exc:
            failure = RuntimeError(type(exc).__name__)
        self.environment.events.request.fire(
            request_type="SDK",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=failure,
            context={},
        )

    @task(4)
    def read_inbox(self) -> None:
        self._operation("read inbox", self._read)

    def _read(self) -> None:
        page = self.device.list_blobs("inbox", limit=50)
        for item in page.items:
            if item.blob_id in self.seen:
                continue
            self.seen.add(item.blob_id)
            started = time.perf_counter()
            out = io.BytesIO()
            try:
                sender = self.device.download(item.blob_id, out)
            except DeviceError as exc:
                self._verified(started, f"{type(exc).__name__}", 0)
                continue
            verdict, _ = judge(self.seed, out.getvalue(), sender.identity)
            failure = None if verdict is Judgement.DELIVERED else verdict.value
            self._verified(started, failure, len(out.getvalue()))

    def _verified(self, started: float, failure: str | None, length: int) -> None:
        self.environment.events.request.fire(
            request_type="CHECK",
            name=VERIFY,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=RuntimeError(failure) if failure else None,
            context={},
        )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
