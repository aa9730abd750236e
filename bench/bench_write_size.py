"""Why the client writes 16 KiB at a time: 1 GiB written with `os.write` in slices of 16 KiB to
1 MiB, to the disk (bench/out, ext4) and to /dev/shm (tmpfs), from a 1 GiB buffer file in
/dev/shm read into one reused 1 MiB buffer (the client's receive buffer size). `sync` and a pause
before each run (as figure 2), sizes alternating, medians.

    .venv/bin/python bench/bench_write_size.py [--runs 4]

Results: bench/out/client-write-size.json (rendered into RESULTS.md by run_client_benchmarks.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from common import OUT, median, save_json, say

GIB = 1 << 30
MIB = 1 << 20
SIZES = (16 << 10, 64 << 10, 256 << 10, MIB)
SETTLE_SECONDS = 3.0


def write_once(source: Path, target: Path, piece: int) -> float:
    """Seconds to copy ``source`` to a new ``target`` in ``piece``-byte writes (file closed)."""
    buf = bytearray(MIB)
    view = memoryview(buf)
    t0 = time.perf_counter()
    with open(source, "rb", buffering=0) as src:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            while n := src.readinto(view):
                pos = 0
                while pos < n:
                    pos += os.write(fd, view[pos : min(pos + piece, n)])
        finally:
            os.close(fd)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=4)
    opts = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    source_dir = Path(tempfile.mkdtemp(prefix="bench-write-src-", dir="/dev/shm"))
    source = source_dir / "source.bin"
    with open(source, "wb") as fh:
        for _ in range(GIB // MIB):
            fh.write(os.urandom(MIB))
    targets = {
        "disk (bench/out)": Path(tempfile.mkdtemp(prefix="bench-write-", dir=OUT)),
        "/dev/shm (tmpfs)": Path(tempfile.mkdtemp(prefix="bench-write-", dir="/dev/shm")),
    }
    runs: dict[str, dict[str, list[float]]] = {t: {} for t in targets}
    result: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_before": os.getloadavg(),
        "kernel": platform.release(),
    }
    try:
        for k in range(opts.runs):
            for label, folder in targets.items():
                for piece in SIZES:
                    target = folder / f"out-{k}-{piece}"
                    os.sync()
                    time.sleep(SETTLE_SECONDS)
                    secs = write_once(source, target, piece)
                    target.unlink()
                    runs[label].setdefault(str(piece), []).append(secs)
                    say(f"write 1 GiB -> {label} in {piece >> 10} KiB writes: {secs:.2f} s")
    finally:
        source.unlink(missing_ok=True)
        source_dir.rmdir()
        for folder in targets.values():
            for p in folder.glob("*"):
                p.unlink()
            folder.rmdir()
    result["load_after"] = os.getloadavg()
    result["runs"] = runs
    result["median"] = {t: {s: median(v) for s, v in r.items()} for t, r in runs.items()}
    path = save_json("client-write-size.json", result)
    say(f"write sizes: {path}")


if __name__ == "__main__":
    main()
