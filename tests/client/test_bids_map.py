"""The datatype → BIDS mapping (`brainlife.client.bids`), as data: names, sidecars, what does
not map and why, name clashes, participants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brainlife.client.bids import BIDS_MAP, Mapped, Unmapped, build_tree, map_object


def doc(oid: str = "a" * 24, **meta: str) -> dict:
    return {"_id": oid, "meta": meta}


def test_t1w_with_session_and_run_and_a_sidecar() -> None:
    got = map_object(doc(subject="01", session="pre", run="2", TE="0.003"), "neuro/anat/t1w",
                     ["t1.nii.gz"])  # fmt: skip
    assert isinstance(got, Mapped)
    assert got.files == {"sub-01/ses-pre/anat/sub-01_ses-pre_run-2_T1w.nii.gz": "t1.nii.gz"}
    assert got.sidecar == ("sub-01/ses-pre/anat/sub-01_ses-pre_run-2_T1w.json", {"TE": "0.003"})


def test_dwi_files_get_bids_extensions() -> None:
    got = map_object(doc(subject="0001"), "neuro/dwi", ["dwi.nii.gz", "dwi.bvals", "dwi.bvecs"])
    assert isinstance(got, Mapped)
    assert sorted(got.files) == [
        "sub-0001/dwi/sub-0001_dwi.bval",
        "sub-0001/dwi/sub-0001_dwi.bvec",
        "sub-0001/dwi/sub-0001_dwi.nii.gz",
    ]
    assert got.sidecar is None  # nothing but entities in meta


def test_func_needs_a_task_name() -> None:
    got = map_object(doc(subject="01", task="rest"), "neuro/func/task", ["bold.nii.gz"])
    assert isinstance(got, Mapped)
    assert list(got.files) == ["sub-01/func/sub-01_task-rest_bold.nii.gz"]
    missing = map_object(doc(subject="01"), "neuro/func/task", ["bold.nii.gz"])
    assert isinstance(missing, Unmapped) and "task name" in missing.reason


def test_derivatives_go_under_their_pipeline() -> None:
    got = map_object(doc(subject="01"), "neuro/freesurfer", ["output/mri/aseg.mgz"])
    assert isinstance(got, Mapped)
    assert got.files == {"derivatives/freesurfer/sub-01/output/mri/aseg.mgz": "output/mri/aseg.mgz"}
    track = map_object(doc(subject="01"), "neuro/track/tck", ["track.tck"])
    assert isinstance(track, Mapped)
    assert list(track.files) == ["derivatives/brainlife/sub-01/dwi/sub-01_tractography.tck"]


@pytest.mark.parametrize(
    ("meta", "datatype", "files", "reason"),
    [
        ({"subject": "01"}, "neuro/meg/fif", ["x.fif"], "no BIDS rule"),
        ({}, "neuro/anat/t1w", ["t1.nii.gz"], "no subject"),
        ({"subject": "01"}, "neuro/anat/t1w", ["t1.nii.gz", "extra.txt"], "extra.txt has no place"),
        ({"subject": "01"}, "neuro/dwi", ["dwi.nii.gz"], "lacks dwi.bvals, dwi.bvecs"),
    ],
)
def test_what_does_not_map_says_why(meta, datatype, files, reason) -> None:
    got = map_object(doc(**meta), datatype, files)
    assert isinstance(got, Unmapped) and reason in got.reason


def test_hostile_labels_stay_labels() -> None:
    got = map_object(doc(subject="../../etc", session="a/b"), "neuro/anat/t1w", ["t1.nii.gz"])
    assert isinstance(got, Mapped)
    assert list(got.files) == ["sub-etc/ses-ab/anat/sub-etc_ses-ab_T1w.nii.gz"]


def test_every_rule_is_well_formed() -> None:
    for datatype, rule in BIDS_MAP.items():
        assert rule.tree or rule.files, datatype
        assert rule.sidecar is None or rule.sidecar in rule.files, datatype
        assert all("/" not in s for s in rule.files.values()), datatype


def test_build_tree_lists_clashes_and_writes_participants(tmp_path: Path) -> None:
    src = tmp_path / "src"
    objects = []
    for n, sub in enumerate(["01", "01", "02"]):
        folder = src / str(n)
        folder.mkdir(parents=True)
        (folder / "t1.nii.gz").write_bytes(f"t1 {n}".encode())
        objects.append((doc(str(n) * 24, subject=sub), "neuro/anat/t1w", folder, ["t1.nii.gz"]))
    objects.append((doc("9" * 24, subject="03"), "neuro/meg/fif", src, []))
    root = tmp_path / "bids"
    report = build_tree(
        root, objects, name="study", participants=[{"participant_id": "sub-02", "age": 31}]
    )
    assert [m.id for m in report.mapped] == ["0" * 24, "2" * 24]
    assert [(u.id, u.reason) for u in report.unmapped] == [
        ("1" * 24, f"sub-01/anat/sub-01_T1w.nii.gz is already {'0' * 24}'s"),
        ("9" * 24, "no BIDS rule for the datatype neuro/meg/fif"),
    ]
    assert (root / "sub-01/anat/sub-01_T1w.nii.gz").read_bytes() == b"t1 0"
    assert (root / "participants.tsv").read_text() == (
        "participant_id\tage\nsub-01\tn/a\nsub-02\t31\nsub-03\tn/a\n"
    )
    desc = json.loads((root / "dataset_description.json").read_text())
    assert desc["Name"] == "study" and desc["DatasetType"] == "raw"
    again = build_tree(root, objects, name="study")
    assert again.files == report.files  # a second run remakes the same tree in place
