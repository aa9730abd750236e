"""500 small objects from a tree (issue #10): ours against the official CLI, in one run.

One `bl serve --demo --tls` (the official CLI speaks https only), one tree of `--objects`
folders `<subject>/t1.nii.gz` (4 KiB of random bytes each, datatype neuro/anat/t1w), into the
project "2019 tractprofiles" where `demo` is a member:

- official: a bash loop running the official CLI (npm brainlife@1.8.2) once per object, as a
  user without a bulk command does it (`for s in …; do bl data upload -p P -d neuro/anat/t1w
  -s $s --t1 $s/t1.nii.gz; done`), on the first `--official-objects` folders (each run is
  several seconds: a tar.gz, an upload task, finalize and polling), and scaled to `--objects`;
- ours: `bl data upload -p P -d neuro/anat/t1w --layout '{subject}' ROOT` (one command, its
  default parallelism) on all `--objects` folders of another tree (other subjects: every
  object is new to the archive), then the same command again (everything already there).

Both log in with their own HOME (`bl login`), so each pays its own start-up per command.

    .venv/bin/python bench/bench_bulk_upload.py [--objects 500] [--official-objects 50]

Writes bench/out/bulk_upload.json and the "Bulk upload (issue #10)" section of
bench/RESULTS.md.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.client_common import ensure_official_cli
from bench.common import OUT, PYTHON, bl_serve, machine_notes, save_json, say, write_section

TP_PROJECT = "5b0dad8041711001e958b519"  # the demo user is a member of it
START = "<!-- bulk-upload-benchmarks:start -->"
END = "<!-- bulk-upload-benchmarks:end -->"


def make_tree(root: Path, prefix: str, count: int) -> list[str]:
    subjects = [f"{prefix}{i:04d}" for i in range(count)]
    for s in subjects:
        (root / s).mkdir(parents=True)
        (root / s / "t1.nii.gz").write_bytes(os.urandom(4096))
    return subjects


def env_for(home: Path, hostport: str, cert: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BL")}
    env.pop("NODE_EXTRA_CA_CERTS", None)
    home.mkdir(parents=True, exist_ok=True)
    return {**env, "HOME": str(home), "BLHOST": hostport, "NODE_EXTRA_CA_CERTS": str(cert)}


def run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=500)
    ap.add_argument("--official-objects", type=int, default=50)
    args = ap.parse_args()
    official = ensure_official_cli()
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-bulk-upload-", dir=OUT))
    try:
        ours_root, theirs_root = work / "ours", work / "theirs"
        make_tree(ours_root, "our", args.objects)
        subjects = make_tree(theirs_root, "off", args.official_objects)
        with bl_serve(work / "data", ["--demo", "--tls"]) as server:
            hostport = f"127.0.0.1:{server.port}"
            cert = work / "data" / "tls" / "cert.pem"
            their_env = env_for(work / "home-official", hostport, cert)
            our_env = env_for(work / "home-ours", hostport, cert)
            login = ["login", "--username", "demo", "--password", "demo"]
            run([str(official), *login], their_env)
            run([PYTHON, "-m", "brainlife", *login], our_env)

            script = (
                'for s in "$@"; do "$BL" data upload -p "$P" -d neuro/anat/t1w -s "$s" '
                '--t1 "$s/t1.nii.gz" > /dev/null || exit 1; done'
            )
            say(f"official: {len(subjects)} objects, one command each")
            t0 = time.perf_counter()
            run(
                ["bash", "-c", script, "loop", *subjects],
                {**their_env, "BL": str(official), "P": TP_PROJECT},
                cwd=theirs_root,
            )
            official_s = time.perf_counter() - t0
            say(f"official: {official_s:.1f} s")

            ours_cmd = [
                PYTHON, "-m", "brainlife", "data", "upload", "-p", TP_PROJECT,
                "-d", "neuro/anat/t1w", "--layout", "{subject}", str(ours_root),
            ]  # fmt: skip
            t0 = time.perf_counter()
            out = run(ours_cmd, our_env)
            ours_s = time.perf_counter() - t0
            say(f"ours: {ours_s:.1f} s")
            t0 = time.perf_counter()
            again = run(ours_cmd, our_env)
            rerun_s = time.perf_counter() - t0
        per_official = official_s / len(subjects)
        result = {
            "objects": args.objects,
            "official_objects": len(subjects),
            "official_seconds": official_s,
            "official_scaled_seconds": per_official * args.objects,
            "ours_seconds": ours_s,
            "ours_rerun_seconds": rerun_s,
            "ours_tail": out.strip().splitlines()[-3:],
            "rerun_tail": again.strip().splitlines()[-3:],
        }
        result["speedup"] = result["official_scaled_seconds"] / ours_s
        save_json("bulk_upload.json", result)
        report(result, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(r: dict, args: argparse.Namespace) -> None:
    n, k = r["objects"], r["official_objects"]
    scaled = "" if k == n else f", scaled to {n}: {r['official_scaled_seconds']:.0f} s"
    loop = f"{r['official_seconds']:.1f} s ({r['official_seconds'] / k:.2f} s an object{scaled})"
    md = f"""## Bulk upload: {n} small objects from a tree (issue #10)

`.venv/bin/python bench/bench_bulk_upload.py --objects {n} --official-objects {k}`
({machine_notes()})

| {n} objects of 4 KiB (neuro/anat/t1w), one `bl serve --demo --tls` | time |
|---|---|
| official CLI (npm brainlife@1.8.2), a bash loop of `bl data upload` on {k} objects | {loop} |
| ours: `bl data upload --layout '{{subject}}' ROOT`, all {n} objects | {r["ours_seconds"]:.1f} s |
| ours again, everything already there | {r["ours_rerun_seconds"]:.1f} s |

**Speed-up (official loop time for {n} objects / ours): {r["speedup"]:.0f}×** (target ≥ 20×).
"""
    write_section(md, START, END)
    print(md)


if __name__ == "__main__":
    main()
