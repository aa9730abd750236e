"""The official CLI's upload routes in-process over a copy of the demo world: the whole flow
(instance, noop task, raw tar.gz, finalize, stored), the access matrix of every new route, the
hostile cases (a project the user may not write, another user's task, an unknown datatype, a
second upload, unsafe or oversized archives) and the finalize job's crash safety (a job left
`pending` or `running` by a killed server is resumed by the next runner; a stored object is
never re-stored; a failure leaves a `failed` object with a message)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from brainlife.server.app import create_app
from brainlife.server.archive import Archive, open_archive
from brainlife.server.demo.world import GROUP_GUEST, GROUP_O3D, GUEST_PROJECT, O3D_PROJECT
from brainlife.server.models import Dataset, DatasetFile, FinalizeJob, Instance, Task
from brainlife.server.services.finalize import FinalizeRunner
from brainlife.server.settings import Settings
from tests.conftest import make_token

T1W = "58c33bcee13a50849b25879a"


@pytest.fixture
def archive(demo_archive_dir: Path, tmp_path: Path) -> Iterator[Archive]:
    data = tmp_path / "data"
    shutil.copytree(demo_archive_dir, data)
    settings = Settings(
        data_dir=data,
        failed_login_delay=0.0,
        max_upload_members=50,
        max_upload_bytes=2_000_000,
        max_upload_unpacked_bytes=5_000_000,
    )
    arch = open_archive(settings)
    yield arch
    arch.engine.dispose()


@pytest.fixture
def http(archive: Archive) -> Iterator[TestClient]:
    with TestClient(create_app(archive=archive)) as client:
        yield client


def auth(archive: Archive, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(archive, user)}"}


def tgz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def chunked(data: bytes, size: int = 7000) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def noop_task(http: TestClient, headers: dict[str, str], group: int = GROUP_O3D) -> str:
    name = f"upload.{group}"
    found = http.get(
        "/api/amaretti/instance", params={"find": json.dumps({"name": name})}, headers=headers
    ).json()["instances"]
    if found:
        instance = found[0]
    else:
        res = http.post(
            "/api/amaretti/instance",
            json={"name": name, "config": {"brainlife": True}, "group_id": group},
            headers=headers,
        )
        assert res.status_code == 200, res.text
        instance = res.json()
    res = http.post(
        "/api/amaretti/task",
        json={
            "instance_id": instance["_id"],
            "name": name,
            "service": "brainlife/app-noop",
            "config": {},
        },
        headers=headers,
    )
    assert res.status_code == 200, res.text
    task = res.json()["task"]
    assert task["status"] == "finished"
    return str(task["_id"])


def upload(
    http: TestClient,
    headers: dict[str, str],
    task: str,
    body: bytes,
    p: str = "upload/upload.tar.gz",
) -> Any:
    return http.post(
        f"/api/amaretti/task/upload/{task}",
        params={"p": p, "untar": "true"},
        content=chunked(body),
        headers=headers,
    )


def finalize(http: TestClient, headers: dict[str, str], task: str, **extra: Any) -> Any:
    body = {
        "task": task,
        "datatype": T1W,
        "subdir": "upload",
        "fileids": ["t1"],
        "datatype_tags": [],
        "meta": {"subject": "0001"},
        "tags": [],
        "desc": "",
        **extra,
    }
    return http.post("/api/warehouse/dataset/finalize-upload", json=body, headers=headers)


def by_task(http: TestClient, headers: dict[str, str], task: str) -> list[dict[str, Any]]:
    res = http.get(
        "/api/warehouse/dataset",
        params={"find": json.dumps({"prov.task_id": task})},
        headers=headers,
    )
    return list(res.json()["datasets"])


def test_the_whole_flow_stores_the_object(http: TestClient, archive: Archive) -> None:
    h = auth(archive, "hayashis")
    task = noop_task(http, h)
    res = upload(http, h, task, tgz({"t1.nii.gz": b"T1" * 5000}))
    assert res.status_code == 200, res.text
    assert res.json()["unpacked"]["files"] == 1
    res = finalize(
        http,
        h,
        task,
        tags=["a", "a", "b"],
        datatype_tags=["defaced"],
        desc="d",
        meta={"subject": 7, "session": "1", "EchoTime": 0.1},
    )
    assert res.status_code == 200, res.text
    assert "validator_task" not in res.json()
    assert res.json()["archive_task"]["status"] == "finished"
    [ds] = by_task(http, h, task)
    assert ds["status"] == "stored" and ds["project"] == O3D_PROJECT and ds["datatype"] == T1W
    assert ds["tags"] == ["a", "b"] and ds["datatype_tags"] == ["defaced"] and ds["desc"] == "d"
    assert ds["meta"] == {"subject": "7", "session": "1", "EchoTime": 0.1}
    assert ds["user_id"] == "1" and ds["prov"]["task_id"] == task
    tar = http.get(f"/api/warehouse/dataset/download/{ds['_id']}", headers=h).content
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        member = t.extractfile("t1.nii.gz")
        assert member is not None and member.read() == b"T1" * 5000
    # the task's copy is freed once stored; asking again answers the same object
    assert not (archive.settings.tasks_dir / task / "upload").exists()
    assert finalize(http, h, task).json()["archive_task"]["dataset_id"] == ds["_id"]
    assert len(by_task(http, h, task)) == 1


def test_a_task_finalized_by_several_requests_at_once_makes_one_object(
    http: TestClient, archive: Archive
) -> None:
    """Asking again for a task answers its object: also when the requests arrive together
    (a client retrying a slow answer), for `finalize-upload` and for `POST /dataset` alike.
    Before, each could register an object and a job; all but one then failed, left behind."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    h = auth(archive, "hayashis")
    project = O3D_PROJECT
    for route in ("finalize-upload", "dataset") * 2:
        task = noop_task(http, h)
        assert upload(http, h, task, tgz({"t1.nii.gz": b"together"})).status_code == 200
        start = threading.Barrier(8)

        def send(_i: int, task: str = task, route: str = route, start=start) -> Any:
            start.wait(timeout=30)
            if route == "finalize-upload":
                return finalize(http, h, task)
            return http.post(
                "/api/warehouse/dataset",
                json={"project": project, "task_id": task, "output_id": "upload"},
                headers=h,
            )

        if route == "dataset":  # an output the task declares, as `bl bids upload`'s do
            with archive.session() as s:
                row = s.get(Task, task)
                assert row is not None
                row.config = {"_outputs": [{"id": "upload", "datatype": T1W}]}
                s.commit()
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(send, range(8)))
        assert [r.status_code for r in got] == [200] * 8, [r.text for r in got]
        with archive.session() as s:
            made = s.scalars(select(FinalizeJob.dataset_id).where(FinalizeJob.task_id == task))
            assert len(list(made)) == 1, route
        assert len(by_task(http, h, task)) == 1


