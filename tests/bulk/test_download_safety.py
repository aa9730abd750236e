"""What a bulk download may touch, against a real `bl serve` over the demo world: never a file it
did not write (unless --existing overwrite), never through a link out of -d; the lockfile keeps
every file any run placed there (keyed by path), so `bl data verify` checks them all; a full disk
while saving it is exit 8, with no temporary file left; a download that matches nothing fails
and creates nothing."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from brainlife.cli.main import cli
from brainlife.client.transfer.lockfile import Lockfile

TRACT = "5b0dad8041711001e958b519"
T1 = "5a050ad5d76a2a002737e572"


def subject(*extra: str) -> list[str]:
    """The 3 tract profiles of subject 100206."""
    return ["data", "download", "-p", TRACT, "--datatype", "neuro/tractprofile", "-b", "100206"]


def test_a_file_no_download_wrote_is_kept_unless_overwrite(bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mine = tmp_path / "out" / T1 / "t1.nii.gz"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own edit")
    r = bl("data", "download", "-i", T1, "-d", "out", "--layout", "id")
    assert r.exit_code == 1
    assert "already exists, differs, and was not written by a download" in r.output
    assert "--existing overwrite" in r.output
    assert mine.read_bytes() == b"my own edit"
    assert not (tmp_path / "out" / "bl-lock.json").exists()
    r = bl("data", "download", "-i", T1, "-d", "out", "--layout", "id", "--existing", "overwrite")
    assert r.exit_code == 0, r.output
    assert mine.read_bytes() != b"my own edit"
    assert bl("data", "verify", "out").exit_code == 0


def test_a_folder_linked_out_of_the_root_is_refused(bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").mkdir()
    os.symlink(elsewhere, tmp_path / "out" / T1)
    r = bl("data", "download", "-i", T1, "-d", "out", "--layout", "id")
    assert r.exit_code == 1
    assert "outside the download folder" in r.output
    assert list(elsewhere.iterdir()) == []


def test_the_lockfile_keeps_every_run_and_verify_checks_them_all(bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert bl(*subject(), "-d", "out", "--layout", "id").exit_code == 0
    r = bl(*subject(), "-d", "out", "--layout", "seed")
    assert r.exit_code == 0, r.output
    lock = json.loads((tmp_path / "out" / "bl-lock.json").read_text())
    folders = sorted(o["folder"] for o in lock["objects"])
    assert len(folders) == 6 and sum(f.startswith("100206/") for f in folders) == 3
    ok = bl("data", "verify", "out")
    assert ok.exit_code == 0 and ok.output.startswith("OK: 6 data objects"), ok.output
    # corrupt a file of the first run: verify must see it
    first = next(f for f in folders if not f.startswith("100206/"))
    victim = next(p for p in (tmp_path / "out" / first).rglob("*") if p.is_file())
    victim.write_bytes(b"x" * victim.stat().st_size)
    bad = bl("data", "verify", "out")
    assert bad.exit_code == 7
    assert f"corrupt: {victim.relative_to(tmp_path / 'out').as_posix()}" in bad.output


def test_old_lockfiles_still_read(tmp_path: Path) -> None:
    doc = {
        "version": 1,
        "objects": [
            {"id": "a" * 24, "kind": "dataset", "folder": "x", "status": "complete", "files": []},
            {
                "id": "b" * 24,
                "kind": "task-archive",
                "folder": "",
                "status": "complete",
                "files": [{"path": "s1.tar.gz", "size": 1, "sha256": "0"}],
            },
        ],
    }
    (tmp_path / "bl-lock.json").write_text(json.dumps(doc))
    lock = Lockfile.load(tmp_path / "bl-lock.json")
    assert sorted(lock.objects) == ["s1.tar.gz", "x"]
    assert lock.find("a" * 24) == doc["objects"][0]
    assert lock.ids("dataset") == ["a" * 24]


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"files": "x"}, "'files'"),
        ({"files": [1, 2]}, "'files'"),
        ({"files": [{"size": 1}]}, "'files'"),
        ({"folder": "../../../tmp/elsewhere", "files": []}, "outside"),
        ({"folder": "x", "files": [{"path": "/etc/passwd", "size": 1, "sha256": "0"}]}, "absolute"),
    ],
)
def test_a_damaged_or_hostile_lockfile_is_refused_whole(
    bl,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    entry: dict[str, object],
    words: str,
) -> None:
    """A lockfile edited by hand (or handed over) whose entries are not the shape bl writes, or
    whose folders and files lie outside its folder: `bl data verify` said 'unexpected failure
    (AttributeError …)', or checked files out of the folder; `--lock` blamed the layout."""
    out = tmp_path / "out"
    out.mkdir()
    doc = {"version": 1, "objects": [{"id": T1, "kind": "dataset", "status": "complete", **entry}]}
    (out / "bl-lock.json").write_text(json.dumps(doc))
    for args in (["data", "verify", "out"], ["data", "download", "--lock", "out/bl-lock.json"]):
        r = bl(*args)
        assert r.exit_code == 1, r.output
        assert "not a usable lockfile" in r.output and words in r.output, r.output
        assert "unexpected failure" not in r.output and "layout" not in r.output


