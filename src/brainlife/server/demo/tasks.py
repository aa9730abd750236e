"""The tasks of group 851 (the finished `brainlife/app-freesurfer` runs of the task-download
example, plus tasks its filter must not return) and their work folders."""

from __future__ import annotations

import json
import os
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from brainlife.server.archive import Archive
from brainlife.server.demo import content
from brainlife.server.demo.objects import recipe_files, recipe_seed
from brainlife.server.demo.world import (
    DT,
    FREESURFER_SUBJECTS,
    GROUP_O3D,
    GROUP_TP,
    O3D_PROJECT,
    SUB,
    TP_PROJECT,
    IdMaker,
    utc,
)
from brainlife.server.models import Dataset, Instance, Task


def _write_tree(root: Path, files: list[tuple[str, bytes]], mtime: datetime) -> None:
    stamp = mtime.timestamp()
    for rel, data in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (stamp, stamp))
    os.utime(root, (stamp, stamp))


def _instance(
    oid: str, user: str, group: int, name: str, when: datetime, *, desc: str = "", hours: float = 0
) -> Instance:
    """A finished amaretti instance (the folder its tasks ran in), updated `hours` after it
    was made."""
    return Instance(
        id=oid,
        user_id=user,
        group_id=group,
        name=name,
        desc=desc,
        status="finished",
        config={"brainlife": True, "type": "v2"},
        create_date=when,
        update_date=when + timedelta(hours=hours),
    )


def add_tasks(
    session: Session,
    archive: Archive,
    rng: random.Random,
    t1_ids: dict[str, str],
    profile_id: str | None = None,
) -> None:
    """The tasks and their folders. `profile_id`: the tract-profile object the finished
    `app-tractanalysisprofiles` task archived (its `_outputs` and the object's `prov` then name
    each other, so `bl app wait` on that task has an archived output to wait for)."""
    ids = IdMaker("7c0d8a0033", 0x51F000, rng)
    hayashis = SUB["hayashis"]
    start = utc(2019, 1, 24, 16, 2, 11)
    instance_id = ids.at(start)
    session.add(
        _instance(
            instance_id,
            hayashis,
            GROUP_TP,
            "FreeSurfer on O3D T1w",
            start,
            desc="recon-all for six O3D subjects",
            hours=9,
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
        [(f"{t1_ids[s]}/t1.nii.gz", recipe_files(("t1", s))[0][1]) for s in FREESURFER_SUBJECTS],
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
            for p, data in content.freesurfer_output(recipe_seed("fs", subject), subject)
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
    profiles_config: dict[str, Any] = {"_tid": 9, "_inputs": []}
    if profile_id is not None:
        profiles_config["_app"] = "5ae20b8b2d3dd400266b0c1c"
        profiles_config["_outputs"] = [
            {
                "id": "profiles",
                "datatype": DT["neuro/tractprofile"],
                "datatype_tags": [],
                "desc": "profiles from Tract Analysis Profiles",
                "meta": {},
                "tags": [],
                "subdir": "profiles",
                "archive": {"project": TP_PROJECT, "desc": "profiles from Tract Analysis Profiles"},
                "dataset_id": profile_id,
            }
        ]
    profiles_task = add(
        "brainlife/app-tractanalysisprofiles",
        "1.3",
        "finished",
        later + timedelta(minutes=6),
        profiles_config,
        [("profiles/summary.json", b"[]\n")],
        hours=0.5,
    )
    if profile_id is not None:
        profile = session.get(Dataset, profile_id)
        if profile is None:
            raise AssertionError(f"demo: no tract-profile object {profile_id}")
        profile.prov = {
            "task_id": profiles_task,
            "output_id": "profiles",
            "subdir": "profiles",
            "instance_id": instance_id,
        }
    o3d_instance = ids.at(later + timedelta(minutes=8))
    session.add(_instance(o3d_instance, SUB["avesani"], GROUP_O3D, "O3D FreeSurfer check", later))
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
