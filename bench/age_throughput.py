"""age speed and memory: Sealbox's streaming age against the floor and the age CLI.

    python -m bench.age_throughput                      # 256 MiB, RSS at 1 MiB and 1 GiB
    python -m bench.age_throughput --size 64MiB --runs 3 --skip-rss
    python -m bench.age_throughput --skip-throughput --rss-sizes 1MiB,1GiB

Three comparisons, each the median of ``--runs`` runs that alternate
between the two sides (so both see the same machine load):

* in process: ``age.encrypt`` / ``age.decrypt`` of a ``--size`` file to
  /dev/null against the *raw loop*, ChaCha20-Poly1305 over the same file in
  64 KiB chunks (read into one buffer, one key object, counter nonces,
  written to /dev/null) -- the floor our format sits on;
* whole process: the ``sealbox age`` command (``-r`` / ``-d -i``, ``-o`` a
  file) against Go's ``age`` with the same arguments: wall time, CPU time
  and peak RSS (GNU time), our modules loaded from compiled bytecode as in
  an installed copy (:func:`compile_sealbox`);
* memory: peak RSS of ``sealbox age`` encrypting and decrypting at each
  ``--rss-sizes`` size; the ratio between the largest and the smallest
  shows whether memory depends on the file size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.results import ratio, record
from client_sim import _hazmat, age

CHUNK = 64 * 1024
_TAG = 16
_UNITS = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "b": 1}
#: Peak RSS budget for one ``sealbox age`` process (issue 17).
RSS_BUDGET_MIB = 32.0


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


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def raw_seal(src: Path, dst: Path | str) -> None:
    """The floor for sealing: 64 KiB chunks, one buffer, one key, no format."""
    key = _hazmat.ChaCha20Poly1305Key(bytes(32))
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    counter = 0
    with src.open("rb", buffering=0) as fin, open(dst, "wb") as fout:
        while n := fin.readinto(buffer):
            fout.write(key.seal(_nonce(counter, n < CHUNK), view[:n]))
            counter += 1


def raw_open(src: Path) -> None:
    """The floor for opening: what :func:`raw_seal` wrote, chunk by chunk."""
    key = _hazmat.ChaCha20Poly1305Key(bytes(32))
    size = CHUNK + _TAG
    buffer = bytearray(size)
    view = memoryview(buffer)
    counter = 0
    with src.open("rb", buffering=0) as fin, open(os.devnull, "wb") as fout:
        while n := fin.readinto(buffer):
            fout.write(key.open(_nonce(counter, n < size), view[:n]))
            counter += 1


def alternate(cases: dict[str, Callable[[], Any]], runs: int) -> dict[str, list[float]]:
    """Wall seconds of each case, ``runs`` rounds, the cases interleaved."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, fn in cases.items():
            started = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - started)
    return samples


def in_process(plain: Path, workdir: Path, runs: int) -> dict[str, Any]:
    size = plain.stat().st_size
    identity = age.X25519Identity.generate()
    enc, raw = workdir / "plain.age", workdir / "plain.raw"
    with plain.open("rb") as fin, enc.open("wb") as fout:
        age.encrypt(fin, fout, [identity.recipient()])
    raw_seal(plain, raw)

    def seal() -> None:
        with plain.open("rb") as fin, open(os.devnull, "wb") as fout:
            age.encrypt(fin, fout, [identity.recipient()])

    def open_() -> None:
        with enc.open("rb") as fin, open(os.devnull, "wb") as fout:
            age.decrypt(fin, fout, [identity])

    samples = alternate(
        {
            "seal": seal,
            "raw_seal": lambda: raw_seal(plain, os.devnull),
            "open": open_,
            "raw_open": lambda: raw_open(raw),
        },
        runs,
    )
    medians = {name: statistics.median(values) for name, values in samples.items()}
    enc.unlink()
    raw.unlink()
    return {"size": size, "runs": runs, "median_s": medians, "samples_s": samples}


# GNU time measures a child's peak RSS cleanly: a child forked from this
# (large) process would report this process's memory as its own peak, since
# Linux carries the parent's high-water mark across fork and exec.
_GNU_TIME = "/usr/bin/time"


