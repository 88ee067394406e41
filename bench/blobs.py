"""Blob storage throughput and device memory, against the local stack.

    python -m bench.blobs                          # 100 MiB, RSS at 1 MiB and 100 MiB
    python -m bench.blobs --size 256MiB --skip-rss
    python -m bench.blobs --skip-throughput --rss-sizes 1MiB,1GiB

Starts ``sealbox local``'s stack (moto server + ``chalice local`` + the
event poller) on loopback and measures, on one file of ``--size`` bytes:

* ``sealbox``: ``BlobClient.upload`` (age encryption streamed into the
  presigned PUT or multipart parts, then the commit check) and
  ``BlobClient.download`` (presigned GET streamed through age decryption to
  a file), over HTTP;
* ``boto3``: ``put_object`` of the same plaintext file and a streamed
  ``get_object`` into a file (flushed to disk like ours), against the same
  moto server -- the floor the storage itself sets, with no encryption, no
  API and no checks.

MB/s are 10**6 bytes per second of plaintext.  Peak RSS: each upload and
download at every ``--rss-sizes`` value runs in a child process of its own
(``VmHWM``); the ratio between the largest and smallest shows whether
device memory depends on the file size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.age_throughput import human, make_plaintext, parse_size
from chalicelib.wire.b64 import b64url_encode
from client_sim import age
from client_sim.api import ApiClient
from client_sim.blobs import BlobClient
from client_sim.transport import HttpTransport
from sealbox_tools.local_stack import LocalStack, stage_environment

_BLOCK = 1024 * 1024


def _register(url: str, name: str) -> str:
    api = ApiClient(HttpTransport(url))
    login_key = b64url_encode(hashlib.sha256(name.encode()).digest())
    api.register(name, login_key)
    return api.access_token(api.login(name, login_key).refresh_token).access_token


def _peak_rss_kib() -> int:
    # VmHWM: ru_maxrss would include the parent's memory carried across exec.
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(mode: str, url: str, args: list[str]) -> None:
    """One measured transfer; prints the peak RSS as JSON."""
    token = os.environ["BENCH_BLOB_TOKEN"]
    identity = age.parse_identity(os.environ["BENCH_BLOB_IDENTITY"])
    assert isinstance(identity, age.X25519Identity)
    origins = os.environ["BENCH_BLOB_STORAGE_ORIGINS"].split()
    blobs = BlobClient(HttpTransport(url), lambda: token, storage_origins=origins)
    if mode == "upload":
        info = blobs.upload(args[0], recipients=[identity.recipient()])
    else:
        info = blobs.download(args[0], args[1], identities=[identity])
    print(json.dumps({"blob_id": info.blob_id, "peak_rss_kib": _peak_rss_kib()}))


def _run_child(
    stack: LocalStack, token: str, identity: age.X25519Identity, *args: str
) -> dict[str, Any]:
    url = stack.url
    env = {
        **os.environ,
        "BENCH_BLOB_STORAGE_ORIGINS": stack.aws_endpoint,
        # Secrets through the environment, not argv (ps shows argv).
        "BENCH_BLOB_TOKEN": token,
        "BENCH_BLOB_IDENTITY": identity.secret_string(),
        # Arguments as JSON: a blob id may start with "-", which argv parsing
        # would take for an option.
        "BENCH_BLOB_CHILD": json.dumps([args[0], url, *args[1:]]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench.blobs", "--child"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def throughput(stack: LocalStack, size: int, workdir: Path) -> None:
    token = _register(stack.url, f"bench-{os.getpid()}-tp")
    identity = age.X25519Identity.generate()
    blobs = BlobClient(
        HttpTransport(stack.url), lambda: token, storage_origins=[stack.aws_endpoint]
    )
    plain, out = workdir / "plain", workdir / "out"
    make_plaintext(plain, size)

    started = time.perf_counter()
    info = blobs.upload(plain, recipients=[identity.recipient()])
    upload_s = time.perf_counter() - started
    started = time.perf_counter()
    blobs.download(info.blob_id, out, identities=[identity])
    download_s = time.perf_counter() - started
    assert out.stat().st_size == size

    s3 = stack.client("s3")
    bucket = stage_environment(stack.stage)["SEALBOX_BLOBS_BUCKET"]
    started = time.perf_counter()
    with plain.open("rb") as body:
        s3.put_object(Bucket=bucket, Key="bench/plain", Body=body, ContentLength=size)
    put_s = time.perf_counter() - started
    started = time.perf_counter()
    stream = s3.get_object(Bucket=bucket, Key="bench/plain")["Body"]
    with (workdir / "boto3.out").open("wb") as sink:
        while chunk := stream.read(_BLOCK):
            sink.write(chunk)
        sink.flush()
        os.fsync(sink.fileno())
    get_s = time.perf_counter() - started
    assert (workdir / "boto3.out").stat().st_size == size

    print(f"\nthroughput on {human(size)} against moto over HTTP (MB/s = 10^6 bytes/s)")
    print(f"{'path':48s} {'upload':>10s} {'download':>10s}")
    print(
        f"{'sealbox (age streaming + presigned + checks)':48s} "
        f"{size / upload_s / 1e6:10.1f} {size / download_s / 1e6:10.1f}"
    )
    print(
        f"{'boto3 put_object / get_object (plaintext)':48s} "
        f"{size / put_s / 1e6:10.1f} {size / get_s / 1e6:10.1f}"
    )
    print(f"sealbox / boto3: upload {put_s / upload_s:.2f}, download {get_s / download_s:.2f}")
    print(
        f"sealbox upload {upload_s:.2f} s ({info.size - size} bytes of age overhead), "
        f"download {download_s:.2f} s"
    )


def rss(stack: LocalStack, sizes: list[int], workdir: Path) -> None:
    token = _register(stack.url, f"bench-{os.getpid()}-rss")
    identity = age.X25519Identity.generate()
    results: dict[int, tuple[int, int]] = {}
    for size in sizes:
        plain, out = workdir / f"rss-{size}", workdir / f"rss-{size}.out"
        make_plaintext(plain, size)
        up = _run_child(stack, token, identity, "upload", str(plain))
        down = _run_child(stack, token, identity, "download", up["blob_id"], str(out))
        results[size] = (up["peak_rss_kib"], down["peak_rss_kib"])
        plain.unlink()
        out.unlink()
    print("\npeak RSS of one device process (BlobClient over HTTP, file to file)")
    print(f"{'file size':>12s} {'upload MiB':>12s} {'download MiB':>13s}")
    for size, (up_kib, down_kib) in results.items():
        print(f"{human(size):>12s} {up_kib / 1024:12.1f} {down_kib / 1024:13.1f}")
    small, large = min(results), max(results)
    if small != large:
        print(
            f"ratio {human(large)} / {human(small)}: "
            f"upload {results[large][0] / results[small][0]:.2f}, "
            f"download {results[large][1] / results[small][1]:.2f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="100MiB", help="throughput file size (100MiB)")
    parser.add_argument("--rss-sizes", default="1MiB,100MiB", help="comma-separated sizes")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, url, *rest = json.loads(os.environ["BENCH_BLOB_CHILD"])
        child(mode, url, rest)
        return
    with tempfile.TemporaryDirectory(prefix="blob-bench-") as tmp, LocalStack() as stack:
        workdir = Path(tmp)
        if not args.skip_throughput:
            throughput(stack, parse_size(args.size), workdir)
        if not args.skip_rss:
            rss(stack, [parse_size(s) for s in args.rss_sizes.split(",")], workdir)


if __name__ == "__main__":
    main()
