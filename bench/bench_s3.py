"""One 1 GiB object from an S3 store (issue #11): `bl data download` against curl fetching the
same presigned URL from radosgw, 3 runs each, alternating; the target is bl >= 0.9x curl.
Two layouts of the processes on the cores, alternating in each run: "shared" (every process
may run on every core: the store's CPU and the client's compete) and "split" (the store and
`bl serve` on the first core, the client on the second, as a client machine reading from a
store on machines of its own).

`bl serve --demo --store s3://bl-bench` runs on a radosgw started by `scripts/s3-start`
(bench/out/s3). The object is uploaded once with `bl data upload` (cached: the bucket and the
archive stay under bench/out/). Both clients write to the same folder (/dev/shm when present);
`bl` also checks the sha256, curl does not. The server's own written bytes (/proc/PID/io wchar)
are recorded around each `bl` run: it sends no byte of the file.

    .venv/bin/python bench/bench_s3.py [--runs 3] [--layouts shared,split]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from common import (
    OUT,
    PYTHON,
    ROOT,
    bl_serve,
    compile_sources,
    login,
    machine_notes,
    median,
    pin,
    say,
    write_section,
)

GIB = 1024**3
TP_PROJECT = "5b0dad8041711001e958b519"  # the demo's "2019 tractprofiles"


def s3_env() -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "s3-start"), str(OUT / "s3")],
        check=True, stdout=subprocess.PIPE, text=True,
    ).stdout  # fmt: skip
    return dict(line.split("=", 1) for line in out.splitlines() if line.startswith(("AWS_", "S3_")))


def store_cpu(pids: list[int]) -> float:
    """User + system CPU seconds used so far by the store's daemons (radosgw, OSD, mon)."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """User + system CPU seconds of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wchar(pid: int) -> int:
    return int(re.search(r"wchar: (\d+)", Path(f"/proc/{pid}/io").read_text()).group(1))  # type: ignore[union-attr]


HEAD = (
    "| run | load (1 min) | bl MiB/s | curl MiB/s | bl / curl | bl CPU s | curl CPU s "
    "| store CPU s (bl / curl) | bl serve wrote (MiB) |\n| --- | --- | --- | --- | --- | --- "
    "| --- | --- | --- |"
)


LAYOUTS = {
    "shared": "**Shared cores**: the store (radosgw + its OSD), `bl serve` and the client all "
    "run on both cores, so the store's CPU and the client's compete.",
    "split": "**Split cores**: the store and `bl serve` pinned to the first core, the client "
    "(bl or curl) to the second (`sched_setaffinity`), as a client machine reading from a store "
    "on machines of its own; the client has one core for its receive, write and sha256.",
}


def ratio_of(rows: list[dict[str, float]]) -> float:
    return median([r["curl_s"] for r in rows]) / median([r["bl_s"] for r in rows])