def test_only_writers_create_instances_and_tasks(http: TestClient, archive: Archive) -> None:
    demo = auth(archive, "demo")  # a guest of GUEST, nothing in O3D
    for group in (GROUP_O3D, GROUP_GUEST, 999999):
        res = http.post(
            "/api/amaretti/instance", json={"name": "x", "group_id": group}, headers=demo
        )
        assert res.status_code == 403, res.text
        assert "not member of the group" in res.json()["message"]
    no_group = {"name": "upload.x"}  # an upload instance must name its project's group
    assert http.post("/api/amaretti/instance", json=no_group, headers=demo).status_code == 400
    assert (
        http.post("/api/amaretti/instance", json={"name": "x", "group_id": 53}).status_code == 401
    )
    # another user's instance of a project the caller may not write is invisible
    task = noop_task(http, auth(archive, "hayashis"))
    with archive.session() as s:
        instance_id = s.get(Task, task).instance_id
    seen = http.get("/api/amaretti/instance", headers=demo).json()["instances"]
    assert instance_id not in {i["_id"] for i in seen}
    res = http.post(
        "/api/amaretti/task",
        json={"instance_id": instance_id, "service": "brainlife/app-noop"},
        headers=demo,
    )
    assert res.status_code == 404
    # a co-member of the project shares the upload instance
    avesani = auth(archive, "avesani")
    names = [
        i["name"] for i in http.get("/api/amaretti/instance", headers=avesani).json()["instances"]
    ]
    assert f"upload.{GROUP_O3D}" in names