def test_full_disk_while_saving_the_lockfile_is_exit_8_and_leaves_no_temporary(
    bl,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # the kernel's /dev/full answers every write with ENOSPC: a real full disk for this file
    tmp = out / f".bl-lock.json.{os.getpid()}.bl-tmp"
    os.symlink("/dev/full", tmp)
    r = bl("data", "download", "-i", T1, "-d", "out", "--layout", "id")
    assert r.exit_code == 8, r.output
    assert "The disk is full" in r.output and "lockfile" in r.output
    assert re.search(r"\((\d+ B|[\d.]+ [KMGT]B) free\)", r.output), r.output  # not raw bytes
    assert not tmp.exists() and not tmp.is_symlink()
    assert sorted(p.name for p in out.iterdir()) == []


def test_a_full_disk_while_fetching_is_named_not_hidden_by_the_lockfile(
    bl,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The disk fills up while a file arrives, so the lockfile cannot be saved either: the
    error is the file's (nothing was downloaded), not the lockfile's 'the downloaded files are
    kept', which told the user everything had arrived."""
    import errno

    import brainlife.client.transfer.files as files
    import brainlife.client.transfer.lockfile as lockfile

    full = {"now": False}
    real_atomic_write = lockfile.atomic_write

    def write_all(*args: object, **kwargs: object) -> None:
        full["now"] = True
        raise OSError(errno.ENOSPC, "No space left on device")

    def atomic_write(path: Path, data: bytes) -> None:
        if full["now"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_atomic_write(path, data)

    monkeypatch.setattr(files, "write_all", write_all)
    monkeypatch.setattr(lockfile, "atomic_write", atomic_write)
    r = bl("data", "download", "-i", T1, "-d", "out", "--layout", "id")
    assert r.exit_code == 8, r.output
    assert "t1.nii.gz" in r.output
    assert "The downloaded files are kept" not in r.output


O3D_PUB = "5bab9918a918ae002702418f"
RELEASE_1 = "5bab993aa918ae0027024192"
RELEASE_REMOVED = "5bb2437c19fdb40027307f7b"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (
            ["pub", "download", O3D_PUB],
            3,
            [f"{O3D_PUB} is a publication, not a release", f"{RELEASE_1} (release 1)"],
        ),
        (["pub", "download", RELEASE_REMOVED], 3, ["was removed", f"{RELEASE_1} (release 1)"]),
        (["pub", "download", "nope"], 2, ["'nope' is not a release id (24 hexadecimal digits)"]),
        (["data", "download", "--pub", "nope"], 2, ["'nope' is not a release id"]),
        (
            ["data", "download", "-p", "O3D", "-b", "9999"],
            3,
            ["No data object matches", "subject='9999'", "nothing was downloaded"],
        ),
        (["data", "download", "nonsense"], 2, ["'nonsense' is not a data object id (24 hex"]),
    ],
)
def test_a_download_that_gets_nothing_fails_and_creates_nothing(
    bl,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    args: list[str],
    code: int,
    words: list[str],
) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    r = bl(*args, "-d", "dl") if args[1] == "download" and "nonsense" not in args else bl(*args)
    assert r.exit_code == code, r.output
    for w in words:
        assert w in r.output
    assert "Traceback" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_layout_typo_suggests_the_preset(bl) -> None:  # type: ignore[no-untyped-def]
    r = bl("data", "download", "-p", TRACT, "--layout", "sed", "--dry-run")
    assert r.exit_code == 1
    assert "did you mean seed?" in r.output


@pytest.mark.parametrize("typo", ["neuro/anat/t1", "neuro/anat/tw1"])
def test_datatype_typo_suggests_the_nearest_names(bl, typo: str) -> None:  # type: ignore[no-untyped-def]
    r = bl("data", "download", "-p", TRACT, "--datatype", typo, "--dry-run")
    assert r.exit_code == 3
    suggested = r.output.split("Did you mean ", 1)[1].split("?", 1)[0]
    assert "neuro/anat/t1w" in suggested.split(" or ")


def test_query_json_says_on_stderr_what_it_left_out(bl) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    r = runner.invoke(cli, ["data", "query", "-p", "O3D", "--json"])
    assert r.exit_code == 0, r.stderr
    assert len(json.loads(r.stdout)) == 100
    assert "2708 data objects match, 100 printed (from 0)" in r.stderr
    assert "--limit 0 --json" in r.stderr and "--skip 100 --json" in r.stderr
    whole = runner.invoke(cli, ["data", "query", "-p", "O3D", "--limit", "0", "--json"])
    assert len(json.loads(whole.stdout)) == 2708 and whole.stderr == ""
    # the documented pipeline plans every object
    plan = runner.invoke(
        cli, ["data", "download", "--ids-from", "-", "--dry-run", "--json"], input=whole.stdout
    )
    assert json.loads(plan.stdout.splitlines()[-1])["objects"] == 2708
    # a page size given is kept for the next page, and not repeated in "all of them"
    small = runner.invoke(cli, ["data", "query", "-p", "O3D", "-l", "5", "--json"])
    assert "All of them: 'bl data query --project O3D --limit 0 --json'" in small.stderr
    assert "the next page: 'bl data query --project O3D --limit 5 --skip 5 --json'" in small.stderr


def test_two_runs_saving_one_lockfile_keep_both_entries(tmp_path: Path) -> None:
    path = tmp_path / "bl-lock.json"
    first, second = Lockfile.open(path), Lockfile.open(path)
    first.put({"id": "a" * 24, "kind": "dataset", "folder": "a", "status": "complete"})
    first.save()
    second.put({"id": "a" * 24, "kind": "dataset", "folder": "seed/a", "status": "complete"})
    second.save()
    assert sorted(Lockfile.load(path).objects) == ["a", "seed/a"]
    assert not list(tmp_path.glob(".bl-lock.json.*"))
