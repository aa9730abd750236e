"""The demo world (`bl serve --demo`): counts, the document's objects, releases, tasks and their
folders, stored content, idempotence and determinism."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from brainlife.server import demo
from brainlife.server.archive import Archive, open_archive
from brainlife.server.models import (
    Dataset,
    DatasetFile,
    DatasetPublication,
    Datatype,
    Group,
    GroupMember,
    Instance,
    Project,
    Publication,
    Task,
    User,
)
from brainlife.server.services.ingest import verify_dataset
from brainlife.server.settings import Settings


def _build(archive: Archive) -> float:
    started = time.perf_counter()
    with archive.session() as session:
        assert demo.build_demo(session, archive) is True
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    arch = open_archive(Settings(data_dir=tmp_path_factory.mktemp("demo") / "data"))
    seconds = _build(arch)
    print(f"\ndemo world built in {seconds:.2f} s")
    yield arch
    arch.engine.dispose()


def _fingerprint(archive: Archive) -> dict[str, Any]:
    """Ids, fields and content hashes of everything the demo writes."""
    with archive.session() as s:
        datasets = [
            (d.id, d.project_id, d.datatype_id, d.subject, d.desc, d.size, d.status,
             d.create_date.isoformat(), [t.tag for t in d.tags])
            for d in s.scalars(select(Dataset).order_by(Dataset.id))
        ]  # fmt: skip
        files = s.execute(
            select(DatasetFile.dataset_id, DatasetFile.path, DatasetFile.sha256).order_by(
                DatasetFile.dataset_id, DatasetFile.pos
            )
        ).all()
        tasks = [(t.id, t.service, t.status, t.config) for t in s.scalars(select(Task))]
        others = {
            "projects": s.scalars(select(Project.id).order_by(Project.id)).all(),
            "users": s.execute(select(User.sub, User.username).order_by(User.sub)).all(),
            "pubs": [(p.id, [(r.id, r.name) for r in p.releases])
                     for p in s.scalars(select(Publication))],
            "instances": s.scalars(select(Instance.id).order_by(Instance.id)).all(),
        }  # fmt: skip
    tree = sorted(
        (str(p.relative_to(archive.settings.tasks_dir)), p.read_bytes() if p.is_file() else b"")
        for p in archive.settings.tasks_dir.rglob("*")
    )
    return {"datasets": datasets, "files": [tuple(r) for r in files], "tasks": tasks,
            "tree": tree, **others}  # fmt: skip


def test_o3d_project_and_counts(built: Archive) -> None:
    with built.session() as s:
        o3d = s.get(Project, demo.O3D_PROJECT)
        assert o3d is not None and o3d.name == "O3D" and o3d.access == "public"
        assert o3d.desc == (
            "O3D (Open Diffusion Data and Derivative) is a reference repository for precision "
            "connectome mapping, white matter tracts analysis and algorithmic development."
        )
        names = {u.sub: u.username for u in s.scalars(select(User))}
        assert names == {1: "hayashis", 2: "avesani", 3: "frakkopesto", 4: "demo"}
        by_role = {
            role: [names[int(r.sub)] for r in o3d.roles if r.role == role]
            for role in ("admins", "members", "guests")
        }
        assert by_role == {
            "admins": ["hayashis", "avesani", "frakkopesto"],
            "members": ["hayashis", "avesani", "frakkopesto"],
            "guests": [],
        }
        live = select(Dataset.id).where(
            Dataset.project_id == demo.O3D_PROJECT, Dataset.removed.is_(False)
        )
        assert s.scalar(select(func.count()).select_from(live.subquery())) == 2708
        first_100 = s.scalars(live.order_by(Dataset.id).limit(100)).all()
        # the document shows it as the last object of the first page
        assert first_100[-1] == demo.WMC_EXAMPLE
        # only one project and one publication match "o3d" (bl project/pub query -q o3d)
        matching = [p.id for p in s.scalars(select(Project))
                    if "o3d" in p.name.lower() or "o3d" in p.desc.lower()]  # fmt: skip
        assert matching == [demo.O3D_PROJECT]


def test_document_objects(built: Archive) -> None:
    with built.session() as s:
        wmc = s.get(Dataset, demo.WMC_EXAMPLE)
        assert wmc is not None
        dt = s.get(Datatype, wmc.datatype_id)
        assert dt is not None and dt.name == "neuro/wmc"
        assert (wmc.subject, wmc.session, wmc.meta) == ("0008", None, {"subject": "0008"})
        assert [t.tag for t in wmc.datatype_tags] == ["dt_stream", "afq"]
        assert [t.tag for t in wmc.tags] == ["dt_stream", "pre_life", "run1"]
        assert wmc.desc == "AFQ with no Life (dt_stream) run1"
        assert (wmc.storage, wmc.status, wmc.removed) == ("wrangler", "stored", False)
        assert wmc.create_date.replace(tzinfo=None).isoformat() == "2018-10-04T01:47:38"
        paths = s.scalars(select(DatasetFile.path).where(DatasetFile.dataset_id == wmc.id)).all()
        assert "classification.mat" in paths and "tracts/tracts.json" in paths

        t1 = s.get(Dataset, demo.T1_EXAMPLE)
        assert t1 is not None and t1.project_id == demo.O3D_PROJECT
        files = s.scalars(select(DatasetFile).where(DatasetFile.dataset_id == t1.id)).all()
        assert [f.path for f in files] == ["t1.nii.gz"]
        _load_nifti(built, files[0].sha256)


def _blob(archive: Archive, sha256: str) -> bytes:
    return b"".join(archive.store.read_range(sha256, 0, archive.store.size(sha256)))


def _load_nifti(archive: Archive, sha256: str) -> Any:
    import nibabel as nib

    image = nib.Nifti1Image.from_bytes(gzip.decompress(_blob(archive, sha256)))
    assert image.shape[:3] == (8, 8, 8)
    assert image.get_fdata().max() > 0
    return image


def test_every_object_is_stored_with_real_files(built: Archive) -> None:
    import nibabel as nib
    from nibabel.streamlines import TckFile

    with built.session() as s:
        datatypes = {d.id: d.name for d in s.scalars(select(Datatype))}
        for ds in s.scalars(select(Dataset)):
            assert ds.status == "stored", ds.id
            report = verify_dataset(s, built, ds.id)
            assert report.ok and report.files >= 1, (ds.id, report)
        # one object of each (datatype, content) is loaded with a real reader
        seen: set[str] = set()
        for path, sha, dtid in s.execute(
            select(DatasetFile.path, DatasetFile.sha256, Dataset.datatype_id).join(
                Dataset, Dataset.id == DatasetFile.dataset_id
            )
        ):
            if sha in seen:
                continue
            seen.add(sha)
            data = _blob(built, sha)
            if path.endswith(".nii.gz"):
                _load_nifti(built, sha)
            elif path.endswith(".mgz"):
                assert nib.MGHImage.from_bytes(gzip.decompress(data)).shape == (8, 8, 8)
            elif path.endswith(".tck"):
                assert len(TckFile.load(io.BytesIO(data)).streamlines) > 0
            elif path.endswith(".csv"):
                rows = list(csv.DictReader(io.StringIO(data.decode())))
                assert len(rows) == 100 and 0 < float(rows[0]["fa"]) < 1
            elif path.endswith(".json"):
                json.loads(data)
            elif path.endswith(".mat"):
                assert data.startswith(b"MATLAB 5.0 MAT-file") and data[126:128] == b"IM"
            elif path.endswith(".bvals"):
                assert data.split()[0] == b"0"
            assert datatypes[dtid]
        assert len(seen) > 100


def test_tractprofile_project(built: Archive) -> None:
    with built.session() as s:
        tp = s.get(Project, demo.TP_PROJECT)
        assert tp is not None and tp.group_id == 851
        dtid = s.scalar(select(Datatype.id).where(Datatype.name == "neuro/tractprofile"))
        rows = s.scalars(
            select(Dataset).where(Dataset.project_id == tp.id, Dataset.datatype_id == dtid)
        ).all()
        assert len({d.subject for d in rows}) == 6
        combos = {(d.subject, ".".join(t.tag for t in d.tags)) for d in rows}
        assert len(combos) == len(rows) == 18
        assert {c[1] for c in combos} == {"afq.run1", "afq.run2", "life.run1"}
        files = s.scalars(select(DatasetFile.path).where(DatasetFile.dataset_id == rows[0].id))
        paths = list(files)
        assert "profiles/summary.json" in paths
        assert sum(p.endswith("_profiles.csv") for p in paths) == 20


def test_publication_and_releases(built: Archive) -> None:
    with built.session() as s:
        pubs = s.scalars(select(Publication)).all()
        assert [p.name for p in pubs] == ["O3D"]
        pub = pubs[0]
        assert pub.project_id == demo.O3D_PROJECT and pub.license == "ccby.40"
        assert pub.doi == "10.25663/bl.p.3" and pub.extra["authors"] == ["1", "2", "3"]
        releases = [
            {"removed": r.removed, "_id": r.id, "name": r.name,
             "create_date": r.create_date.strftime("%Y-%m-%dT%H:%M:%S.000Z")}
            for r in pub.releases
        ]  # fmt: skip
        assert releases == [
            {"removed": False, "_id": "5bab993aa918ae0027024192", "name": "1",
             "create_date": "2018-09-01T00:00:00.000Z"},
            {"removed": True, "_id": "5bb2437c19fdb40027307f7b", "name": "",
             "create_date": "2018-10-01T00:00:00.000Z"},
            {"removed": False, "_id": "5c0ff604391ed50032b634d1", "name": "2",
             "create_date": "2018-12-11T00:00:00.000Z"},
        ]  # fmt: skip
        assert all(r.extra == {} and r.desc == "" for r in pub.releases)
        in_release_1 = s.scalars(
            select(Dataset)
            .join(DatasetPublication, DatasetPublication.dataset_id == Dataset.id)
            .where(DatasetPublication.release_id == demo.RELEASE_1, Dataset.subject == "0001")
        ).all()
        assert demo.T1_EXAMPLE in {d.id for d in in_release_1} and len(in_release_1) >= 3
        assert all(d.project_id == demo.O3D_PROJECT for d in in_release_1)


def test_access_demo_projects_and_groups(built: Archive) -> None:
    from brainlife.server.services.auth import gids_for

    with built.session() as s:
        projects = {p.id: p for p in s.scalars(select(Project))}
        private = projects[demo.PRIVATE_PROJECT]
        assert private.access == "private" and not private.listed
        assert "4" not in {r.sub for r in private.roles}
        assert projects[demo.LISTED_PROJECT].listed is True
        guest = projects[demo.GUEST_PROJECT]
        assert [(r.role, r.sub) for r in guest.roles if r.sub == "4"] == [("guests", "4")]
        for pid in (demo.PRIVATE_PROJECT, demo.LISTED_PROJECT, demo.GUEST_PROJECT):
            count = s.scalar(select(func.count()).where(Dataset.project_id == pid))
            assert count == 3
        assert {g.id for g in s.scalars(select(Group))} == {53, 851, 902, 903, 904}
        assert gids_for(s, 4) == [0, 851]
        assert gids_for(s, 1) == [53, 851, 904, 0]
        members_851 = s.execute(
            select(GroupMember.sub, GroupMember.role).where(GroupMember.group_id == 851)
        ).all()
        assert set(members_851) == {(1, "admin"), (1, "member"), (4, "member")}
        users = s.scalars(select(User)).all()
        assert all(u.scopes == {} for u in users)


def test_freesurfer_tasks_and_folders(built: Archive) -> None:
    with built.session() as s:
        tasks = s.scalars(select(Task).order_by(Task.id)).all()
        wanted = [t for t in tasks if t.group_id == 851 and t.status == "finished"
                  and t.service == "brainlife/app-freesurfer"]  # fmt: skip
        assert len(wanted) == 6
        assert len(tasks) > len(wanted) + 3  # other services, statuses and groups exist
        assert {t.instance_id for t in wanted} == {
            s.scalar(select(Instance.id).where(Instance.group_id == 851))
        }
        subjects = []
        for task in wanted:
            assert task.user_id == "1" and task.service_branch == "0.0.5"
            inp = task.config["_inputs"][0]
            subjects.append(inp["meta"]["subject"])
            source = s.get(Dataset, inp["dataset_id"])
            assert source is not None and source.subject == inp["meta"]["subject"]
            assert inp["project"] == demo.O3D_PROJECT and inp["id"] == "t1"
            folder = built.settings.tasks_dir / task.id
            assert json.loads((folder / "config.json").read_text()) == task.config
            stats = folder / "freesurfer/output/stats"
            names = sorted(p.name for p in stats.iterdir())
            assert names == [".lock", "aseg.stats", "lh.aparc.stats", "rh.aparc.stats",
                             "wmparc.stats"]  # fmt: skip
            aseg = (stats / "aseg.stats").read_text()
            assert "# Measure BrainSeg, BrainSegVol" in aseg and "# ColHeaders" in aseg
            assert f"# subjectname {inp['meta']['subject']}" in aseg
            assert (folder / ".brainlife.json").exists()
            assert (folder / "freesurfer/output/mri/aseg.mgz").stat().st_size > 0
        assert subjects == ["0001", "0002", "0003", "0004", "0005", "0006"]


@pytest.fixture(scope="module")
def built_fingerprint(built: Archive) -> dict[str, Any]:
    """`built`'s fingerprint once (reading every task file and row costs a second or two); the
    tests below compare fresh fingerprints against it."""
    return _fingerprint(built)


def test_second_build_changes_nothing(built: Archive, built_fingerprint: dict[str, Any]) -> None:
    with built.session() as session:
        assert demo.build_demo(session, built) is False
    assert _fingerprint(built) == built_fingerprint


def test_deterministic_across_archives(
    built_fingerprint: dict[str, Any], demo_archive_dir: Path, tmp_path: Path
) -> None:
    """`built` against the session's own build (another folder, often another process), read
    from a copy: opening the shared folder itself would make its -wal file appear and vanish
    while another worker copies it (shutil.Error: the file listed is gone)."""
    copy = tmp_path / "demo"
    shutil.copytree(demo_archive_dir, copy)
    other = open_archive(Settings(data_dir=copy))
    try:
        assert _fingerprint(other) == built_fingerprint
    finally:
        other.engine.dispose()


def test_task_files_have_fixed_mtimes(built: Archive) -> None:
    mtimes = {p.stat().st_mtime for p in Path(built.settings.tasks_dir).rglob("*")}
    assert all(m < time.time() - 365 * 24 * 3600 for m in mtimes)


def test_document_queries_over_http(built: Archive) -> None:
    """The document's requests, as the CLI and the Python script send them."""
    import tarfile

    from fastapi.testclient import TestClient

    from brainlife.server.app import create_app
    from brainlife.server.services.auth import issue_token_for

    with built.session() as s:
        jwt = issue_token_for(s, built, "demo", ttl_ms=3600_000)
    headers = {"Authorization": f"Bearer {jwt}"}
    with TestClient(create_app(archive=built)) as client:
        find = {"removed": False, "$and": [{"project": demo.O3D_PROJECT}]}
        res = client.get("/api/warehouse/dataset", headers=headers,
                         params={"find": json.dumps(find), "skip": 0, "limit": 100})  # fmt: skip
        body = res.json()
        assert body["count"] == 2708 and body["datasets"][-1]["_id"] == demo.WMC_EXAMPLE

        find = {"_group_id": "851", "service": "brainlife/app-freesurfer", "status": "finished"}
        res = client.get("/api/amaretti/task", headers=headers,
                         params={"limit": 500, "select": "config._inputs.meta",
                                 "find": json.dumps(find)})  # fmt: skip
        tasks = res.json()["tasks"]
        assert [t["config"]["_inputs"][0]["meta"]["subject"] for t in tasks] == [
            "0001", "0002", "0003", "0004", "0005", "0006"
        ]  # fmt: skip
        res = client.get(f"/api/amaretti/task/download/{tasks[0]['_id']}/freesurfer/output/stats",
                         params={"at": jwt})  # fmt: skip
        assert res.status_code == 200
        with tarfile.open(fileobj=io.BytesIO(res.content)) as tar:
            names = tar.getnames()
        assert sorted(names) == ["aseg.stats", "lh.aparc.stats", "rh.aparc.stats", "wmparc.stats"]


def test_an_interrupted_demo_build_is_reported_not_served(archive, monkeypatch):
    from brainlife.server import demo
    from brainlife.server.demo import build

    real_store_objects = build.store_objects

    def interrupted(session, archive, objects):
        # Ctrl-C after the first objects were stored (each committed as it is stored), not at
        # the end of a whole build: the state is the same, the test a build cheaper
        real_store_objects(session, archive, objects[:2])
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "store_objects", interrupted)
    with archive.session() as session, pytest.raises(KeyboardInterrupt):
        demo.build_demo(session, archive)
    with archive.session() as session:
        assert session.scalar(select(func.count()).select_from(Dataset)) == 2  # half a world
    monkeypatch.undo()
    with archive.session() as session, pytest.raises(demo.DemoIncomplete, match="interrupted"):
        demo.build_demo(session, archive)