@pytest.mark.parametrize("group", ["²", "١٢", 10**30, "9" * 30, -1, 2**31, 1.5, True, [53]])
def test_an_upload_instance_of_an_odd_group_id_is_a_400(
    http: TestClient, archive: Archive, group: Any
) -> None:
    """Digits `int` refuses, numbers beyond the database's INTEGER (SQLite could not bind
    10**30, PostgreSQL holds 32 bits): a 400 naming group_id, nothing created."""
    h = auth(archive, "hayashis")
    count = select(func.count()).select_from(Instance)
    with archive.session() as s:
        before = s.scalar(count)
    res = http.post(
        "/api/amaretti/instance", json={"name": f"upload.{group}", "group_id": group}, headers=h
    )
    assert res.status_code == 400, res.text
    assert "group_id" in res.json()["message"]
    with archive.session() as s:
        assert s.scalar(count) == before


def test_no_app_but_the_upload_task(http: TestClient, archive: Archive) -> None:
    h = auth(archive, "hayashis")
    noop_task(http, h)
    with archive.session() as s:
        instance_id = s.scalars(select(Instance.id)).first()
    res = http.post(
        "/api/amaretti/task",
        json={"instance_id": instance_id, "service": "brainlife/app-freesurfer"},
        headers=h,
    )
    assert res.status_code == 403 and "does not run apps" in res.json()["message"]
    # an app run's instance (any name but the upload's `upload.<group>`) is refused too, and
    # nothing is created
    with archive.session() as s:
        before = len(s.scalars(select(Instance.id)).all())
    res = http.post(
        "/api/amaretti/instance",
        json={"name": "CLI Process.0.5", "group_id": GROUP_O3D},
        headers=h,
    )
    assert res.status_code == 403 and "does not run apps" in res.json()["message"]
    with archive.session() as s:
        assert len(s.scalars(select(Instance.id)).all()) == before


def test_a_task_of_another_user_takes_no_upload_and_no_finalize(
    http: TestClient, archive: Archive
) -> None:
    task = noop_task(http, auth(archive, "hayashis"))
    other = auth(archive, "avesani")  # also writes O3D, but the task is not theirs
    res = upload(http, other, task, tgz({"t1.nii.gz": b"x"}))
    assert res.status_code == 404 and "couldn't find the task" in res.json()["message"]
    assert (
        not list((archive.settings.tasks_dir / task).glob("*"))
        if (archive.settings.tasks_dir / task).exists()
        else True
    )
    assert (
        upload(http, auth(archive, "hayashis"), task, tgz({"t1.nii.gz": b"x"})).status_code == 200
    )
    res = finalize(http, other, task)
    assert res.status_code == 404
    assert upload(http, {}, task, b"x").status_code == 401


def test_a_project_the_user_may_no_longer_write(http: TestClient, archive: Archive) -> None:
    """Write access is read from the project's roles at finalize time, not from the token."""
    h = auth(archive, "avesani")
    task = noop_task(http, h)
    assert upload(http, h, task, tgz({"t1.nii.gz": b"x"})).status_code == 200
    from brainlife.server.models import ProjectRole

    with archive.session() as s:
        for role in s.scalars(
            select(ProjectRole).where(ProjectRole.project_id == O3D_PROJECT, ProjectRole.sub == "2")
        ):
            s.delete(role)
        s.commit()
    res = finalize(http, h, task)
    assert res.status_code == 403 and "only its admins and members" in res.json()["message"]
    assert by_task(http, auth(archive, "hayashis"), task) == []


