"""A BIDS dataset from brainlife data objects (`bl bids download`).

The objects are first downloaded by the bulk engine (parallel, resumable, verified, with its
lockfile) into ``<output>/sourcedata/brainlife/<id>/`` (BIDS keeps what a dataset was made from
under ``sourcedata/``, which validators skip). The BIDS tree is then made from those verified
files, as hard links (copies where the file system has none), so a second run resumes the
download and remakes the tree in seconds:

    dataset_description.json, README, participants.tsv, participants.json
    sub-<s>/[ses-<x>/]anat/sub-<s>[_ses-<x>][_run-<r>]_T1w.nii.gz (+ .json sidecar)
    sub-<s>/[ses-<x>/]dwi/…_dwi.nii.gz, _dwi.bval, _dwi.bvec
    sub-<s>/[ses-<x>/]func/…_task-<t>[_run-<r>]_bold.nii.gz
    derivatives/<pipeline>/dataset_description.json, derivatives/<pipeline>/sub-<s>/[ses-<x>/]…

What goes where is data, `BIDS_MAP` (datatype name → rule), documented in docs/bids.md. An
object that does not map (a datatype without a rule, a file the rule does not name, no
subject, a task without a task name, or a BIDS name another object already took) is listed in
the report with the reason, never dropped silently. A sidecar JSON holds the object's `meta`
less the entities already in the file name (subject, session, run, task).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brainlife.client.transfer.layout import inside
from brainlife.wire.tags import split_tags

Doc = dict[str, Any]

BIDS_VERSION = "1.9.0"
#: where the engine downloads, under the BIDS root
SOURCE = "sourcedata/brainlife"
#: the report of the last run, in SOURCE
REPORT = "bl-bids.json"


@dataclass(frozen=True)
class Rule:
    """How one datatype becomes BIDS files.

    `files`: the object's file (its name in the data object) → the BIDS suffix with extension
    (`T1w.nii.gz`); the name is `sub-<s>[_ses-<x>][_task-<t>][_run-<r>]_<suffix>` in `folder`.
    `pipeline`: a derivative, under `derivatives/<pipeline>/`; with `tree`, the object's whole
    file tree is put under `derivatives/<pipeline>/sub-<s>/[ses-<x>/]` as it is.
    `sidecar`: the file whose JSON sidecar holds the object's meta."""

    folder: str = ""
    files: Mapping[str, str] = field(default_factory=dict)
    pipeline: str | None = None
    tree: bool = False
    needs_task: bool = False
    sidecar: str | None = None


#: datatype name → rule: the mapping, as data
BIDS_MAP: dict[str, Rule] = {
    "neuro/anat/t1w": Rule("anat", {"t1.nii.gz": "T1w.nii.gz"}, sidecar="t1.nii.gz"),
    "neuro/anat/t2w": Rule("anat", {"t2.nii.gz": "T2w.nii.gz"}, sidecar="t2.nii.gz"),
    "neuro/anat/flair": Rule("anat", {"flair.nii.gz": "FLAIR.nii.gz"}, sidecar="flair.nii.gz"),
    "neuro/dwi": Rule(
        "dwi",
        {"dwi.nii.gz": "dwi.nii.gz", "dwi.bvals": "dwi.bval", "dwi.bvecs": "dwi.bvec"},
        sidecar="dwi.nii.gz",
    ),
    "neuro/func/task": Rule(
        "func",
        {"bold.nii.gz": "bold.nii.gz", "events.tsv": "events.tsv"},
        needs_task=True,
        sidecar="bold.nii.gz",
    ),
    "neuro/freesurfer": Rule(pipeline="freesurfer", tree=True),
    "neuro/track/tck": Rule("dwi", {"track.tck": "tractography.tck"}, pipeline="brainlife"),
    "neuro/wmc": Rule(pipeline="brainlife-wmc", tree=True),
    "neuro/tractprofile": Rule(pipeline="brainlife-tractprofile", tree=True),
}

