"""Every leaf command of the official CLI (npm brainlife@1.8.2: `bl.js`, `bl-<group>.js`),
unmodified, against `bl serve --tls` over the demo world: what each prints, asserted on
meaning (ids, names, files made), not on an exit code alone. Our `bl --help` has each group.

The writing commands (`project update`, `data upload`, `data update`, `data delete`, `bids
upload`) check what they changed through a second official command (`then`) and put back what
other cases read: each case stands alone, so the module runs in any order and split across
workers (`data delete` removes an object that the case itself uploads first).

Project files (issue #13 item 5) have their own rows: `bl data query --s3 [--path]` and `bl
data download -p P --path <file or folder/>` against O3D's demo tree.

The table can mark a command that work in progress adds (it fails today, with the reason;
`xfail(strict=True)`, so the table must be updated when it starts working). None is left.
"""

# The official CLI's fixtures are imported from test_official_cli (see test_official_apps).
# ruff: noqa: F811

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from brainlife.server.demo.projectfiles import O3D_FILES
from brainlife.server.services.apps import RUN_REFUSED
from tests.compat.test_official_cli import official_bl, run  # noqa: F401
from tests.conftest import LiveServer, start_server, stop_server

pytestmark = pytest.mark.compat

O3D = "5a022fc99c0d250055709e9c"
T1 = "5a050ad5d76a2a002737e572"
PROFILES_TASK = "5c49ec4b7c0d8a003351f043"
FREESURFER = "5b1f1f7e0a8d4a0027f6a3c2"

Result = subprocess.CompletedProcess
#: the module's `run` fixture: the official CLI, logged in as hayashis (admin of O3D)
Run = Callable[..., "Result[str]"]


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    #: what must be true of the run (stdout, stderr, and the work folder)
    check: Callable[[Result[str], Path], bool]
    #: why the command does not work yet (None: it works)
    todo: str | None = None
    #: after a write: the same archive seen through other commands (and what other cases read
    #: put back); returns whether the write did what it said
    then: Callable[[Run, Result[str]], bool] | None = None


