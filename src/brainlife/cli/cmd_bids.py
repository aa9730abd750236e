"""`bl bids upload`: a BIDS tree into a project, one data object per image as brainlife's
bids-walker maps them; `--dry-run`, parallel, idempotent (a rerun uploads only what is missing)."""

from __future__ import annotations

from pathlib import Path

import click

from brainlife.cli import _output
from brainlife.cli._common import get_client, give_up_option


@click.group()
def bids() -> None:
    """Upload BIDS trees."""


def import_participants(project: str, path: Path, *, dry_run: bool, as_json: bool) -> None:
    """The hook for ``participants.tsv``: the project's participants table is another command's
    (``bl project participants import``); until it is here, say what to run."""
    message = (
        f"{path} was not imported: run 'bl project participants import -p {project} {path}' "
        "where available."
    )
    if as_json:
        _output.json_line({"event": "participants", "path": str(path), "imported": False})
    else:
        _output.err(message)


@bids.command("upload")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("-d", "--directory", "dir_option", type=click.Path(file_okay=False))
@click.option("-p", "--project", required=True, help="Project id or name.")
@click.option("-t", "--tag", multiple=True, help="Tag every object (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the plan, upload nothing.")
@click.option("-J", "--jobs", type=click.IntRange(1, 32), default=4, show_default=True)
@click.option("-j", "--json", "as_json", is_flag=True, help="JSON events, one per line.")
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
        import_participants(bulk.project, participants, dry_run=dry_run, as_json=as_json)
    report_bulk(client, bulk, dry_run=dry_run, jobs=jobs, as_json=as_json)