_LABEL = re.compile(r"[^A-Za-z0-9]")
#: meta keys that are entities of the file name, not sidecar fields
_ENTITY_KEYS = {"subject", "session", "run", "task"}


def label(value: Any) -> str:
    """A BIDS label: letters and digits only (`sub-0001`, `ses-pre`)."""
    return _LABEL.sub("", str(value)) if value is not None else ""


@dataclass
class Mapped:
    id: str
    #: BIDS-root-relative path → source path (relative to the object's folder)
    files: dict[str, str]
    sidecar: tuple[str, Doc] | None = None
    pipeline: str | None = None


@dataclass
class Unmapped:
    id: str
    datatype: str
    reason: str

    def to_json(self) -> Doc:
        return {"_id": self.id, "datatype": self.datatype, "reason": self.reason}


@dataclass
class BidsReport:
    root: Path
    mapped: list[Mapped] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    files: int = 0

    def to_json(self) -> Doc:
        return {
            "root": str(self.root),
            "objects": len(self.mapped),
            "files": self.files,
            "subjects": self.subjects,
            "unmapped": [u.to_json() for u in self.unmapped],
        }


def bids_find(
    *,
    ids: Sequence[str] = (),
    datatype_ids: Sequence[str] = (),
    datatype_tags: Sequence[str] = (),
    tags: Sequence[str] = (),
    project_id: str | None = None,
    pub: str | None = None,
    subjects: Sequence[str] = (),
) -> Doc:
    """The find of the official `bl bids download` (reference §6.2): `!tag` excludes; with a
    publication, removed objects are not left out (they are part of the release)."""
    find: Doc = {}
    if project_id:
        find["project"] = project_id
    if pub:
        find["publications"] = pub
    else:
        find["removed"] = False
    if datatype_ids:
        find["datatype"] = {"$in": list(datatype_ids)}
    if subjects:
        find["meta.subject"] = {"$in": list(subjects)}
    if ids:
        find["_id"] = {"$in": list(ids)}
    for key, values in (("tags", tags), ("datatype_tags", datatype_tags)):
        if values:
            want, avoid = split_tags(values)
            clause: Doc = {}
            if want:
                clause["$all"] = want
            if avoid:
                clause["$nin"] = avoid
            find[key] = clause
    return find


def _entities(meta: Mapping[str, Any], *, task: bool) -> tuple[str, str, list[str]] | str:
    """(subject label, session label, name parts) or the reason there are none."""
    sub = label(meta.get("subject"))
    if not sub:
        return "it has no subject (meta.subject)"
    ses = label(meta.get("session"))
    parts = [f"sub-{sub}"] + ([f"ses-{ses}"] if ses else [])
    if task:
        name = label(meta.get("task"))
        if not name:
            return "a functional run needs a task name (meta.task)"
        parts.append(f"task-{name}")
    run = label(meta.get("run"))
    if run:
        parts.append(f"run-{run}")
    return sub, ses, parts


def map_object(doc: Doc, datatype: str, files: Sequence[str]) -> Mapped | Unmapped:
    """Where one object's files go (paths relative to the BIDS root), or why they do not."""
    oid = str(doc.get("_id"))
    rule = BIDS_MAP.get(datatype)
    if rule is None:
        return Unmapped(oid, datatype, f"no BIDS rule for the datatype {datatype}")
    meta = doc.get("meta") or {}
    entities = _entities(meta, task=rule.needs_task)
    if isinstance(entities, str):
        return Unmapped(oid, datatype, entities)
    sub, ses, parts = entities
    base = f"derivatives/{rule.pipeline}/" if rule.pipeline else ""
    folder = base + f"sub-{sub}/" + (f"ses-{ses}/" if ses else "")
    if rule.tree:
        return Mapped(oid, {folder + rel: rel for rel in files}, pipeline=rule.pipeline)
    mapped: dict[str, str] = {}
    sidecar = None
    for rel in files:
        suffix = rule.files.get(rel)
        if suffix is None:
            return Unmapped(oid, datatype, f"its file {rel} has no place in the BIDS rule")
        target = f"{folder}{rule.folder}/{'_'.join(parts)}_{suffix}"
        mapped[target] = rel
        if rel == rule.sidecar:
            fields = {k: v for k, v in meta.items() if k not in _ENTITY_KEYS}
            if fields:
                stem = target[: -len(".nii.gz")] if target.endswith(".nii.gz") else target
                sidecar = (stem + ".json", fields)
    missing = [rel for rel in rule.files if rel not in files and rel != "events.tsv"]
    if missing:
        return Unmapped(oid, datatype, f"it lacks {', '.join(missing)}")
    return Mapped(oid, mapped, sidecar=sidecar, pipeline=rule.pipeline)


