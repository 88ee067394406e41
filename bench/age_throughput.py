"""age throughput and memory: Sealbox's streaming age against baselines.

    python -m bench.age_throughput                       # 256 MiB, everything
    python -m bench.age_throughput --size 64MiB --skip-rss
    python -m bench.age_throughput --skip-throughput --rss-sizes 1MiB,1GiB

Throughput (MB/s, 1 MB = 10**6 bytes) on one file of ``--size`` bytes, read
from a temporary file and written to /dev/null:

* ``sealbox``: ``client_sim.age.encrypt`` / ``decrypt`` (X25519 recipient);
* ``raw loop``: our ChaCha20-Poly1305 wrapper over 64 KiB chunks with the
  same file reads and writes, i.e. the floor our format code sits on;
* ``age CLI``: Go's ``age`` on the same file (if installed).

Peak RSS: each of our encrypt/decrypt runs in a child process, measured with
``os.wait4``'s rusage, at each ``--rss-sizes`` value; the ratio between the
largest and smallest shows whether memory depends on the file size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from client_sim import _hazmat, age

CHUNK = 64 * 1024
_UNITS = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "b": 1}


def parse_size(text: str) -> int:
    lowered = text.strip().lower()
    for unit, factor in _UNITS.items():
        if lowered.endswith(unit):
            return int(float(lowered[: -len(unit)]) * factor)
    return int(lowered)


def human(n: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor:
            return f"{n / factor:g} {unit}"
    return f"{n} B"


def make_plaintext(path: Path, size: int) -> None:
    # Random blocks repeated: incompressible enough, and cheap to produce.
    block = os.urandom(1024 * 1024)
    with path.open("wb") as out:
        left = size
        while left:
            n = min(left, len(block))
            out.write(block[:n])
            left -= n


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _ours_encrypt(src: Path, dst: Path | str, recipient: age.X25519Recipient) -> None:
    with src.open("rb") as fin, open(dst, "wb") as fout:
        age.encrypt(fin, fout, [recipient])


def _ours_decrypt(src: Path, identity: age.X25519Identity) -> None:
    with src.open("rb") as fin, open(os.devnull, "wb") as fout:
        age.decrypt(fin, fout, [identity])


def _raw_loop(src: Path, *, open_: bool) -> None:
    key, nonce = bytes(32), bytes(12)
    size = CHUNK + 16 if open_ else CHUNK
    if open_:
        # Pre-seal one chunk so the loop measures opening, same bytes each time.
        sealed = _hazmat.chacha20poly1305_seal(key, nonce, bytes(CHUNK))
    with src.open("rb") as fin, open(os.devnull, "wb") as fout:
        while chunk := fin.read(size):
            if open_:
                fout.write(_hazmat.chacha20poly1305_open(key, nonce, sealed))
            else:
                fout.write(_hazmat.chacha20poly1305_seal(key, nonce, chunk))


def throughput(size: int, workdir: Path, *, age_cli: bool) -> None:
    plain, enc = workdir / "plain", workdir / "plain.age"
    make_plaintext(plain, size)
    identity = age.X25519Identity.generate()
    key_file = workdir / "key.txt"
    key_file.write_text(identity.secret_string() + "\n")
    rows: list[tuple[str, float, float | None]] = []
    # Every timed run writes to /dev/null; the file to decrypt is made untimed.
    enc_s = timed(lambda: _ours_encrypt(plain, os.devnull, identity.recipient()))
    _ours_encrypt(plain, enc, identity.recipient())
    dec_s = timed(lambda: _ours_decrypt(enc, identity))
    rows.append(("sealbox age (Python)", enc_s, dec_s))
    raw_enc = timed(lambda: _raw_loop(plain, open_=False))
    raw_dec = timed(lambda: _raw_loop(enc, open_=True))
    rows.append(("raw ChaCha20-Poly1305 64 KiB loop", raw_enc, raw_dec))
    cli = shutil.which("age")
    if age_cli and cli:
        recipient = str(identity.recipient())
        cli_enc = timed(
            lambda: subprocess.run([cli, "-r", recipient, "-o", os.devnull, str(plain)], check=True)
        )
        cli_dec = timed(
            lambda: subprocess.run(
                [cli, "-d", "-i", str(key_file), "-o", os.devnull, str(enc)], check=True
            )
        )
        rows.append(("age CLI (Go)", cli_enc, cli_dec))
    print(f"\nthroughput on {human(size)} (MB/s = 10^6 bytes/s)")
    print(f"{'implementation':36s} {'encrypt':>10s} {'decrypt':>10s}")
    for name, e, d in rows:
        dec = f"{size / d / 1e6:10.1f}" if d else f"{'-':>10s}"
        print(f"{name:36s} {size / e / 1e6:10.1f} {dec}")
    ours_e, ours_d = rows[0][1], rows[0][2] or 0.0
    print(f"sealbox / raw loop: encrypt {raw_enc / ours_e:.2f}, decrypt {raw_dec / ours_d:.2f}")
    if len(rows) == 3 and rows[2][2]:
        print(
            f"sealbox / age CLI:  encrypt {rows[2][1] / ours_e:.2f}, "
            f"decrypt {rows[2][2] / ours_d:.2f}"
        )


def child(mode: str, path: str, key: str) -> None:
    """Entry point for one measured child process."""
    identity = age.parse_identity(key)
    assert isinstance(identity, age.X25519Identity)
    if mode == "encrypt":
        src = Path(path)
        with src.open("rb") as fin, open(os.devnull, "wb") as fout:
            age.encrypt(fin, fout, [identity.recipient()])
    else:
        _ours_decrypt(Path(path), identity)


def peak_rss_kib(args: list[str]) -> int:
    proc = subprocess.Popen([sys.executable, "-m", "bench.age_throughput", *args])
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"child failed: {args}")
    return int(usage.ru_maxrss)  # KiB on Linux


def rss(sizes: list[int], workdir: Path) -> None:
    identity = age.X25519Identity.generate()
    key = identity.secret_string()
    results: dict[int, tuple[int, int]] = {}
    for size in sizes:
        plain, enc = workdir / f"rss-{size}", workdir / f"rss-{size}.age"
        make_plaintext(plain, size)
        _ours_encrypt(plain, enc, identity.recipient())
        # The key goes through an environment variable, not argv (ps shows argv).
        os.environ["BENCH_AGE_KEY"] = key
        e = peak_rss_kib(["--child", "encrypt", str(plain)])
        d = peak_rss_kib(["--child", "decrypt", str(enc)])
        results[size] = (e, d)
        plain.unlink()
        enc.unlink()
    print("\npeak RSS of one child process (sealbox age, streaming a file to /dev/null)")
    print(f"{'file size':>12s} {'encrypt MiB':>12s} {'decrypt MiB':>12s}")
    for size, (e, d) in results.items():
        print(f"{human(size):>12s} {e / 1024:12.1f} {d / 1024:12.1f}")
    small, large = min(results), max(results)
    if small != large:
        e_ratio = results[large][0] / results[small][0]
        d_ratio = results[large][1] / results[small][1]
        print(
            f"ratio {human(large)} / {human(small)}: encrypt {e_ratio:.2f}, decrypt {d_ratio:.2f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="256MiB", help="throughput file size (256MiB)")
    parser.add_argument("--rss-sizes", default="1MiB,1GiB", help="comma-separated sizes")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--skip-age-cli", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], os.environ["BENCH_AGE_KEY"])
        return
    with tempfile.TemporaryDirectory(prefix="age-bench-") as tmp:
        workdir = Path(tmp)
        if not args.skip_throughput:
            throughput(parse_size(args.size), workdir, age_cli=not args.skip_age_cli)
        if not args.skip_rss:
            rss([parse_size(s) for s in args.rss_sizes.split(",")], workdir)


if __name__ == "__main__":
    main()
