"""`bl bids upload -p P DIR` against a real `bl serve`: anat T1w/T2w/FLAIR, dwi with bvec/bval,
func bold with events, fmap phasediff/magnitudes, as brainlife's bids-walker maps them; the
dry-run plan, refusals with their reason, the participants.tsv hook, and an idempotent rerun."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from brainlife.server.demo.world import TP_PROJECT
from tests.conftest import LiveServer, start_server, stop_server

EXTRA_DATATYPES = {
    "neuro/anat/flair": [{"id": "flair", "filename": "flair.nii.gz", "required": True}],
    "neuro/func/task": [
        {"id": "bold", "filename": "bold.nii.gz", "required": True},
        {"id": "events", "filename": "events.tsv", "required": False},
        {"id": "sbref", "filename": "sbref.nii.gz", "required": False},
    ],
    "neuro/fmap": [
        {"id": f, "filename": f"{f}.nii.gz", "required": False}
        for f in ("phasediff", "magnitude1", "magnitude2", "epi")
    ],
}


@pytest.fixture(scope="module")
def server(
    demo_archive_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The demo world plus the datatypes of func, fmap and FLAIR (the demo has none)."""
    from brainlife.server.archive import open_archive
    from brainlife.server.ids import new_object_id
    from brainlife.server.models import Datatype
    from brainlife.server.settings import Settings

    data_dir = tmp_path_factory.mktemp("bids") / "data"
    shutil.copytree(demo_archive_dir, data_dir)
    archive = open_archive(Settings(data_dir=data_dir))
    with archive.session() as s:
        for name, files in EXTRA_DATATYPES.items():
            now = datetime.now(UTC)
            s.add(Datatype(id=new_object_id(), name=name, create_date=now, extra={"files": files}))
        s.commit()
    archive.engine.dispose()
    srv = start_server(data_dir)
    yield srv
    stop_server(srv)


