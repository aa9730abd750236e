"""Bulk `bl data download` end to end against a real `bl serve` over the demo world: plans, layouts,
parallel download of a whole project, dedup links, lockfile + `bl data verify`, `--lock`, partial
failures, ids from stdin, `bl pub download`."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

from brainlife.client import Client

TRACT = "5b0dad8041711001e958b519"
RELEASE = "5bab993aa918ae0027024192"
T1 = "5a050ad5d76a2a002737e572"
MISSING = "0123456789abcdef01234567"


def events(output: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def summary(output: str) -> dict:  # type: ignore[type-arg]
    return next(e for e in events(output) if e["event"] == "summary")


def tract(*extra: str) -> list[str]:
    return ["data", "download", "-p", TRACT, "--datatype", "neuro/tractprofile", *extra]


def test_dry_run_prints_the_plan_and_writes_nothing(bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = bl(*tract("-d", "out", "--layout", "seed", "--dry-run"))
    assert r.exit_code == 0, r.output
    assert r.output.startswith("Plan: 18 data objects, 378 files, 2.6 MB into out (layout")
    assert "already present: 0 objects, 0 B" in r.output
    assert "free disk space:" in r.output
    assert "\n    100206/afq.run1\n" in r.output
    assert not (tmp_path / "out").exists()
    evs = events(bl(*tract("-d", "out", "--dry-run", "--json")).output)
    # planning progress events may come first when planning takes over half a second
    assert {e["event"] for e in evs} <= {"planning", "plan"}
    plan = next(e for e in evs if e["event"] == "plan")
    assert (plan["objects"], plan["files"], plan["bytes_present"]) == (18, 378, 0)
    assert plan["bytes"] == plan["bytes_to_fetch"] + plan["bytes_linked"] > 0
    assert plan["free"] > 0 and plan["token_warning"] is None
    assert len(plan["first_paths"]) == 10 and plan["problems"] == []


def test_project_download_seed_layout_verify_and_rerun(bl, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = bl(*tract("-d", "out", "--layout", "seed", "--json", "-J", "6"))
    assert r.exit_code == 0, r.output
    s = summary(r.output)
    assert (s["objects"], s["downloaded"], s["failed"]) == (18, 18, [])
    assert s["files_fetched"] + s["files_linked"] == 378 and s["files_linked"] > 0
    kinds = {e["event"] for e in events(r.output)}
    assert {"plan", "object-start", "file-done", "object-done", "progress", "summary"} <= kinds
    out = tmp_path / "out"
    # bytes identical to the server's manifests
    with Client(server.url, token=Client().token()) as c:
        lock = json.loads((out / "bl-lock.json").read_text())
        assert lock["server"] == server.url and lock["query"]["project"] == TRACT
        for obj in lock["objects"][:3]:
            manifest = c.http.request_json(
                "GET", f"/api/warehouse/dataset/manifest/{obj['id']}", token=c.token()
            )
            assert sorted((f["path"], f["size"], f["sha256"]) for f in manifest["files"]) == sorted(
                (f["path"], f["size"], f["sha256"]) for f in obj["files"]
            )
    assert (out / "100206" / "afq.run1").is_dir()
    links = [p for p in out.rglob("*") if p.is_file() and p.stat().st_nlink > 1]
    assert links  # identical content is hard-linked
    v = bl("data", "verify", "out")
    assert v.exit_code == 0 and v.output.startswith("OK: 18 data objects, 378 files")
    again = summary(bl(*tract("-d", "out", "--layout", "seed", "--json")).output)
    assert (again["present"], again["downloaded"], again["bytes_transferred"]) == (18, 0, 0)


def test_verify_detects_corrupt_missing_extra_and_lock_repairs(bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert bl(*tract("-d", "t")).exit_code == 0
    files = sorted(p for p in (tmp_path / "t").rglob("*.csv") if p.stat().st_nlink == 1)
    corrupt, missing = files[0], files[1]
    corrupt.write_bytes(corrupt.read_bytes()[:-1] + b"#")
    missing.unlink()
    (files[2].parent / "notes.txt").write_text("mine")
    r = bl("data", "verify", "t")
    assert r.exit_code == 7
    assert "corrupt: " in r.output and "missing: " in r.output and "extra: " in r.output
    assert "FAILED" in r.output and "1 corrupt, 1 missing, 1 extra" in r.output
    j = json.loads(bl("data", "verify", "t", "--json").output)
    assert (j["ok"], j["corrupt"], j["missing"], j["extra"]) == (False, 1, 1, 1)
    (files[2].parent / "notes.txt").unlink()
    r = bl("data", "download", "--lock", "t/bl-lock.json", "--json")
    assert r.exit_code == 0, r.output
    s = summary(r.output)
    assert s["files_fetched"] == 2 and s["present"] + s["downloaded"] == 18 >= s["present"] + 1
    assert bl("data", "verify", "t").exit_code == 0


def test_existing_verify_catches_same_size_same_mtime_corruption(bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert bl(*tract("-d", "v")).exit_code == 0
    f = next(p for p in (tmp_path / "v").rglob("*.csv") if p.stat().st_nlink == 1)
    st = f.stat()
    data = bytearray(f.read_bytes())
    data[0] ^= 1
    f.write_bytes(bytes(data))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    skip = summary(bl(*tract("-d", "v", "--json")).output)
    assert skip["files_fetched"] == 0  # the fast check trusts size + mtime
    fixed = summary(bl(*tract("-d", "v", "--json", "--existing", "verify")).output)
    assert fixed["files_fetched"] == 1
    assert bl("data", "verify", "v").exit_code == 0
    over = summary(bl(*tract("-d", "v", "--json", "--existing", "overwrite")).output)
    assert over["downloaded"] == 18 and over["bytes_transferred"] > 0


def test_bids_layout(bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = bl(*tract("-d", "b", "--layout", "bids"))
    assert r.exit_code == 0, r.output
    proj = tmp_path / "b" / f"proj-{TRACT}"
    desc = json.loads((proj / "dataset_description.json").read_text())
    assert desc["BIDSVersion"] and desc["Name"]
    # the link names the project's web page, which a browser can open
    link = desc["GeneratedBy"][0]["CodeURL"]
    page = urllib.request.urlopen(urllib.request.Request(link, headers={"Accept": "text/html"}))
    assert page.status == 200 and desc["Name"] in page.read().decode()
    folders = sorted(p.relative_to(proj).as_posix() for p in proj.glob("sub-*/dt-*"))
    assert len(folders) == 18
    assert folders[0].startswith("sub-100206/dt-neuro-tractprofile.")
    oid = folders[0].rsplit(".id-", 1)[1]
    info = json.loads((proj / folders[0] / "_info.json").read_text())
    assert info["_id"] == oid
    assert bl("data", "verify", "b").exit_code == 0


def test_layout_problems_are_reported_before_any_byte(bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = bl(*tract("-d", "c", "--layout", "{subject}", "--dry-run"))
    assert r.exit_code == 0
    assert "collision: 3 data objects map to the same folder 100206" in r.output
    r = bl(*tract("-d", "c", "--layout", "{subject}"))
    assert r.exit_code == 1 and "does not work for these data objects" in r.output
    assert not (tmp_path / "c").exists()
    r = bl(*tract("--layout", "{nope}", "--dry-run"))
    assert r.exit_code == 1 and "unknown field" in r.output


def test_failed_object_does_not_stop_the_others(bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids = json.loads(bl("data", "query", "-p", TRACT, "-l", "3", "--json").stdout)
    good = [d["_id"] for d in ids]
    r = bl("data", "download", "-i", good[0], "-i", MISSING, "-i", good[1], "-d", "f")
    assert r.exit_code == 3
    assert f"failed: {MISSING}" in r.output
    assert f"1 of 3 data objects failed: {MISSING}" in r.output
    assert (tmp_path / "f" / good[0]).is_dir() and (tmp_path / "f" / good[1]).is_dir()
    r = bl("data", "download", "-i", good[0], "-i", MISSING, "-i", good[1], "-d", "f", "--json")
    s = summary(r.output)
    assert (s["present"], s["downloaded"], [f["id"] for f in s["failed"]]) == (2, 0, [MISSING])


def test_ids_from_stdin_query_json(bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    query = bl("data", "query", "-p", TRACT, "-b", "100206", "--json").stdout
    r = bl("data", "download", "--ids-from", "-", "-d", "s", "--json", input=query)
    assert r.exit_code == 0, r.output
    n = len(json.loads(query))
    assert summary(r.output)["downloaded"] == n > 1
    (tmp_path / "ids.txt").write_text(
        "# ids\n" + "\n".join(d["_id"] for d in json.loads(query)) + "\n"
    )
    r = bl("data", "download", "--ids-from", "ids.txt", "-d", "s", "--json")
    assert summary(r.output)["present"] == n


def test_pub_download(bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = bl("pub", "download", RELEASE, "--subject", "0001", "-d", "pub", "--json")
    assert r.exit_code == 0, r.output
    s = summary(r.output)
    assert s["downloaded"] > 0 and s["failed"] == []
    same = bl("data", "download", "--pub", RELEASE, "-b", "0001", "-d", "pub", "--json")
    assert summary(same.output)["present"] == s["downloaded"]


def test_single_object_keeps_the_documents_output(bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = bl("data", "download", T1, "--directory", "one/t1")
    assert r.exit_code == 0, r.output
    assert r.output == "Download dataset to one/t1\n100% done\n"
    assert (tmp_path / "one" / "t1" / "t1.nii.gz").is_file()
    assert not (tmp_path / "one" / "bl-lock.json").exists()


def test_files_carry_the_objects_create_date_like_the_tar(bl, tmp_path: Path, server) -> None:  # type: ignore[no-untyped-def]
    """Our files get the mtime the tar gives them (the object's create_date), as `tar -x` of
    the official CLI leaves them; a rerun still skips them by the lockfile."""
    from brainlife.wire import parse_date

    r = bl(*tract("-d", "out", "--layout", "seed"))
    assert r.exit_code == 0, r.output
    with Client(server.url) as c:
        docs = {d["_id"]: d for d in c.iter_datasets(project=TRACT)}
    lock = json.loads((tmp_path / "out" / "bl-lock.json").read_text())
    checked = 0
    for obj in lock["objects"]:
        want = parse_date(docs[obj["id"]]["create_date"]).timestamp()
        for f in obj["files"]:
            path = tmp_path / "out" / obj["folder"] / f["path"]
            if path.stat().st_nlink == 1:  # hard links share the first copy's inode
                assert path.stat().st_mtime == want
                checked += 1
    assert checked > 0
    again = summary(bl(*tract("-d", "out", "--layout", "seed", "--json")).output)
    assert again["bytes_transferred"] == 0
    r = bl("data", "download", T1, "single")
    assert r.exit_code == 0, r.output
    with Client(server.url) as c:
        want = parse_date(c.dataset(T1)["create_date"]).timestamp()
    assert (tmp_path / "single" / "t1.nii.gz").stat().st_mtime == want