def _run_measured(argv: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (KiB) of one command.

    Raises:
        SystemExit: the command failed, or GNU time is missing.
    """
    if not os.access(_GNU_TIME, os.X_OK):
        raise SystemExit(f"{_GNU_TIME} (GNU time) is needed to measure peak RSS")
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.perf_counter()
        done = subprocess.run(
            [_GNU_TIME, "-f", "%U %S %M", "-o", report.name, *argv],
            stdin=subprocess.DEVNULL,
            check=False,
        )
        wall = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(f"failed: {argv[0]} (exit {done.returncode})")
        user, system, peak = report.read().split()[-3:]
    return wall, float(user) + float(system), int(peak)


def sealbox_command() -> str:
    """The ``sealbox`` console script of this interpreter's environment."""
    beside = Path(sys.executable).parent / "sealbox"
    found = str(beside) if beside.exists() else shutil.which("sealbox")
    if not found:
        raise SystemExit("no sealbox command (pip install -e . first)")
    return found


def compile_sealbox(sealbox: str, workdir: Path) -> None:
    """Run ``sealbox age`` both ways once with bytecode writing allowed.

    An installed sealbox runs from compiled bytecode (pip compiles modules
    at install).  A checkout run under ``PYTHONDONTWRITEBYTECODE=1`` would
    instead compile every module ``sealbox age`` imports from source in each
    measured process (about 18 ms of its start-up on the 2-core machine),
    a cost no installed copy pays.  One run without the variable writes the
    ``.pyc`` files next to the sources (``__pycache__``, ignored by git);
    the measured runs load them, whatever their environment.  Where the
    sources are read-only nothing is written and nothing changes.
    """
    identity = age.X25519Identity.generate()
    key_file = workdir / "warm-key.txt"
    key_file.write_text(identity.secret_string() + "\n")
    key_file.chmod(0o600)
    plain, enc, back = workdir / "warm", workdir / "warm.age", workdir / "warm.out"
    plain.write_bytes(b"warm-up")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for argv in (
        [sealbox, "age", "-r", str(identity.recipient()), "-o", str(enc), str(plain)],
        [sealbox, "age", "-d", "-i", str(key_file), "-o", str(back), str(enc)],
    ):
        subprocess.run(argv, stdin=subprocess.DEVNULL, env=env, check=True)
    for path in (key_file, plain, enc, back):
        path.unlink()


def whole_process(plain: Path, workdir: Path, runs: int, cli: str) -> dict[str, Any]:
    identity = age.X25519Identity.generate()
    key_file = workdir / "key.txt"
    key_file.write_text(identity.secret_string() + "\n")
    key_file.chmod(0o600)
    recipient = str(identity.recipient())
    sealbox = sealbox_command()
    compile_sealbox(sealbox, workdir)
    enc = workdir / "whole.age"
    subprocess.run([cli, "-r", recipient, "-o", str(enc), str(plain)], check=True)
    commands = {
        "sealbox_encrypt": [
            sealbox,
            "age",
            "-r",
            recipient,
            "-o",
            str(workdir / "s.age"),
            str(plain),
        ],
        "age_encrypt": [cli, "-r", recipient, "-o", str(workdir / "g.age"), str(plain)],
        "sealbox_decrypt": [
            sealbox,
            "age",
            "-d",
            "-i",
            str(key_file),
            "-o",
            str(workdir / "s.out"),
            str(enc),
        ],
        "age_decrypt": [cli, "-d", "-i", str(key_file), "-o", str(workdir / "g.out"), str(enc)],
    }
    samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            samples[name].append(_run_measured(argv))
    if (workdir / "s.out").read_bytes() != plain.read_bytes():
        raise SystemExit("sealbox age -d did not give the plaintext back")
    for name in ("s.age", "g.age", "s.out", "g.out", "whole.age"):
        (workdir / name).unlink()
    return {
        name: {
            "wall_s": statistics.median(s[0] for s in values),
            "cpu_s": statistics.median(s[1] for s in values),
            "peak_rss_kib": max(s[2] for s in values),
            "samples": values,
        }
        for name, values in samples.items()
    }


def rss(sizes: list[int], workdir: Path) -> dict[int, dict[str, int]]:
    identity = age.X25519Identity.generate()
    key_file = workdir / "rss-key.txt"
    key_file.write_text(identity.secret_string() + "\n")
    key_file.chmod(0o600)
    sealbox = sealbox_command()
    compile_sealbox(sealbox, workdir)
    out: dict[int, dict[str, int]] = {}
    for size in sizes:
        plain, enc, back = workdir / f"rss-{size}", workdir / f"rss-{size}.age", workdir / "back"
        make_plaintext(plain, size)
        recipient = str(identity.recipient())
        _, _, e = _run_measured([sealbox, "age", "-r", recipient, "-o", str(enc), str(plain)])
        _, _, d = _run_measured(
            [sealbox, "age", "-d", "-i", str(key_file), "-o", str(back), str(enc)]
        )
        out[size] = {"encrypt_peak_rss_kib": e, "decrypt_peak_rss_kib": d}
        for path in (plain, enc, back):
            path.unlink()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="256MiB", help="throughput file size (256MiB)")
    parser.add_argument("--runs", type=int, default=5, help="alternating runs per median (5)")
    parser.add_argument("--rss-sizes", default="1MiB,1GiB", help="comma-separated sizes")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--skip-age-cli", action="store_true")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"ratios": []}
    ratios = result["ratios"]
    with tempfile.TemporaryDirectory(prefix="age-bench-", dir=os.environ.get("TMPDIR")) as tmp:
        workdir = Path(tmp)
        if not args.skip_throughput:
            size = parse_size(args.size)
            plain = workdir / "plain"
            make_plaintext(plain, size)
            inproc = in_process(plain, workdir, args.runs)
            result["in_process"] = inproc
            m = inproc["median_s"]
            print(f"\nin process, {human(size)}, median of {args.runs} alternating runs (MB/s)")
            for name in ("seal", "raw_seal", "open", "raw_open"):
                print(f"  {name:10s} {size / m[name] / 1e6:9.1f}")

            def mbs(seconds: float) -> str:
                return f"{size / seconds / 1e6:.0f} MB/s"

            ratios.append(
                ratio(
                    "age_seal_vs_raw",
                    f"age seal in process, {human(size)} (throughput)",
                    m["raw_seal"] / m["seal"],
                    ours=mbs(m["seal"]),
                    baseline=f"raw ChaCha20-Poly1305 64 KiB loop {mbs(m['raw_seal'])}",
                    goal=">= 0.95",
                )
            )
            ratios.append(
                ratio(
                    "age_open_vs_raw",
                    f"age open in process, {human(size)} (throughput)",
                    m["raw_open"] / m["open"],
                    ours=mbs(m["open"]),
                    baseline=f"raw ChaCha20-Poly1305 64 KiB loop {mbs(m['raw_open'])}",
                    goal=">= 0.9",
                )
            )
            cli = shutil.which("age")
            if cli and not args.skip_age_cli:
                whole = whole_process(plain, workdir, args.runs, cli)
                result["whole_process"] = {"size": size, "runs": args.runs, **whole}
                print(f"\nwhole process, {human(size)}, median of {args.runs} alternating runs")
                for name, stats in whole.items():
                    print(
                        f"  {name:16s} wall {stats['wall_s']:6.3f} s  cpu {stats['cpu_s']:6.3f} s"
                        f"  peak {stats['peak_rss_kib'] / 1024:6.1f} MiB"
                    )
                for op in ("encrypt", "decrypt"):
                    ours, go = whole[f"sealbox_{op}"], whole[f"age_{op}"]
                    ratios.append(
                        ratio(
                            f"age_cli_{op}_wall",
                            f"`sealbox age` {op} {human(size)}, whole process, wall",
                            ours["wall_s"] / go["wall_s"],
                            ours=f"{ours['wall_s']:.3f} s",
                            baseline=f"age CLI (Go) {go['wall_s']:.3f} s",
                            goal="<= 1.0",
                        )
                    )
                    ratios.append(
                        ratio(
                            f"age_cli_{op}_cpu",
                            f"`sealbox age` {op} {human(size)}, whole process, CPU",
                            ours["cpu_s"] / go["cpu_s"],
                            ours=f"{ours['cpu_s']:.3f} s",
                            baseline=f"age CLI (Go) {go['cpu_s']:.3f} s",
                        )
                    )
            plain.unlink()
        if not args.skip_rss:
            sizes = [parse_size(s) for s in args.rss_sizes.split(",")]
            peaks = rss(sizes, workdir)
            result["rss"] = {str(size): peak for size, peak in peaks.items()}
            print("\npeak RSS of one `sealbox age` process (MiB)")
            for size, peak in peaks.items():
                print(
                    f"  {human(size):>9s}  encrypt {peak['encrypt_peak_rss_kib'] / 1024:6.1f}"
                    f"  decrypt {peak['decrypt_peak_rss_kib'] / 1024:6.1f}"
                )
            small, large = min(peaks), max(peaks)
            for op in ("encrypt", "decrypt"):
                field = f"{op}_peak_rss_kib"
                top = max(peak[field] for peak in peaks.values()) / 1024
                ratios.append(
                    ratio(
                        f"age_cli_{op}_peak_rss",
                        f"`sealbox age` {op} peak RSS, largest of "
                        f"{', '.join(human(s) for s in sizes)}",
                        top / RSS_BUDGET_MIB,
                        ours=f"{top:.1f} MiB",
                        baseline=f"budget {RSS_BUDGET_MIB:g} MiB",
                        goal="<= 1.0",
                    )
                )
                if small != large:
                    ratios.append(
                        ratio(
                            f"age_cli_{op}_rss_flat",
                            f"`sealbox age` {op} peak RSS, {human(large)} / {human(small)}",
                            peaks[large][field] / peaks[small][field],
                            ours=f"{peaks[large][field] / 1024:.1f} MiB at {human(large)}",
                            baseline=f"{peaks[small][field] / 1024:.1f} MiB at {human(small)}",
                            goal="<= 1.05",
                        )
                    )
    for entry in ratios:
        print(f"ratio {entry['key']}: {entry['value']} (goal {entry['goal']}, met {entry['met']})")
    record("age_throughput", result)


if __name__ == "__main__":
    main()
