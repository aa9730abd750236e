"""brainlife's datatype catalogue: every archive has it from its first start (`seed_catalogue`,
run by `open_archive`), so that an empty archive can take uploads of the usual kinds at once.

A datatype is brainlife's (brainlife-server.md §1.3): a name such as `neuro/anat/t1w`, a
description, the files an object of it holds (`files`: `{id, filename | dirname, desc,
required, ext?}`, the ids being what the official CLI's `--t1 PATH` flags name) and its
datatype tags. The demo's datatypes (`DEMO_DATATYPES`) keep the ids the demo world refers to; the
others have ids of their own, fixed here so that every archive agrees. Admins add more with
`bl admin datatype add` or `POST /api/warehouse/datatype` (`services.datatype_writes`).

Seeding is idempotent and additive: a datatype whose id or name the archive already has is
left as it is (an admin may have changed it), and nothing is ever removed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from brainlife.server.models import Datatype


def _file(
    fid: str,
    name: str,
    desc: str,
    required: bool = True,
    directory: bool = False,
    ext: str | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": fid,
        ("dirname" if directory else "filename"): name,
        "desc": desc,
        "required": required,
    }
    if ext:
        entry["ext"] = ext
    return entry


def _tags(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"datatype_tag": tag, "desc": desc} for tag, desc in pairs]


DEMO_DATATYPES: list[
    tuple[str, str, str, list[dict[str, Any]], list[dict[str, str]], str | None]
] = [
    (
        "58c33bcee13a50849b25879a",
        "neuro/anat/t1w",
        "T1 weighted anatomical image",
        [_file("t1", "t1.nii.gz", "T1 weighted image", ext=".nii.gz")],
        _tags(("acpc_aligned", "aligned to the AC-PC line"), ("defaced", "face removed")),
        "brainlife/validator-neuro-anat",
    ),
    (
        "594c0325fa1d2e5a1f0beda5",
        "neuro/anat/t2w",
        "T2 weighted anatomical image",
        [_file("t2", "t2.nii.gz", "T2 weighted image", ext=".nii.gz")],
        _tags(("acpc_aligned", "aligned to the AC-PC line")),
        "brainlife/validator-neuro-anat",
    ),
    (
        "58c33c5fe13a50849b25879b",
        "neuro/dwi",
        "Diffusion weighted image with bvals/bvecs",
        [
            _file("dwi", "dwi.nii.gz", "4D diffusion weighted image", ext=".nii.gz"),
            _file("bvecs", "dwi.bvecs", "gradient directions (FSL layout)"),
            _file("bvals", "dwi.bvals", "b-values"),
        ],
        _tags(
            ("single_shell", "one non-zero b-value"),
            ("multi_shell", "several b-values"),
            ("normalized", "b-values rounded"),
        ),
        "brainlife/validator-neuro-dwi",
    ),
    (
        "5907d922436ee50ffde9c549",
        "neuro/track/tck",
        "Whole-brain tractogram (MRtrix tck)",
        [_file("track", "track.tck", "streamlines", ext=".tck")],
        _tags(
            ("dt_stream", "deterministic tensor tracking"),
            ("sd_stream", "deterministic CSD tracking"),
            ("sd_prob", "probabilistic CSD tracking"),
        ),
        None,
    ),
    (
        "5965467cb09297d8d81bdbcd",
        "neuro/wmc",
        "White matter classification (segmented tracts)",
        [
            _file("classification", "classification.mat", "tract index of each streamline"),
            _file("tracts", "tracts", "streamline coordinates per tract (JSON)", False, True),
            _file("surfaces", "surfaces", "tract surfaces", False, True),
        ],
        _tags(("afq", "segmented with AFQ")),
        None,
    ),
    (
        "5a0cbdd0b5fa7b00b6ca54cf",
        "neuro/tractprofile",
        "Diffusion measures along each tract",
        [_file("profiles", "profiles", "one CSV of FA/MD/RD/AD per tract", directory=True)],
        [],
        None,
    ),
    (
        "58cb22c8e13a50849b25882e",
        "neuro/freesurfer",
        "FreeSurfer recon-all output",
        [_file("output", "output", "FreeSurfer subject folder", directory=True)],
        [],
        None,
    ),
]


#: datatypes an archive takes beyond the demo's (BIDS uploads: anat T1w/T2w/FLAIR, dwi, func
#: bold, fmap), with the file ids brainlife's datatypes use
MORE_DATATYPES: list[
    tuple[str, str, str, list[dict[str, Any]], list[dict[str, str]], str | None]
] = [
    (
        "5d9cf81c0a7d7a6a8b30cd11",
        "neuro/anat/flair",
        "FLAIR anatomical image",
        [_file("flair", "flair.nii.gz", "FLAIR image", ext=".nii.gz")],
        _tags(("defaced", "face removed")),
        "brainlife/validator-neuro-anat",
    ),
    (
        "59b685a08e5d38b0b331ddc5",
        "neuro/func/task",
        "Task-based (or resting) functional MRI",
        [
            _file("bold", "bold.nii.gz", "4D BOLD image", ext=".nii.gz"),
            _file("events", "events.tsv", "task events", False, ext=".tsv"),
            _file("sbref", "sbref.nii.gz", "single-band reference", False, ext=".nii.gz"),
            _file("physio", "physio.tsv.gz", "physiological recordings", False),
        ],
        _tags(("rest", "resting state"), ("preprocessed", "preprocessed")),
        "brainlife/validator-neuro-func",
    ),
    (
        "5c390505f9109beac42b00df",
        "neuro/fmap",
        "Field map (phase difference, two phases, a direct field map or spin-echo EPI)",
        [
            _file("phasediff", "phasediff.nii.gz", "phase difference", False, ext=".nii.gz"),
            _file("magnitude1", "magnitude1.nii.gz", "first magnitude", False, ext=".nii.gz"),
            _file("magnitude2", "magnitude2.nii.gz", "second magnitude", False, ext=".nii.gz"),
            _file("phase1", "phase1.nii.gz", "first phase", False, ext=".nii.gz"),
            _file("phase2", "phase2.nii.gz", "second phase", False, ext=".nii.gz"),
            _file("magnitude", "magnitude.nii.gz", "magnitude of a field map", False),
            _file("fieldmap", "fieldmap.nii.gz", "field map", False, ext=".nii.gz"),
            _file("epi1", "epi1.nii.gz", "first spin-echo EPI", False, ext=".nii.gz"),
            _file("epi2", "epi2.nii.gz", "second spin-echo EPI", False, ext=".nii.gz"),
        ],
        [],
        "brainlife/validator-neuro-fmap",
    ),
    (
        "5dcf0047c4ae28d7f2298f48",
        "neuro/mask",
        "Binary mask",
        [_file("mask", "mask.nii.gz", "mask", ext=".nii.gz")],
        _tags(("brain", "brain mask")),
        None,
    ),
    (
        "5dcecaffc4ae28d3b8298f4a",
        "neuro/parcellation/volume",
        "Volumetric parcellation with its labels",
        [
            _file("parc", "parc.nii.gz", "label image", ext=".nii.gz"),
            _file("label", "label.json", "label names", False),
        ],
        [],
        None,
    ),
]

CATALOGUE = DEMO_DATATYPES + MORE_DATATYPES


def datatype_extra(
    files: list[dict[str, Any]], tags: list[dict[str, str]], validator: str | None
) -> dict[str, Any]:
    """The rest of brainlife's datatype document (`Datatype.extra`)."""
    return {
        "files": files,
        "datatype_tags": tags,
        "admins": [],
        "validator": validator,
        "validator_branch": None,
        "uis": [],
        "samples": [],
        "groupAnalysis": False,
        "readme": "",
    }


def seed_catalogue(session: Session) -> int:
    """Add the catalogue's datatypes the archive lacks (by id and by name); commit. Returns
    how many were added."""
    have = set(session.execute(select(Datatype.id, Datatype.name)).all())
    ids = {i for i, _ in have}
    names = {n for _, n in have}
    added = 0
    for dtid, name, desc, files, tags, validator in CATALOGUE:
        if dtid in ids or name in names:
            continue
        when = datetime.fromtimestamp(int(dtid[:8], 16), UTC)
        extra = datatype_extra(files, tags, validator)
        session.add(Datatype(id=dtid, name=name, desc=desc, create_date=when, extra=extra))
        added += 1
    if added:
        session.commit()
    return added
