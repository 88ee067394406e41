"""One device transfer in a process of its own, so its peak memory is its own.

    python -m tests.e2e.blob_worker upload BASE_URL SOURCE [RECIPIENT ...]
    python -m tests.e2e.blob_worker download BASE_URL BLOB_ID DESTINATION

The access token and the age identity arrive in the environment
(``SEALBOX_E2E_TOKEN``, ``SEALBOX_E2E_IDENTITY``), never in argv, which any
process on the machine can read.  Prints one JSON line: the blob id, the
seconds the transfer took and the process's peak RSS in KiB.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

from client_sim import age
from client_sim.blobs import BlobClient
from client_sim.transport import HttpTransport


def peak_rss_kib() -> int:
    """This process's peak resident set size.

    ``VmHWM`` of the current address space: ``ru_maxrss`` would also count
    the parent's memory, which Linux carries over into a child across
    ``exec``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main(argv: list[str]) -> None:
    mode, url = argv[0], argv[1]
    token = os.environ["SEALBOX_E2E_TOKEN"]
    identity = age.parse_identity(os.environ["SEALBOX_E2E_IDENTITY"])
    assert isinstance(identity, age.X25519Identity)
    origins = os.environ["SEALBOX_STORAGE_ORIGINS"].split()
    blobs = BlobClient(HttpTransport(url), lambda: token, storage_origins=origins)
    started = time.perf_counter()
    if mode == "upload":
        info = blobs.upload(argv[2], to=argv[3:], recipients=[identity.recipient()])
    else:
        info = blobs.download(argv[2], argv[3], identities=[identity])
    seconds = time.perf_counter() - started
    print(json.dumps({"blob_id": info.blob_id, "seconds": seconds, "peak_rss_kib": peak_rss_kib()}))


if __name__ == "__main__":
    main(sys.argv[1:])
