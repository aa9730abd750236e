"""Uploads (issue #10), side by side in one run:

1. one 1 GiB file: `bl data upload` (a subprocess, as a user runs it: start-up, planning, sha256
   of the file, the upload, the server's sha256 and finalize) against `curl -T` of the same file
   to nginx's WebDAV `PUT` (Debian nginx, `dav_methods PUT`), alternating, 3 runs each, each
   from the same page-cache state (`settle`). Each `bl` run first changes the file's first
   bytes, so the archive never already holds it. Two core layouts, alternating in each round:
   shared (every process on both cores) and split (the servers on one core, the clients on the
   other, as two machines would be);
2. resume after kill -9 at half way: `bl data upload` killed once the server has staged half
   the file, then the same upload again (in-process, so that its byte counts are exact);
3. peak RSS of the `bl` process tree during the 1 GiB uploads, and of the server (before,
   peak).

    .venv/bin/python bench/bench_upload.py [--size-mib 1024] [--runs 3] [--layouts shared,split]

Writes bench/out/upload.json and the "Uploads (issue #10)" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    NGINX,
    OUT,
    PYTHON,
    RssSampler,
    bl_serve,
    compile_sources,
    free_port,
    login,
    machine_notes,
    median,
    pin,
    save_json,
    say,
    stop_process,
    tree_cpu_seconds,
    tree_rss_kib,
    wait_port,
    write_section,
)

TP_PROJECT = "5b0dad8041711001e958b519"  # the demo user is a member of it
START = "<!-- upload-benchmarks:start -->"
END = "<!-- upload-benchmarks:end -->"

DAV_CONF = """\
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/.tmp;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        dav_methods PUT;
        create_full_put_path on;
    }}
}}
"""


def make_file(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 8 << 20)
            fh.write(os.urandom(n))
            left -= n


def touch_head(path: Path, run: int) -> None:
    """New content (and digest) for a run: the first 16 bytes change."""
    with open(path, "r+b") as fh:
        fh.write(f"run{run:013d}".encode())


def settle(src: Path) -> None:
    """The same page-cache state before each timed command: what earlier runs wrote is on disk
    and out of memory, the source file is in memory.

    Both sides keep what they received (nginx's WebDAV files stay, as the archive's objects
    do). Without this the two were not treated alike: deleting nginx's file after its run gave
    its memory back at once, while each object the archive kept grew the page cache into
    memory this virtual machine had not touched yet, and writing into such memory cost the
    writer 4 s of system time per GiB against 0.35 s (`dd` of 1 GiB, kept against deleted:
    docs/decisions.md, "Upload speed"). Dropping the cache needs root; elsewhere the runs go
    without it and the report says so."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        SETTLE["dropped"] = False
    with open(src, "rb") as fh:
        while fh.read(8 << 20):
            pass


SETTLE = {"dropped": True}


