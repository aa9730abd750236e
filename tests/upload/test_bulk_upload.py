"""`bl data upload --layout`: a tree of objects against a real `bl serve`: the dry-run plan
(objects, files, bytes, already there, refused and why), the parallel run, and an idempotent
rerun that uploads only what is missing."""

from __future__ import annotations

import json
from pathlib import Path

from brainlife.server.demo.world import TP_PROJECT


def _events(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _tree(root: Path) -> None:
    for sub, ses in (("s01", "1"), ("s01", "2"), ("s02", "1")):
        folder = root / sub / ses
        folder.mkdir(parents=True)
        (folder / "t1.nii.gz").write_bytes(f"{sub}-{ses}".encode() * 5000)
    (root / "s03" / "1").mkdir(parents=True)
    (root / "s03" / "1" / "T1w.nii.gz").write_bytes(b"misnamed")
    (root / "s04").mkdir()  # not deep enough: does not match the layout


def _upload(bl, root: Path, *more: str):  # type: ignore[no-untyped-def]
    return bl(
        "data", "upload", "-p", TP_PROJECT, "-d", "neuro/anat/t1w", "-t", "bulk",
        "--layout", "{subject}/{session}", str(root), "-j", *more,
    )  # fmt: skip


def test_dry_run_run_and_idempotent_rerun(bl, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    _tree(root)
    r = _upload(bl, root, "--dry-run")
    assert r.exit_code == 0, r.output
    events = _events(r.output)
    plan = next(e for e in events if e["event"] == "plan")
    assert plan == {
        "event": "plan",
        "objects": 4,
        "to_upload": 3,
        "files": 3,
        "bytes": 3 * 5 * 5000,
        "already_there": 0,
        "refused": 1,
    }
    refused = [e for e in events if e["event"] == "refused"]
    assert any("needs --t1" in e["refused"] for e in refused)
    todo = {e["folder"].split("tree/")[1] for e in events if e["event"] == "to-upload"}
    assert todo == {"s01/1", "s01/2", "s02/1"}

    r = _upload(bl, root)
    assert r.exit_code == 10, r.output  # one folder was refused; the others went
    summary = next(e for e in _events(r.output) if e["event"] == "summary")
    assert summary["uploaded"] == 3 and summary["failed"] == 0
    r = bl("data", "query", "-p", TP_PROJECT, "--tag", "bulk", "-j", "-l", "0")
    rows = json.loads(r.output)
    assert sorted((d["meta"]["subject"], d["meta"]["session"]) for d in rows) == [
        ("s01", "1"),
        ("s01", "2"),
        ("s02", "1"),
    ]

    # a rerun: nothing to do
    (root / "s03").rename(tmp_path / "s03")
    (root / "s04").rmdir()
    r = _upload(bl, root)
    assert r.exit_code == 0, r.output
    summary = next(e for e in _events(r.output) if e["event"] == "summary")
    assert summary["already_there"] == 3 and summary["uploaded"] == 0

    # one file changed: only that object goes again
    (root / "s02" / "1" / "t1.nii.gz").write_bytes(b"new content")
    r = _upload(bl, root)
    summary = next(e for e in _events(r.output) if e["event"] == "summary")
    assert summary["already_there"] == 2 and summary["uploaded"] == 1


def test_layout_fields_refused(bl, tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    r = bl("data", "upload", "-p", TP_PROJECT, "-d", "neuro/anat/t1w", "--layout", "{id}", ".")
    assert r.exit_code == 1 and "cannot take from a folder name" in r.output
    r = bl(
        "data", "upload", "-p", TP_PROJECT, "-d", "neuro/anat/t1w", "--layout", "{subject}",
        "-s", "1", ".",
    )  # fmt: skip
    assert r.exit_code == 2 and "come from the folders" in r.output


def test_a_tree_with_nothing_to_upload_is_refused_not_a_success(bl, tmp_path: Path) -> None:
    """The wrong folder (empty, or its objects one level too shallow for the layout) used to
    print 'plan: 0 objects' and exit 0, as if the upload had been done."""
    (tmp_path / "empty").mkdir()
    shallow = tmp_path / "shallow" / "s01"
    shallow.mkdir(parents=True)
    (shallow / "t1.nii.gz").write_bytes(b"t1")
    for root in ("empty", "shallow"):
        for more in ((), ("--dry-run",)):
            r = bl(
                "data", "upload", "-p", TP_PROJECT, "-d", "neuro/anat/t1w",
                "--layout", "{subject}/{session}", str(tmp_path / root), *more,
            )  # fmt: skip
            assert r.exit_code == 10, r.output
            assert "Nothing to upload" in r.output and "--layout" in r.output, r.output
            assert "Traceback" not in r.output


def test_folders_that_do_not_match_the_layout_are_refused_in_the_exit_code(
    bl,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    root = tmp_path / "tree"
    (root / "sub-u1" / "1").mkdir(parents=True)
    (root / "sub-u1" / "1" / "t1.nii.gz").write_bytes(b"t1 of u1")
    (root / "u2" / "1").mkdir(parents=True)  # not sub-<subject>
    (root / "u2" / "1" / "t1.nii.gz").write_bytes(b"t1 of u2")
    r = bl(
        "data", "upload", "-p", TP_PROJECT, "-d", "neuro/anat/t1w",
        "--layout", "sub-{subject}/{session}", str(root), "-j",
    )  # fmt: skip
    assert r.exit_code == 10, r.output  # the matching one went, the other is reported
    assert any(e["event"] == "refused" for e in _events(r.output))
    summary = next(e for e in _events(r.output) if e["event"] == "summary")
    assert summary["uploaded"] == 1


def test_dry_run_of_a_single_upload_says_what_dry_run_is(bl, tmp_path: Path) -> None:
    """`--dry-run` with `--t1 FILE` (no --layout) said 'With --layout, …' to a user who gave
    none: the error names the flag given."""
    (tmp_path / "t1.nii.gz").write_bytes(b"t1")
    r = bl(
        "data", "upload", "-p", TP_PROJECT, "-d", "neuro/anat/t1w", "-s", "01",
        "--t1", str(tmp_path / "t1.nii.gz"), "--dry-run",
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "With --layout" not in r.output
    assert "--dry-run" in r.output.split("Error:")[1], r.output
