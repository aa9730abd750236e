"""Where each data object goes: layout templates over object fields, presets, and the checks the
plan reports before any byte moves (two objects in one folder, unsafe names, paths too long).

Every name a server supplies (subject, session, tags, task names, ``Content-Disposition`` file
names) becomes a path component through :func:`safe_name` only, and every path built from one is
checked by :func:`inside` to lie under the download folder: other group members control these
values, and a download must never write outside ``-d``.

Presets: ``id`` (``{id}``, the official default), ``seed`` (``{subject}/{tags}``, the bulk loop of
the user document) and ``brainlife`` (brainlife's downscript layout,
``proj-<project>/sub-<subject>[.ses-<session>]/dt-<datatype>[.tag-<t>…][.run-<run>].id-<id>``;
``bids`` is its old name, kept as an alias: it is not a BIDS dataset, which
:mod:`brainlife.client.bids` makes).
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brainlife.client._exceptions import ConfigError
from brainlife.client.transfer.lockfile import LOCK_NAME
from brainlife.wire.paths import MAX_NAME, is_inside, safe_name

__all__ = [
    "FIELDS",
    "PRESETS",
    "Layout",
    "LayoutProblem",
    "check_paths",
    "inside",
    "object_fields",
    "resolve_layout",
    "safe_name",
]

#: fields a template may use, with what they hold
FIELDS: dict[str, str] = {
    "id": "the data object id",
    "project": "the project id",
    "project_name": "the project name",
    "subject": "meta.subject",
    "session": "meta.session",
    "run": "meta.run",
    "datatype": "the datatype name, '/' replaced by '-' (neuro-anat-t1w)",
    "datatype_id": "the datatype id",
    "datatype_tags": "datatype tags joined by '.'",
    "tags": "tags joined by '.'",
    "desc": "the description",
    "create_date": "the creation day, YYYY-MM-DD",
}
PRESETS: dict[str, str] = {
    "id": "{id}",
    "seed": "{subject}/{tags}",
    "brainlife": "proj-{project}/sub-{subject}[.ses-{session}]/dt-{datatype}[.tag-…]"
    "[.run-{run}].id-{id}",
}
#: an absolute path longer than this (bytes) is refused by Linux (PATH_MAX 4096, with the NUL)
MAX_PATH = 4095
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.I)
_UNSAFE_CHARS = re.compile(r'[<>:"|?*\x00-\x1f]')


def inside(root: Path, rel: str | Path) -> Path:
    """``root / rel``, refused (ConfigError) unless it lies under ``root`` once symbolic links
    and ``..`` are resolved: a folder that is a link to elsewhere does not take a download there."""
    path = root / rel
    if not is_inside(root, path):
        raise ConfigError(
            f"Refusing to write {path}: it resolves to {path.resolve()}, outside the download "
            f"folder {root.resolve()}."
        )
    return path


def _clean(value: Any) -> str:
    """A field value as one safe path component (`safe_name`; a list joined by '.')."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ".".join(c for c in (_clean(v) for v in value) if c)
    return safe_name(value) or ""


def object_fields(
    doc: Mapping[str, Any],
    *,
    datatype_name: str | None = None,
    project_name: str | None = None,
) -> dict[str, str]:
    """The template fields of one data object document."""
    meta = doc.get("meta") or {}
    project = doc.get("project")
    if isinstance(project, dict):
        project_name = project_name or project.get("name")
        project = project.get("_id")
    datatype = doc.get("datatype")
    if isinstance(datatype, dict):
        datatype_name = datatype_name or datatype.get("name")
        datatype = datatype.get("_id")
    created = str(doc.get("create_date") or "")[:10]
    return {
        "id": _clean(doc.get("_id")),
        "project": _clean(project),
        "project_name": _clean(project_name),
        "subject": _clean(meta.get("subject")),
        "session": _clean(meta.get("session")),
        "run": _clean(meta.get("run")),
        "datatype": _clean(datatype_name or datatype),
        "datatype_id": _clean(datatype),
        "datatype_tags": _clean([str(t).lstrip("!") for t in doc.get("datatype_tags") or []]),
        "tags": _clean(list(doc.get("tags") or [])),
        "desc": _clean(doc.get("desc")),
        "create_date": _clean(created),
    }


def _bids(fields: Mapping[str, str]) -> str:
    """brainlife's ``dataset_to_filename`` (warehouse ``common.js``)."""
    path = f"proj-{fields['project']}/sub-{fields['subject']}"
    if fields["session"]:
        path += f".ses-{fields['session']}"
    path += f"/dt-{fields['datatype']}"
    for tag in fields["datatype_tags"].split(".") if fields["datatype_tags"] else []:
        path += f".tag-{tag}"
    if fields["run"]:
        path += f".run-{fields['run']}"
    return path + f".id-{fields['id']}"


@dataclass(frozen=True)
class Layout:
    """A layout: ``name`` (a preset or "template") and the function from fields to a folder."""

    name: str
    template: str
    render: Callable[[Mapping[str, str]], str]
    #: bids: write dataset_description.json per project and _info.json per object
    bids: bool = False

    def folder(self, fields: Mapping[str, str]) -> str:
        """The object's folder, relative, with '/' separators and no empty components."""
        raw = self.render(fields)
        return "/".join(p for p in raw.split("/") if p not in ("", "."))


#: old layout names → their names now (the CLI warns when one is used)
LAYOUT_ALIASES: dict[str, str] = {"bids": "brainlife"}