def table(rows: list[dict[str, float]]) -> str:
    mib = GIB / 2**20
    return "\n".join(
        f"| {i + 1} | {r['load']:.1f} | {mib / r['bl_s']:.0f} | {mib / r['curl_s']:.0f} | "
        f"{r['curl_s'] / r['bl_s']:.2f} | {r['bl_cpu']:.2f} | {r['curl_cpu']:.2f} | "
        f"{r['bl_store']:.2f} / {r['curl_store']:.2f} | {r['server_bytes'] / 2**20:.2f} |"
        for i, r in enumerate(rows)
    )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--layouts",
        default="shared,split",
        help="comma-separated: shared (every process on every core), split (store and server "
        "on the first core, the client on the second)",
    )
    args = ap.parse_args()
    compile_sources()
    env = s3_env()
    pids = [int(p) for p in env.pop("S3_PIDS").split(",")]
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    OUT.mkdir(parents=True, exist_ok=True)
    src = OUT / "s3-object" / "t1.nii.gz"
    if not src.exists():
        src.parent.mkdir(parents=True, exist_ok=True)
        with open(src, "wb") as fh:
            for _ in range(GIB // (64 << 20)):
                fh.write(os.urandom(64 << 20))
    dest_root = Path("/dev/shm") if Path("/dev/shm").is_dir() else OUT
    with bl_serve(OUT / "s3-archive", ["--demo", "--store", "s3://bl-bench"]) as srv:
        token = login(srv.port, "demo", "demo")
        home = OUT / "s3-home"
        home.mkdir(exist_ok=True)
        cli_env = {k: v for k, v in os.environ.items() if not k.startswith("BL")}
        cli_env.update(HOME=str(home), BLHOST=srv.url, BL_TOKEN=token)
        q = subprocess.run(
            [PYTHON, "-m", "brainlife", "data", "query", "-p", TP_PROJECT, "--tag", "s3bench",
             "-j"], env=cli_env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows = json.loads(q.stdout)
        if not rows:
            say("uploading the 1 GiB object ...")
            subprocess.run(
                [PYTHON, "-m", "brainlife", "data", "upload", "-p", TP_PROJECT, "-d",
                 "neuro/anat/t1w", "-t", "s3bench", "-s", "bench", "-j", str(src.parent)],
                env=cli_env, check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            q = subprocess.run(q.args, env=cli_env, capture_output=True, text=True, check=True)
            rows = json.loads(q.stdout)
        oid = rows[0]["_id"]
        opener = urllib.request.build_opener(_NoRedirect)

        def presigned() -> str:
            req = urllib.request.Request(
                f"{srv.url}/api/warehouse/dataset/file/{oid}/t1.nii.gz",
                headers={"Authorization": f"Bearer {token}"},
            )
            try:
                opener.open(req)
                raise RuntimeError("expected a redirect")
            except urllib.error.HTTPError as exc:
                assert exc.code == 307, exc.code
                return str(exc.headers["Location"])

        layouts = [x for x in args.layouts.split(",") if x]
        if "split" in layouts and len(os.sched_getaffinity(0)) < 2:
            say("one core: the split layout is left out")
            layouts.remove("split")
        runs: dict[str, list[dict[str, float]]] = {layout: [] for layout in layouts}
        everyone = os.sched_getaffinity(0)
        for run in range(args.runs):
            for layout in layouts:
                split = layout == "split"
                # split: the store and the archive server on the first core, the client on
                # the second, as a client machine reading from a store on other machines
                pin([*pids, srv.pid], {min(everyone)} if split else everyone)
                client_cores = {max(everyone)} if split else everyone
                out = dest_root / "bl-bench-s3"
                shutil.rmtree(out, ignore_errors=True)
                row: dict[str, float] = {"load": os.getloadavg()[0]}
                before = wchar(srv.pid)
                cpu0, store0 = children_cpu(), store_cpu(pids)
                t0 = time.perf_counter()
                subprocess.run(
                    [PYTHON, "-m", "brainlife", "data", "download", "-i", oid, "-d", str(out),
                     "--jobs", "1", "--json"],
                    env=cli_env, check=True, stdout=subprocess.DEVNULL,
                    preexec_fn=lambda cores=client_cores: os.sched_setaffinity(0, cores),
                )  # fmt: skip
                row["bl_s"] = time.perf_counter() - t0
                row["bl_cpu"] = children_cpu() - cpu0
                row["bl_store"] = store_cpu(pids) - store0
                row["server_bytes"] = wchar(srv.pid) - before
                assert (out / oid / "t1.nii.gz").stat().st_size == GIB
                shutil.rmtree(out, ignore_errors=True)
                url = presigned()
                out.mkdir(parents=True)
                cpu0, store0 = children_cpu(), store_cpu(pids)
                t0 = time.perf_counter()
                subprocess.run(
                    ["curl", "-sSf", "-o", str(out / "t1.nii.gz"), url], check=True,
                    preexec_fn=lambda cores=client_cores: os.sched_setaffinity(0, cores),
                )  # fmt: skip
                row["curl_s"] = time.perf_counter() - t0
                row["curl_cpu"] = children_cpu() - cpu0
                row["curl_store"] = store_cpu(pids) - store0
                shutil.rmtree(out, ignore_errors=True)
                runs[layout].append(row)
                say(f"run {run + 1} ({layout}): bl {row['bl_s']:.2f} s, curl {row['curl_s']:.2f} s")
        pin([*pids, srv.pid], everyone)
    mib = GIB / 2**20
    ratios = {layout: ratio_of(rows) for layout, rows in runs.items()}
    tables = "\n\n".join(
        f"{LAYOUTS[layout]}\n\n{HEAD}\n{table(rows)}\n\nMedian: bl "
        f"{mib / median([r['bl_s'] for r in rows]):.0f} MiB/s, curl "
        f"{mib / median([r['curl_s'] for r in rows]):.0f} MiB/s: **bl = {ratios[layout]:.2f}x "
        f"curl** (target >= 0.9x: {'met' if ratios[layout] >= 0.9 else 'not met'} in this run)."
        for layout, rows in runs.items()
    )
    write_section(
        f"""## One 1 GiB object from S3 (radosgw) via a presigned URL (issue #11)

`.venv/bin/python bench/bench_s3.py --runs {args.runs} --layouts {",".join(layouts)}`:
`bl data download` (follows the 307, fetches the 1 GiB file from the store, which is on this
machine, in one stream: `segments.streams_for`; writes and checks the sha256) against
`curl -o` of the same presigned URL (one GET), into {dest_root}; in each run and layout, bl
then curl, both at the same priority. The bl figure includes its process start, login check
and manifest request.

{tables}

CPU s: user + system time of the process; bl's includes the sha256 (about 0.65-0.8 s per GiB
here), which curl does not compute, and its start (about 0.15 s). Store CPU s: what radosgw
and its OSD used meanwhile (about 2.5 s per GiB served, more than curl and bl together). bl
serve wrote: bytes the server process wrote during the bl run (its answers; none of the
file). Why the two layouts differ: docs/decisions.md, "Presigned downloads against curl".

{machine_notes()}
""",
        "<!-- s3-benchmark:start -->",
        "<!-- s3-benchmark:end -->",
    )
    for layout, ratio in ratios.items():
        say(f"{layout}: bl = {ratio:.2f}x curl")


if __name__ == "__main__":
    main()