def test_guests_may_not_upload(http: TestClient, archive: Archive) -> None:
    res = http.post(
        "/api/amaretti/instance",
        json={"name": "u", "group_id": GROUP_GUEST},
        headers=auth(archive, "demo"),
    )
    assert res.status_code == 403
    with archive.session() as s:
        assert s.scalars(select(Instance).where(Instance.group_id == GROUP_GUEST)).all() == []


def test_an_unknown_datatype_or_missing_file_registers_nothing(
    http: TestClient, archive: Archive
) -> None:
    h = auth(archive, "hayashis")
    task = noop_task(http, h)
    assert upload(http, h, task, tgz({"other.txt": b"x"})).status_code == 200
    res = finalize(http, h, task, datatype="0123456789abcdef01234567")
    assert res.status_code == 400 and "Unknown datatype" in res.json()["message"]
    res = finalize(http, h, task)
    assert res.status_code == 400 and "requires: t1.nii.gz" in res.json()["message"]
    with archive.session() as s:
        assert s.scalar(select(func.count()).select_from(FinalizeJob)) == 0
    assert by_task(http, h, task) == []
    res = finalize(http, h, task, meta={"subject": "1", "$where": 1})
    assert res.status_code == 400


def test_finalize_before_any_upload_is_refused(http: TestClient, archive: Archive) -> None:
    h = auth(archive, "hayashis")
    task = noop_task(http, h)
    res = finalize(http, h, task)
    assert res.status_code == 400 and "Nothing was uploaded" in res.json()["message"]


def test_a_second_upload_into_the_same_task_is_refused(http: TestClient, archive: Archive) -> None:
    h = auth(archive, "hayashis")
    task = noop_task(http, h)
    assert upload(http, h, task, tgz({"t1.nii.gz": b"one"})).status_code == 200
    res = upload(http, h, task, tgz({"t1.nii.gz": b"two"}))
    assert res.status_code == 409 and "already received" in res.json()["message"]
    assert (archive.settings.tasks_dir / task / "upload" / "t1.nii.gz").read_bytes() == b"one"


