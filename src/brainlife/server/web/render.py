"""HTML rendering: Jinja2 templates (autoescaped) and Markdown without raw HTML."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from brainlife.server.archive import Archive
from brainlife.server.web import session as web_session
from brainlife.server.web.filters import tag_link

TEMPLATES = Path(__file__).parent / "templates"


@functools.cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    # html=False: raw HTML in a readme is shown as text; markdown-it refuses javascript:,
    # vbscript:, file: and data: (other than images) links itself
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown(text: str | None) -> Markup:
    return Markup(_markdown().render(text or ""))


def human_size(n: int | None) -> str:
    if n is None:
        return "–"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else ""


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def matrix_rows(
    project_id: str, matrix: Mapping[str, Mapping[str, int]], datatypes: Sequence[Any]
) -> Markup:
    """The rows of a project page's subjects × datatypes table (`project.html`), each cell a
    link to the filtered object list. Built here rather than by the template: a page holds up to
    50 subjects × every datatype (1,000 cells for the benchmark's largest project), and Jinja's
    per-cell filter calls, escapes and tests were a third of the page's time (bench/RESULTS.md,
    "Web pages"). The markup is the template's was, byte for byte: each subject and datatype is
    URL-quoted (`urlencode`) and HTML-escaped once, not once per cell."""
    quote = environment().filters["urlencode"]

    def text(value: str) -> str:  # escaped once, then joined as plain text
        return str(escape(value))

    base = f"/project/{text(project_id)}/data?subject="
    columns = [(dt.id, text(quote(dt.name)), text(dt.name)) for dt in datatypes]
    rows = []
    for subject, counts in matrix.items():
        # "" is the objects without a subject: `subject=` (empty) would not filter at all
        link = (
            base + text(quote(subject))
            if subject
            else f"/project/{text(project_id)}/data?no_subject=1"
        )
        label = text(subject or "(none)")
        cells = []
        for datatype_id, quoted, name in columns:
            n = counts.get(datatype_id, 0)
            if n:
                cells.append(
                    f'<td class="num"><a href="{link}&amp;datatype={quoted}" aria-label="{n} '
                    f'{name} of subject {label}">{n}</a></td>'
                )
            else:
                cells.append('<td class="num"></td>')
        rows.append(
            f'      <tr><th scope="row"><a href="{link}">{label}</a></th>\n'
            f"{''.join(cells)}      </tr>"
        )
    return Markup("\n".join(rows))


@functools.cache
def environment() -> Environment:
    # auto_reload off: the templates ship with the package, so a page need not stat them (and
    # the templates they extend and import) on every render
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(markdown=markdown, size=human_size, day=day, json=pretty_json)
    env.globals.update(matrix_rows=matrix_rows, tag_link=tag_link)
    return env


def page(
    request: Request,
    archive: Archive,
    visitor: web_session.Visitor,
    template: str,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page: the template with the visitor, its CSRF token and the current path."""
    html = (
        environment()
        .get_template(template)
        .render(
            visitor=visitor,
            csrf=web_session.csrf_token(archive, visitor),
            path=here(request),
            **context,
        )
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    web_session.remember(request, response, visitor)
    return response


#: the longest address "Sign in" brings the visitor back to (`pages._next` keeps as much)
MAX_HERE = 1000


def here(request: Request) -> str:
    """This page's address on this site (path and query: a filtered list comes back filtered
    after signing in), or its path alone when that is longer than `MAX_HERE`."""
    path, query = request.url.path, request.url.query
    full = f"{path}?{query}" if query else path
    return full if len(full) <= MAX_HERE else path


#: the pages load nothing from elsewhere and run only our own script
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