def _check_relative(spec: str, template: str) -> None:
    """A template's folders lie under the download folder: not absolute, and no literal '..' or
    '.' folder (a field's value never makes one, `safe_name`; a literal one would make a
    --dry-run list folders outside the download folder that the run then refuses)."""
    if template.startswith("/") or template.startswith("~"):
        raise ConfigError(f"The layout {spec!r} must be relative to the download folder.")
    if any(part in ("..", ".") for part in template.split("/")):
        raise ConfigError(
            f"The layout {spec!r} has a '..' or '.' folder: every object's folder must lie "
            "under the download folder."
        )


def resolve_layout(spec: str | None) -> Layout:
    """A preset name (id, seed, brainlife) or a template such as ``{project}/{subject}/{id}``.
    ``bids`` (the old name of ``brainlife``, see `LAYOUT_ALIASES`) is the same layout."""
    spec = LAYOUT_ALIASES.get(spec or "id", spec or "id")
    if spec == "brainlife":
        return Layout("brainlife", PRESETS["brainlife"], _bids, bids=True)
    template = PRESETS.get(spec, spec)
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ConfigError(f"The layout {spec!r} is not a valid template ({exc}).") from None
    unknown = sorted({n for n in names if n not in FIELDS})
    if unknown or any(n == "" for n in names):
        known = ", ".join("{" + f + "}" for f in FIELDS)
        raise ConfigError(
            f"The layout {spec!r} uses unknown field(s) {', '.join(unknown) or '{}'}; "
            f"known fields: {known}; presets: {', '.join(PRESETS)}."
        )
    if not names:
        close = difflib.get_close_matches(spec, list(PRESETS), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(
            f"The layout {spec!r} is neither a preset nor a template with a {{field}}: {hint}"
            f"presets: {', '.join(PRESETS)}; templates use fields such as {{subject}}/{{id}}."
        )
    _check_relative(spec, template)
    name = spec if spec in PRESETS else "template"
    return Layout(name, template, lambda fields: template.format_map(dict(fields)))


@dataclass
class LayoutProblem:
    """Something that stops the plan: ``kind`` is collision, nested, unsafe, too-long, outside (a
    folder that resolves outside the root through a symbolic link) or exists (a file there that no
    download wrote, kept unless ``--existing overwrite``); "case" (folders that differ only in
    case) is a warning."""

    kind: str
    path: str
    ids: list[str]
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "ids": self.ids, "message": self.message}


def _unsafe_reason(component: str) -> str | None:
    if component in ("..", "."):
        return "is '..' or '.'"
    if component == LOCK_NAME:
        return "is the name of the lockfile"
    if _UNSAFE_CHARS.search(component):
        return 'holds a character that is unsafe in file names (<>:"|?* or a control character)'
    if _WINDOWS_RESERVED.match(component):
        return "is a reserved device name on Windows"
    if component != component.rstrip(" ."):
        return "ends with a space or a dot"
    if component.startswith("-"):
        return "starts with '-' (read as an option by many tools)"
    return None


def check_paths(
    root: str, folders: Mapping[str, str], files: Mapping[str, Iterable[str]]
) -> list[LayoutProblem]:
    """Problems of a layout: ``folders`` maps object id → folder, ``files`` object id → the
    relative paths of its files. ``root`` is the absolute download folder (for lengths)."""
    problems: list[LayoutProblem] = []
    by_folder: dict[str, list[str]] = {}
    for oid, folder in folders.items():
        by_folder.setdefault(folder, []).append(oid)
    for folder, ids in sorted(by_folder.items()):
        if folder == "":
            problems.append(
                LayoutProblem(
                    "unsafe", folder, ids, "the layout gives an empty folder (the download root)"
                )
            )
        elif len(ids) > 1:
            problems.append(
                LayoutProblem(
                    "collision",
                    folder,
                    sorted(ids),
                    f"{len(ids)} data objects map to the same folder {folder}",
                )
            )
    folder_set = set(by_folder)
    for folder, ids in sorted(by_folder.items()):
        parts = folder.split("/") if folder else []
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in folder_set:
                problems.append(
                    LayoutProblem(
                        "nested",
                        folder,
                        sorted(ids + by_folder[parent]),
                        f"{folder} lies inside {parent}, the folder of another data object",
                    )
                )
                break
        for part in parts:
            reason = _unsafe_reason(part)
            if reason:
                problems.append(LayoutProblem("unsafe", folder, ids, f"the name {part!r} {reason}"))
                break
    folded: dict[str, str] = {}
    for folder in sorted(folder_set):
        other = folded.setdefault(folder.casefold(), folder)
        if other != folder:
            problems.append(
                LayoutProblem(
                    "case",
                    folder,
                    sorted(by_folder[folder] + by_folder[other]),
                    f"{folder} and {other} differ only in case (one folder on macOS and Windows)",
                )
            )
    root_len = len(root.encode()) + 1
    for oid, folder in folders.items():
        for rel in ["", *files.get(oid, ())]:
            full = f"{folder}/{rel}" if rel else folder
            long_part = next((p for p in full.split("/") if len(p.encode()) > MAX_NAME), None)
            if long_part is not None:
                problems.append(
                    LayoutProblem(
                        "too-long",
                        full,
                        [oid],
                        f"the name {long_part[:40]}… is longer than {MAX_NAME} bytes",
                    )
                )
                break
            if root_len + len(full.encode()) > MAX_PATH:
                problems.append(
                    LayoutProblem(
                        "too-long", full, [oid], f"the path is longer than {MAX_PATH} bytes"
                    )
                )
                break
    return problems