def test_uploads_sent_into_one_task_at_once_leave_one_uploads_files(
    http: TestClient, archive: Archive
) -> None:
    """Each upload passes the first check before any is in place: the task is claimed before
    its bytes are put in place, so one lands and the others are 409, their bytes dropped
    (before, all answered 200 and the folder held every archive's files)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    h = auth(archive, "hayashis")
    for _round in range(3):
        task = noop_task(http, h)
        start = threading.Barrier(6)

        def send(i: int, task: str = task, start: threading.Barrier = start) -> Any:
            start.wait(timeout=30)
            return upload(http, h, task, tgz({f"file{i}.nii.gz": b"x" * i}))

        with ThreadPoolExecutor(6) as pool:
            got = list(pool.map(send, range(6)))
        codes = sorted(r.status_code for r in got)
        assert codes == [200] + [409] * 5, [r.text for r in got]
        assert all("already received" in r.json()["message"] for r in got if r.status_code == 409)
        [winner] = [i for i, r in enumerate(got) if r.status_code == 200]
        folder = archive.settings.tasks_dir / task
        assert sorted(p.name for p in (folder / "upload").iterdir()) == [f"file{winner}.nii.gz"]
        assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
        with archive.session() as s:
            row = s.get(Task, task)
            assert row is not None and "receiving" not in (row.extra or {})


def test_a_claim_left_by_a_killed_server_expires(http: TestClient, archive: Archive) -> None:
    """A server killed while it put an upload in place leaves the task's claim
    (`extra.receiving`); while the claim is young the task refuses another upload (one may be
    arriving through another replica), once it is older than `CLAIM_STALE` the task takes one."""
    from datetime import UTC, datetime

    from brainlife.server.services.taskupload import CLAIM_STALE

    h = auth(archive, "hayashis")
    task = noop_task(http, h)

    def claim(age: Any) -> None:
        with archive.session() as s:
            row = s.get(Task, task)
            assert row is not None
            since = (datetime.now(UTC) - age).isoformat()
            row.extra = {**(row.extra or {}), "receiving": {"since": since}}
            s.commit()

    claim(CLAIM_STALE / 2)
    res = upload(http, h, task, tgz({"t1.nii.gz": b"one"}))
    assert res.status_code == 409 and "receiving one" in res.json()["message"]
    claim(CLAIM_STALE * 2)
    assert upload(http, h, task, tgz({"t1.nii.gz": b"two"})).status_code == 200
    assert (archive.settings.tasks_dir / task / "upload" / "t1.nii.gz").read_bytes() == b"two"
    with archive.session() as s:
        row = s.get(Task, task)
        assert row is not None and "receiving" not in (row.extra or {}) and row.extra["upload"]


@pytest.mark.parametrize(
    ("files", "expect"),
    [
        ({"../escape": b"x"}, "points outside"),
        ({f"f{i}": b"" for i in range(51)}, "more than 50 members"),
        ({"big": bytes(5_000_001)}, "unpacks to more than"),
    ],
)
def test_unsafe_archives_leave_nothing(
    http: TestClient, archive: Archive, files: dict[str, bytes], expect: str
) -> None:
    h = auth(archive, "hayashis")
    task = noop_task(http, h)
    res = upload(http, h, task, tgz(files))
    assert res.status_code == 400, res.text
    assert expect in res.json()["message"]
    folder = archive.settings.tasks_dir / task
    assert [p.name for p in folder.iterdir()] == []  # no staging, no half upload
    assert not (archive.settings.tasks_dir / "escape").exists()
    # the task can still take a good upload
    assert upload(http, h, task, tgz({"t1.nii.gz": b"ok"})).status_code == 200


def test_a_body_over_the_upload_limit_is_refused(http: TestClient, archive: Archive) -> None:
    h = auth(archive, "hayashis")
    task = noop_task(http, h)
    res = upload(http, h, task, bytes(2_000_001))
    assert res.status_code == 413
    assert list((archive.settings.tasks_dir / task).iterdir()) == []


def test_hostile_paths(http: TestClient, archive: Archive) -> None:
    h = auth(archive, "hayashis")
    task = noop_task(http, h)
    for p in ("../x.tar.gz", "/etc/x.tar.gz", ".hidden/x.tar.gz", "upload/x.zip"):
        res = upload(http, h, task, tgz({"a": b"x"}), p=p)
        assert res.status_code == 400, (p, res.text)
    # names the file system refuses (a name over 255 bytes: ENAMETOOLONG) or that no data
    # object may hold (`wire.paths`, the archive members' rule): 400 naming the bound, not 500
    for p in ("a" * 300 + ".tar.gz", "upload/" + "é" * 130 + ".tgz", ("d/" * 600) + "x.tgz"):
        for untar in ("true", "false"):
            task = noop_task(http, h)
            res = http.post(
                f"/api/amaretti/task/upload/{task}",
                params={"p": p, "untar": untar},
                content=tgz({"a": b"x"}),
                headers=h,
            )
            assert res.status_code == 400, (p[:40], untar, res.text)
            assert "longer than" in res.json()["message"]
            assert upload(http, h, task, tgz({"a": b"x"})).status_code == 200  # nothing kept


def _pending_job(http: TestClient, archive: Archive) -> tuple[str, str]:
    """An upload finalized while no runner runs (as if the server died right after)."""
    h = auth(archive, "hayashis")
    task = noop_task(http, h)
    assert upload(http, h, task, tgz({"t1.nii.gz": b"resume me"})).status_code == 200
    http.app.state.finalizer.stop()  # type: ignore[attr-defined]
    res = finalize(http, h, task)
    assert res.status_code == 200
    assert res.json()["archive_task"]["status"] == "requested"
    [ds] = by_task(http, h, task)
    assert ds["status"] == "storing"
    return ds["_id"], res.json()["archive_task"]["_id"]


def test_a_job_left_pending_is_resumed_by_the_next_runner(
    http: TestClient, archive: Archive
) -> None:
    dataset_id, _job = _pending_job(http, archive)
    assert FinalizeRunner(archive).run_pending() == 1  # a restarted server's runner
    with archive.session() as s:
        ds = s.get(Dataset, dataset_id)
        assert ds is not None and ds.status == "stored"
        assert (
            s.scalar(
                select(func.count())
                .select_from(DatasetFile)
                .where(DatasetFile.dataset_id == dataset_id)
            )
            == 1
        )


def test_a_job_killed_mid_run_is_resumed_and_a_crash_loop_ends_failed(
    http: TestClient, archive: Archive
) -> None:
    dataset_id, job_id = _pending_job(http, archive)
    with archive.session() as s:  # what a server killed while storing leaves
        job = s.get(FinalizeJob, job_id)
        assert job is not None
        job.state, job.attempts = "running", 1
        s.commit()
    assert FinalizeRunner(archive).run_pending() == 1
    with archive.session() as s:
        assert s.get(Dataset, dataset_id).status == "stored"  # type: ignore[union-attr]
        assert s.get(FinalizeJob, job_id).attempts == 2  # type: ignore[union-attr]
    # a job that killed its runner three times is failed, with a message
    dataset_id, job_id = _pending_job(http, archive)
    with archive.session() as s:
        job = s.get(FinalizeJob, job_id)
        job.state, job.attempts = "running", 3  # type: ignore[union-attr]
        s.commit()
    FinalizeRunner(archive).run_pending()
    with archive.session() as s:
        ds = s.get(Dataset, dataset_id)
        assert ds is not None and ds.status == "failed"
        assert "interrupted 3 times" in (ds.status_msg or "")


def test_a_job_whose_files_vanished_fails_with_a_message(
    http: TestClient, archive: Archive
) -> None:
    dataset_id, job_id = _pending_job(http, archive)
    with archive.session() as s:
        task_id = s.get(FinalizeJob, job_id).task_id  # type: ignore[union-attr]
    shutil.rmtree(archive.settings.tasks_dir / task_id / "upload")
    FinalizeRunner(archive).run_pending()
    with archive.session() as s:
        ds = s.get(Dataset, dataset_id)
        assert ds is not None and ds.status == "failed" and ds.status_msg
        assert (
            s.scalar(
                select(func.count())
                .select_from(DatasetFile)
                .where(DatasetFile.dataset_id == dataset_id)
            )
            == 0
        )


def test_a_running_job_locked_by_a_live_runner_is_left_alone(
    http: TestClient, archive: Archive
) -> None:
    from brainlife.server.services.finalize import _claim

    dataset_id, job_id = _pending_job(http, archive)
    runner = FinalizeRunner(archive)
    with _claim(archive, runner.lock_dir, job_id) as taken:  # another runner's claim
        assert taken
        assert runner.run_pending() == 0
    assert runner.run_pending() == 1
    with archive.session() as s:
        assert s.get(Dataset, dataset_id).status == "stored"  # type: ignore[union-attr]


def test_bids_style_register_from_a_task_output(http: TestClient, archive: Archive) -> None:
    h = auth(archive, "hayashis")
    task = noop_task(http, h)
    with archive.session() as s:
        row = s.get(Task, task)
        assert row is not None
        row.config = {
            "_outputs": [
                {"id": "output", "datatype": T1W, "datatype_tags": ["x"], "meta": {"subject": "01"}}
            ]
        }
        s.commit()
    res = upload(http, h, task, tgz({"t1.nii.gz": b"bids"}), p="upload.tar.gz")
    assert res.status_code == 200
    body = {
        "project": O3D_PROJECT,
        "task_id": task,
        "output_id": "output",
        "meta": {"subject": "01", "acq": "a"},
        "desc": "sub-01_T1w.nii.gz",
        "tags": ["t"],
    }
    res = http.post("/api/warehouse/dataset", json=body, headers=h)
    assert res.status_code == 200, res.text
    doc = res.json()
    assert doc["status"] == "stored" and doc["datatype_tags"] == ["x"] and doc["tags"] == ["t"]
    assert doc["meta"] == {"subject": "01", "acq": "a"}
    again = http.post("/api/warehouse/dataset", json=body, headers=h)  # a retried request
    assert again.json()["_id"] == doc["_id"]
    other = noop_task(http, h)
    assert upload(http, h, other, tgz({"t1.nii.gz": b"b"}), p="upload.tar.gz").status_code == 200
    res = http.post(
        "/api/warehouse/dataset", json={**body, "task_id": other, "output_id": "nope"}, headers=h
    )
    assert res.status_code == 400 and "has no output 'nope'" in res.json()["message"]
    res = http.post(
        "/api/warehouse/dataset",
        json={**body, "project": GUEST_PROJECT},
        headers=auth(archive, "demo"),
    )
    assert res.status_code == 403


def test_participants_are_kept_for_writers_only(http: TestClient, archive: Archive) -> None:
    body = {"subjects": [{"subject": "01", "age": "30"}], "columns": {"age": {"Units": "y"}}}
    res = http.put(
        f"/api/warehouse/participant/{O3D_PROJECT}", json=body, headers=auth(archive, "demo")
    )
    assert res.status_code == 403
    res = http.put(
        f"/api/warehouse/participant/{O3D_PROJECT}", json=body, headers=auth(archive, "hayashis")
    )
    assert res.status_code == 200 and res.json()["subjects"] == body["subjects"]
    assert http.put(f"/api/warehouse/participant/{O3D_PROJECT}", json=body).status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/amaretti/instance"),
        ("POST", "/api/amaretti/instance"),
        ("POST", "/api/amaretti/task"),
        ("POST", "/api/amaretti/task/upload/0123456789abcdef01234567?p=a.tar.gz&untar=true"),
        ("POST", "/api/warehouse/dataset/finalize-upload"),
        ("POST", "/api/warehouse/dataset"),
        ("PUT", f"/api/warehouse/participant/{O3D_PROJECT}"),
    ],
)
def test_every_upload_route_needs_a_token(http: TestClient, method: str, path: str) -> None:
    res = http.request(method, path, json={"name": "x", "group_id": GROUP_O3D})
    assert res.status_code == 401, res.text
    assert "log in" in res.json()["message"]


def test_an_upload_into_a_task_that_is_not_the_callers_is_404_like_an_unknown_one(
    http: TestClient, archive: Archive
) -> None:
    task = noop_task(http, auth(archive, "hayashis"))
    unknown = upload(http, auth(archive, "demo"), "0123456789abcdef01234567", b"x").json()
    theirs = upload(http, auth(archive, "demo"), task, b"x").json()
    assert unknown["message"].replace("0123456789abcdef01234567", task) == theirs["message"]


def test_a_full_disk_during_an_upload_keeps_nothing(
    http: TestClient, archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from brainlife.server import taskstore

    h = auth(archive, "hayashis")
    task = noop_task(http, h)

    class FullDisk:
        """The spool file of an upload on a disk that fills up."""

        def __init__(self, real: Any) -> None:
            self.real = real

        @property
        def closed(self) -> bool:
            return bool(self.real.closed)

        def write(self, chunk: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            self.real.close()

    opened = taskstore.LocalTaskUpload.__init__

    def on_a_full_disk(self: Any, folder: Path, staging: Path) -> None:
        opened(self, folder, staging)
        self._fh = FullDisk(self._fh)

    monkeypatch.setattr(taskstore.LocalTaskUpload, "__init__", on_a_full_disk)
    res = upload(http, h, task, tgz({"t1.nii.gz": b"x" * 10_000}))
    assert res.status_code == 507 and "disk is full" in res.json()["message"]
    assert list((archive.settings.tasks_dir / task).iterdir()) == []
    monkeypatch.undo()
    assert upload(http, h, task, tgz({"t1.nii.gz": b"x"})).status_code == 200


def test_a_full_disk_while_storing_fails_the_object_with_a_message(
    http: TestClient, archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    dataset_id, _job = _pending_job(http, archive)

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive.store, "put_stream", full)
    FinalizeRunner(archive).run_pending()
    with archive.session() as s:
        ds = s.get(Dataset, dataset_id)
        assert ds is not None and ds.status == "failed"
        assert ds.status_msg == "The archive's disk is full: the files could not be stored."
        assert (
            s.scalar(
                select(func.count())
                .select_from(DatasetFile)
                .where(DatasetFile.dataset_id == dataset_id)
            )
            == 0
        )


def test_staging_left_by_a_killed_upload_is_cleaned_at_start(archive: Archive) -> None:
    import os
    import time

    from brainlife.server.taskstore import LocalTaskFiles

    files = archive.task_files
    assert isinstance(files, LocalTaskFiles)
    old = files.begin_upload("0123456789abcdef01234567")
    old.write(b"half an upload")  # then the server is killed: nothing closes it
    fresh = files.begin_upload("0123456789abcdef01234568")
    hour_ago = time.time() - 3700
    os.utime(old.staging, (hour_ago, hour_ago))
    reopened = open_archive(archive.settings)
    try:
        assert not old.staging.exists()
        assert fresh.staging.exists()  # may be another worker's upload in progress
    finally:
        reopened.engine.dispose()
        fresh.abort()


def test_an_owner_removed_from_the_project_uploads_nothing_more(
    http: TestClient, archive: Archive
) -> None:
    from brainlife.server.models import ProjectRole

    h = auth(archive, "avesani")
    task = noop_task(http, h)
    with archive.session() as s:
        for role in s.scalars(
            select(ProjectRole).where(ProjectRole.project_id == O3D_PROJECT, ProjectRole.sub == "2")
        ):
            s.delete(role)
        s.commit()
    res = upload(http, h, task, tgz({"t1.nii.gz": b"x"}))
    assert res.status_code == 403 and "admins and members" in res.json()["message"]
    assert not (archive.settings.tasks_dir / task).exists()


def test_a_plain_upload_lands_at_its_path_and_never_over_a_folder(
    http: TestClient, archive: Archive
) -> None:
    h = auth(archive, "hayashis")
    task = noop_task(http, h)
    (archive.settings.tasks_dir / task / "out").mkdir(parents=True)
    res = http.post(
        f"/api/amaretti/task/upload/{task}", params={"p": "out"}, content=b"x", headers=h
    )
    assert res.status_code == 400 and "is a folder" in res.json()["message"]
    res = http.post(
        f"/api/amaretti/task/upload/{task}",
        params={"p": "out/notes.txt"},
        content=b"hello",
        headers=h,
    )
    assert res.status_code == 200, res.text
    assert (archive.settings.tasks_dir / task / "out" / "notes.txt").read_bytes() == b"hello"
    assert [p.name for p in (archive.settings.tasks_dir / task).iterdir()] == ["out"]


def test_an_archive_naming_the_servers_staging_is_refused(
    http: TestClient, archive: Archive
) -> None:
    h = auth(archive, "hayashis")
    task = noop_task(http, h)
    res = upload(http, h, task, tgz({".bl-upload-0123/x": b"x"}), p="upload.tar.gz")
    assert res.status_code == 400 and "a name this server keeps" in res.json()["message"]
    assert list((archive.settings.tasks_dir / task).iterdir()) == []


def test_a_finished_job_leaves_no_lock_file(http: TestClient, archive: Archive) -> None:
    _dataset_id, job_id = _pending_job(http, archive)
    runner = FinalizeRunner(archive)
    assert runner.run_pending() == 1
    assert not (runner.lock_dir / f"{job_id}.lock").exists()
