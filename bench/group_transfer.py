"""What a group member's device downloads to move to a new epoch, counted at its transports.

    python -m bench.group_transfer [--members 100] [--json]

In process (the Chalice app on moto, real devices with post-quantum cards):
an admin makes a group of ``--members``, one member's device follows it, the
admin removes another member, and the follower syncs.  Every reply that
device receives is counted where it arrives: the API transport (each body)
and the object transport (each presigned GET's body).  Three ways to move
on, in the same run:

* ``catchup``: what the device does by default, one binary catch-up frame
  (``GET /v1/groups/{id}/catchup``: the delta, its own wrap inline and the
  roster check; the poll is the same request);
* ``delta``: the JSON routes (``Groups.compact = False``): the head poll,
  the epoch's delta with a presigned ranged GET, the wrap;
* ``full`` (the baseline): the way a device moved on before deltas: the head
  with the full roster, the full epoch, the epoch again with the wrap's
  ranged GET, then the wrap.

For each:

* ``reply_bodies``: every reply body as received (JSON, base64, presigned
  URLs, the binary frame): what the 1.3 KB goal is read against;
* ``epoch_and_wrap``: the group data in them that moves the device to the new
  epoch (the epoch in whatever form, and the device's wrap), and
  ``head_poll`` the group data of the head request (the roster's hash, or
  the head epoch and full roster); for a frame, the whole frame is counted
  as ``epoch_and_wrap`` (it carries its roster check too);
* ``reply_headers``: the response headers the transports received, counted
  as HTTP/1.1 would carry them (status line, ``Name: value`` lines, the
  blank line).  In process these are the headers the app and moto set; a
  deployed API Gateway and S3 add their own (request ids, dates), which this
  doesn't see, so this reading is a lower bound.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._env import in_process_aws
from chalicelib.wire.b64 import b64url_decode
from client_sim.transport import HttpReply, InProcessObjectTransport, Transport

PASSWORD = "a benchmark password, long enough"


@dataclass
class Counted:
    """Replies one device received: ``(what, body bytes, group data bytes, kind)``;
    kind ``move`` (an epoch or a wrap) or ``poll`` (the head)."""

    replies: list[tuple[str, int, int, str]] = field(default_factory=list)
    #: Response header bytes, as HTTP/1.1 would carry them.
    headers: int = 0

    def reset(self) -> None:
        self.replies.clear()
        self.headers = 0

    def summary(self) -> dict[str, Any]:
        return {
            "requests": [what for what, _, _, _ in self.replies],
            "reply_bodies": sum(size for _, size, _, _ in self.replies),
            "reply_headers": self.headers,
            "epoch_and_wrap": sum(data for _, _, data, kind in self.replies if kind == "move"),
            "head_poll": sum(data for _, _, data, kind in self.replies if kind == "poll"),
        }


class CountingTransport:
    """The API transport of the measured device: counts each reply body."""

    def __init__(self, inner: Transport, counted: Counted) -> None:
        self._inner = inner
        self._counted = counted

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpReply:
        reply = self._inner.request(method, path, body=body, headers=headers)
        label = _label(path)
        data, kind = 0, "other"
        self._counted.headers += header_bytes(reply.status, reply.headers)
        if reply.status == 200 and label.startswith("/v1/groups/{id}/catchup"):
            data, kind = len(reply.body), "move"
        elif reply.status == 200 and label.startswith("/v1/groups/{id}/epochs/"):
            # The group data in an epoch reply: the epoch (full or delta) it carries.
            data = len(b64url_decode(str(json.loads(reply.body)["data"])))
            kind = "move"
        elif reply.status == 200 and label.startswith("/v1/groups/{id}") and "/" not in label[16:]:
            # The head: epoch and roster (joining, or before deltas), or the roster hash.
            reply_json = json.loads(reply.body)
            fields = ("head", "roster", "roster_hash")
            data = sum(len(b64url_decode(str(reply_json[f]))) for f in fields if f in reply_json)
            kind = "poll"
        self._counted.replies.append((f"{method} {label}", len(reply.body), data, kind))
        return reply


def header_bytes(status: int, headers: Mapping[str, str]) -> int:
    """The bytes of a status line and ``headers`` as HTTP/1.1 carries them."""
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
    return sum(len(line.encode("latin-1")) + 2 for line in lines) + 2


def _label(path: str) -> str:
    """``path`` with ids elided: ``/v1/groups/{id}/epochs/1?card_id=…&form=delta``."""
    route, _, query = path.partition("?")
    route = re.sub(r"/[A-Za-z0-9_-]{22,43}(?=/|$)", "/{id}", route)
    params = [p if not p.startswith(("card_id=", "identity=", "nonce=")) else p.split("=")[0] + "=…"
              for p in query.split("&") if p]  # fmt: skip
    return route + ("?" + "&".join(params) if params else "")


class CountingObjects(InProcessObjectTransport):
    """The object transport of the measured device: counts each GET body (a wrap)."""

    def __init__(self, counted: Counted) -> None:
        super().__init__()
        self._counted = counted

    def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> Any:
        return _CountedResponse(super().get(url, headers=headers), self._counted)


class _CountedResponse:
    """An object GET's response whose body bytes are counted as they are read."""

    def __init__(self, inner: Any, counted: Counted) -> None:
        self._inner = inner
        self._counted = counted
        self.status = inner.status
        self.headers = inner.headers
        counted.headers += header_bytes(inner.status, dict(inner.headers))

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self._inner.read(size)
        self._counted.replies.append(("GET <presigned wrap range>", len(data), len(data), "move"))
        return data

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> _CountedResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run(members: int) -> dict[str, Any]:
    in_process_aws()
    import boto3
    from chalice.test import Client
    from moto import mock_aws

    from app import app
    from chalicelib import wiring
    from chalicelib.config import Settings
    from chalicelib.storage.appkeys import ensure_app_key
    from chalicelib.storage.ktlog import ensure_log_key
    from client_sim.device import Device
    from client_sim.origins import s3_bucket_origins
    from client_sim.passwords import PASSWORD_KDF_SIMULATION
    from client_sim.transport import ChaliceTransport
    from sealbox_tools.local_stack import PROJECT_DIR, stage_environment
    from sealbox_tools.provisioning import provision

    logging.getLogger("sealbox.api").setLevel(logging.WARNING)
    env = stage_environment("test")
    origins = s3_bucket_origins(env["SEALBOX_BLOBS_BUCKET"], "us-east-1")
    out: dict[str, Any] = {"members": members}
    with mock_aws(), tempfile.TemporaryDirectory() as tmp:

        def clients(service: str) -> Any:
            return boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]

        provision(clients, stage="test")
        ensure_app_key(clients("secretsmanager"), env["SEALBOX_APP_KEY_SECRET_ID"], time.time())
        ensure_log_key(
            clients("secretsmanager"), env["SEALBOX_KT_LOG_KEY_SECRET_ID"], env["SEALBOX_KT_ORIGIN"]
        )
        wiring.install(wiring.Container(Settings.from_env(env)))
        with Client(app, stage_name="test", project_dir=str(PROJECT_DIR)) as client:
            shared = ChaliceTransport(client)
            counted = Counted()

            def device(name: str, transport: Transport, objects: Any = None) -> Device:
                return Device(
                    Path(tmp) / name, transport, kdf=PASSWORD_KDF_SIMULATION,
                    sleep=lambda _: None, objects=objects or InProcessObjectTransport(),
                    storage_origins=origins,
                )  # fmt: skip

            start = time.perf_counter()
            admin = device("admin", shared)
            admin.register("admin", PASSWORD)
            follower = device(
                "follower", CountingTransport(shared, counted), CountingObjects(counted)
            )
            follower.register("follower", PASSWORD)
            others = [f"member-{i:04d}" for i in range(members - 2)]
            for name in others:
                device(name, shared).register(name, PASSWORD)
            out["setup_s"] = round(time.perf_counter() - start, 1)
            group = admin.create_group(["follower", *others])
            follower.group(group.group_id).info()  # joins: epoch 0 and the roster, once

            for number, key in enumerate(("catchup", "delta"), start=1):
                # The device's default, then the JSON routes.
                follower._groups.compact = key == "catchup"
                group.remove_members([others[number - 1]])
                counted.reset()
                info = follower.group(group.group_id).info()
                assert info.epoch == number
                assert others[number - 1] not in info.members
                out[key] = counted.summary()

            # The baseline: moving on the way devices did before deltas.
            group.remove_members([others[2]])
            counted.reset()
            _full_move(follower, group.group_id, 3)
            out["full"] = counted.summary()
    out["goal_bytes"] = 1300
    return out


