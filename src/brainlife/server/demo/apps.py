"""The demo's apps catalogue (the apps its tasks name, and a few others that consume and produce
its datatypes) and its compute resources (the one its tasks ran on, a second public one and a
private one), as brainlife.io describes them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from brainlife.server.demo.world import DT, GROUP_PRIVATE, PRIVATE_PROJECT, SUB, oid_time
from brainlife.server.models import App, AppProject, Resource, ResourceGroup

APP_STAGE = "58c56d9de13a50849b258801"
APP_FREESURFER = "5b1f1f7e0a8d4a0027f6a3c2"  # the `_app` of the demo's FreeSurfer tasks
APP_TRACKING = "59f1c7d2b3c6e600264e1a3b"
APP_AFQ = "5a1c4c8ddc4f9d00284b2b8a"
APP_PROFILES = "5ae20b8b2d3dd400266b0c1c"
APP_PRIVATE = "5c40a1117d4b2c0031a6e300"
APP_REMOVED = "5a2f1c0a9d8e7b0027c3d4e5"

RESOURCE_TASKS = "59ea931df82bb308c0197c3d"  # where the demo's tasks ran
RESOURCE_PUBLIC = "5b4a0e7f1e1f2b0029c8d111"
RESOURCE_PRIVATE = "5c40b2227d4b2c0031a6e400"


def _in(
    pid: str, datatype: str, tags: list[str] | None = None, *, desc: str = "", **flags: Any
) -> dict[str, Any]:
    return {
        "id": pid,
        "datatype": DT[datatype],
        "datatype_tags": tags or [],
        "desc": desc,
        "optional": flags.get("optional", False),
        "multi": flags.get("multi", False),
        "advanced": False,
    }


def _out(
    pid: str, datatype: str, tags: list[str] | None = None, *, passed: str | None = None
) -> dict[str, Any]:
    return {
        "id": pid,
        "datatype": DT[datatype],
        "datatype_tags": tags or [],
        "desc": "",
        "datatype_tags_pass": passed,
        "output_on_root": False,
        "archive": True,
    }


def _input_key(input_id: str) -> dict[str, Any]:
    return {"type": "input", "input_id": input_id}


def _opt(kind: str, default: Any, desc: str) -> dict[str, Any]:
    return {"type": kind, "default": default, "desc": desc}


#: id, name, github, branch, doi, description, inputs, outputs, config, projects, removed
APPS: list[tuple[Any, ...]] = [
    (
        APP_STAGE,
        "Stage Data",
        "brainlife/app-stage",
        "1.1.0",
        None,
        "Stages archived data objects into a task folder, for the apps that read them.",
        [],
        [],
        {},
        [],
        False,
    ),
    (
        APP_FREESURFER,
        "FreeSurfer",
        "brainlife/app-freesurfer",
        "0.0.5",
        "10.25663/bl.app.0",
        "Runs FreeSurfer recon-all on a T1 weighted image: cortical reconstruction, volumetric "
        "segmentation and surface parcellation.",
        [_in("t1", "neuro/anat/t1w", ["acpc_aligned"], desc="T1 aligned to the AC-PC line")],
        [_out("output", "neuro/freesurfer")],
        {
            "t1": _input_key("t1"),
            "hippocampal": _opt("boolean", False, "segment the hippocampal subfields"),
            "debug": _opt("boolean", False, "keep intermediate files"),
            "notalairach": _opt("boolean", False, "skip the Talairach transform"),
            "hipposubfields": _opt("boolean", False, "hippocampal subfields (FreeSurfer 7)"),
            "version": _opt("string", "6.0.0", "FreeSurfer version"),
        },
        [],
        False,
    ),
    (
        APP_TRACKING,
        "Ensemble Tracking",
        "brainlife/app-ensembletracking",
        "1.2",
        "10.25663/bl.app.32",
        "Whole-brain tractography with several algorithms (deterministic and probabilistic, "
        "tensor and CSD) merged into one tractogram.",
        [
            _in("dwi", "neuro/dwi", desc="diffusion data with bvals/bvecs"),
            _in("t1", "neuro/anat/t1w", ["acpc_aligned"], optional=True),
        ],
        [_out("track", "neuro/track/tck", ["sd_prob"])],
        {
            "dwi": _input_key("dwi"),
            "bvecs": _input_key("dwi"),
            "bvals": _input_key("dwi"),
            "t1": _input_key("t1"),
            "num_fibers": _opt("number", 500000, "streamlines per algorithm"),
            "max_lmax": _opt("number", 8, "maximum spherical harmonic order"),
        },
        [],
        False,
    ),
    (
        APP_AFQ,
        "White Matter Segmentation (AFQ)",
        "brainlife/app-tractclassification",
        "1.3",
        "10.25663/bl.app.13",
        "Classifies the streamlines of a tractogram into 20 major tracts with AFQ.",
        [_in("track", "neuro/track/tck"), _in("dwi", "neuro/dwi")],
        [_out("output", "neuro/wmc", ["afq"])],
        {
            "track": _input_key("track"),
            "dwi": _input_key("dwi"),
            "clean": _opt("boolean", True, "remove outlier streamlines"),
        },
        [],
        False,
    ),
    (
        APP_PROFILES,
        "Tract Analysis Profiles",
        "brainlife/app-tractanalysisprofiles",
        "1.3",
        "10.25663/bl.app.43",
        "Diffusion measures (FA, MD, RD, AD) sampled at 100 nodes along each tract.",
        [_in("wmc", "neuro/wmc"), _in("dwi", "neuro/dwi", multi=True)],
        [_out("profiles", "neuro/tractprofile", passed="wmc")],
        {
            "wmc": _input_key("wmc"),
            "dwi": _input_key("dwi"),
            "numnodes": _opt("number", 100, "nodes along each tract"),
        },
        [],
        False,
    ),
    (
        APP_PRIVATE,
        "Private QC",
        "avesani/app-private-qc",
        "main",
        None,
        "Quality control of T1 images, shared with the Private demo project only.",
        [_in("t1", "neuro/anat/t1w")],
        [_out("t1", "neuro/anat/t1w", ["defaced"], passed="t1")],
        {"t1": _input_key("t1")},
        [PRIVATE_PROJECT],
        False,
    ),
    (
        APP_REMOVED,
        "dtiInit (retired)",
        "brainlife/app-dtiinit",
        "1.0",
        None,
        "Retired: superseded by the mrtrix3 preprocessing app.",
        [_in("dwi", "neuro/dwi"), _in("t1", "neuro/anat/t1w", ["acpc_aligned"])],
        [_out("output", "neuro/dwi", ["normalized"], passed="dwi")],
        {"dwi": _input_key("dwi"), "t1": _input_key("t1")},
        [],
        True,
    ),
]

#: id, name, hostname, username, services, gids, owner, status
RESOURCES: list[tuple[Any, ...]] = [
    (
        RESOURCE_TASKS,
        "Jetstream2 (shared)",
        "js2-brainlife.example.invalid",
        "brainlife",
        ["brainlife/app-stage", "brainlife/app-freesurfer", "brainlife/app-tractanalysisprofiles"],
        [1],
        "hayashis",
        "ok",
    ),
    (
        RESOURCE_PUBLIC,
        "Carbonate (shared)",
        "carbonate.example.invalid",
        "brlife",
        ["brainlife/app-ensembletracking", "brainlife/app-tractclassification"],
        [1],
        "hayashis",
        "ok",
    ),
    (
        RESOURCE_PRIVATE,
        "Private lab cluster",
        "cluster.lab.example.invalid",
        "avesani",
        ["avesani/app-private-qc"],
        [GROUP_PRIVATE],
        "avesani",
        "ok",
    ),
]


def add_apps(session: Session) -> None:
    """The demo's apps and resources (ids and dates fixed)."""
    for aid, name, github, branch, doi, desc, inputs, outputs, config, projects, removed in APPS:
        session.add(
            App(
                id=aid,
                name=name,
                desc=desc,
                github=github,
                github_branch=branch,
                doi=doi,
                removed=removed,
                user_id=SUB["hayashis"] if not projects else SUB["avesani"],
                create_date=oid_time(aid),
                inputs=inputs,
                outputs=outputs,
                config=config,
                extra={
                    "admins": [SUB["hayashis"]],
                    "tags": [],
                    "contributors": [],
                    "avatar": "",
                    "stats": {},
                },
                projects=[AppProject(project_id=p, pos=n) for n, p in enumerate(projects)],
            )
        )
    for rid, name, host, user, services, gids, owner, status in RESOURCES:
        session.add(
            Resource(
                id=rid,
                name=name,
                type="ssh",
                status=status,
                status_msg="ready",
                active=True,
                user_id=SUB[owner],
                create_date=oid_time(rid),
                config={
                    "hostname": host,
                    "username": user,
                    "desc": f"{name}: runs {len(services)} apps",
                    "maxtask": 10,
                    "services": [{"name": s, "score": 10} for s in services],
                },
                extra={"citation": None, "avatar": None, "stats": {}},
                groups=[ResourceGroup(gid=g) for g in gids],
            )
        )
    session.flush()
