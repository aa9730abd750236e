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


@dataclass
class _Image:
    """An image file of a BIDS folder, its name read."""

    path: Path
    rel: str
    ents: dict[str, str]
    suffix: str
    ext: str
    meta: Doc

    @property
    def stem(self) -> str:
        return self.path.name[: -len(self.ext)]

    def sibling(self, name: str) -> Path | None:
        path = self.path.with_name(name)
        return path if path.is_file() else None


def _images(root: Path, folder: Path) -> Iterator[_Image]:
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        ents, suffix, ext = _entities(path.name)
        if ext in (".nii.gz", ".nii"):
            rel = path.relative_to(root).as_posix()
            yield _Image(path, rel, ents, suffix, ext, _meta(ents, _sidecar(path, ext)))


def _anat(image: _Image) -> BidsObject | None:
    if image.suffix not in ANAT:
        return None
    datatype, fid = ANAT[image.suffix]
    return BidsObject(datatype, image.rel, {fid: image.path}, image.meta)


def _dwi(image: _Image) -> BidsObject | None:
    if image.suffix != "dwi":
        return None
    obj = BidsObject("neuro/dwi", image.rel, {"dwi": image.path}, image.meta)
    missing = []
    for fid, ext in (("bvecs", ".bvec"), ("bvals", ".bval")):
        path = image.sibling(image.stem + ext)
        if path:
            obj.files[fid] = path
        else:
            missing.append(image.stem + ext)
    if missing:
        obj.refused = f"{image.rel} has no {' and no '.join(missing)} beside it"
    return obj


def _func(image: _Image) -> BidsObject | None:
    if image.suffix != "bold":
        return None
    obj = BidsObject("neuro/func/task", image.rel, {"bold": image.path}, image.meta)
    if image.ents.get("task"):
        obj.datatype_tags.append(image.ents["task"])
    for fid, name in (("events", "events.tsv"), ("sbref", "sbref.nii.gz")):
        path = image.sibling(image.stem[: -len("bold")] + name)
        if path:
            obj.files[fid] = path
    return obj


def _fmap_epi(image: _Image) -> BidsObject | None:
    if image.suffix != "epi":
        return None
    return BidsObject("neuro/fmap", image.rel, {"epi": image.path}, image.meta)


#: folder kind -> the object one image of it is (None: not an object of its own)
_ONE_IMAGE_OBJECTS = {"anat": _anat, "dwi": _dwi, "func": _func, "fmap": _fmap_epi}


def _refuse_nii(obj: BidsObject, image: _Image) -> None:
    if image.ext != ".nii.gz":
        obj.refused = f"{image.rel}: brainlife expects .nii.gz, not {image.ext}"


def walk_bids(root: Path) -> list[BidsObject]:
    """Every data object of the BIDS tree ``root``, in a stable order."""
    objects: list[BidsObject] = []
    for kind, folder in _folders(root):
        #: a phasediff (or phase1/2, fieldmap) and its magnitudes: one object per name stem
        fmap_groups: dict[str, BidsObject] = {}
        for image in _images(root, folder):
            if kind == "fmap" and image.suffix in FMAP_FILES:
                key = "_".join(image.stem.split("_")[:-1])
                group = fmap_groups.get(key)
                if group is None:
                    group = BidsObject(
                        "neuro/fmap", image.rel, {}, {}, tags=_entity_tags(image.ents)
                    )
                    fmap_groups[key] = group
                    objects.append(group)
                group.files[image.suffix] = image.path
                group.meta.update(image.meta)
                _refuse_nii(group, image)
                continue
            obj = _ONE_IMAGE_OBJECTS[kind](image)
            if obj is not None:
                _refuse_nii(obj, image)
                obj.tags = _entity_tags(image.ents)
                objects.append(obj)
    return objects
