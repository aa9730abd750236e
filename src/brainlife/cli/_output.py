"""Everything `bl` prints: the official plain-text blocks, JSON, and the download progress bar
(rich, imported only when a bar is actually drawn on a terminal)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.progress import Progress

Doc = dict[str, Any]
Block = list[tuple[str, str]]


#: C0 controls but tab and newline, DEL and C1 controls: what a terminal obeys rather than shows
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with the terminal controls it may carry from a server (an escape sequence in a
    project name that retitles or clears the terminal, a carriage return that overwrites the
    line) shown as escapes (``\\x1b``) instead of obeyed; newlines (``\\r\\n`` too) and tabs
    stay."""
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("\r\n", "\n"))


def out(text: str = "") -> None:
    click.echo(printable(text))


def err(text: str) -> None:
    click.echo(printable(text), err=True)


def print_json(value: Any) -> None:
    """One line, like the official ``JSON.stringify``; jq reads it."""
    click.echo(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def render_block(block: Block) -> str:
    return "\n".join(f"{key}: {value}" for key, value in block)


def print_blocks(blocks: Sequence[Block], footer: str | None = None) -> None:
    """Blocks joined by a blank line, then a blank line and the footer."""
    text = "\n\n".join(render_block(b) for b in blocks)
    if text:
        out(text)
    if footer is not None:
        out("")
        out(footer)


def returned(n: int) -> str:
    return f"(Returned {plural(n, 'result')})"


# -- dates --------------------------------------------------------------------------------------
def _parse(value: Any) -> datetime | None:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def locale_string(when: datetime) -> str:
    """JavaScript's ``toLocaleString()`` in en-US, local time: ``10/3/2018, 9:47:38 PM``."""
    local = when.astimezone()
    hour = local.hour % 12 or 12
    ampm = "AM" if local.hour < 12 else "PM"
    return (
        f"{local.month}/{local.day}/{local.year}, "
        f"{hour}:{local.minute:02d}:{local.second:02d} {ampm}"
    )


def time_ago(when: datetime, now: datetime | None = None) -> str:
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in (
        (365.25 * 86400, "year"),
        (30.44 * 86400, "month"),
        (7 * 86400, "week"),
        (86400, "day"),
        (3600, "hour"),
        (60, "minute"),
        (1, "second"),
    ):
        if seconds >= size:
            text = plural(int(seconds // size), unit)
            return f"in {text}" if future else f"{text} ago"
    return "just now"


def create_date(value: Any) -> str:
    when = _parse(value)
    if when is None:
        return str(value or "")
    return f"{locale_string(when)} ({time_ago(when)})"


def duration(seconds: float) -> str:
    """``6 days, 23 hours, 59 minutes, 59 seconds`` (zero units and milliseconds left out)."""
    total = int(max(seconds, 0))
    parts = []
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        count, total = divmod(total, size)
        if count:
            parts.append(plural(count, unit))
    return ", ".join(parts) or "0 seconds"


# -- blocks -------------------------------------------------------------------------------------
def usernames(
    subs: Sequence[Any] | None, profiles: Mapping[str, Doc], unknown: str | None = None
) -> str:
    names = []
    for sub in subs or []:
        profile = profiles.get(str(sub))
        names.append(str(profile.get("username")) if profile else (unknown or str(sub)))
    return ", ".join(names)


def project_subs(projects: Iterable[Doc]) -> list[Any]:
    """The users that project blocks name: the admins, members and guests of each project."""
    return [
        s for p in projects for key in ("admins", "members", "guests") for s in p.get(key) or []
    ]


def project_block(project: Doc, profiles: Mapping[str, Doc]) -> Block:
    access = f"Access: {project.get('access')}"
    if project.get("listed"):
        access += " (but listed for all users)"
    return [
        ("Id", str(project.get("_id", ""))),
        ("Name", str(project.get("name", ""))),
        ("Admins", usernames(project.get("admins"), profiles)),
        ("Members", usernames(project.get("members"), profiles)),
        ("Guests", usernames(project.get("guests"), profiles)),
        ("Access", access),
        ("Description", str(project.get("desc") or "")),
    ]


def dataset_block(
    ds: Doc, project: Doc | None, datatype: Doc | None, profiles: Mapping[str, Doc]
) -> Block:
    meta = ds.get("meta") or {}
    tags = ds.get("datatype_tags") or []
    dt_name = str(datatype.get("name")) if datatype else str(ds.get("datatype") or "unknown")
    if tags:
        dt_name += "<" + ", ".join(map(str, tags)) + ">"
    project = project or {}
    return [
        ("Id", str(ds.get("_id", ""))),
        ("Project", str(project.get("name") or "Unknown")),
        ("Admins", usernames(project.get("admins"), profiles)),
        ("Members", usernames(project.get("members"), profiles)),
        ("Guests", usernames(project.get("guests"), profiles)),
        ("Subject", str(meta.get("subject") or "N/A")),
        ("Session", str(meta.get("session") or "")),
        ("Datatype", dt_name),
        ("Description", str(ds.get("desc") or "")),
        ("Create Date", create_date(ds.get("create_date"))),
        ("Storage", str(ds.get("storage") or "N/A")),
        ("Status", str(ds.get("status") or "unknown")),
        ("Tags", ", ".join(map(str, ds.get("tags") or []))),
    ]


def dataset_footer(n: int, count: int | None, skip: int, limit: int, command: str) -> str:
    """The official footer, in the document's words ("data objects", ``bl data query``), with the
    user's own filters kept in the hint."""
    if not count:
        return f"Returned {n} result{'' if n == 1 else 's'}"
    if skip == 0 and n == count:
        return f"Showing all {n} of {count} data objects"
    if skip + n >= count:
        return f"Showing last {n} of {count} data objects"
    if skip == 0:
        following = min(limit or n, count - n)
        return (
            f"{count} total data objects, showing first {n}. To view the next {following}, "
            f"run '{command} --skip {n}'"
        )
    return f"Showing data objects {skip} - {skip + n} of {count}"


def pub_block(pub: Doc, profiles: Mapping[str, Doc]) -> Block:
    releases = [r for r in pub.get("releases") or [] if not r.get("removed")]
    return [
        ("Id", str(pub.get("_id", ""))),
        ("Name", str(pub.get("name", ""))),
        ("DOI", str(pub.get("doi") or "")),
        ("Description", str(pub.get("desc") or "")),
        ("Authors", usernames(pub.get("authors"), profiles, unknown="unknown")),
        ("Release IDs", ", ".join(f"{r.get('name')} ({r.get('_id')})" for r in releases)),
    ]


def release_lines(doc: Doc) -> list[str]:
    """What `bl pub release` says: the totals, one line per set and datatype, what next."""
    release = doc.get("release") or {}
    totals = (
        f"{plural(int(doc.get('count') or 0), 'data object')} ({human(doc.get('size'))}, "
        f"{plural(int(doc.get('subjects') or 0), 'subject')}, "
        f"{plural(int(doc.get('sessions') or 0), 'session')})"
    )
    name = release.get("name")
    if doc.get("dry_run"):
        lines = [f"Would release {totals} as release '{name}' of publication {doc.get('pub')}:"]
    else:
        lines = [
            f"Released {totals} as release '{name}' ({release.get('_id')}) of publication "
            f"{doc.get('pub')}:"
        ]
    for s in release.get("sets") or []:
        datatype = (s.get("datatype") or {}).get("name", "?")
        lines.append(
            f"  {datatype}: {plural(int(s.get('count') or 0), 'data object')} "
            f"({human(s.get('size'))})"
        )
    if doc.get("dry_run"):
        lines.append("Nothing was changed; run the same command without --dry-run to release.")
    else:
        rid = release.get("_id")
        lines.append(
            "The release is frozen: its objects can no longer change. Download it with "
            f"'bl pub download {rid}' (or list it: 'bl data query --pub {rid}')."
        )
    return lines


def datatype_block(datatype: Doc) -> Block:
    files = []
    for f in datatype.get("files") or []:
        req = "(required) " if f.get("required") else ""
        files.append(f"[{req}{f.get('id')}: {f.get('filename') or f.get('dirname') or ''}]")
    return [
        ("Id", str(datatype.get("_id", ""))),
        ("Name", str(datatype.get("name", ""))),
        ("Description", str(datatype.get("desc") or "")),
        ("Files", "  ".join(files)),
    ]


def profile_block(profile: Doc) -> Block:
    active = profile.get("active")
    return [
        ("sub", str(profile.get("sub", ""))),
        ("Username", str(profile.get("username") or "")),
        ("Full Name", str(profile.get("fullname") or "")),
        ("Email", str(profile.get("email") or "")),
        ("Active", "true" if active else "false" if active is not None else ""),
    ]


def _task_subject(task: Doc) -> str | None:
    from brainlife.client import task_subject

    return task_subject(task)


def task_block(task: Doc) -> Block:
    service = str(task.get("service") or "")
    if task.get("service_branch"):
        service += f"@{task['service_branch']}"
    return [
        ("Id", str(task.get("_id", ""))),
        ("Name", str(task.get("name") or "")),
        ("Service", service),
        ("Status", str(task.get("status") or "unknown")),
        ("Subject", _task_subject(task) or "N/A"),
        ("Create Date", create_date(task.get("create_date"))),
    ]


# -- progress -----------------------------------------------------------------------------------
def _rich_bar() -> Progress:
    """A transient rich progress bar on stderr: description, bar, bytes, rate, ETA."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


class _BarDisplay:
    """The one place that shows a download's progress on a terminal: one transient rich bar,
    fed either by a progress callback ``(done, total)`` (one object, one task path: the client's
    ``Meter`` calls it) or by the bulk engine's events (``progress``, ``waiting``,
    ``waiting-over``, ``object-failed``), so every download path looks the same."""

    def __init__(self, label: str) -> None:
        self.bar = _rich_bar()
        self.label = label
        self.task = self.bar.add_task(label, total=None)

    def bytes(self, done: int, total: int | None) -> None:
        self.bar.update(self.task, completed=done, total=total)

    def event(self, event: Any) -> None:
        d = event.data
        if event.kind == "progress":
            failed = f", {d['objects_failed']} failed" if d["objects_failed"] else ""
            self.label = f"objects {d['objects_done']}/{d['objects']}{failed}"
            self.bytes(d["bytes_done"], d["bytes_total"] or None)
            self.bar.update(self.task, description=self.label)
        elif event.kind == "waiting":
            self.bar.update(self.task, description=f"{self.label}: {d['message']}")
        elif event.kind == "waiting-over":
            self.bar.update(self.task, description=self.label)
        elif event.kind == "object-failed":
            self.bar.console.print(f"failed: {d['id']} ({d['folder']}): {d['error']}")


def _json_event(event: Any) -> None:
    """``--json``: each event as one JSON line on stdout."""
    json_line(event.to_json())


def _on_terminal(enabled: bool | None) -> bool:
    """Whether a display draws on stderr (``enabled``; by default when stderr is a terminal)."""
    return sys.stderr.isatty() if enabled is None else enabled


@contextmanager
def progress_bar(
    label: str, enabled: bool | None = None
) -> Iterator[Callable[[int, int | None], None]]:
    """A progress callback: the download bar (bytes, rate, ETA) on stderr when it is a
    terminal, else nothing at all."""
    if not _on_terminal(enabled):
        yield lambda done, total: None
        return
    display = _BarDisplay(label)
    with display.bar:
        yield display.bytes


# -- bulk downloads -----------------------------------------------------------------------------
def human(n: float | None) -> str:
    """Bytes for people (``1.5 MB``), in the client's words (its plans and errors use them too)."""
    from brainlife.client import human_size

    return human_size(n)


def json_line(doc: Any) -> None:
    """One JSON event per line, flushed (pipelines read them as they come)."""
    print_json(doc)
    sys.stdout.flush()


def summary_lines(s: Mapping[str, Any]) -> list[str]:
    rate = human(s.get("rate")) + "/s"
    lines = [
        f"{s['downloaded']} downloaded, {s['present']} already present, "
        f"{len(s['failed'])} failed of {s['objects']} data objects; "
        f"{human(s['bytes_transferred'])} transferred in {s['seconds']:.1f} s ({rate})"
        + (f", {human(s['bytes_resumed'])} resumed" if s.get("bytes_resumed") else "")
        + (f", {s['files_linked']} identical files linked" if s.get("files_linked") else "")
    ]
    if s.get("lockfile"):
        lines.append(f"Lockfile: {s['lockfile']}")
    return lines


@contextmanager
def planning_display(as_json: bool, enabled: bool | None = None) -> Iterator[Callable[[Any], None]]:
    """An event handler for planning: JSON lines with ``--json``; on a terminal one status line
    on stderr (``Planning: 1200/2708 data objects…``), rewritten in place and erased when the
    block ends (the plan summary takes its place); else nothing."""
    if as_json:
        yield _json_event
        return
    if not _on_terminal(enabled):
        yield lambda event: None
        return
    stream = sys.stderr

    def show(text: str) -> None:
        stream.write("\r\x1b[2K" + text)
        stream.flush()

    def handle(event: Any) -> None:
        d = event.data
        if event.kind == "planning":
            show(f"Planning: {d['done']}/{d['total']} data objects…")

    show("Planning…")
    try:
        yield handle
    finally:
        show("")


class WaitingLines:
    """Retries that wait, told on stderr: one line when waiting starts (or its reason changes),
    then at most one every ``every`` seconds, and one when the server answers again. Quick
    retries (under a second into a failure, a sub-second pause) stay quiet: a dropped idle
    connection is not news."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._shown: tuple[str, float] | None = None  # (reason, when shown)

    def __call__(self, waiting: Any) -> None:
        """The client's liveness listener: a ``Waiting``, or None when the server answers."""
        import time

        if waiting is None:
            self.over()
        else:
            waited = time.time() - waiting.since
            self.show(waiting.reason, waiting.retry_in, waited, waiting.message())

    def over(self) -> None:
        if self._shown is not None:
            err("The server answers again; continuing.")
        self._shown = None

    def show(self, reason: str, retry_in: float, waited: float, message: str) -> None:
        import time

        now = time.monotonic()
        if retry_in < 1 and waited < 1:
            return
        shown = self._shown
        if shown is not None and shown[0] == reason and now - shown[1] < self.every:
            return
        self._shown = (reason, now)
        err(f"Waiting: {message}.")


def waiting_lines() -> Callable[[Any], None]:
    """The client's liveness listener for `bl` (see :class:`WaitingLines`)."""
    return WaitingLines()


@contextmanager
def bulk_display(as_json: bool, enabled: bool | None = None) -> Iterator[Callable[[Any], None]]:
    """An event handler for the download engine: JSON lines with ``--json``; on a terminal one
    calm progress line (bytes, rate, ETA, objects done and failed) on stderr, saying so while
    retries wait for the server; else only the waiting lines on stderr (the command prints the
    summary)."""
    if as_json:
        yield _json_event
        return
    if not _on_terminal(enabled):
        lines = WaitingLines()

        def quiet(event: Any) -> None:
            d = event.data
            if event.kind == "waiting":
                lines.show(d["reason"], d["retry_in"], d["waited"], d["message"])
            elif event.kind == "waiting-over":
                lines.over()

        yield quiet
        return
    display = _BarDisplay("objects 0/?")
    with display.bar:
        yield display.event


# -- apps and resources ---------------------------------------------------------------------------
def js_text(value: Any) -> str:
    """A value as JavaScript's string concatenation writes it (`"" + value`), which is what the
    official CLI's plain output shows."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join("" if v is None else js_text(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def _js_truthy(value: Any) -> bool:
    return value not in (None, False, 0, "") and not (isinstance(value, float) and value != value)


def _ports(ports: Any, names: Mapping[str, str]) -> str:
    parts = []
    for port in ports or []:
        dtype = names.get(str(port.get("datatype")), str(port.get("datatype")))
        tags = port.get("datatype_tags") or []
        text = f"{port.get('id')}: {dtype}" + (f"<{','.join(tags)}>" if tags else "")
        if port.get("multi"):
            text += "[]"
        if port.get("optional"):
            text += "?"
        parts.append(text)
    return ", ".join(parts)


def app_text(app: Doc, datatype_names: Mapping[str, str]) -> str:
    """One app as the official `bl app query` prints it (Id … Config: and one line per
    non-input config key; a default shows when JavaScript finds it true, as there)."""
    config = app.get("config") or {}
    lines = []
    for key, entry in config.items():
        entry = entry if isinstance(entry, dict) else {}
        if entry.get("type") == "input":
            continue
        line = f"    {key}:"
        if _js_truthy(entry.get("type")):
            line += f" (type: {js_text(entry['type'])})"
        if _js_truthy(entry.get("default")):
            line += f" (default: {js_text(entry['default'])})"
        lines.append(line)
    inputs = _ports(app.get("inputs"), datatype_names)
    outputs = _ports(app.get("outputs"), datatype_names)
    return "\n".join(
        [
            f"Id: {app.get('_id')}",
            f"DOI: {app.get('doi') or ''}",
            f"Name: {js_text(app.get('name'))}",
            f"Service: {js_text(app.get('github'))}",
            f"Type: ({inputs}) -> ({outputs})",
            f"Description: {js_text(app.get('desc'))}",
            "Config:\n" + "\n".join(lines),
        ]
    )


def print_apps(apps: Sequence[Doc], datatype_names: Mapping[str, str]) -> None:
    texts = [app_text(a, datatype_names) for a in apps]
    out("\n\n".join([*texts, returned(len(apps))]))


def print_resources(resources: Sequence[Doc]) -> None:
    """As the official `bl resource query`: four lines and a blank one per resource."""
    for res in resources:
        out(f"Id: {res.get('_id')}")
        out(f"Name: {js_text(res.get('name'))}")
        kind = js_text(res.get("type"))
        out(f"Type: {kind}")
        config = res.get("config")
        if config:
            host = config.get("hostname") or f"[{js_text(res.get('resource_id'))}]"
            out(f"{kind}: {js_text(config.get('username'))}@{host}")
        out("")