def _w(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _tree(root: Path) -> None:
    a = root / "sub-01" / "anat"
    _w(a / "sub-01_T1w.nii.gz", b"t1" * 1000)
    _w(a / "sub-01_T1w.json", json.dumps({"MagneticFieldStrength": 3}).encode())
    _w(a / "sub-01_T2w.nii.gz", b"t2" * 1000)
    _w(a / "sub-01_FLAIR.nii.gz", b"flair" * 1000)
    d = root / "sub-01" / "dwi"
    _w(d / "sub-01_dwi.nii.gz", b"dwi" * 1000)
    _w(d / "sub-01_dwi.bvec", b"0 1 0\n")
    _w(d / "sub-01_dwi.bval", b"0 1000\n")
    f = root / "sub-01" / "func"
    _w(f / "sub-01_task-rest_bold.nii.gz", b"bold" * 1000)
    _w(f / "sub-01_task-rest_events.tsv", b"onset\tduration\n")
    m = root / "sub-01" / "fmap"
    _w(m / "sub-01_phasediff.nii.gz", b"pd" * 1000)
    _w(m / "sub-01_phasediff.json", json.dumps({"EchoTime1": 0.004}).encode())
    _w(m / "sub-01_magnitude1.nii.gz", b"m1" * 1000)
    s2 = root / "sub-02" / "ses-1"
    _w(s2 / "anat" / "sub-02_ses-1_run-1_T1w.nii.gz", b"t1b" * 1000)
    _w(s2 / "anat" / "sub-02_ses-1_T2w.nii", b"unzipped")  # refused: .nii
    _w(s2 / "dwi" / "sub-02_ses-1_dwi.nii.gz", b"dwi2")  # refused: no bvec/bval
    _w(root / "participants.tsv", b"participant_id\tage\nsub-01\t30\nsub-02\t40\n")
    _w(root / "dataset_description.json", b'{"Name": "tiny"}')


def _events(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_bids_upload(bl, tmp_path: Path) -> None:
    root = tmp_path / "bids"
    _tree(root)
    r = bl("bids", "upload", "-p", TP_PROJECT, "-t", "bidsrun", "--dry-run", "-j", str(root))
    assert r.exit_code == 0, r.output
    events = _events(r.output)
    plan = next(e for e in events if e["event"] == "plan")
    assert plan["to_upload"] == 7 and plan["refused"] == 2 and plan["already_there"] == 0
    reasons = " ".join(e["refused"] for e in events if e["event"] == "refused")
    assert "expects .nii.gz" in reasons and "no sub-02_ses-1_dwi.bvec" in reasons
    assert any(e["event"] == "participants" for e in events)  # the hook was called

    r = bl("bids", "upload", "-p", TP_PROJECT, "-t", "bidsrun", "-j", str(root))
    assert r.exit_code == 10, r.output  # two images refused, the rest uploaded
    summary = next(e for e in _events(r.output) if e["event"] == "summary")
    assert summary["uploaded"] == 7
    rows = json.loads(
        bl("data", "query", "-p", TP_PROJECT, "--tag", "bidsrun", "-j", "-l", "0").output
    )
    by_desc = {d["desc"]: d for d in rows}
    t1 = by_desc["sub-01/anat/sub-01_T1w.nii.gz"]
    assert t1["meta"]["subject"] == "01" and t1["meta"]["MagneticFieldStrength"] == 3
    run1 = by_desc["sub-02/ses-1/anat/sub-02_ses-1_run-1_T1w.nii.gz"]
    assert (run1["meta"]["subject"], run1["meta"]["session"], run1["meta"]["run"]) == (
        "02",
        "1",
        "1",
    )
    bold = by_desc["sub-01/func/sub-01_task-rest_bold.nii.gz"]
    assert bold["datatype_tags"] == ["rest"]
    fmap = by_desc["sub-01/fmap/sub-01_magnitude1.nii.gz"]
    assert fmap["meta"]["EchoTime1"] == 0.004
    dwi_id = by_desc["sub-01/dwi/sub-01_dwi.nii.gz"]["_id"]
    out = tmp_path / "dwi"
    assert bl("data", "download", dwi_id, str(out)).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["dwi.bvals", "dwi.bvecs", "dwi.nii.gz"]

    r = bl("bids", "upload", "-p", TP_PROJECT, "-t", "bidsrun", "-j", str(root))
    summary = next(e for e in _events(r.output) if e["event"] == "summary")
    assert summary["already_there"] == 7 and summary["uploaded"] == 0


def test_a_folder_without_bids_images_is_refused_not_a_success(bl, tmp_path: Path) -> None:
    """`bl bids upload -p P wrong-folder` used to print 'plan: 0 objects' and exit 0."""
    (tmp_path / "notbids" / "docs").mkdir(parents=True)
    (tmp_path / "notbids" / "README").write_text("not a BIDS tree")
    for more in ((), ("--dry-run",)):
        r = bl("bids", "upload", "-p", TP_PROJECT, str(tmp_path / "notbids"), *more)
        assert r.exit_code == 10, r.output
        assert "No BIDS image" in r.output and "sub-" in r.output, r.output


def test_a_malformed_participants_table_is_an_upload_refusal(bl, tmp_path: Path) -> None:
    """A participants.tsv or participants.json that cannot be read stops `bl bids upload` before
    any object is sent, with exit 10 as every other refused file of the tree (it was exit 1)."""
    root = tmp_path / "bids"
    (root / "sub-malformed" / "anat").mkdir(parents=True)
    (root / "sub-malformed" / "anat" / "sub-malformed_T1w.nii.gz").write_bytes(
        b"\x1f\x8b" + b"x" * 100
    )
    (root / "participants.tsv").write_text("participant_id\tage\nsub-malformed\t3\t4\n")
    r = bl("bids", "upload", "-p", TP_PROJECT, str(root))
    assert r.exit_code == 10, r.output
    assert (
        "line 2: 3 cells where the header has 2" in r.output and "Nothing was uploaded" in r.output
    )
    assert "Traceback" not in r.output
    (root / "participants.tsv").write_text("participant_id\tage\nsub-malformed\t3\n")
    (root / "participants.json").write_text("[1, 2]")
    r = bl("bids", "upload", "-p", TP_PROJECT, str(root))
    assert r.exit_code == 10 and "must hold a JSON object" in r.output, r.output
    r = bl("data", "query", "-p", TP_PROJECT, "--subject", "malformed", "-j")
    assert r.exit_code == 0 and json.loads(r.output) == [], r.output  # nothing was sent
