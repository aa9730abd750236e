"""The web pages' routes: thin, like the API's (parse, call a service, render a template).

Every page is server-rendered and works without JavaScript; the visitor is the session cookie's
(`web.session`), and every service call enforces the API's access rules in SQL. Downloads stream
through the same services and `ranges` as the API's download routes (Range, ETag, resume).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from brainlife.server import ranges
from brainlife.server.deps import ArchiveDep, SessionDep, ShortSession
from brainlife.server.errors import ApiError, BadRequest, NotFound
from brainlife.server.query import ListParams
from brainlife.server.services import (
    auth,
    browse,
    datasets,
    downloads,
    projects,
    pubs,
    selection,
    taskfiles,
)
from brainlife.server.web import render
from brainlife.server.web import session as web_session
from brainlife.server.web.filters import Filters, after_id, page_number, page_param, text_search
from brainlife.server.web.session import Visitor, VisitorDep

router = APIRouter(include_in_schema=False)

#: rows of a data-object list page
PAGE_SIZE = 50
#: projects and publications a home page lists
HOME_LIMIT = 100
#: publications a page of /pubs lists
PUBS_PAGE = 100
#: longest form body a page takes (a sign-in)
MAX_FORM = 8 * 1024


@dataclass(frozen=True)
class View:
    """What a page's handler works with: the request, a database session, the archive and its
    visitor; `render` answers with a template."""

    request: Request
    session: SessionDep
    archive: ArchiveDep
    visitor: Visitor

    def render(self, template: str, **context: Any) -> Response:
        return render.page(self.request, self.archive, self.visitor, template, **context)


def _view(request: Request, session: SessionDep, archive: ArchiveDep, visitor: VisitorDep) -> View:
    return View(request, session, archive, visitor)


def _short_view(
    request: Request, session: ShortSession, archive: ArchiveDep, visitor: VisitorDep
) -> View:
    return View(request, session, archive, visitor)


ViewDep = Annotated[View, Depends(_view)]
#: a download's: its session closes before the response starts (`deps.ShortSession`)
ShortViewDep = Annotated[View, Depends(_short_view)]


@router.get("/")
def home(view: ViewDep) -> Response:
    """Search projects and publications by name or description."""
    q = (view.request.query_params.get("q") or "").strip()[:200]
    find: dict[str, Any] = {"removed": False}
    if q:
        find = {"$and": [find, text_search(q)]}
    found = projects.list_projects(
        session=view.session,
        principal=view.visitor.principal,
        params=ListParams(find=find, sort=(("name", 1),), limit=HOME_LIMIT),
    )
    found_pubs = pubs.list_pubs(
        session=view.session, params=ListParams(find=find, sort=(("name", 1),), limit=HOME_LIMIT)
    )
    return view.render(
        "home.html",
        q=q,
        projects=found.rows,
        project_count=found.count,
        pubs=found_pubs.rows,
        pub_count=found_pubs.count,
        summary=browse.summary,
    )


@router.get("/project/{project_id}")
def project_page(project_id: str, view: ViewDep) -> Response:
    """A project: readme, people, counts and the subjects × datatypes matrix (a page of
    subjects at a time: `?subjects_after=` the last one shown)."""
    after = (view.request.query_params.get("subjects_after") or "")[:256] or None
    info = browse.get_project(
        session=view.session,
        principal=view.visitor.principal,
        project_id=project_id,
        matrix_after=after,
    )
    project_pubs = pubs.list_pubs(
        session=view.session,
        params=ListParams(find={"project": info.project.id, "removed": False}, limit=HOME_LIMIT),
    )
    readme = (info.project.extra or {}).get("readme") or info.project.desc
    return view.render(
        "project.html",
        info=info,
        p=info.project,
        readme=readme if isinstance(readme, str) else "",
        pubs=project_pubs.rows,
        command=Filters().command(project_id=info.project.id),
        filters=Filters(),
        subjects_after=after,
        upload_types=browse.upload_datatypes(view.session) if info.writable else [],
    )


@router.get("/project/{project_id}/data")
def project_data(project_id: str, view: ViewDep) -> Response:
    """A project's data objects with `bl data query`'s filters, `PAGE_SIZE` a page (keyset
    paging on the id: `?after=` the last id of the previous page)."""
    info = browse.get_project(
        session=view.session, principal=view.visitor.principal, project_id=project_id, matrix=False
    )
    filters = Filters.parse(view.request.query_params)
    after = after_id(view.request.query_params)
    number = page_number(view.request.query_params, after)
    datatype_id = None
    problem = ""
    if filters.datatype:
        dt = browse.datatype_by_name(view.session, filters.datatype)
        if dt is None:
            problem = f"There is no datatype named {filters.datatype!r}."
        else:
            datatype_id = dt.id
    rows: list[Any] = []
    count: int | None = 0
    if not problem:
        find = filters.find(project_id=info.project.id, datatype_id=datatype_id)
        if after is not None:
            find = {"$and": [find, {"_id": {"$gt": after}}]}
        page = datasets.list_datasets(
            session=view.session,
            principal=view.visitor.principal,
            params=ListParams(find=find, limit=PAGE_SIZE + 1),  # one more: is there a next page?
            count=after is None,  # a later page shows no totals (its count is None)
        )
        rows, count = page.rows, page.count
    table, next_after = _object_table(view.session, rows)
    return view.render(
        "data.html",
        info=info,
        p=info.project,
        **table,
        datatypes=info.datatypes,
        filters=filters,
        problem=problem,
        count=count,
        after=after,
        number=number,
        next_query=filters.query(after=next_after, page=_next_number(number))
        if next_after
        else None,
        first_query=filters.query(),
        tar_query=filters.query(project=info.project.id),
        command=filters.command(project_id=info.project.id),
    )


def _next_number(number: int | None) -> str:
    """The `page` the "Next page" link carries ("" when this page's number is unknown)."""
    return str(number + 1) if number else ""


def _object_table(session: SessionDep, rows: list[Any]) -> tuple[dict[str, Any], str | None]:
    """What a page of data objects shows (`macros.selection`: the rows with their documents,
    datatype names, the tar limit), and the id the next page starts after (None on the last
    page). `rows` is up to `PAGE_SIZE + 1` rows: the one past the page only tells that a next
    page exists (so a list of exactly 50 has no link to an empty page)."""
    following = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
    rows = rows[:PAGE_SIZE]
    table = {
        "rows": list(zip(rows, datasets.dataset_documents(session, rows), strict=True)),
        "names": browse.datatype_names(session, {r.datatype_id for r in rows}),
        "max_tar": selection.DATASET_TAR_MAX_OBJECTS,
        "page_size": PAGE_SIZE,
    }
    return table, following


@router.get("/object/{dataset_id}")
def object_page(dataset_id: str, view: ViewDep) -> Response:
    """A data object: metadata, tags, provenance, files (size, sha256) and releases."""
    info = browse.get_dataset(
        session=view.session, principal=view.visitor.principal, dataset_id=dataset_id
    )
    doc = datasets.dataset_documents(view.session, [info.dataset])[0]
    prov = info.dataset.prov or {}
    task_id = prov.get("task_id") if isinstance(prov, dict) else None
    return view.render(
        "object.html",
        info=info,
        d=info.dataset,
        doc=doc,
        task_id=task_id if isinstance(task_id, str) else None,
        command=f"bl data download {info.dataset.id}",
        refusal=downloads.download_refusal(info.dataset),
    )


@router.get("/pubs")
def pubs_page(view: ViewDep) -> Response:
    """Every publication with its releases, newest first, `PUBS_PAGE` a page (`?page=`)."""
    number = page_param(view.request.query_params)
    found = pubs.list_pubs(
        session=view.session,
        params=ListParams(
            find={"removed": False},
            sort=(("create_date", -1), ("_id", -1)),
            skip=(number - 1) * PUBS_PAGE,
            limit=PUBS_PAGE,
        ),
    )
    return view.render(
        "pubs.html",
        pubs=found.rows,
        count=found.count,
        number=number,
        first=(number - 1) * PUBS_PAGE + 1,
        more=number * PUBS_PAGE < (found.count or 0),
    )


@router.get("/pub/{pub_id}")
def pub_page(pub_id: str, view: ViewDep) -> Response:
    pub = browse.get_pub(session=view.session, pub_id=pub_id)
    readme = (pub.extra or {}).get("readme") or pub.desc
    names = browse.project_names(view.session, view.visitor.principal, [pub.project_id])
    return view.render(
        "pub.html",
        pub=pub,
        readme=readme if isinstance(readme, str) else "",
        project_name=names.get(pub.project_id),
    )


@router.get("/release/{release_id}")
def release_page(release_id: str, view: ViewDep) -> Response:
    """A release's data objects (public, as on brainlife.io), `PAGE_SIZE` a page."""
    pub, release = browse.get_release(session=view.session, release_id=release_id)
    after = after_id(view.request.query_params)
    number = page_number(view.request.query_params, after)
    find: dict[str, Any] = {"_id": {"$gt": after}} if after else {}
    page = pubs.list_release_datasets(
        session=view.session,
        release_id=release.id,
        params=ListParams(find=find, sort=(("_id", 1),), limit=PAGE_SIZE + 1),
    )
    rows = page.rows
    table, next_after = _object_table(view.session, rows)
    return view.render(
        "release.html",
        pub=pub,
        release=release,
        **table,
        count=page.count if not after else None,
        after=after,
        number=number,
        next_query=Filters().query(after=next_after, page=_next_number(number))
        if next_after
        else None,
        command=Filters().command(pub=release.id),
    )


def _task_target(
    session: SessionDep, archive: ArchiveDep, visitor: Visitor, task_id: str, path: str
) -> taskfiles.TaskTarget:
    """A task's path, for the members of its group: a visitor who is not signed in is told the
    task is not found, as one outside the group is."""
    if visitor.principal is None:
        raise NotFound(f"couldn't find the task specified: {task_id}")
    return taskfiles.open_task_path(
        session=session, archive=archive, principal=visitor.principal, task_id=task_id, path=path
    )


@router.get("/task/{task_id}")
def task_page(task_id: str, view: ViewDep) -> Response:
    """A task's output files, for the members of its group (its owner, amaretti admins)."""
    target = _task_target(view.session, view.archive, view.visitor, task_id, "")
    files, count = taskfiles.task_page_files(archive=view.archive, target=target)
    return view.render("task.html", task_id=target.task_id, files=files, file_count=count)


# --- sign-in ------------------------------------------------------------------------------------


def _next(value: str | None) -> str:
    """Where to go after signing in: a path of this site only (no `//host`, no scheme)."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value[: render.MAX_HERE]
    return "/"


async def _form(request: Request) -> dict[str, str]:
    raw = await request.body()
    if not raw:
        return {}  # refused by the CSRF check
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        raise BadRequest("Send the form (application/x-www-form-urlencoded).")
    if len(raw) > MAX_FORM:
        raise BadRequest("The form is too large.")
    return {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}


@router.get("/signin")
def signin_form(request: Request, archive: ArchiveDep, visitor: VisitorDep) -> Response:
    return render.page(
        request,
        archive,
        visitor,
        "signin.html",
        next=_next(request.query_params.get("next")),
        error="",
        username="",
    )


@router.post("/signin")
async def signin(request: Request, archive: ArchiveDep, visitor: VisitorDep) -> Response:
    """Sign in with the API's login (same accounts, lockout and delays)."""
    form = await _form(request)
    web_session.check_csrf(archive, visitor, form)
    username, password = form.get("username", "")[:256], form.get("password", "")[:1024]
    nxt = _next(form.get("next"))
    try:
        if not username or not password:
            raise BadRequest("Enter your username (or e-mail) and password.")
        client = request.client.host if request.client else ""
        result = await auth.login(
            archive=archive,
            username=username,
            password=password,
            ttl_ms=web_session.SESSION_TTL_MS,
            client=client,
        )
    except ApiError as exc:
        return render.page(
            request,
            archive,
            visitor,
            "signin.html",
            status=exc.status_code,
            next=nxt,
            error=exc.message,
            username=username,
        )
    response = RedirectResponse(nxt, status_code=303)
    web_session.sign_in(request, response, result.jwt)
    return response


@router.post("/signout")
async def signout(request: Request, archive: ArchiveDep, visitor: VisitorDep) -> Response:
    form = await _form(request)
    response = RedirectResponse("/", status_code=303)
    if visitor.drop_session:  # the session already ended (revoked, expired): nothing to protect
        web_session.remember(request, response, visitor)
        return response
    web_session.check_csrf(archive, visitor, form)
    web_session.sign_out(archive, visitor, response)
    return response


@router.post("/upload-token")
async def upload_token(request: Request, archive: ArchiveDep, visitor: VisitorDep) -> Response:
    """A short-lived bearer token for the project page's upload script (`web.session`)."""
    form = await _form(request)
    web_session.check_csrf(archive, visitor, form)
    token = web_session.upload_token(archive, visitor)
    return JSONResponse(
        {"token": token},
        headers={"Cache-Control": "no-store"},
    )


# --- downloads ----------------------------------------------------------------------------------


@router.get("/download/object/{dataset_id}")
@router.head("/download/object/{dataset_id}")
def download_object(dataset_id: str, view: ShortViewDep) -> Response:
    """A data object as a tar (as `GET /api/warehouse/dataset/download/:id`)."""
    dl = downloads.open_dataset_download(
        session=view.session, principal=view.visitor.principal, dataset_id=dataset_id
    )
    return ranges.ranged_response(
        view.request,
        dl,
        dl.body(view.archive.store, view.archive.settings.chunk_size),
        on_last_byte=lambda: downloads.count_download(view.archive, dl.dataset_id),
    )


@router.get("/download/file/{dataset_id}/{path:path}")
@router.head("/download/file/{dataset_id}/{path:path}")
def download_file(dataset_id: str, path: str, view: ShortViewDep) -> Response:
    """One file of a data object (as `GET /api/warehouse/dataset/file/:id/<path>`)."""
    f = downloads.open_dataset_file(
        session=view.session, principal=view.visitor.principal, dataset_id=dataset_id, path=path
    )
    chunk = view.archive.settings.chunk_size
    return ranges.ranged_response(
        view.request,
        f,
        lambda start, end, nb: downloads.stream_blob(
            view.archive.store, f.sha256, start, end, chunk_size=chunk, nonblocking=nb
        ),
        presign=lambda: downloads.presign_file(view.archive, f),
    )


@router.get("/download/tar")
@router.head("/download/tar")
def download_tar(view: ShortViewDep) -> Response:
    """Selected objects (`?ids=`), a project's filtered list (`?project=` and the list page's
    filters) or a release (`?pub=`) as one tar (as `GET /api/warehouse/dataset/tar`)."""
    q = view.request.query_params
    principal = view.visitor.principal
    name = "selection"
    if q.getlist("ids"):
        ids = selection.parse_ids(q.getlist("ids"))
    elif q.get("pub"):
        _pub, release = browse.get_release(session=view.session, release_id=q.get("pub", ""))
        name = release.id
        ids = selection.ids_of_find(
            session=view.session, principal=principal, find={"publications": release.id}
        )
    elif q.get("project"):
        info = browse.get_project(
            session=view.session, principal=principal, project_id=q["project"], matrix=False
        )
        filters = Filters.parse(q)
        datatype_id = None
        if filters.datatype:
            dt = browse.datatype_by_name(view.session, filters.datatype)
            if dt is None:
                raise BadRequest(f"There is no datatype named {filters.datatype!r}.")
            datatype_id = dt.id
        name = info.project.id
        find = filters.find(project_id=info.project.id, datatype_id=datatype_id)
        ids = selection.ids_of_find(session=view.session, principal=principal, find=find)
    else:
        raise BadRequest(
            "No data objects were selected: tick the ones to download in the list, then press "
            "“Download selected as one tar” (or use “Download all”)."
        )
    tar = selection.open_selection(session=view.session, principal=principal, ids=ids, name=name)
    return ranges.ranged_response(
        view.request,
        tar,
        tar.body(view.archive.store, view.archive.settings.chunk_size),
    )


@router.get("/task/{task_id}/file/{path:path}")
def download_task_file(task_id: str, path: str, view: ShortViewDep) -> Response:
    """A file of a task's outputs (for the members of its group)."""
    target = _task_target(view.session, view.archive, view.visitor, task_id, path)
    if target.is_dir:
        raise BadRequest("This is a folder; download its files one by one.")
    archive = view.archive
    chunk = archive.settings.chunk_size
    return ranges.ranged_response(
        view.request,
        target,
        lambda start, end, nb: taskfiles.stream_file(
            archive=archive, target=target, start=start, end=end, chunk_size=chunk, nonblocking=nb
        ),
    )
