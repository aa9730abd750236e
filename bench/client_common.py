"""Fixtures and helpers of the client benchmarks (issue #4): the cached archive, CLI
environments (a private HOME, BLHOST, certificates), logins of both CLIs, tree hashing and the
client section of RESULTS.md.

The archive (bench/out/client-<key>/data, gitignored) holds two projects:

- `bench-bulk`: 500 small objects of datatype `neuro/tractprofile` across 100 subjects, each
  with a tag set that is distinct within its subject (so the seed layout `<subject>/<tags>` has
  no collisions and no empty tag list), 2-3 files each (one in a sub-folder), random content;
  plus 25 objects of another datatype (`neuro/noise`) that the datatype filter must leave out.
- `bench-big`: 5 objects of datatype `neuro/big`, one 1 GiB file of `os.urandom` bytes each
  (distinct content: the client's dedup cannot shortcut them).

Everything is stored through the real ingest (`store_dataset_files`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import OUT, ROOT, say, write_section

VERSION = "client-v1"  # bump when the fixture changes
USERNAME = "bench"
PASSWORD = "bench-password-123"
GIB = 1024**3
N_SMALL = 500
N_SUBJECTS = 100
N_NOISE = 25
N_BIG = 5
BULK_DATATYPE = "neuro/tractprofile"
BIG_DATATYPE = "neuro/big"
GEN_CHUNK = 4 * 1024**2

OUR_BL = ROOT / ".venv" / "bin" / "bl"

CSTART = "<!-- client-benchmarks:start -->"
CEND = "<!-- client-benchmarks:end -->"

TAG_POOL = ["dt_stream", "pre_life", "life", "afq", "run1", "run2", "acpc", "clean", "v2"]


@dataclass
class ClientFixture:
    data_dir: Path
    bulk_project: str
    bulk_ids: list[str]
    noise_ids: list[str]
    big_project: str
    big_ids: list[str]
    big_sha256: dict[str, str]
    small_bytes: int  # total bytes of the 500 bulk objects' files


def _cache_key() -> str:
    from brainlife.server import archive

    digest = hashlib.sha256(VERSION.encode())
    for path in sorted((archive.MIGRATIONS / "versions").glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def ensure_fixture() -> ClientFixture:
    root = OUT / f"client-{_cache_key()}"
    for old in OUT.glob("client-*"):
        if old.is_dir() and old != root and (old / "data").is_dir():
            shutil.rmtree(old, ignore_errors=True)
    meta_file = root / "fixture.json"
    if meta_file.exists():
        say(f"client: reusing the cached archive {root / 'data'}")
        meta = json.loads(meta_file.read_text())
        return ClientFixture(data_dir=root / "data", **meta)
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    meta = _build(root / "data")
    say(f"client: built the archive in {time.perf_counter() - t0:.1f} s")
    meta_file.write_text(json.dumps(meta, indent=2))
    return ClientFixture(data_dir=root / "data", **meta)


def _random_chunks(size: int, digest: hashlib._Hash) -> Iterator[bytes]:
    left = size
    while left:
        chunk = os.urandom(min(GEN_CHUNK, left))
        digest.update(chunk)
        left -= len(chunk)
        yield chunk


def _tag_sets(rng: random.Random, count: int) -> list[list[str]]:
    """`count` distinct, non-empty tag lists (distinct once joined with '.')."""
    seen: set[str] = set()
    out: list[list[str]] = []
    while len(out) < count:
        tags = rng.sample(TAG_POOL, rng.randint(1, 3))
        key = ".".join(tags)
        if key not in seen:
            seen.add(key)
            out.append(tags)
    return out


def _build(data_dir: Path) -> dict[str, object]:
    from brainlife.server.archive import open_archive
    from brainlife.server.ids import new_object_id
    from brainlife.server.models import (
        Dataset,
        DatasetDatatypeTag,
        DatasetTag,
        Datatype,
        Group,
        Project,
        ProjectRole,
    )
    from brainlife.server.services.auth import create_user
    from brainlife.server.services.ingest import store_dataset_files
    from brainlife.server.settings import Settings

    rng = random.Random(4)
    archive = open_archive(Settings(data_dir=data_dir))
    now = datetime.now(UTC).replace(microsecond=0)
    bulk_ids: list[str] = []
    noise_ids: list[str] = []
    big_ids: list[str] = []
    big_sha: dict[str, str] = {}
    small_bytes = 0
    try:
        with archive.session() as session:
            user = create_user(session, username=USERNAME, password=PASSWORD)
            sub = str(user.sub)
            bulk_pid, big_pid = new_object_id(), new_object_id()
            dt_bulk, dt_noise, dt_big = new_object_id(), new_object_id(), new_object_id()
            session.add(Group(id=1, name="bench-bulk"))
            session.add(Group(id=2, name="bench-big"))
            for gid, pid, name in ((1, bulk_pid, "bench-bulk"), (2, big_pid, "bench-big")):
                session.add(
                    Project(id=pid, group_id=gid, name=name, access="private", create_date=now)
                )
            session.flush()
            for pid in (bulk_pid, big_pid):
                session.add(ProjectRole(project_id=pid, role="admins", sub=sub, pos=0))
                session.add(ProjectRole(project_id=pid, role="members", sub=sub, pos=0))
            for dtid, name in ((dt_bulk, BULK_DATATYPE), (dt_noise, "neuro/noise")):
                session.add(Datatype(id=dtid, name=name, create_date=now, extra={}))
            session.add(Datatype(id=dt_big, name=BIG_DATATYPE, create_date=now, extra={}))
            session.commit()

            def new_dataset(pid: str, dtid: str, n: int, subject: str, tags: list[str]) -> Dataset:
                return Dataset(
                    id=new_object_id(),
                    project_id=pid,
                    datatype_id=dtid,
                    user_id=sub,
                    desc=f"bench object {n}",
                    status="storing",
                    removed=False,
                    subject=subject,
                    meta={"subject": subject},
                    extra={},
                    create_date=now + timedelta(seconds=n),
                    tags=[DatasetTag(tag=t, pos=i) for i, t in enumerate(tags)],
                    datatype_tags=[DatasetDatatypeTag(tag="bench", pos=0)],
                )

            per_subject = N_SMALL // N_SUBJECTS
            n = 0
            for s in range(N_SUBJECTS):
                subject = f"{s + 1:04d}"
                for tags in _tag_sets(rng, per_subject):
                    ds = new_dataset(bulk_pid, dt_bulk, n, subject, tags)
                    files: list[tuple[str, bytes]] = [
                        ("profile.csv", _csv(rng)),
                        ("tracts/tract.json", json.dumps({"n": n, "r": rng.random()}).encode()),
                    ]
                    if n % 3 == 0:
                        files.append(("data.bin", rng.randbytes(rng.randint(1_000, 64_000))))
                    small_bytes += sum(len(b) for _p, b in files)
                    store_dataset_files(session, archive, ds, files)
                    bulk_ids.append(ds.id)
                    n += 1
            for k in range(N_NOISE):
                ds = new_dataset(bulk_pid, dt_noise, n, f"{k + 1:04d}", ["noise"])
                store_dataset_files(session, archive, ds, [("noise.txt", rng.randbytes(500))])
                noise_ids.append(ds.id)
                n += 1
            for k in range(N_BIG):
                ds = new_dataset(big_pid, dt_big, n, f"{k + 1:04d}", ["big"])
                digest = hashlib.sha256()
                store_dataset_files(
                    session, archive, ds, [("data.bin", _random_chunks(GIB, digest))]
                )
                big_ids.append(ds.id)
                big_sha[ds.id] = digest.hexdigest()
                n += 1
                say(f"client: stored big object {k + 1}/{N_BIG}")
    finally:
        archive.engine.dispose()
    return {
        "bulk_project": bulk_pid,
        "bulk_ids": bulk_ids,
        "noise_ids": noise_ids,
        "big_project": big_pid,
        "big_ids": big_ids,
        "big_sha256": big_sha,
        "small_bytes": small_bytes,
    }


def _csv(rng: random.Random) -> bytes:
    rows = ["x,fa,md"] + [
        f"{i},{rng.random():.6f},{rng.random():.6f}" for i in range(rng.randint(50, 400))
    ]
    return ("\n".join(rows) + "\n").encode()


def blob_path(data_dir: Path, sha256: str) -> Path:
    """Where the archive keeps a blob (the content store's layout)."""
    matches = list(data_dir.rglob(sha256))
    if len(matches) != 1:
        raise RuntimeError(f"blob {sha256} not found once under {data_dir}: {matches}")
    return matches[0]


# --- CLI environments --------------------------------------------------------------------------


def cli_env(home: Path, blhost: str, cert: Path | None = None) -> dict[str, str]:
    """The environment of a CLI run: a private HOME (its own token file), BLHOST, and the
    certificate of `bl serve --tls` for node (NODE_EXTRA_CA_CERTS, which ours honours too)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BL_") and k not in ("BLHOST", "NODE_EXTRA_CA_CERTS")
    }
    env["HOME"] = str(home)
    env["BLHOST"] = blhost
    if cert is not None:
        env["NODE_EXTRA_CA_CERTS"] = str(cert)
    return env


def cli_login(bl: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        [str(bl), "login", "--username", USERNAME, "--password", PASSWORD],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{bl} login failed ({proc.returncode}): {proc.stdout}{proc.stderr}")


def ensure_official_cli() -> Path:
    """The official CLI, installed once under the same lock as the tests' (tests/compat)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.compat.official import install_official_cli

    say("the official CLI: installing it if missing")
    return install_official_cli()


# --- trees ------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def tree_manifest(root: Path, ignore: tuple[str, ...] = ()) -> tuple[dict[str, str], set[str]]:
    """({relative file path: sha256}, {relative directory}) of a tree; names in `ignore` at the
    root are skipped."""
    files: dict[str, str] = {}
    dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        for d in dirnames:
            dirs.add(str(rel_dir / d))
        for f in filenames:
            rel = str(rel_dir / f)
            if rel in ignore:
                continue
            files[rel] = sha256_file(Path(dirpath) / f)
    return files, dirs


# --- RESULTS.md --------------------------------------------------------------------------------


def write_client_section(markdown: str) -> None:
    """Replace the client section of RESULTS.md; everything else is kept byte for byte."""
    write_section(markdown, CSTART, CEND)