def env_for(home: Path, url: str, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BL")}
    home.mkdir(parents=True, exist_ok=True)
    return {**env, "HOME": str(home), "BLHOST": url, "BL_TOKEN": token}


def upload_cmd(path: Path, subject: str) -> list[str]:
    return [
        PYTHON, "-m", "brainlife", "data", "upload", "-p", TP_PROJECT, "-d", "neuro/anat/t1w",
        "-s", subject, "--t1", str(path),
    ]  # fmt: skip


def _wait_cpu(proc: subprocess.Popen[bytes]) -> float:
    """Wait for `proc`; its user + system CPU seconds."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def run_bl(
    path: Path, subject: str, env: dict[str, str], server_pid: int, cores: set[int]
) -> dict[str, float]:
    server_cpu = tree_cpu_seconds(server_pid)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        upload_cmd(path, subject),
        env=env,
        stdout=subprocess.PIPE,
        preexec_fn=lambda: os.sched_setaffinity(0, cores),
    )
    with RssSampler(proc.pid, 0.05) as client_rss, RssSampler(server_pid, 0.1) as server_rss:
        assert proc.stdout is not None
        out = proc.stdout.read()
        client_cpu = _wait_cpu(proc)
    seconds = time.perf_counter() - t0
    server_cpu = tree_cpu_seconds(server_pid) - server_cpu
    if proc.returncode != 0 or b"successfully uploaded" not in out:
        raise RuntimeError(f"bl data upload failed ({proc.returncode}): {out!r}")
    return {
        "seconds": seconds,
        "client_cpu": client_cpu,
        "server_cpu": server_cpu,
        "client_peak_mib": client_rss.peak_mib,
        "server_peak_mib": server_rss.peak_mib,
    }


def run_curl(path: Path, url: str, nginx_pid: int, cores: set[int]) -> dict[str, float]:
    server_cpu = tree_cpu_seconds(nginx_pid)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["curl", "-sS", "--fail", "-o", "/dev/null", "-T", str(path), url],
        preexec_fn=lambda: os.sched_setaffinity(0, cores),
    )
    client_cpu = _wait_cpu(proc)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"curl failed ({proc.returncode})")
    server_cpu = tree_cpu_seconds(nginx_pid) - server_cpu
    return {"seconds": seconds, "client_cpu": client_cpu, "server_cpu": server_cpu}


def resume_after_kill(
    path: Path, size: int, env: dict[str, str], data_dir: Path, url: str, token: str
) -> dict[str, float]:
    from brainlife.client import Client

    touch_head(path, 999)
    proc = subprocess.Popen(upload_cmd(path, "resume"), env=env, stdout=subprocess.DEVNULL)
    staged: Path | None = None
    while True:
        found = sorted((data_dir / "uploads").glob("*/*"))
        if found and found[0].stat().st_size >= size // 2:
            staged = found[0]
            break
        if proc.poll() is not None:
            raise RuntimeError("the upload ended before half way")
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = staged.stat().st_size
    time.sleep(0.5)  # the server writes what was in flight, then sees the connection gone
    held = staged.stat().st_size
    os.environ["HOME"] = env["HOME"]
    with Client(url, token=token) as c:
        plan = c.plan_upload(
            project=TP_PROJECT, datatype="neuro/anat/t1w", files={"t1": path}, subject="resume"
        )
        t0 = time.perf_counter()
        result = c.upload(plan)
        seconds = time.perf_counter() - t0
    return {
        "staged_at_kill": at_kill,
        "held_at_resume": held,
        "rerun_resumed": result.resumed,
        "rerun_sent": result.sent,
        "sent_again_fraction": max(0, result.sent - (size - held)) / size,
        "rerun_fraction": result.sent / size,
        "rerun_seconds": seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--layouts",
        default="shared,split",
        help="comma-separated: shared (every process on every core), split (nginx and bl serve "
        "on the first core, curl and bl on the second)",
    )
    args = ap.parse_args()
    compile_sources()
    size = args.size_mib * 1024 * 1024
    OUT.mkdir(parents=True, exist_ok=True)
    # nginx and the archive each keep every file (settle() says why), plus the source and resume
    layouts = len([x for x in args.layouts.split(",") if x])
    needed = size * (2 * args.runs * layouts + 3)
    free = shutil.disk_usage(OUT).free
    if free < needed:
        sys.exit(
            f"bench_upload: {needed / 2**30:.0f} GiB of free disk needed in {OUT}, "
            f"{free / 2**30:.0f} GiB free"
        )
    work = Path(tempfile.mkdtemp(prefix="bench-upload-", dir=OUT))
    try:
        data_dir = work / "data"
        src = work / "big.nii.gz"
        say(f"making a {args.size_mib} MiB file")
        make_file(src, size)
        dav_root = work / "dav"
        (dav_root / ".tmp").mkdir(parents=True)
        # nginx's worker (nobody, when started as root) writes there
        for d in (work, dav_root, dav_root / ".tmp"):
            d.chmod(0o777)
        port = free_port()
        conf = work / "nginx.conf"
        conf.write_text(DAV_CONF.format(tmp=work, port=port, root=dav_root))
        log = work / "nginx.log"
        with open(log, "wb") as fh:
            nginx = subprocess.Popen(
                [NGINX, "-p", str(work), "-c", str(conf)], stdout=fh, stderr=fh
            )
        wait_port(port, nginx, log)
        try:
            with bl_serve(data_dir, ["--demo"]) as server:
                token = login(server.port, "demo", "demo")
                env = env_for(work / "home", server.url, token)
                server_idle = tree_rss_kib(server.pid) / 1024
                everyone = os.sched_getaffinity(0)
                layouts = [x for x in args.layouts.split(",") if x]
                if len(everyone) < 2 and "split" in layouts:
                    say("one core: the split layout is left out")
                    layouts.remove("split")
                runs: dict[str, dict[str, list[dict[str, float]]]] = {
                    layout: {"bl": [], "curl": []} for layout in layouts
                }
                n = 0
                for i in range(args.runs):
                    for layout in layouts:
                        # split: each server (nginx, bl serve) on the first core, each client
                        # (curl, bl) on the second, as a client machine and a server machine
                        split = layout == "split"
                        pin([nginx.pid, server.pid], {min(everyone)} if split else everyone)
                        client = {max(everyone)} if split else everyone
                        n += 1
                        url = f"http://127.0.0.1:{port}/up/big-{n}.bin"
                        settle(src)
                        runs[layout]["curl"].append(run_curl(src, url, nginx.pid, client))
                        touch_head(src, n)
                        settle(src)
                        runs[layout]["bl"].append(run_bl(src, f"bench{n}", env, server.pid, client))
                        curl_t = runs[layout]["curl"][-1]["seconds"]
                        bl_t = runs[layout]["bl"][-1]["seconds"]
                        say(f"run {i} ({layout}): curl {curl_t:.2f} s, bl {bl_t:.2f} s")
                pin([nginx.pid, server.pid], everyone)
                resume = resume_after_kill(src, size, env, data_dir, server.url, token)
                server_after = tree_rss_kib(server.pid) / 1024
        finally:
            stop_process(nginx)
        result = {
            "size": size,
            "layouts": {
                layout: {**r, "ratio": _median_s(r["curl"]) / _median_s(r["bl"])}
                for layout, r in runs.items()
            },
            "resume": resume,
            "server_idle_mib": server_idle,
            "server_after_mib": server_after,
        }
        save_json("upload.json", result)
        report(result, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _cpu(runs: list[dict[str, float]]) -> str:
    return ", ".join(f"{x['client_cpu']:.2f} / {x['server_cpu']:.2f}" for x in runs)


def _median_s(runs: list[dict[str, float]]) -> float:
    return median([x["seconds"] for x in runs])


LAYOUTS = {
    "shared": "**Shared cores**: the servers (nginx, `bl serve`) and the clients (curl, `bl`) all "
    "run on both cores, so each client's CPU and its server's compete.",
    "split": "**Split cores**: nginx and `bl serve` pinned to the first core, curl and `bl` to "
    "the second (`sched_setaffinity`), as a client machine and a server machine: each side has "
    "one core for its part (the client: reading, sha256, sending; the server: receiving, "
    "writing, sha256).",
}


def _layout_md(layout: str, r: dict[str, Any], mib: float) -> str:
    bl_s, curl_s = _median_s(r["bl"]), _median_s(r["curl"])
    curl_list = ", ".join(f"{x['seconds']:.2f}" for x in r["curl"])
    bl_list = ", ".join(f"{x['seconds']:.2f}" for x in r["bl"])
    bl_row = "`bl data upload` (whole command: start, sha256, upload, server sha256, finalize)"
    n = len(r["bl"])
    return f"""{LAYOUTS[layout]}

| one {mib:.0f} MiB file | median of {n} | runs (s) | MiB/s |
|---|---|---|---|
| curl `-T` → nginx WebDAV `PUT` | {curl_s:.2f} s | {curl_list} | {mib / curl_s:.0f} |
| {bl_row} | {bl_s:.2f} s | {bl_list} | {mib / bl_s:.0f} |

**Ratio (curl time / bl time), {layout} cores: {r["ratio"]:.2f}×** (target ≥ 0.7×). CPU
seconds per run (user + system; client / server): curl / nginx {_cpu(r["curl"])}; bl / `bl
serve` {_cpu(r["bl"])}.
"""


def report(r: dict, args: argparse.Namespace) -> None:
    mib = r["size"] / 1024 / 1024
    res = r["resume"]
    every = [x for lay in r["layouts"].values() for x in lay["bl"]]
    client_peak = max(x["client_peak_mib"] for x in every)
    server_peak = max(x["server_peak_mib"] for x in every)
    dropped = "dropped" if SETTLE["dropped"] else "NOT dropped (not root)"
    layouts = "\n".join(_layout_md(k, v, mib) for k, v in r["layouts"].items())
    cmd = (
        f"bench/bench_upload.py --size-mib {args.size_mib} --runs {args.runs} "
        f"--layouts {args.layouts}"
    )
    md = f"""## Uploads (issue #10)

`.venv/bin/python {cmd}`
({machine_notes()})

The layouts alternate within each round. Before each timed command: `sync`, the page cache
{dropped}, the source file read back into memory; nginx keeps each file it received, as the
archive keeps each object (`settle()` in the script says why).

{layouts}
Resume after kill -9 of `bl data upload` at half way: the server held
{res["held_at_resume"] / 2**20:.0f} MiB ({res["staged_at_kill"] / 2**20:.0f} MiB at the kill); the
rerun kept {res["rerun_resumed"] / 2**20:.0f} MiB and sent {res["rerun_sent"] / 2**20:.0f} MiB
({100 * res["rerun_fraction"]:.1f} % of the file) in {res["rerun_seconds"]:.2f} s; **bytes sent
again: {100 * res["sent_again_fraction"]:.2f} %** of the file (target < 5 %).

Memory: peak RSS of the `bl` process during the {mib:.0f} MiB uploads
{client_peak:.0f} MiB (target < 150 MB); server
{r["server_idle_mib"]:.0f} MiB idle, peak {server_peak:.0f} MiB during
the uploads, {r["server_after_mib"]:.0f} MiB after all of them.
"""
    write_section(md, START, END)
    print(md)


if __name__ == "__main__":
    main()
