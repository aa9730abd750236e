"""Reading a BIDS tree into data objects, as brainlife's bids-walker maps them
(brainlife-cli.md §6.3): ``anat`` T1w/T2w/FLAIR → ``neuro/anat/t1w``/``t2w``/``flair``,
``dwi`` (with its ``.bvec``/``.bval``) → ``neuro/dwi``, ``func`` bold (with events and sbref
when present) → ``neuro/func/task``, ``fmap`` (phasediff with its magnitudes, or epi) →
``neuro/fmap``.

Each object's ``meta`` is its JSON sidecar (``<name>.json`` beside the image) plus ``subject``,
``session``, ``run`` and the other entities of its name (``acq``, ``task``, ``dir``, ``echo``…);
its ``desc`` is the image's path in the tree (what a rerun recognises it by too, with its
files' digests); a func object's task name is its datatype tag, as in brainlife. Files that do
not fit (a ``.nii`` where ``.nii.gz`` is expected, a dwi without its bvec/bval) are listed with
the reason, never guessed at. ``participants.tsv`` is not read here: see ``bl bids upload``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BidsObject", "walk_bids"]

Doc = dict[str, Any]

#: anat suffix -> (datatype, file id)
ANAT = {
    "T1w": ("neuro/anat/t1w", "t1"),
    "T2w": ("neuro/anat/t2w", "t2"),
    "FLAIR": ("neuro/anat/flair", "flair"),
}
FMAP_FILES = ("phasediff", "magnitude1", "magnitude2", "phase1", "phase2", "magnitude", "fieldmap")


@dataclass
class BidsObject:
    """One data object of a BIDS tree (``refused``: why it cannot be uploaded)."""

    datatype: str
    source: str
    files: dict[str, Path] = field(default_factory=dict)
    meta: Doc = field(default_factory=dict)
    datatype_tags: list[str] = field(default_factory=list)
    refused: str | None = None
    #: ``<entity>-<value>`` for each entity of the name but sub and ses (``run-2``,
    #: ``task-rest``, ``acq-hi``…): the tags the official `bl bids upload` gives an object
    tags: list[str] = field(default_factory=list)


def _entities(name: str) -> tuple[dict[str, str], str, str]:
    """(entities, suffix, extension) of a BIDS file name."""
    ext = ""
    for candidate in (".nii.gz", ".nii", ".bvec", ".bval", ".tsv", ".json"):
        if name.endswith(candidate):
            ext = candidate
            name = name[: -len(candidate)]
            break
    parts = name.split("_")
    suffix = parts[-1] if parts else ""
    ents: dict[str, str] = {}
    for p in parts[:-1]:
        key, sep, value = p.partition("-")
        if sep:
            ents[key] = value
    return ents, suffix, ext


def _sidecar(image: Path, ext: str) -> Doc:
    path = image.with_name(image.name[: -len(ext)] + ".json")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _meta(ents: dict[str, str], sidecar: Doc) -> Doc:
    meta: Doc = dict(sidecar)
    for key, value in ents.items():
        meta[{"sub": "subject", "ses": "session"}.get(key, key)] = value
    return meta


def _entity_tags(ents: dict[str, str]) -> list[str]:
    return [f"{key}-{value}" for key, value in ents.items() if key not in ("sub", "ses")]


def _folders(root: Path) -> Iterator[tuple[str, Path]]:
    for sub in sorted(root.glob("sub-*")):
        if not sub.is_dir():
            continue
        sessions = sorted(p for p in sub.glob("ses-*") if p.is_dir()) or [sub]
        for base in sessions:
            for kind in ("anat", "dwi", "func", "fmap"):
                folder = base / kind
                if folder.is_dir():
                    yield kind, folder


def walk_bids(root: Path) -> list[BidsObject]:
    """Every data object of the BIDS tree ``root``, in a stable order."""
    objects: list[BidsObject] = []
    for kind, folder in _folders(root):
        fmap_groups: dict[str, BidsObject] = {}
        for image in sorted(folder.iterdir()):
            if not image.is_file() or image.name.startswith("."):
                continue
            ents, suffix, ext = _entities(image.name)
            rel = image.relative_to(root).as_posix()
            if ext not in (".nii.gz", ".nii"):
                continue
            meta = _meta(ents, _sidecar(image, ext))
            stem = image.name[: -len(ext)]
            if kind == "anat" and suffix in ANAT:
                datatype, fid = ANAT[suffix]
                obj = BidsObject(datatype, rel, {fid: image}, meta)
            elif kind == "dwi" and suffix == "dwi":
                obj = BidsObject("neuro/dwi", rel, {"dwi": image}, meta)
                missing = []
                for fid, sib in (("bvecs", ".bvec"), ("bvals", ".bval")):
                    path = image.with_name(stem + sib)
                    if path.is_file():
                        obj.files[fid] = path
                    else:
                        missing.append(stem + sib)
                if missing:
                    obj.refused = f"{rel} has no {' and no '.join(missing)} beside it"
            elif kind == "func" and suffix == "bold":
                obj = BidsObject("neuro/func/task", rel, {"bold": image}, meta)
                if ents.get("task"):
                    obj.datatype_tags.append(ents["task"])
                for fid, name in (("events", "events.tsv"), ("sbref", "sbref.nii.gz")):
                    path = image.with_name(stem[: -len("bold")] + name)
                    if path.is_file():
                        obj.files[fid] = path
            elif kind == "fmap" and suffix in FMAP_FILES:
                key = "_".join(p for p in stem.split("_")[:-1])
                group = fmap_groups.get(key)
                if group is None:
                    group = BidsObject("neuro/fmap", rel, {}, {}, tags=_entity_tags(ents))
                    fmap_groups[key] = group
                    objects.append(group)
                group.files[suffix] = image
                group.meta.update(meta)
                if ext != ".nii.gz":
                    group.refused = f"{rel}: brainlife expects .nii.gz, not {ext}"
                continue
            elif kind == "fmap" and suffix == "epi":
                obj = BidsObject("neuro/fmap", rel, {"epi": image}, meta)
            else:
                continue
            if ext != ".nii.gz":
                obj.refused = f"{rel}: brainlife expects .nii.gz, not {ext}"
            obj.tags = _entity_tags(ents)
            objects.append(obj)
    return objects