def _full_move(device: Any, gid: str, number: int) -> None:
    """What ``Groups.sync`` requested to move to epoch ``number`` before deltas."""
    api, session = device._api, device._session
    _, current = device._keys()
    session.authed(lambda t: api.get_group(t, gid, roster=True))
    session.authed(lambda t: api.get_group_epoch(t, gid, number, None))
    reply = session.authed(lambda t: api.get_group_epoch(t, gid, number, current.card_id))
    target = reply["wrap"]
    with device._groups._objects.get(target["url"], headers=target["headers"]) as response:
        response.read(int(target["length"]) + 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.members)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"group of {args.members} members, post-quantum cards (setup {result['setup_s']} s)")
    rows = (
        ("catch-up frame (default)", "catchup"),
        ("JSON deltas", "delta"),
        ("before deltas (baseline)", "full"),
    )
    for label, key in rows:
        part = result[key]
        print(
            f"{label}: every reply body {part['reply_bodies']} B in {len(part['requests'])} "
            f"replies (goal <= 1300 B); group data: epoch + own wrap {part['epoch_and_wrap']} B, "
            f"head poll {part['head_poll']} B; response headers (in process, a lower bound) "
            f"{part['reply_headers']} B"
        )
        for what in part["requests"]:
            print(f"    {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
