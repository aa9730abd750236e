"""Client figure 1: the document's bulk shell loop driving the official CLI against one
`bl data download --layout seed` command, on the same 500 small objects.

Both run against one `bl serve --tls` process (the official CLI speaks https only) over the
cached archive of client_common.py, each with its own HOME and its own `bl login`:

- official: the seed document's script, verbatim except for the project id and the datatype
  (`bl data query --limit 10000 --project $project --datatype $datatype --json | jq . >
  all.json`, then per subject and per id two `jq` calls and `bl data download $id --directory
  $outdir`), run by bash with the official CLI (npm brainlife@1.8.2) first on PATH;
- ours: `bl data download -p <project> --datatype neuro/tractprofile -d 2019_tractprofile
  --layout seed --json` (default --jobs 8), 3 runs into fresh folders (median), then once more
  into the first folder (everything present: the cost of a no-op re-run).

The two trees are then compared file by file (relative path, sha256; `bl-lock.json` excluded,
the loop writes none), directory by directory, and file modes and mtimes are counted.

    .venv/bin/python bench/bench_bulk.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from client_common import (
    BULK_DATATYPE,
    OUR_BL,
    ClientFixture,
    cli_env,
    cli_login,
    ensure_fixture,
    ensure_official_cli,
    tree_manifest,
)
from common import OUT, bl_serve, median, save_json, say

OUTDIR = "2019_tractprofile"

SEED_LOOP = """\
set -e

project={project}
datatype="{datatype}"

#only need to run this once
bl data query --limit 10000 --project $project --datatype $datatype --json | jq . > all.json

for subject in $(jq -r '.[].meta.subject' all.json | sort -u)
do
    echo "downloading subject:$subject ---------------"
    mkdir -p 2019_tractprofile/$subject/
    ids=$(jq -r '.[] | select(.meta.subject == '\\"$subject\\"') | ._id' all.json)
    for id in $ids
    do
        echo $id $tags
        tags=$(jq -r '.[] | select(._id=='\\"$id\\"') | .tags | join(".")' all.json)
        outdir=2019_tractprofile/$subject/$tags
        if [ ! -d $outdir ]; then
            bl data download $id --directory $outdir
        fi
    done
