"""The data objects of the demo world (O3D, the 2019 tract profiles, the private projects),
how they are stored, and the O3D publication with its releases."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from brainlife.server.archive import Archive
from brainlife.server.demo import content
from brainlife.server.demo.world import (
    ALGORITHMS,
    DT,
    GUEST_PROJECT,
    LISTED_PROJECT,
    O3D_COUNT,
    O3D_PROJECT,
    O3D_PUB,
    O3D_SUBJECTS,
    PRIVATE_PROJECT,
    RELEASE_1,
    RELEASE_2,
    RELEASE_REMOVED,
    SUB,
    T1_EXAMPLE,
    TP_PROJECT,
    TP_SUBJECTS,
    TP_TAGSETS,
    WMC_EXAMPLE,
    IdMaker,
    oid_time,
    utc,
)
from brainlife.server.models import (
    Dataset,
    DatasetDatatypeTag,
    DatasetFile,
    DatasetPublication,
    DatasetTag,
    Publication,
    Release,
)
from brainlife.server.tarstream import TarMember


@dataclass
class Obj:
    id: str
    project: str
    datatype: str
    subject: str
    desc: str
    when: datetime
    #: how to make the files: objects with the same recipe have identical files
    recipe: tuple[str, ...]
    tags: list[str] = field(default_factory=list)
    datatype_tags: list[str] = field(default_factory=list)
    user: str = "1"
    storage: str = "wrangler"
    removed: bool = False
    releases: list[str] = field(default_factory=list)


def recipe_files(recipe: tuple[str, ...]) -> content.Files:
    kind, *args = recipe
    seed = recipe_seed(*recipe)
    if kind == "t1":
        return [("t1.nii.gz", content.nifti_gz(seed))]
    if kind == "t2":
        return [("t2.nii.gz", content.nifti_gz(seed, peak=600))]
    if kind == "dwi":
        return content.dwi_files(seed)
    if kind == "fs":
        return content.freesurfer_output(seed, args[0])
    if kind == "tck":
        return [("track.tck", content.tck(seed))]
    if kind == "wmc":
        return content.wmc_files(seed)
    if kind == "tp":
        return content.tractprofile_files(seed)
    raise ValueError(f"unknown demo content {recipe!r}")


def recipe_seed(*parts: object) -> int:
    text = "/".join(str(p) for p in parts)
    return sum((i + 1) * ord(c) for i, c in enumerate(text)) % 1_000_003


#: Each O3D subject's raw objects: datatype, description, seconds after its T1w, recipe,
#: datatype tags, and whether the two releases hold it (ids are drawn in this order)
O3D_RAW = [
    ("neuro/anat/t1w", "T1w anatomy, AC-PC aligned", 0, "t1", ("acpc_aligned",), True),
    (
        "neuro/dwi",
        "Diffusion (b=1000), aligned to T1w",
        60,
        "dwi",
        ("single_shell", "normalized"),
        True,
    ),
    ("neuro/anat/t2w", "T2w anatomy, AC-PC aligned", 120, "t2", ("acpc_aligned",), False),
]


def o3d_objects(rng: random.Random) -> list[Obj]:
    objs: list[Obj] = []
    raw = IdMaker("d76a2a0027", 0x37E572 - 3, rng)
    start = oid_time(T1_EXAMPLE)
    for i, s in enumerate(O3D_SUBJECTS):
        t = start + timedelta(seconds=300 * i)
        t1_id = T1_EXAMPLE if i == 0 else raw.at(t)
        if i == 0:
            raw.counter = 0x37E572
        for datatype, desc, offset, recipe, datatype_tags, released in O3D_RAW:
            when = t + timedelta(seconds=offset)
            objs.append(
                Obj(
                    t1_id if offset == 0 else raw.at(when),
                    O3D_PROJECT,
                    datatype,
                    s,
                    desc,
                    when,
                    (recipe, s),
                    datatype_tags=list(datatype_tags),
                    releases=[RELEASE_1, RELEASE_2] if released else [],
                )
            )
    fs = IdMaker("1f6c2b0031", 0x0A41C0, rng)
    for i, s in enumerate(O3D_SUBJECTS):
        t = utc(2018, 3, 14, 15) + timedelta(seconds=3571 * i)
        objs.append(
            Obj(
                fs.at(t),
                O3D_PROJECT,
                "neuro/freesurfer",
                s,
                "FreeSurfer recon-all",
                t,
                ("fs", s),
                releases=[RELEASE_1, RELEASE_2],
            )
        )
    objs += _o3d_derivatives(rng, O3D_COUNT - len(objs))
    removed = IdMaker("12512a003f", 0x3A0000, rng)
    for k, s in enumerate(O3D_SUBJECTS[:3]):
        t = utc(2018, 10, 12, 9) + timedelta(minutes=7 * k)
        objs.append(
            Obj(
                removed.at(t),
                O3D_PROJECT,
                "neuro/wmc",
                s,
                "AFQ with no Life (dt_stream) run1 (duplicate)",
                t,
                ("wmc", "dt_stream"),
                tags=["dt_stream", "pre_life", "run1"],
                datatype_tags=["dt_stream", "afq"],
                removed=True,
            )
        )
    return objs


def _o3d_derivatives(rng: random.Random, count: int) -> list[Obj]:
    """Tractography, AFQ classification and tract profiles, run after run. The order puts
    WMC_EXAMPLE (run1, dt_stream, pre_life, subject 0008) 16th, at its fixed time."""
    objs: list[Obj] = []
    anchor = oid_time(WMC_EXAMPLE)
    example_index = 15
    ids = IdMaker("12512a003f", 0x32E9B6 - 15 * 5, rng)

    def plan() -> Iterator[tuple[int, str, str, str, str]]:
        run = 0
        while True:
            run += 1
            for alg in ALGORITHMS:
                for stage in ("pre_life", "post_life"):
                    for subject in O3D_SUBJECTS:
                        kinds = ["tck", "wmc"] + (["tp"] if stage == "post_life" else [])
                        for kind in kinds:
                            yield run, alg, stage, subject, kind

    for k, (run, alg, stage, subject, kind) in enumerate(plan()):
        if k == count:
            break
        jitter = 0 if k == example_index else rng.randint(0, 40)
        when = anchor + timedelta(seconds=97 * (k - example_index) + jitter)
        if k == example_index:
            assert (run, alg, stage, subject, kind) == (1, "dt_stream", "pre_life", "0008", "wmc")
            oid = WMC_EXAMPLE
            ids.counter = 0x32E9B6
        else:
            oid = ids.at(when)
        life = "no Life" if stage == "pre_life" else "Life"
        tags = [alg, stage, f"run{run}"]
        rel = [RELEASE_2] if run == 1 and stage == "post_life" and kind != "tck" else []
        if kind == "tck":
            objs.append(
                Obj(
                    oid,
                    O3D_PROJECT,
                    "neuro/track/tck",
                    subject,
                    f"Tractography with {life} ({alg}) run{run}",
                    when,
                    ("tck", alg, stage),
                    tags=tags,
                    datatype_tags=[alg],
                    releases=rel,
                )
            )
        elif kind == "wmc":
            objs.append(
                Obj(
                    oid,
                    O3D_PROJECT,
                    "neuro/wmc",
                    subject,
                    f"AFQ with {life} ({alg}) run{run}",
                    when,
                    ("wmc", alg),
                    tags=tags,
                    datatype_tags=[alg, "afq"],
                    releases=rel,
                )
            )
        else:
            objs.append(
                Obj(
                    oid,
                    O3D_PROJECT,
                    "neuro/tractprofile",
                    subject,
                    f"Tract profiles of AFQ with {life} ({alg}) run{run}",
                    when,
                    ("tp", alg),
                    tags=tags,
                    releases=rel,
                )
            )
    return objs


def other_objects(rng: random.Random) -> list[Obj]:
    objs: list[Obj] = []
    tp_ids = IdMaker("5e2d7a0034", 0x1B0C40, rng)
    start = utc(2019, 1, 22, 14, 5)
    for i, s in enumerate(TP_SUBJECTS):
        t = start + timedelta(minutes=40 * i)
        objs.append(
            Obj(
                tp_ids.at(t),
                TP_PROJECT,
                "neuro/anat/t1w",
                s,
                "T1w anatomy",
                t,
                ("t1", s),
                datatype_tags=["acpc_aligned"],
            )
        )
        for j, tags in enumerate(TP_TAGSETS):
            when = t + timedelta(minutes=5 + 9 * j)
            objs.append(
                Obj(
                    tp_ids.at(when),
                    TP_PROJECT,
                    "neuro/tractprofile",
                    s,
                    f"tractprofiles {' '.join(tags)}",
                    when,
                    ("tp", s, tags[0]),
                    tags=list(tags),
                )
            )
    others = IdMaker("7d4b2c0031", 0xA6E300, rng)
    for project, datatype, owner, first in (
        (PRIVATE_PROJECT, "neuro/anat/t1w", "avesani", utc(2019, 1, 16, 18)),
        (LISTED_PROJECT, "neuro/dwi", "frakkopesto", utc(2019, 1, 16, 19)),
        (GUEST_PROJECT, "neuro/anat/t1w", "hayashis", utc(2019, 1, 16, 20)),
    ):
        for n in range(1, 4):
            s, when = f"s{n:02d}", first + timedelta(minutes=11 * n)
            kind = "dwi" if datatype == "neuro/dwi" else "t1"
            objs.append(
                Obj(
                    others.at(when),
                    project,
                    datatype,
                    s,
                    f"{datatype} of {s}",
                    when,
                    (kind, project, s),
                    user=SUB[owner],
                    storage="local",
                )
            )
    return objs


def store_objects(session: Session, archive: Archive, objects: list[Obj]) -> None:
    """The first object of each content key goes through the ingest service (blobs, manifest,
    size); the others share its files, so their rows are written in bulk from its manifest."""
    from brainlife.server.services.ingest import PUT_JOBS, store_dataset_files

    manifests: dict[tuple[str, ...], tuple[list[TarMember], int]] = {}
    rest: list[Obj] = []
    for o in objects:
        if o.recipe in manifests:
            rest.append(o)
            continue
        ds = Dataset(
            **_dataset_fields(o),
            tags=[DatasetTag(tag=t, pos=i) for i, t in enumerate(o.tags)],
            datatype_tags=[DatasetDatatypeTag(tag=t, pos=i) for i, t in enumerate(o.datatype_tags)],
            publications=[
                DatasetPublication(release_id=r, pos=i) for i, r in enumerate(o.releases)
            ],
        )
        session.add(ds)
        store_dataset_files(session, archive, ds, recipe_files(o.recipe), jobs=PUT_JOBS)
        members = [
            TarMember(path=f.path, size=f.size, sha256=f.sha256, mode=f.mode)
            for f in session.scalars(
                select(DatasetFile).where(DatasetFile.dataset_id == o.id).order_by(DatasetFile.pos)
            )
        ]
        manifests[o.recipe] = (members, ds.size or 0)
    # The tar's length depends on the member names and sizes only (headers have a fixed size).
    datasets, tags, dtags, pubs, files = [], [], [], [], []
    for o in rest:
        members, size = manifests[o.recipe]
        datasets.append(
            {
                **_dataset_fields(o),
                "size": size,
                "status": "stored",
                "status_msg": "Successfully stored",
            }
        )
        tags += [{"dataset_id": o.id, "tag": t, "pos": i} for i, t in enumerate(o.tags)]
        dtags += [{"dataset_id": o.id, "tag": t, "pos": i} for i, t in enumerate(o.datatype_tags)]
        pubs += [{"dataset_id": o.id, "release_id": r, "pos": i} for i, r in enumerate(o.releases)]
        files += [
            {
                "dataset_id": o.id,
                "path": m.path,
                "pos": i,
                "size": m.size,
                "sha256": m.sha256,
                "mode": m.mode,
            }
            for i, m in enumerate(members)
        ]
    for model, rows in (
        (Dataset, datasets),
        (DatasetTag, tags),
        (DatasetDatatypeTag, dtags),
        (DatasetPublication, pubs),
        (DatasetFile, files),
    ):
        if rows:
            session.execute(insert(model), rows)
    session.flush()


def _dataset_fields(o: Obj) -> dict[str, Any]:
    return {
        "id": o.id,
        "project_id": o.project,
        "datatype_id": DT[o.datatype],
        "user_id": o.user,
        "desc": o.desc,
        "storage": o.storage,
        "status": "storing",
        "removed": o.removed,
        "subject": o.subject,
        "create_date": o.when,
        "update_date": o.when,
        "meta": {"subject": o.subject},
        "extra": {"download_count": 0},
    }


def add_publication(session: Session) -> None:
    authors = [SUB["hayashis"], SUB["avesani"], SUB["frakkopesto"]]
    extra = {
        "authors": authors,
        "contributors": [],
        "fundings": [],
        "tags": ["diffusion", "tractography", "connectome"],
        "relatedPapers": [],
        "readme": "Diffusion and anatomy of 21 subjects with tractography, AFQ "
        "classifications and tract profiles. Release 2 adds run 1 derivatives.",
    }
    releases = [
        Release(id=RELEASE_1, pos=0, name="1", removed=False, create_date=utc(2018, 9, 1)),
        Release(id=RELEASE_REMOVED, pos=1, name="", removed=True, create_date=utc(2018, 10, 1)),
        Release(id=RELEASE_2, pos=2, name="2", removed=False, create_date=utc(2018, 12, 11)),
    ]
    session.add(
        Publication(
            id=O3D_PUB,
            project_id=O3D_PROJECT,
            user_id=SUB["hayashis"],
            name="O3D",
            desc="Open Diffusion Data and Derivatives: diffusion-weighted and anatomical images "
            "with tractography and white matter tract derivatives.",
            doi="10.25663/bl.p.3",
            license="ccby.40",
            removed=False,
            create_date=oid_time(O3D_PUB),
            extra=extra,
            releases=releases,
        )
    )
    session.flush()
