"""`bl bids download` and `bl bids upload`, with the official CLI's flags.

`download`: a BIDS dataset of data objects.

The objects are fetched by the bulk engine (`bl data download`'s: parallel, resumable,
verified, `bl-lock.json`) into `<output>/sourcedata/brainlife/`, then the BIDS tree is made
from them by `brainlife.client.bids` (hard links). Objects that do not map to BIDS are listed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from brainlife.cli import _output
from brainlife.cli._bulk import Transfer, run_bulk, transfer_options
from brainlife.cli._common import get_client, give_up_option, json_flag


@click.group()
def bids() -> None:
    """BIDS datasets: export data objects as one, or upload one into a project."""


@bids.command("download")
@click.option(
    "--output",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="The BIDS dataset's folder.",
)
@click.option("--id", "ids", multiple=True, help="A data object id. Repeatable.")
@click.option("--datatype", "datatypes", multiple=True, help="A datatype (name or id). Repeatable.")
@click.option(
    "--datatype_tag", "datatype_tags", multiple=True, help="A datatype tag ('!t' excludes)."
)
@click.option("--tag", "tags", multiple=True, help="A data object tag ('!t' excludes).")
@click.option("--project", help="The project (id or name).")
@click.option("--pub", help="A publication release id.")
@click.option("--subject", "subjects", multiple=True, help="A subject. Repeatable.")
@click.option("--skip", type=click.IntRange(min=0), default=0, help="Objects to skip.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=0,
    help="At most this many objects (default 0: all; the official CLI stops at 100).",
)
@transfer_options
def bids_download(
    output: str,
    ids: tuple[str, ...],
    datatypes: tuple[str, ...],
    datatype_tags: tuple[str, ...],
    tags: tuple[str, ...],
    project: str | None,
    pub: str | None,
    subjects: tuple[str, ...],
    skip: int,
    limit: int,
    transfer: Transfer,
) -> None:
    """Download data objects as a BIDS dataset in --output (e.g. --project O3D)."""
    from brainlife.client import NotFound
    from brainlife.client.bids import SOURCE, bids_find, build_tree

    if not (project or pub or ids):
        raise click.UsageError("Name a --project, a --pub (release id) or data objects (--id).")
    if transfer.layout:
        raise click.UsageError("--layout does not apply: the BIDS layout is the point.")
    client = get_client()
    proj = client.resolve_project(project) if project else None
    find = bids_find(
        ids=ids,
        datatype_ids=[str(client.resolve_datatype(d)["_id"]) for d in datatypes],
        datatype_tags=datatype_tags,
        tags=tags,
        project_id=str(proj["_id"]) if proj else None,
        pub=pub,
        subjects=subjects,
    )
    docs = client.find_datasets(find, skip=skip, limit=limit).datasets
    if not docs:
        raise NotFound("No data objects match (or none you may read). Try 'bl data query'.")
    root = Path(output)
    source = root / SOURCE
    holder: dict[str, Any] = {}

    def plan(on_event: Any) -> Any:
        holder["plan"] = client.plan_download(
            root=source,
            layout="id",
            ids=[str(d["_id"]) for d in docs],
            existing=transfer.existing,
            jobs=transfer.jobs,
            on_event=on_event,
        )
        return holder["plan"]

    run_bulk(plan, transfer)
    if transfer.dry_run:
        return
    objects = _downloaded(client, holder["plan"], source, docs)
    name = str(proj["name"]) if proj else (f"publication release {pub}" if pub else "brainlife")
    readme = str(proj.get("desc") or "") if proj else ""
    report = build_tree(root, objects, name=name, readme=readme)
    if transfer.as_json:
        _output.json_line({"event": "bids", **report.to_json()})
        return
    _output.out(
        f"BIDS dataset in {root}: {len(report.mapped)} data objects, {report.files} files, "
        f"{len(report.subjects)} subjects."
    )
    if report.unmapped:
        _output.out(f"Not in the BIDS tree ({len(report.unmapped)}; kept in {source}):")
        for item in report.unmapped:
            _output.out(f"  {item.id} {item.datatype}: {item.reason}")
    _output.out(f"(report: {json.dumps(str(source / 'bl-bids.json'))})")


def _downloaded(
    client: Any, plan: Any, source: Path, docs: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], str, Path, list[str]]]:
    """(document, datatype name, folder, files) of each object the download completed, as
    `build_tree` maps them (the files as the plan listed them, else as found on disk)."""
    names = {k: str(v.get("name")) for k, v in client.datatypes_by_id(
        sorted({str(d.get("datatype")) for d in docs})).items()}  # fmt: skip
    objects = []
    for obj in plan.ok_objects:
        folder = source / obj.folder
        files = (
            [f.rel for f in obj.files]
            if obj.files is not None
            else sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        )
        files = [f for f in files if f != "_info.json"]
        doc = obj.doc or {}
        objects.append((doc, names.get(str(doc.get("datatype")), ""), folder, files))
    return objects


def import_participants(
    client: Any, project: str, path: Path, *, dry_run: bool, as_json: bool
) -> None:
    """``participants.tsv`` (and ``participants.json`` beside it) into the project's
    participants table, as the official ``bl bids upload`` does; read and checked first, so a
    malformed table stops the upload before any object is sent."""
    from brainlife.client import UploadRefused
    from brainlife.client.participants import MAX_TSV_BYTES, ParticipantsTableError, parse_tsv

    # refused as any other file of the tree that cannot be uploaded (exit 10), before a byte moves
    nothing = "Nothing was uploaded; fix it, or move it out of the tree to upload the images only."
    with open(path, "rb") as f:
        try:
            rows = parse_tsv(f.read(MAX_TSV_BYTES + 1), str(path))
        except ParticipantsTableError as exc:
            raise UploadRefused(f"{exc} {nothing}") from None
    columns = None
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            columns = json.loads(sidecar.read_bytes()[: MAX_TSV_BYTES + 1])
        except (ValueError, UnicodeDecodeError) as exc:
            raise UploadRefused(f"{sidecar} is not JSON ({exc}). {nothing}") from None
        if not isinstance(columns, dict):
            raise UploadRefused(f"{sidecar} must hold a JSON object. {nothing}")
    if not dry_run:
        client.set_participants(project, subjects=rows, columns=columns)
    if as_json:
        _output.json_line(
            {"event": "participants", "path": str(path), "rows": len(rows), "imported": not dry_run}
        )
    else:
        verb = "would import" if dry_run else "imported"
        _output.err(f"participants.tsv: {verb} {_output.plural(len(rows), 'participant')}.")


@bids.command("upload")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("-d", "--directory", "dir_option", type=click.Path(file_okay=False))
@click.option("-p", "--project", required=True, help="Project id or name.")
@click.option("-t", "--tag", multiple=True, help="Tag every object (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the plan, upload nothing.")
@click.option("-J", "--jobs", type=click.IntRange(1, 32), default=4, show_default=True)
@json_flag("JSON events, one per line.")
@give_up_option
def bids_upload(
    directory: str | None,
    dir_option: str | None,
    project: str,
    tag: tuple[str, ...],
    dry_run: bool,
    jobs: int,
    as_json: bool,
) -> None:
    """Upload a BIDS tree (anat T1w/T2w/FLAIR, dwi, func bold, fmap) into a project."""
    from brainlife.cli.cmd_upload import report_bulk

    root = directory or dir_option
    if not root:
        raise click.UsageError("Give the BIDS folder (bl bids upload -p PROJECT DIR).")
    client = get_client()
    bulk = client.plan_bids_upload(root, project=project, tags=tag)
    participants = Path(root) / "participants.tsv"
    if participants.is_file():
        import_participants(client, bulk.project, participants, dry_run=dry_run, as_json=as_json)
    report_bulk(client, bulk, dry_run=dry_run, jobs=jobs, as_json=as_json)