def _place(source: Path, target: Path) -> None:
    """`target` as a hard link to `source` (a copy where links are not possible), replacing
    whatever was there unless it already is that file."""
    if target.exists():
        if os.path.samefile(source, target):
            return
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        tmp = target.with_name(target.name + ".bl-part")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".bl-part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def build_tree(
    root: Path,
    objects: Sequence[tuple[Doc, str, Path, Sequence[str]]],
    *,
    name: str,
    readme: str = "",
    participants: Sequence[Mapping[str, Any]] | None = None,
) -> BidsReport:
    """Make the BIDS tree under `root` from downloaded objects: (document, datatype name,
    folder holding its files, its files' relative paths). `participants`: rows of the
    project's participants table (a `participant_id` or `subject` column), if it has one;
    otherwise participants.tsv lists the subjects."""
    report = BidsReport(root)
    taken: dict[str, str] = {}
    pipelines: set[str] = set()
    for doc, datatype, folder, files in objects:
        result = map_object(doc, datatype, files)
        if isinstance(result, Unmapped):
            report.unmapped.append(result)
            continue
        clash = next((t for t in result.files if t in taken), None)
        if clash is not None:
            report.unmapped.append(
                Unmapped(result.id, datatype, f"{clash} is already {taken[clash]}'s")
            )
            continue
        for target, rel in result.files.items():
            taken[target] = result.id
            _place(folder / rel, inside(root, target))
            report.files += 1
        if result.sidecar is not None:
            path, fields = result.sidecar
            _write(inside(root, path), json.dumps(fields, indent=2, sort_keys=True) + "\n")
        if result.pipeline:
            pipelines.add(result.pipeline)
        report.mapped.append(result)
    subjects = sorted({label((doc.get("meta") or {}).get("subject")) for doc, *_ in objects} - {""})
    report.subjects = subjects
    description = {
        "Name": name,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "GeneratedBy": [{"Name": "brainlife for Python (bl bids download)"}],
    }
    _write(root / "dataset_description.json", json.dumps(description, indent=2) + "\n")
    _write(root / "README", (readme.strip() or name) + "\n")
    _write(root / "participants.tsv", _participants(subjects, participants))
    _write(
        root / "participants.json",
        json.dumps({"participant_id": {"Description": "the subject's label"}}, indent=2) + "\n",
    )
    for pipeline in sorted(pipelines):
        derived = {
            "Name": f"{name}: {pipeline}",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": pipeline}],
        }
        _write(
            root / "derivatives" / pipeline / "dataset_description.json",
            json.dumps(derived, indent=2) + "\n",
        )
    _write(root / SOURCE / REPORT, json.dumps(report.to_json(), indent=2) + "\n")
    return report


def _participants(subjects: Sequence[str], table: Sequence[Mapping[str, Any]] | None) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    rows = {label(r.get("participant_id") or r.get("subject")).removeprefix("sub"): r
            for r in table or []}  # fmt: skip
    columns = sorted({k for r in rows.values() for k in r} - {"participant_id", "subject"})
    writer.writerow(["participant_id", *columns])
    for sub in subjects:
        row = rows.get(sub, {})
        writer.writerow([f"sub-{sub}", *(_cell(row.get(c)) for c in columns)])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "n/a"
    return re.sub(r"[\t\r\n]", " ", str(value))