done
"""


def run_official(fx: ClientFixture, env: dict[str, str], work: Path, official: Path) -> dict:
    """The seed loop, timed as a whole (query + 500 downloads)."""
    bindir = work / "official-bin"
    bindir.mkdir()
    (bindir / "bl").symlink_to(official)  # only `bl` in front of PATH, not all of node's .bin
    script = work / "bulk.sh"
    script.write_text(SEED_LOOP.format(project=fx.bulk_project, datatype=BULK_DATATYPE))
    cwd = work / "official"
    cwd.mkdir()
    run_env = dict(env, PATH=f"{bindir}:{env['PATH']}")
    log = work / "official.log"
    with open(log, "wb") as fh:
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["bash", str(script)], cwd=cwd, env=run_env, stdout=fh, stderr=subprocess.STDOUT
        )
        seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"the seed loop failed ({proc.returncode}):\n{log.read_text()[-3000:]}")
    downloads = log.read_text().count("downloading data object to")
    say(f"bulk: official loop {seconds:.1f} s ({downloads} downloads)")
    return {"seconds": seconds, "downloads": downloads, "tree": cwd / OUTDIR}


def run_ours(fx: ClientFixture, env: dict[str, str], cwd: Path) -> dict:
    cwd.mkdir(exist_ok=True)
    cmd = [
        str(OUR_BL),
        "data",
        "download",
        "-p",
        fx.bulk_project,
        "--datatype",
        BULK_DATATYPE,
        "-d",
        OUTDIR,
        "--layout",
        "seed",
        "--json",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"our download failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    summary = next(e for e in reversed(events) if e.get("event") == "summary")
    say(
        f"bulk: ours {seconds:.2f} s (downloaded {summary['downloaded']}, present "
        f"{summary['present']}, failed {len(summary['failed'])})"
    )
    return {"seconds": seconds, "summary": summary, "tree": cwd / OUTDIR}


def compare_trees(official: Path, ours: Path) -> dict:
    a_files, a_dirs = tree_manifest(official)
    b_files, b_dirs = tree_manifest(ours, ignore=("bl-lock.json",))
    only_a = sorted(set(a_files) - set(b_files))
    only_b = sorted(set(b_files) - set(a_files))
    differ = sorted(p for p in set(a_files) & set(b_files) if a_files[p] != b_files[p])
    modes = mtimes = 0
    for p in set(a_files) & set(b_files):
        sa, sb = (official / p).stat(), (ours / p).stat()
        modes += (sa.st_mode & 0o7777) == (sb.st_mode & 0o7777)
        mtimes += int(sa.st_mtime) == int(sb.st_mtime)
    return {
        "files_official": len(a_files),
        "files_ours": len(b_files),
        "bytes": sum((official / p).stat().st_size for p in a_files),
        "object_folders": len({"/".join(p.split("/")[:2]) for p in a_files}),
        "dirs_only_official": sorted(a_dirs - b_dirs)[:10],
        "dirs_only_ours": sorted(b_dirs - a_dirs)[:10],
        "only_official": only_a[:10],
        "only_ours": only_b[:10],
        "sha256_differ": differ[:10],
        "identical": not (only_a or only_b or differ or (a_dirs ^ b_dirs)),
        "same_mode": modes,
        "same_mtime_s": mtimes,
        "lockfile_ours": (ours / "bl-lock.json").exists(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs of ours (fresh folders)")
    opts = parser.parse_args()
    fx = ensure_fixture()
    official = ensure_official_cli()
    work = Path(tempfile.mkdtemp(prefix="bench-bulk-", dir=OUT))
    try:
        with bl_serve(fx.data_dir, ["--tls"]) as server:
            blhost = f"127.0.0.1:{server.port}"
            cert = fx.data_dir / "tls" / "cert.pem"
            homes = {name: work / f"home-{name}" for name in ("official", "ours")}
            for home in homes.values():
                home.mkdir()
            env_off = cli_env(homes["official"], blhost, cert)
            env_ours = cli_env(homes["ours"], blhost, cert)
            cli_login(official, env_off)
            cli_login(OUR_BL, env_ours)
            load_before = os.getloadavg()
            ours_runs = [run_ours(fx, env_ours, work / "ours-1")]
            off = run_official(fx, env_off, work, official)
            for k in range(2, opts.runs + 1):
                ours_runs.append(run_ours(fx, env_ours, work / f"ours-{k}"))
            rerun = run_ours(fx, env_ours, work / "ours-1")
            load_after = os.getloadavg()
            comparison = compare_trees(off["tree"], ours_runs[0]["tree"])
            for extra in ours_runs[1:]:
                again = compare_trees(off["tree"], extra["tree"])
                comparison["identical"] = comparison["identical"] and again["identical"]
        ours_median = median([r["seconds"] for r in ours_runs])
        result = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_before": load_before,
            "load_after": load_after,
            "objects": len(fx.bulk_ids),
            "noise_objects": len(fx.noise_ids),
            "small_bytes": fx.small_bytes,
            "official_seconds": off["seconds"],
            "official_downloads": off["downloads"],
            "ours_seconds": [r["seconds"] for r in ours_runs],
            "ours_median": ours_median,
            "ours_summary": ours_runs[0]["summary"],
            "rerun_seconds": rerun["seconds"],
            "rerun_summary": rerun["summary"],
            "speedup": off["seconds"] / ours_median,
            "comparison": comparison,
            "seed_loop": SEED_LOOP.format(project=fx.bulk_project, datatype=BULK_DATATYPE),
            "ours_command": (
                f"bl data download -p {fx.bulk_project} --datatype {BULK_DATATYPE} "
                f"-d {OUTDIR} --layout seed --json"
            ),
        }
        path = save_json("client-bulk.json", result)
        say(
            f"bulk: official {off['seconds']:.1f} s, ours {ours_median:.2f} s: "
            f"{result['speedup']:.1f}x; trees identical: {comparison['identical']} ({path})"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