@pytest.fixture(scope="module")
def tls_server(demo_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """This module's own TLS server: its commands write (project and data updates, uploads),
    which the read-only modules sharing the session's `tls_live_server` must not see."""
    data_dir = tmp_path_factory.mktemp("compat-every") / "data"
    shutil.copytree(demo_archive_dir, data_dir)
    server: LiveServer = start_server(data_dir, tls=True)
    yield server
    stop_server(server)


def out_has(*texts: str) -> Callable[[Result[str], Path], bool]:
    return lambda res, _work: all(t in res.stdout for t in texts)


def _upload_file(work: Path) -> str:
    path = work / "track.tck"
    path.write_bytes(b"mrtrix tracks\nEND\n")
    return str(path)


O3D_DESC = (
    "O3D (Open Diffusion Data and Derivative) is a reference repository for precision "
    "connectome mapping, white matter tracts analysis and algorithmic development."
)
UPLOADED = re.compile(r"successfully uploaded\. data object id: ([0-9a-f]{24})")
REGISTERED = re.compile(r"Registered data object: ([0-9a-f]{24})")


def _query_json(run: Run, *args: str) -> Any:
    res = run(*args, "-j")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _project_updated(run: Run, _res: Result[str]) -> bool:
    (project,) = _query_json(run, "project", "query", "-i", O3D)
    restored = run("project", "update", "--id", O3D, "--desc", O3D_DESC)
    return project["desc"] == "new description" and "updated - project" in restored.stdout


def _stored_then_removed(pattern: re.Pattern[str]) -> Callable[[Run, Result[str]], bool]:
    """The new object is in O3D with its subject and file; then it is removed again (O3D's
    object count is read by other cases)."""

    def then(run: Run, res: Result[str]) -> bool:
        match = pattern.search(res.stdout)
        assert match, res.stdout
        oid = match.group(1)
        (obj,) = _query_json(run, "data", "query", "-i", oid)
        got = run("data", "download", oid, f"dl-{oid}")
        removed = run("data", "delete", oid)
        return (
            obj["project"] == O3D
            and obj["status"] == "stored"
            and obj["meta"]["subject"] in ("0001", "01")
            and any((run.work / f"dl-{oid}").iterdir())  # type: ignore[attr-defined]
            and got.returncode == 0
            and "successfully removed dataset" in removed.stdout
            and _query_json(run, "data", "query", "-i", oid) == []
        )

    return then


def _data_updated(run: Run, res: Result[str]) -> bool:
    """The object (one that the case uploads: T1 is released, so it cannot change) has the new
    description and tag; then it is removed again."""
    oid = res.args[res.args.index("--id") + 1]
    (obj,) = _query_json(run, "data", "query", "-i", oid)
    removed = run("data", "delete", oid)
    return (
        obj["desc"] == "T1 edited"
        and "edited" in obj["tags"]
        and obj["meta"]["subject"] == "0001"
        and "successfully removed dataset" in removed.stdout
    )


def _deleted(run: Run, res: Result[str]) -> bool:
    return _query_json(run, "data", "query", "-i", res.args[-1]) == []


LEAVES: dict[str, Case] = {
    "version": Case(("version",), lambda res, _w: res.stdout.strip() == "1.8.2"),
    "login": Case(
        ("login", "--username", "hayashis", "--password", "hayashis"),
        out_has("Successfully logged in for 6 days"),
    ),
    "refresh": Case(("refresh",), out_has("token refreshed")),
    "profile query": Case(("profile", "query", "-q", "hayashi"), out_has("Username: hayashis")),
    "resource query": Case(
        ("resource", "query"), out_has("Name: Jetstream2 (shared)", "ssh: brainlife@")
    ),
    "datatype query": Case(("datatype", "query", "-q", "t1w"), out_has("Name: neuro/anat/t1w")),
    "project query": Case(("project", "query", "-q", "O3D"), out_has(f"Id: {O3D}", "Name: O3D")),
    "project update": Case(
        ("project", "update", "--id", O3D, "--desc", "new description"),
        out_has("updated - project"),
        then=_project_updated,
    ),
    "pub query": Case(("pub", "query", "-q", "o3d"), out_has("Release IDs: 1 (")),
    "data query": Case(
        ("data", "query", "-p", O3D, "-l", "1"), out_has("Project: O3D", "Status: stored")
    ),
    "data download": Case(
        ("data", "download", T1, "dl"),
        lambda res, work: (work / "dl" / "t1.nii.gz").stat().st_size > 0,
    ),
    "data upload": Case(
        ("data", "upload", "-p", O3D, "-d", "neuro/track/tck", "-s", "0001", "--track", "{tck}"),
        out_has("successfully uploaded"),
        then=_stored_then_removed(UPLOADED),
    ),
    "data update": Case(
        ("data", "update", "--id", "{new_object}", "--desc", "T1 edited", "--add_tag", "edited"),
        lambda res, _w: res.returncode == 0 and not res.stderr,
        then=_data_updated,
    ),
    "data delete": Case(
        ("data", "delete", "{new_object}"),
        out_has("successfully removed dataset"),
        then=_deleted,
    ),
    "bids download": Case(
        ("bids", "download", "--id", T1, "--output", "."),
        lambda res, work: any(work.glob(f"proj-{O3D}/sub-0001/*.id-{T1}/t1.nii.gz")),
    ),
    "bids upload": Case(
        ("bids", "upload", "-p", O3D, "-d", "{bids}"),
        out_has("Registered data object"),
        then=_stored_then_removed(REGISTERED),
    ),
    "app query": Case(
        ("app", "query", "--output-datatype", "neuro/freesurfer"),
        out_has(f"Id: {FREESURFER}", "Service: brainlife/app-freesurfer", "(Returned 1 result)"),
    ),
    "app run": Case(
        ("app", "run", "--id", FREESURFER, "--project", O3D, "--input", f"t1:{T1}"),
        lambda res, _w: res.returncode == 1 and RUN_REFUSED in res.stderr,
    ),
    "app wait": Case(("app", "wait", PROFILES_TASK), out_has("(done waiting)")),
}
#: project files (issue #13 item 5): flags of `data query` and `data download`
S3 = {
    "data query --s3": Case(
        ("data", "query", "-p", O3D, "--s3"),
        out_has(
            f"Project: O3D ({O3D})",
            "  [DIR]  docs/",
            "  [DIR]  logs/",
            "  [FILE] README.txt (",
            "3 folder(s), 1 file(s)",
        ),
    ),
    "data query --s3 --path": Case(
        ("data", "query", "-p", "O3D", "--s3", "--path", "logs/events/"),
        # the official CLI shows the first page only (it never follows the token)
        out_has("[FILE] event-0001.txt (", "0 folder(s), 1000 file(s) (truncated"),
    ),
    "data download --path": Case(
        ("data", "download", "-p", O3D, "--path", "docs/protocol.pdf", "-d", "pdf"),
        lambda res, work: (
            "Download complete." in res.stdout
            and (work / "pdf" / "protocol.pdf").read_bytes() == O3D_FILES["docs/protocol.pdf"]
        ),
    ),
    "data download --path folder/": Case(
        ("data", "download", "-p", O3D, "--path", "docs/"),
        lambda res, work: (
            "Download complete. (2 files extracted)" in res.stdout
            and (work / "docs" / "consent-template.txt").read_bytes()
            == O3D_FILES["docs/consent-template.txt"]
        ),
    ),
    "data download --path missing": Case(
        ("data", "download", "-p", O3D, "--path", "nope.txt"),
        lambda res, _w: res.returncode == 1 and "File not found: nope.txt" in res.stderr,
    ),
}


def _bids_dir(work: Path) -> str:
    root = work / "bids-in"
    (root / "sub-01" / "anat").mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9.0"}')
    (root / "sub-01" / "anat" / "sub-01_T1w.nii.gz").write_bytes(b"\x1f\x8b")
    return str(root)


def _new_object(run: Run, work: Path) -> str:
    """A data object of O3D that only the case that asks for it uses."""
    res = run(
        "data", "upload", "-p", O3D, "-d", "neuro/track/tck", "-s", "0001", "--track",
        _upload_file(work), "-n", "to delete",
    )  # fmt: skip
    match = UPLOADED.search(res.stdout)
    assert match, res.stdout + res.stderr
    return match.group(1)


def _params(table: dict[str, Case]) -> list[Any]:
    return [
        pytest.param(
            case,
            id=name,
            marks=[pytest.mark.xfail(strict=True, reason=f"TODO: {case.todo}")]
            if case.todo
            else [],
        )
        for name, case in table.items()
    ]


@pytest.mark.parametrize("case", _params({**LEAVES, **S3}))
def test_official_leaf_command(run, case: Case) -> None:
    work: Path = run.work
    made: dict[str, Callable[[Path], str]] = {
        "{tck}": _upload_file,
        "{bids}": _bids_dir,
        "{new_object}": lambda w: _new_object(run, w),
    }
    args = [made[a](work) if a in made else a for a in case.args]
    res = run(*args)
    record = {"args": args, "rc": res.returncode, "stdout": res.stdout[-2000:],
              "stderr": res.stderr[-2000:]}  # fmt: skip
    print(json.dumps(record, indent=1))  # what it printed, in the test log
    assert case.check(res, work), record
    if case.then is not None:
        assert case.then(run, res), record


def test_the_table_has_every_leaf_command_of_the_official_cli(official_bl: Path) -> None:
    package = official_bl.resolve().parent
    leaves = set()
    for group_file in package.glob("bl-*.js"):
        group = group_file.stem[3:]
        if "-" in group:
            continue
        text = group_file.read_text()
        subs = re.findall(r"\.command\('(\w+)'", text)
        leaves |= {f"{group} {s}" for s in subs} if subs else {group}
    assert leaves == set(LEAVES)


OFFICIAL_GROUPS = [
    "version", "login", "refresh", "profile", "resource", "datatype", "project", "pub", "data",
    "bids", "app",
]  # fmt: skip


def test_our_help_lists_a_command_for_each_official_one() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "brainlife", "--help"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    listed = {
        line.split()[0] for line in res.stdout.split("Commands:", 1)[1].splitlines() if line.strip()
    }
    assert set(OFFICIAL_GROUPS) <= listed


@pytest.mark.parametrize("leaf", list(LEAVES))
def test_our_bl_has_each_leaf_command(leaf: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "brainlife", *leaf.split(), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert "Usage: " in res.stdout
