"""Run the server benchmarks of issue #2 and rewrite the server section of bench/RESULTS.md.

    .venv/bin/python bench/run_server_benchmarks.py            # listing + downloads
    .venv/bin/python bench/run_server_benchmarks.py --report   # re-render from bench/out/*.json

Each benchmark is a separate process (a crash in one leaves the others' results); their JSON
lands in bench/out/ and this script renders the markdown between the
`<!-- server-benchmarks:start -->` / `<!-- server-benchmarks:end -->` markers (other sections of
RESULTS.md are kept).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

from common import (
    BENCH,
    ROOT,
    fmt_gbs,
    fmt_ms,
    load_json,
    machine_notes,
    say,
    write_results_section,
)

LISTING_CMD = ".venv/bin/python bench/bench_listing.py"
DOWNLOAD_CMD = ".venv/bin/python bench/bench_download.py"
#: Hand-written analysis (where the time goes, what would fix it), appended to the section.
FINDINGS = BENCH / "server_findings.md"


def run(script: str, extra: list[str]) -> bool:
    cmd = [sys.executable, str(BENCH / script), *extra]
    say(f"== {' '.join(cmd)}")
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, cwd=ROOT).returncode
    say(f"== {script}: exit {rc} after {time.perf_counter() - t0:.0f} s")
    return rc == 0


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def listing_section(data: dict[str, Any] | None) -> str:
    if not data:
        return "### 1. Listing\n\nNot run (no bench/out/listing.json).\n"
    target = data["target_s"]
    failed = [s for s in data["shapes"] if "error" in s]
    shapes = [s for s in data["shapes"] if "error" not in s]
    met = sum(1 for s in shapes if s["median_s"] < target)
    lines = [
        "### 1. Listing: `GET /api/warehouse/dataset?find=…&limit=100` over "
        f"{data['n_rows']:,} data objects",
        "",
        f"Command: `{LISTING_CMD}` (run {data['started']}, load average "
        f"{' '.join(data.get('loadavg') or ['?'])} at the end; {data['warmup']} warm-up + "
        f"{data['repeat']} timed requests per shape, one keep-alive connection on loopback, "
        "member token from `POST /api/auth/local/auth`).",
        "",
        f"Target: median under {target * 1000:.0f} ms per 100-row page with `count` and `size`. "
        f"{verdict(met == len(shapes) and not failed)}: {met} of {len(shapes) + len(failed)} "
        "shapes under the target."
        + "".join(f" FAILED: {s['shape']}: {s['error'][:200]}" for s in failed),
        "",
        "Baseline in the same run: a minimal authenticated route, `GET /api/auth/me`, median "
        f"{fmt_ms(data['me_median_s'])} ms (p90 {fmt_ms(data['me_p90_s'])} ms): the fixed "
        "HTTP + routing + token cost. “in-process” is `services.datasets.list_datasets` + "
        "rendering, without HTTP. “count ok”: the envelope's `count` equals a hand-written "
        "SQL count with the access rule.",
        "",
        "| query shape | median ms | p90 ms | ÷ target | in-process ms | rows | count | count ok |",
        "|---|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for s in shapes:
        inproc = s.get("in_process_median_s")
        lines.append(
            f"| {s['shape']} | {fmt_ms(s['median_s'])} | {fmt_ms(s['p90_s'])} | "
            f"{s['median_s'] / target:.1f}× | {fmt_ms(inproc) if inproc is not None else '–'} | "
            f"{s['rows']} | {s['count']:,} | {'yes' if s['count_ok'] else 'NO'} |"
        )
    lines += ["", "<details><summary>The exact <code>find</code> of each shape</summary>", ""]
    for s in shapes:
        lines.append(f"- {s['shape']}: `{_json(s['find'])}`")
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


def download_sections(data: dict[str, Any] | None) -> str:
    if not data:
        return "### 2–3. Downloads\n\nNot run (no bench/out/download.json).\n"
    out: list[str] = []
    single = data.get("single")
    if single:
        ratio = single["ratio"]
        runs = ", ".join(
            f"{fmt_gbs(a)}/{fmt_gbs(b)}"
            for a, b in zip(single["ours_bytes_per_s"], single["nginx_bytes_per_s"], strict=True)
        )
        out += [
            "### 2. One 1 GiB data object to curl: ours vs nginx",
            "",
            f"Command: `{DOWNLOAD_CMD}` (run {data['started']}, load average "
            f"{' '.join(data.get('loadavg_before') or ['?'])} before; `curl -s -o /dev/null -w "
            "'%{speed_download}'`, "
            f"{single['runs']} runs each after one warm-up each, alternating ours/nginx; the tar "
            f"is {single['bytes']:,} bytes; nginx `sendfile on` serves the very bytes our "
            "server produced).",
            "",
            "| server | median GB/s | runs (ours/nginx, GB/s) |",
            "|---|---:|---|",
            f"| `bl serve` `/dataset/download/:id` | {fmt_gbs(single['ours_median'])} | {runs} |",
            f"| nginx 1.22 static file | {fmt_gbs(single['nginx_median'])} | |",
            "",
            f"Ratio ours/nginx: **{ratio:.2f}** (target ≥ 0.5: {verdict(ratio >= 0.5)}).",
            "",
        ]
    conc = data.get("concurrent")
    if conc:
        ours, base = conc["ours"], conc["nginx"]
        peak_mb = ours["peak_rss_mib"] * 1.048576
        out += [
            f"### 3. {ours['clients']} clients downloading at once",
            "",
            f"Command: `{DOWNLOAD_CMD}` ({ours['clients']} curl processes started together, "
            f"{conc['distinct_objects']} distinct objects of {conc['object_bytes']:,} bytes; "
            "each body is hashed by the benchmark and compared with the sha256 of the checked "
            "tar; RSS = VmRSS of the server process and its children every 100 ms).",
            "",
            "| server | verified | wall s | aggregate GB/s | RSS idle MiB | RSS peak MiB |",
            "|---|---:|---:|---:|---:|---:|",
            f"| `bl serve` | {ours['verified']}/{ours['clients']} | {ours['wall_s']:.1f} | "
            f"{fmt_gbs(ours['aggregate_bytes_per_s'])} | {ours['idle_rss_mib']:.0f} | "
            f"{ours['peak_rss_mib']:.0f} |",
            f"| nginx (1 worker) | {base['verified']}/{base['clients']} | {base['wall_s']:.1f} | "
            f"{fmt_gbs(base['aggregate_bytes_per_s'])} | {base['idle_rss_mib']:.0f} | "
            f"{base['peak_rss_mib']:.0f} |",
            "",
            f"Peak RSS of `bl serve`: **{peak_mb:.0f} MB** ({ours['peak_rss_mib']:.0f} MiB; "
            f"target < 200 MB: {verdict(peak_mb < 200)}); every byte verified: "
            f"{verdict(ours['verified'] == ours['clients'])}; aggregate throughput ratio "
            f"ours/nginx {conc['ratio']:.2f} (the 2 cores are shared with 50 curl processes "
            "and the hashing).",
            "",
        ]
    return "\n".join(out)


def render() -> str:
    parts = [
        "## Server benchmarks (issue #2)",
        "",
        "Written by `.venv/bin/python bench/run_server_benchmarks.py`; see bench/README.md for "
        "what each number means. Ratios compare with a baseline measured in the same run.",
        "",
        machine_notes(),
        "",
        listing_section(load_json("listing.json")),
        download_sections(load_json("download.json")),
    ]
    if FINDINGS.exists():
        parts += [FINDINGS.read_text().rstrip(), ""]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", action="store_true", help="only re-render RESULTS.md")
    parser.add_argument("--skip-listing", action="store_true")
    parser.add_argument("--skip-download", action="store_true")
    args = parser.parse_args()
    ok = True
    if not args.report:
        if not args.skip_listing:
            ok &= run("bench_listing.py", [])
        if not args.skip_download:
            ok &= run("bench_download.py", [])
    write_results_section(render())
    say("RESULTS.md updated")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
