"""A project's plain files (brainlife's "S3 project files"): `bl project files ls|put|rm`, and
the `--s3`/`--path` modes of `bl data query` and `bl data download` (the official CLI 1.8.2's
flags), which call `list_s3` and `download_path` here."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from brainlife.cli import _output
from brainlife.cli._common import get_client, json_option


def _size(n: int) -> str:
    """As the official CLI prints a size: `2.1 KB` (1024-based, one decimal, no trailing .0)."""
    if n <= 0:
        return "0 B"
    units = ["B", "KB", "MB", "GB", "TB"]
    i = min(int(math.log(n, 1024)), len(units) - 1)
    return f"{round(n / 1024**i, 1):g} {units[i]}"


def _date(text: str) -> str:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return f"{when.month}/{when.day}/{when.year}"


def list_s3(project: str, path: str | None, as_json: bool) -> None:
    """`bl data query -p P --s3 [--path X]`: one folder, every page (the official CLI shows the
    first 1,000 entries only)."""
    client = get_client()
    doc = client.resolve_project(project)
    pid = str(doc["_id"])
    listing = client.project_files(pid, path or "")
    if as_json:
        _output.print_json(
            {"project": pid, "path": path or "", "folders": listing["folders"],
             "objects": listing["objects"]}
        )  # fmt: skip
        return
    _output.out(f"Project: {doc.get('name')} ({pid})")
    if path:
        _output.out(f"Path:    {path}")
    _output.out()
    folders: list[dict[str, Any]] = listing["folders"]
    objects: list[dict[str, Any]] = listing["objects"]
    if not folders and not objects:
        _output.out("(empty — no files found at this path)")
        return
    for f in folders:
        _output.out(f"  [DIR]  {f.get('Name')}/")
    for o in objects:
        date = _date(str(o.get("LastModified") or ""))
        when = f", {date}" if date else ""
        _output.out(f"  [FILE] {o.get('Name')} ({_size(int(o.get('Size') or 0))}{when})")
    _output.out()
    _output.out(f"{len(folders)} folder(s), {len(objects)} file(s)")


def download_path(project: str, path: str, directory: str | None, jobs: int, as_json: bool) -> None:
    """`bl data download -p P --path X [-d DIR]`: a file into DIR (default `.`), a folder (`X/`)
    into DIR (default: its last name; `""`: the whole tree into a folder named after the
    project id), resumable and verified file by file."""
    client = get_client()
    pid = str(client.resolve_project(project)["_id"])
    clean = path.strip("/")
    is_folder = path == "" or path.endswith("/")
    if directory is None:
        directory = (clean.rsplit("/", 1)[-1] or pid) if is_folder else "."
    if not as_json:
        _output.out(f"Downloading {path or '(the whole tree)'} to {directory}")
    result = client.download_project_files(pid, path, directory, jobs=jobs)
    if as_json:
        _output.print_json(result.to_json())
        return
    kept = f", {len(result.present)} already there" if result.present else ""
    _output.out(
        f"Download complete. ({len(result.fetched)} file(s), {_output.human(result.bytes)}{kept})"
    )


@click.group("files")
def files() -> None:
    """A project's plain files (documents, protocols, tables) beside its data objects."""


@files.command("ls")
@click.argument("project")
@click.argument("path", required=False, default="")
@json_option
def files_ls(project: str, path: str, as_json: bool) -> None:
    """List a folder of PROJECT's files (the root by default), every page."""
    list_s3(project, path, as_json)


@files.command("put")
@click.argument("project")
@click.argument("local", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("remote", required=False)
@json_option
def files_put(project: str, local: Path, remote: str | None, as_json: bool) -> None:
    """Store the file LOCAL as REMOTE (default: its name at the root) in PROJECT's files,
    replacing a file of that path; its sha256 is checked by the server. Project admins and
    members."""
    client = get_client()
    pid = str(client.resolve_project(project)["_id"])
    remote = remote if remote else local.name
    if remote.endswith("/"):
        remote += local.name
    doc = client.put_project_file(pid, local, remote)
    if as_json:
        _output.print_json(doc)
    else:
        _output.out(f"Stored {doc.get('Key')} ({_size(int(doc.get('Size') or 0))})")


@files.command("rm")
@click.argument("project")
@click.argument("remote")
def files_rm(project: str, remote: str) -> None:
    """Remove the file REMOTE from PROJECT's files. Project admins and members."""
    client = get_client()
    pid = str(client.resolve_project(project)["_id"])
    client.remove_project_file(pid, remote)
    _output.out(f"Removed {remote}")
