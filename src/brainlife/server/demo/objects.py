"""The demo world that `bl serve --demo` puts into an empty archive.

It reproduces brainlife.io's "Downloading Data-Object" page (the O3D project, its 2708 data
objects, the O3D publication and its releases, the 2019 tract-profile project of the bulk
download loop, and the finished `brainlife/app-freesurfer` tasks of group 851), plus a few
private projects so that the access rules show. Everything is deterministic: fixed ids and
dates, seeded random numbers, and file contents that are byte-identical from run to run.

Accounts (password = username, for the demo only): hayashis (sub 1), avesani (2),
frakkopesto (3), demo (4). All are ordinary users; project roles and auth groups give access.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from brainlife.server import demo_content as content
from brainlife.server.archive import Archive
from brainlife.server.models import (
    Dataset,
    DatasetDatatypeTag,
    DatasetFile,
    DatasetPublication,
    DatasetTag,
    Datatype,
    Group,
    GroupMember,
    Instance,
    Project,
    ProjectRole,
    Publication,
    Release,
    Task,
    User,
)
from brainlife.server.tarstream import TarMember

DEMO_ACCOUNTS: list[str] = ["hayashis", "avesani", "frakkopesto", "demo"]

# -- fixed ids of the world ----------------------------------------------------------------

O3D_PROJECT = "5a022fc99c0d250055709e9c"
TP_PROJECT = "5b0dad8041711001e958b519"
PRIVATE_PROJECT = "5c3f8a1e7d4b2c0031a6e210"
LISTED_PROJECT = "5c3f8b027d4b2c0031a6e214"
GUEST_PROJECT = "5c3f8b9a7d4b2c0031a6e219"
WMC_EXAMPLE = "5bb5713a12512a003f32e9b6"
T1_EXAMPLE = "5a050ad5d76a2a002737e572"
O3D_PUB = "5bab9918a918ae002702418f"
RELEASE_1 = "5bab993aa918ae0027024192"
RELEASE_REMOVED = "5bb2437c19fdb40027307f7b"
RELEASE_2 = "5c0ff604391ed50032b634d1"
GROUP_O3D, GROUP_TP, GROUP_PRIVATE, GROUP_LISTED, GROUP_GUEST = 53, 851, 902, 903, 904

O3D_COUNT = 2708  # data objects of O3D that are not removed
O3D_SUBJECTS = [f"{n:04d}" for n in range(1, 22)]
ALGORITHMS = ["dt_stream", "sd_stream", "sd_prob"]
TP_SUBJECTS = ["100206", "100307", "100408", "101107", "101309", "101915"]
TP_TAGSETS = [["afq", "run1"], ["afq", "run2"], ["life", "run1"]]
FREESURFER_SUBJECTS = O3D_SUBJECTS[:6]
SEED = 20181004

USERS = [  # username, sub, fullname
    ("hayashis", 1, "Soichi Hayashi"),
    ("avesani", 2, "Paolo Avesani"),
    ("frakkopesto", 3, "Franco Pestilli"),
    ("demo", 4, "Demo User"),
]
SUB = {name: str(sub) for name, sub, _ in USERS}


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def oid_time(oid: str) -> datetime:
    return datetime.fromtimestamp(int(oid[:8], 16), UTC)


class IdMaker:
    """Mongo-like ObjectIds: 4 bytes of seconds, a fixed 5-byte "process" part and a 3-byte
    counter that grows with every id (so ids made later sort later)."""

    def __init__(self, process: str, counter: int, rng: random.Random) -> None:
        self.process, self.counter, self.rng = process, counter, rng

    def at(self, when: datetime) -> str:
        self.counter = (self.counter + self.rng.randint(1, 9)) & 0xFFFFFF
        return f"{int(when.timestamp()) & 0xFFFFFFFF:08x}{self.process}{self.counter:06x}"


# -- datatypes -----------------------------------------------------------------------------


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


DATATYPES: list[tuple[str, str, str, list[dict[str, Any]], list[dict[str, str]], str | None]] = [
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
DT = {name: dtid for dtid, name, *_ in DATATYPES}

# -- data objects --------------------------------------------------------------------------


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


def _files(recipe: tuple[str, ...]) -> content.Files:
    kind, *args = recipe
    seed = _seed(*recipe)
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


def _seed(*parts: object) -> int:
    text = "/".join(str(p) for p in parts)
    return sum((i + 1) * ord(c) for i, c in enumerate(text)) % 1_000_003


def _o3d_objects(rng: random.Random) -> list[Obj]:
    objs: list[Obj] = []
    raw = IdMaker("d76a2a0027", 0x37E572 - 3, rng)
    start = oid_time(T1_EXAMPLE)
    for i, s in enumerate(O3D_SUBJECTS):
        t = start + timedelta(seconds=300 * i)
        t1_id = T1_EXAMPLE if i == 0 else raw.at(t)
        if i == 0:
            raw.counter = 0x37E572
        rel = [RELEASE_1, RELEASE_2]
        objs += [
            Obj(
                t1_id,
                O3D_PROJECT,
                "neuro/anat/t1w",
                s,
                "T1w anatomy, AC-PC aligned",
                t,
                ("t1", s),
                datatype_tags=["acpc_aligned"],
                releases=rel,
            ),
            Obj(
                raw.at(t + timedelta(seconds=60)),
                O3D_PROJECT,
                "neuro/dwi",
                s,
                "Diffusion (b=1000), aligned to T1w",
                t + timedelta(seconds=60),
                ("dwi", s),
                datatype_tags=["single_shell", "normalized"],
                releases=rel,
            ),
            Obj(
                raw.at(t + timedelta(seconds=120)),
                O3D_PROJECT,
                "neuro/anat/t2w",
                s,
                "T2w anatomy, AC-PC aligned",
                t + timedelta(seconds=120),
                ("t2", s),
                datatype_tags=["acpc_aligned"],
            ),
        ]
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


def _other_objects(rng: random.Random) -> list[Obj]:
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


# -- building ------------------------------------------------------------------------------


def build_demo(session: Session, archive: Archive) -> bool:
    """Fill an empty archive (no projects) with the demo world and commit. Return False and
    change nothing when the archive already holds projects.

    A marker file written after the final commit tells a complete demo from one whose build was
    interrupted (objects are committed as they are stored): the latter raises DemoIncomplete
    rather than serving half a world."""
    marker = archive.settings.data_dir / DEMO_MARKER
    if session.scalar(select(func.count()).select_from(Project)):
        if marker.exists() or session.get(Project, O3D_PROJECT) is None:
            return False
        raise DemoIncomplete(
            f"A previous demo build in {archive.settings.data_dir} was interrupted. Remove that "
            "folder (it holds only the unfinished demo) and run `bl serve --demo` again."
        )
    rng = random.Random(SEED)
    _accounts(session)
    for dtid, name, desc, files, tags, validator in DATATYPES:
        extra: dict[str, Any] = {
            "files": files,
            "datatype_tags": tags,
            "admins": ["1"],
            "validator": validator,
            "validator_branch": None,
            "uis": [],
            "samples": [],
            "groupAnalysis": False,
            "readme": "",
        }
        session.add(
            Datatype(id=dtid, name=name, desc=desc, create_date=oid_time(dtid), extra=extra)
        )
    _projects(session)
    session.flush()
    objects = _o3d_objects(rng) + _other_objects(rng)
    if len({o.id for o in objects}) != len(objects):
        raise AssertionError("demo object ids collide")
    _store_objects(session, archive, objects)
    _publication(session)
    _tasks(
        session,
        archive,
        rng,
        {
            o.subject: o.id
            for o in objects
            if o.project == O3D_PROJECT and o.datatype == "neuro/anat/t1w"
        },
    )
    session.commit()
    marker.write_text("the demo world was built completely\n")
    return True


DEMO_MARKER = "demo-complete"


class DemoIncomplete(RuntimeError):
    """The data directory holds a demo whose build did not finish."""


def _accounts(session: Session) -> None:
    from brainlife.server.services.auth import create_user

    for username, sub, fullname in USERS:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            free = session.get(User, sub) is None
            user = create_user(
                session,
                username=username,
                password=username,
                email=f"{username}@demo.invalid",
                fullname=fullname,
                scopes={},
                sub=sub if free else None,
            )
            user.create_date = utc(2017, 3, 1) + timedelta(days=sub)
        SUB[username] = str(user.sub)
    session.flush()


PROJECTS: list[tuple[str, int, str, str, str, bool, list[str], list[str], list[str]]] = [
    # id, group, name, desc, access, listed, admins, members, guests
    (
        O3D_PROJECT,
        GROUP_O3D,
        "O3D",
        "O3D (Open Diffusion Data and Derivative) is a reference repository for precision "
        "connectome mapping, white matter tracts analysis and algorithmic development.",
        "public",
        False,
        ["hayashis", "avesani", "frakkopesto"],
        ["hayashis", "avesani", "frakkopesto"],
        [],
    ),
    (
        TP_PROJECT,
        GROUP_TP,
        "2019 tractprofiles",
        "Tract profiles (FA, MD, RD and AD along 20 major tracts) of six subjects, computed in "
        "2019. Also runs the FreeSurfer processes of the task-download example.",
        "public",
        False,
        ["hayashis"],
        ["hayashis", "demo"],
        [],
    ),
    (
        PRIVATE_PROJECT,
        GROUP_PRIVATE,
        "Private demo",
        "A private project: only its admins and members can see it or read its data.",
        "private",
        False,
        ["avesani"],
        ["avesani"],
        [],
    ),
    (
        LISTED_PROJECT,
        GROUP_LISTED,
        "Listed private study",
        "A private project that is listed: every user sees it, only members read its data.",
        "private",
        True,
        ["frakkopesto"],
        ["frakkopesto", "avesani"],
        [],
    ),
    (
        GUEST_PROJECT,
        GROUP_GUEST,
        "Guest access study",
        "A private project where the demo user is a guest (read-only access to the data).",
        "private",
        False,
        ["hayashis"],
        ["hayashis"],
        ["demo"],
    ),
]


def _projects(session: Session) -> None:
    for pid, gid, name, desc, access, listed, admins, members, guests in PROJECTS:
        when = oid_time(pid)
        if session.get(Group, gid) is None:
            session.add(Group(id=gid, name=name, desc=desc))
        session.flush()
        for role, users in (("admin", admins), ("member", members)):
            for username in users:
                session.add(GroupMember(group_id=gid, sub=int(SUB[username]), role=role))
        roles = [
            ProjectRole(role=role, sub=SUB[username], pos=pos)
            for role, users in (("admins", admins), ("members", members), ("guests", guests))
            for pos, username in enumerate(users)
        ]
        extra = {
            "avatar": "",
            "agreements": [],
            "readme": "",
            "limitResource": False,
            "noPublicResource": False,
            "publishParticipantsInfo": False,
            "relatedPapers": [],
        }
        session.add(
            Project(
                id=pid,
                group_id=gid,
                user_id=SUB[admins[0]],
                name=name,
                desc=desc,
                access=access,
                listed=listed,
                create_date=when,
                update_date=when,
                extra=extra,
                roles=roles,
            )
        )


def _store_objects(session: Session, archive: Archive, objects: list[Obj]) -> None:
    """The first object of each content key goes through the ingest service (blobs, manifest,
    size); the others share its files, so their rows are written in bulk from its manifest."""
    from brainlife.server.services.ingest import store_dataset_files

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
        store_dataset_files(session, archive, ds, _files(o.recipe))
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


def _publication(session: Session) -> None:
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


# -- tasks of group 851 ----------------------------------------------------------------------


def _write_tree(root: Path, files: list[tuple[str, bytes]], mtime: datetime) -> None:
    stamp = mtime.timestamp()
    for rel, data in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (stamp, stamp))
    os.utime(root, (stamp, stamp))


def _tasks(session: Session, archive: Archive, rng: random.Random, t1_ids: dict[str, str]) -> None:
    ids = IdMaker("7c0d8a0033", 0x51F000, rng)
    hayashis = SUB["hayashis"]
    start = utc(2019, 1, 24, 16, 2, 11)
    instance_id = ids.at(start)
    session.add(
        Instance(
            id=instance_id,
            user_id=hayashis,
            group_id=GROUP_TP,
            name="FreeSurfer on O3D T1w",
            desc="recon-all for six O3D subjects",
            status="finished",
            config={"brainlife": True, "type": "v2"},
            create_date=start,
            update_date=start + timedelta(hours=9),
        )
    )
    t1 = DT["neuro/anat/t1w"]

    def add(
        service: str,
        branch: str,
        status: str,
        when: datetime,
        config: dict[str, Any],
        files: list[tuple[str, bytes]] | None,
        *,
        group: int = GROUP_TP,
        user: str = hayashis,
        hours: float = 6.5,
        instance: str = instance_id,
    ) -> str:
        task_id = ids.at(when)
        finish = when + timedelta(hours=hours) if status in ("finished", "failed") else None
        session.add(
            Task(
                id=task_id,
                user_id=user,
                group_id=group,
                instance_id=instance,
                service=service,
                service_branch=branch,
                name=service.split("/")[-1],
                desc="",
                status=status,
                status_msg={
                    "finished": "Service completed successfully",
                    "failed": "recon-all exited with errors",
                }.get(status, "running"),
                create_date=when,
                start_date=when + timedelta(minutes=2),
                finish_date=finish,
                update_date=finish or when,
                config=config,
                extra={
                    "gids": [1, group],
                    "deps_config": [],
                    "nice": 0,
                    "run": 0,
                    "max_runtime": 7 * 24 * 3600 * 1000,
                    "resource_id": "59ea931df82bb308c0197c3d",
                    "commit_id": "9f1c2d7",
                    "follow_task_id": None,
                },
            )
        )
        if files is not None:
            body = json.dumps(config, indent=4).encode()
            _write_tree(
                archive.settings.tasks_dir / task_id,
                [("config.json", body), *files],
                finish or when,
            )
        return task_id

    stage_config = {
        "datasets": [
            {"id": t1_ids[s], "project": O3D_PROJECT, "storage": "wrangler"}
            for s in FREESURFER_SUBJECTS
        ],
        "_tid": 0,
    }
    stage = add(
        "brainlife/app-stage",
        "1.1.0",
        "finished",
        start,
        stage_config,
        [(f"{t1_ids[s]}/t1.nii.gz", _files(("t1", s))[0][1]) for s in FREESURFER_SUBJECTS],
        hours=0.1,
    )

    def fs_config(subject: str, tid: int) -> dict[str, Any]:
        dsid = t1_ids[subject]
        return {
            "t1": f"../{stage}/{dsid}/t1.nii.gz",
            "hippocampal": False,
            "debug": False,
            "notalairach": False,
            "hipposubfields": False,
            "version": "6.0.0",
            "_app": "5b1f1f7e0a8d4a0027f6a3c2",
            "_tid": tid,
            "_inputs": [
                {
                    "id": "t1",
                    "task_id": stage,
                    "subdir": dsid,
                    "dataset_id": dsid,
                    "prov": None,
                    "datatype": t1,
                    "datatype_tags": ["acpc_aligned"],
                    "tags": [],
                    "meta": {"subject": subject},
                    "project": O3D_PROJECT,
                    "keys": ["t1"],
                }
            ],
            "_outputs": [
                {
                    "id": "output",
                    "datatype": DT["neuro/freesurfer"],
                    "datatype_tags": [],
                    "desc": "output from brainlife/app-freesurfer",
                    "meta": {"subject": subject},
                    "tags": [],
                    "files": {"output": "freesurfer/output"},
                    "archive": None,
                }
            ],
        }

    for k, subject in enumerate(FREESURFER_SUBJECTS):
        when = start + timedelta(minutes=12 + 3 * k)
        files = [
            (f"freesurfer/{p}", data)
            for p, data in content.freesurfer_output(_seed("fs", subject), subject)
        ]
        files += [
            ("freesurfer/output/stats/.lock", b""),
            (".brainlife.json", b'{"progress": 1}\n'),
            ("stdout.log", f"recon-all -s output finished for {subject}\n".encode()),
        ]
        add(
            "brainlife/app-freesurfer",
            "0.0.5",
            "finished",
            when,
            fs_config(subject, k + 1),
            files,
            hours=6.5 + 0.25 * k,
        )
    # tasks that the document's filter (group 851, app-freesurfer, finished) must not return
    later = start + timedelta(minutes=40)
    add(
        "brainlife/app-freesurfer",
        "0.0.5",
        "failed",
        later,
        fs_config("0007", 7),
        [("stdout.log", b"ERROR: recon-all exited with errors (subject 0007)\n")],
        hours=1.2,
    )
    add(
        "brainlife/app-freesurfer",
        "0.0.5",
        "running",
        later + timedelta(minutes=3),
        fs_config("0008", 8),
        [],
    )
    add(
        "brainlife/app-tractanalysisprofiles",
        "1.3",
        "finished",
        later + timedelta(minutes=6),
        {"_tid": 9, "_inputs": []},
        [("profiles/summary.json", b"[]\n")],
        hours=0.5,
    )
    o3d_instance = ids.at(later + timedelta(minutes=8))
    session.add(
        Instance(
            id=o3d_instance,
            user_id=SUB["avesani"],
            group_id=GROUP_O3D,
            name="O3D FreeSurfer check",
            desc="",
            status="finished",
            config={"brainlife": True, "type": "v2"},
            create_date=later,
            update_date=later,
        )
    )
    add(
        "brainlife/app-freesurfer",
        "0.0.5",
        "finished",
        later + timedelta(minutes=9),
        fs_config("0010", 1),
        [("stdout.log", b"done\n")],
        group=GROUP_O3D,
        user=SUB["avesani"],
        instance=o3d_instance,
    )
    session.flush()
