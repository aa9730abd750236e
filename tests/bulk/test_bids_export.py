"""`bl bids download` end to end against a real `bl serve` over the demo world: the bulk engine
fetches the objects, the BIDS tree is made from them, and the BIDS validator finds no error."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

O3D = "5a022fc99c0d250055709e9c"
TRACT = "5b0dad8041711001e958b519"


def validator() -> str:
    found = shutil.which("bids-validator-deno") or str(
        Path(sys.executable).parent / "bids-validator-deno"
    )
    assert Path(found).exists(), "bids-validator-deno (PyPI) is a dev dependency"
    return found


def validate(root: Path) -> list[dict]:  # type: ignore[type-arg]
    res = subprocess.run(
        [validator(), str(root), "--format", "json"], capture_output=True, text=True, timeout=600
    )
    issues = json.loads(res.stdout)["issues"]["issues"]
    return [i for i in issues if i["severity"] == "error"]


def test_the_demo_exports_to_a_valid_bids_dataset(bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    args = [
        "bids", "download", "--project", "O3D", "--subject", "0001", "--subject", "0002",
        "--datatype", "neuro/anat/t1w", "--datatype", "neuro/anat/t2w",
        "--datatype", "neuro/dwi", "--datatype", "neuro/freesurfer", "--output", "ds",
    ]  # fmt: skip
    r = bl(*args)
    assert r.exit_code == 0, r.output
    assert "BIDS dataset in ds: 8 data objects, 24 files, 2 subjects." in r.output
    root = tmp_path / "ds"
    for rel in [
        "sub-0001/anat/sub-0001_T1w.nii.gz",
        "sub-0001/anat/sub-0001_T2w.nii.gz",
        "sub-0002/dwi/sub-0002_dwi.nii.gz",
        "sub-0002/dwi/sub-0002_dwi.bval",
        "sub-0002/dwi/sub-0002_dwi.bvec",
        "derivatives/freesurfer/sub-0001/output/mri/aseg.mgz",
        "derivatives/freesurfer/dataset_description.json",
        "sourcedata/brainlife/bl-lock.json",
    ]:
        assert (root / rel).is_file(), rel
    assert (root / "participants.tsv").read_text() == "participant_id\nsub-0001\nsub-0002\n"
    # the BIDS files are the verified downloads, linked
    t1 = root / "sub-0001/anat/sub-0001_T1w.nii.gz"
    assert t1.stat().st_nlink >= 2
    assert validate(root) == []
    assert bl("data", "verify", "ds/sourcedata/brainlife").exit_code == 0
    again = bl(*args, "--json")
    assert again.exit_code == 0, again.output
    events = [json.loads(line) for line in again.output.splitlines() if line.startswith("{")]
    summary = next(e for e in events if e["event"] == "summary")
    assert summary["downloaded"] == 0 and summary["present"] == 8
    bids = next(e for e in events if e["event"] == "bids")
    assert bids["objects"] == 8 and bids["unmapped"] == []


def test_objects_that_do_not_map_are_listed(bl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = bl("bids", "download", "--project", TRACT, "--subject", "100206", "--output", "tp")
    assert r.exit_code == 0, r.output
    # three tract-profile objects of one subject: the first takes the pipeline folder
    assert "Not in the BIDS tree (2; kept in tp/sourcedata/brainlife):" in r.output
    assert r.output.count("neuro/tractprofile: derivatives/brainlife-tractprofile/") == 2
    report = json.loads((tmp_path / "tp/sourcedata/brainlife/bl-bids.json").read_text())
    assert len(report["unmapped"]) == 2
    assert validate(tmp_path / "tp") == []


def test_bids_download_needs_a_selection(bl) -> None:  # type: ignore[no-untyped-def]
    r = bl("bids", "download")
    assert r.exit_code == 2 and "Name a --project" in r.output


@pytest.mark.parametrize(("layout", "warns"), [("bids", True), ("brainlife", False)])
def test_layout_bids_is_the_brainlife_layout_and_warns(bl, tmp_path: Path, layout, warns) -> None:  # type: ignore[no-untyped-def]
    r = bl("data", "download", "-p", TRACT, "--datatype", "neuro/tractprofile", "-b", "100206",
           "-d", "out", "--layout", layout)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert ("Warning: --layout bids is now called 'brainlife'" in r.output) is warns
    assert len(list((tmp_path / "out" / f"proj-{TRACT}").glob("sub-100206/dt-*"))) == 3
