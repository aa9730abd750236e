"""The options and the run shared by the bulk downloads: `bl data download` with filters,
`bl pub download`, `bl data download --lock`."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

import click

from brainlife.cli import _output
from brainlife.cli._common import get_client, give_up_option, json_flag, option_set, packed
from brainlife.cli.main import exit_code_of

if TYPE_CHECKING:
    from brainlife.client import Plan

F = TypeVar("F", bound=Callable[..., Any])
_ID = re.compile(r"\b[0-9a-f]{24}\b")


@dataclass(frozen=True)
class Transfer:
    """How a bulk download runs: the options of :func:`transfer_options`."""

    layout: str | None = None
    jobs: int = 8
    existing: str = "skip"
    dry_run: bool = False
    ignore_expiry: bool = False
    as_json: bool = False


def transfer_options(f: F) -> F:
    """--layout, --jobs, --existing, --dry-run, --ignore-expiry, --json: given to the command as
    one ``transfer`` argument (a :class:`Transfer`); and --give-up-after (given to the client)."""
    names = [field.name for field in fields(Transfer)]
    return _TRANSFER_OPTIONS(packed("transfer", Transfer, *names)(f))


#: in the order --help lists them; the command gets them as one `Transfer`
_TRANSFER_OPTIONS = option_set(
    click.option(
        "--layout",
        metavar="PRESET|TEMPLATE",
        help="Folder of each object: id (default), seed ({subject}/{tags}), brainlife "
        "(brainlife's download-script layout; formerly 'bids') or a template of {id} {project} "
        "{project_name} {subject} {session} {run} {datatype} {datatype_id} {datatype_tags} "
        "{tags} {desc} {create_date}.",
    ),
    click.option(
        "-J",
        "--jobs",
        type=click.IntRange(1, 64),
        default=8,
        show_default=True,
        help="Files downloaded in parallel.",
    ),
    click.option(
        "--existing",
        type=click.Choice(["skip", "verify", "refresh", "overwrite"]),
        default="skip",
        show_default=True,
        help="Files already there: skip those that verify (lockfile size+mtime, else sha256); "
        "verify: re-hash every one; refresh: also re-read the server's manifests; "
        "overwrite: fetch everything again.",
    ),
    click.option(
        "--dry-run",
        is_flag=True,
        help="Print the plan (objects, files, bytes, bytes present, free space, first folders, "
        "problems) and stop.",
    ),
    click.option(
        "--ignore-expiry",
        is_flag=True,
        help="Start even if the token may expire before the download can finish.",
    ),
    json_flag("One JSON event per line (for pipelines)."),
    give_up_option,
)


def read_ids(source: str) -> list[str]:
    """Ids from a file or stdin ('-'): a JSON array (of ids, or of documents as printed by
    `bl data query --json`), or text with one or more ids per line."""
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as fh:
                text = fh.read()
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {source}: {exc.strerror}", param_hint="--ids-from"
        ) from None
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise click.BadParameter(
                f"{source} is not valid JSON ({exc})", param_hint="--ids-from"
            ) from None
        rows = doc if isinstance(doc, list) else doc.get("datasets", [doc])
        ids = [str(r.get("_id")) if isinstance(r, dict) else str(r) for r in rows]
    else:
        lines = [line.split("#", 1)[0] for line in text.splitlines()]
        ids = [m for line in lines for m in _ID.findall(line)]
    return list(dict.fromkeys(i for i in ids if i))


def run_bulk(plan_factory: Callable[[Callable[[Any], None]], Plan], transfer: Transfer) -> None:
    """Plan (``plan_factory(on_event)``, showing its ``planning`` events), print the plan (dry
    run) or run it with a progress display, then the summary; exit non-zero naming the failed
    objects."""
    from brainlife.client import describe_plan

    as_json, dry_run = transfer.as_json, transfer.dry_run
    client = get_client()
    with _output.planning_display(as_json) as on_event:
        plan = plan_factory(on_event)
    if as_json:
        _output.json_line(plan.to_json())
    elif dry_run:
        for line in describe_plan(plan):
            _output.out(line)
        if any(p.kind == "exists" for p in plan.problems):
            _output.out("  (--existing overwrite replaces files no download wrote)")
    elif sys.stderr.isatty():
        for line in describe_plan(plan)[:3]:
            _output.err(line)
    if dry_run:
        return
    ctx = click.get_current_context()
    try:
        with _output.bulk_display(as_json) as handler:
            result = client.download(
                plan, jobs=transfer.jobs, on_event=handler, ignore_expiry=transfer.ignore_expiry
            )
    except KeyboardInterrupt:
        _output.err("\nInterrupted: partial files are kept; run the same command again to resume.")
        ctx.exit(130)
    if not as_json:
        for line in _output.summary_lines(result.to_json()):
            _output.out(line)
    if result.failed:
        for oid, error in result.failed.items():
            _output.err(f"failed: {oid}: {error}")
        ids = " ".join(result.failed)
        _output.err(
            f"Error: {len(result.failed)} of {result.objects} data objects failed: {ids}. "
            "Run the same command again to fetch only what is missing."
        )
        ctx.exit(exit_code_of(set(result.failed_codes.values())))


def download_bulk(transfer: Transfer, *, directory: str | None, **query: Any) -> None:
    """:func:`run_bulk` of ``Client.plan_download`` into ``directory``; ``query`` is the rest of
    its arguments (filters, ids, lock, limit)."""
    from brainlife.client import LAYOUT_ALIASES

    if transfer.layout in LAYOUT_ALIASES:
        _output.err(
            f"Warning: --layout {transfer.layout} is now called "
            f"'{LAYOUT_ALIASES[transfer.layout]}' (brainlife's download-script folders, not a "
            "BIDS dataset; 'bl bids download' makes one)."
        )
    client = get_client()
    run_bulk(
        lambda on_event: client.plan_download(
            root=directory,
            layout=transfer.layout,
            existing=transfer.existing,
            jobs=transfer.jobs,
            on_event=on_event,
            **query,
        ),
        transfer,
    )
