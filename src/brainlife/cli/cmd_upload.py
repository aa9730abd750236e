"""`bl data upload`: one data object from files (``--<file id> PATH``, as the official CLI) or a
folder holding the datatype's file names; resumable (run the same command again)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from brainlife.cli import _output
from brainlife.cli._common import get_client, give_up_option, json_flag, json_object

#: options of the command that take a value (the rest of ``--x VALUE`` pairs are file ids)
_EPILOG = (
    "Files: one --<file id> PATH per file of the datatype (e.g. --t1 t1.nii.gz; a folder for a "
    "'dirname' entry), or a FOLDER holding the datatype's file names. Interrupted uploads "
    "resume when the same command is run again (state in ~/.config/<BLHOST>/uploads/)."
)


def _meta(value: str | None) -> dict[str, Any]:
    """``-m``: a JSON object, or a JSON file (a sidecar: ``-m sub-01_T1w.json``)."""
    if not value:
        return {}
    text = value
    candidate = Path(value[1:] if value.startswith("@") else value)
    if value.startswith("@") or (not value.lstrip().startswith("{") and candidate.is_file()):
        try:
            text = candidate.read_text()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {candidate}: {exc}", param_hint="-m") from None
    return json_object(text, "-m", "'{\"age\": 32}' or a JSON file")


def _file_args(extra: tuple[str, ...]) -> tuple[dict[str, str], str | None]:
    """``--<id> PATH`` pairs (or ``--<id>=PATH``) and at most one FOLDER."""
    files: dict[str, str] = {}
    folder: str | None = None
    items = list(extra)
    while items:
        item = items.pop(0)
        if item.startswith("--") and len(item) > 2:
            fid, eq, path = item[2:].partition("=")
            if not eq:
                if not items or items[0].startswith("--"):
                    raise click.UsageError(f"--{fid} needs a path (e.g. --{fid} FILE).")
                path = items.pop(0)
            if fid in files:
                raise click.UsageError(f"--{fid} is given twice.")
            files[fid] = path
        elif item.startswith("-"):
            raise click.UsageError(f"No such option: {item}")
        elif folder is None:
            folder = item
        else:
            raise click.UsageError(f"Only one FOLDER may be given (got {folder} and {item}).")
    return files, folder


@click.command(
    "upload",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True},
    epilog=_EPILOG,
)
@click.argument("extra", nargs=-1, type=click.UNPROCESSED, metavar="[--<file id> PATH…] [FOLDER]")
@click.option("-p", "--project", required=True, help="Project id or name.")
@click.option("-d", "--datatype", required=True, help="Datatype name (neuro/anat/t1w) or id.")
@click.option("-s", "--subject", help="Subject (meta.subject).")
@click.option("-e", "--session", help="Session (meta.session).")
@click.option("-r", "--run", help="Run (meta.run; also adds the tag run-<run>).")
@click.option("-n", "--desc", default="", help="Description.")
@click.option("-t", "--tag", multiple=True, help="Tag (repeatable).")
@click.option(
    "--datatype_tag", "--datatype-tag", "datatype_tag", multiple=True, help="Datatype tag."
)
@click.option("-m", "--meta", help="Metadata: a JSON object, or a JSON sidecar file.")
@click.option(
    "--layout",
    help="Bulk: FOLDER is a tree of objects named by this template ('seed' = {subject}/{tags}, "
    "or e.g. '{subject}/{session}'); each folder holds the datatype's files.",
)
@click.option("--dry-run", is_flag=True, help="Bulk: print the plan, upload nothing.")
@click.option("-J", "--jobs", type=click.IntRange(1, 32), default=4, show_default=True)
@json_flag("Print the new data object (bulk: events) as JSON.")
@give_up_option
def data_upload(
    extra: tuple[str, ...],
    project: str,
    datatype: str,
    subject: str | None,
    session: str | None,
    run: str | None,
    desc: str,
    tag: tuple[str, ...],
    datatype_tag: tuple[str, ...],
    meta: str | None,
    layout: str | None,
    dry_run: bool,
    jobs: int,
    as_json: bool,
) -> None:
    """Upload one data object, or a tree of them with --layout (resumable and idempotent: run
    it again after an interruption)."""
    files, folder = _file_args(extra)
    if layout is not None or dry_run:
        if files or subject or session or run:
            given = "--layout" if layout is not None else "--dry-run (a plan of --layout seed)"
            raise click.UsageError(
                f"With {given}, files and subject/session/run come from the folders; drop "
                "--<file id>, -s, -e and -r"
                + (
                    ""
                    if layout is not None
                    else ", or --dry-run: a single upload checks its "
                    "files against the datatype before a byte moves"
                )
                + "."
            )
        layout = layout or "seed"
        bulk_meta = _meta(meta)
        client = get_client()
        bulk = client.plan_bulk_upload(
            folder or ".",
            layout=layout,
            project=project,
            datatype=datatype,
            tags=tag,
            datatype_tags=datatype_tag,
            meta=bulk_meta,
            desc=desc,
        )
        for rel in bulk.unmatched:
            _say(
                as_json, "refused", {"folder": rel, "refused": f"does not match --layout {layout}"}
            )
        report_bulk(client, bulk, dry_run=dry_run, jobs=jobs, as_json=as_json)
        return
    client = get_client()
    plan = client.plan_upload(
        project=project,
        datatype=datatype,
        files=dict(files),
        folder=folder if folder is not None else (None if files else "."),
        meta=_meta(meta),
        subject=subject,
        session=session,
        run=run,
        tags=tag,
        datatype_tags=datatype_tag,
        desc=desc,
    )
    if not as_json:
        _output.out(
            f"uploading {_output.plural(len(plan.files), 'file')} "
            f"({_output.human(plan.size)}) as {plan.datatype_name}.."
        )
    with _output.progress_bar(plan.datatype_name) as progress:
        result = client.upload(plan, progress=progress)
    if as_json:  # as the official CLI prints it
        click.echo(json.dumps(result.dataset, indent=4, ensure_ascii=False))
        return
    moved = f"sent {_output.human(result.sent)}"
    if result.resumed:
        moved += f", {_output.human(result.resumed)} were on the server from an earlier run"
    if result.present:
        moved += f", {_output.human(result.present)} already in the archive"
    _output.out(f"{moved}.")
    _output.out(f"successfully uploaded. data object id: {result.dataset['_id']}")


def report_bulk(client: Any, bulk: Any, *, dry_run: bool, jobs: int, as_json: bool) -> None:
    """Print a bulk plan (refused, already there, to upload), then run it unless ``dry_run``;
    exit with the failed objects' code, or 10 (upload-refused) when something was refused."""
    from brainlife.cli.main import exit_code, exit_code_of

    for item in bulk.items:
        if item.refused:
            _say(as_json, "refused", item.to_json())
        elif item.existing:
            _say(as_json, "already-there", item.to_json())
        elif dry_run:
            _say(as_json, "to-upload", item.to_json())
    plan = bulk.summary()
    if dry_run:
        _say(as_json, "plan", plan)
        return
    summary = client.bulk_upload(bulk, jobs=jobs, on_event=lambda k, d: _say(as_json, k, d))
    failed = [i.error_code or "error" for i in bulk.items if i.error]
    if failed:
        raise SystemExit(exit_code_of(failed))
    if summary["refused"]:
        raise SystemExit(exit_code("upload-refused"))


def _say(as_json: bool, kind: str, data: dict[str, Any]) -> None:
    if as_json:
        _output.json_line({"event": kind, **data})
        return
    where = data.get("folder", "")
    if kind == "refused":
        _output.err(f"refused {where}: {data.get('refused')}")
    elif kind == "already-there":
        _output.out(f"already there {where}: {data.get('existing')}")
    elif kind == "to-upload":
        _output.out(
            f"to upload {where}: {_output.plural(data['files'], 'file')}, "
            f"{_output.human(data['bytes'])}"
        )
    elif kind == "object-done":
        _output.out(f"uploaded {where}: {data.get('dataset')}")
    elif kind == "object-failed":
        _output.err(f"failed {where}: {data.get('error')}")
    elif kind in ("plan", "summary"):
        parts = [
            _output.plural(data["objects"], "object"),
            f"{data['to_upload']} to upload ({_output.plural(data['files'], 'file')}, "
            f"{_output.human(data['bytes'])})",
            f"{data['already_there']} already there",
            f"{data['refused']} refused",
        ]
        if kind == "summary":
            parts += [f"{data['uploaded']} uploaded", f"{data['failed']} failed"]
        _output.out(("plan: " if kind == "plan" else "done: ") + ", ".join(parts))
