"""Plans from what the user asked for: a query (filters of ``bl data query``), a list of ids, a
lockfile (``--lock``), or the same path of many tasks; and the run of a plan.

The data object documents of the query are used as they are (status, meta, tags): no request per
object besides the manifest, and none at all for objects the lockfile proves complete on disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brainlife.client import _urls
from brainlife.client._exceptions import (
    AuthError,
    BrainlifeError,
    ConfigError,
    DiskFullError,
    NotFound,
    ProtocolError,
)
from brainlife.client._http import RetryPolicy
from brainlife.client.transfer.engine import BulkResult, Engine, Event, EventHandler
from brainlife.client.transfer.layout import Layout, object_fields, resolve_layout
from brainlife.client.transfer.lockfile import LOCK_NAME, Lockfile
from brainlife.client.transfer.plan import (
    EXISTING,
    Plan,
    PlanningProgress,
    PlanObject,
    dataset_description,
    finish_plan,
    info_json,
    resolve_files,
)
from brainlife.client.transfer.single import Downloader
from brainlife.client.transfer.writes import human_size

if TYPE_CHECKING:
    from brainlife.client._client import Client

__all__ = ["plan_datasets", "plan_tasks", "run_plan"]

Doc = dict[str, Any]
#: ids per `{"_id": {"$in": [...]}}` request (keeps the URL well under server limits)
ID_BATCH = 200
#: filters of `bl data query` accepted by `plan_datasets`
FILTERS = (
    "query",
    "datatype",
    "datatype_tags",
    "tags",
    "project",
    "pub",
    "subject",
    "session",
    "run",
    "taskid",
)


def _planning(on_event: EventHandler | None) -> PlanningProgress | None:
    """The planning-progress callback that sends ``planning`` events (``done``, ``total``)."""
    if on_event is None:
        return None
    return lambda done, total: on_event(Event("planning", {"done": done, "total": total}))


def _check_existing(existing: str) -> None:
    if existing not in EXISTING:
        raise ConfigError(f"existing must be one of {', '.join(EXISTING)}, not {existing!r}.")


def _active(filters: Doc) -> Doc:
    """The filters actually given (not None or empty)."""
    return {k: v for k, v in filters.items() if v not in (None, "", (), [])}


def _docs(
    client: Client, active: Doc, ids: Sequence[str], limit: int | None
) -> tuple[list[Doc], list[str]]:
    """The documents matching the ``active`` filters and/or ``ids``, and the asked-for ids that
    matched nothing readable."""
    docs: list[Doc] = []
    if ids:
        find = client.dataset_find(**active) if active else {}
        wanted = list(dict.fromkeys(ids))
        for i in range(0, len(wanted), ID_BATCH):
            batch = wanted[i : i + ID_BATCH]
            page = client.find_datasets({**find, "_id": {"$in": batch}}, limit=0)
            docs += page.datasets
        found = {str(d.get("_id")) for d in docs}
        order = {oid: n for n, oid in enumerate(wanted)}
        docs.sort(key=lambda d: order.get(str(d.get("_id")), 0))
        return docs, [oid for oid in wanted if oid not in found]
    if not active:
        raise ConfigError(
            "Which data objects? Give filters (e.g. a project and a datatype), ids, or a lockfile."
        )
    for doc in client.iter_datasets(page_size=1000, **active):
        docs.append(doc)
        if limit and len(docs) >= limit:
            break
    return docs, []


def _releases(pub: Doc) -> str:
    rows = [r for r in pub.get("releases") or [] if not r.get("removed")]
    return ", ".join(f"{r.get('_id')} (release {r.get('name') or '?'})" for r in rows) or "none"


def _nothing_matches(client: Client, active: Doc) -> str:
    """Why a download would get nothing, and what to do instead: nothing is written then."""
    shown = " ".join(f"{k}={v!r}" for k, v in active.items())
    release = active.get("pub")
    if release:
        pubs = client.pubs(id=str(release), limit=1)
        if pubs:
            return (
                f"{release} is a publication, not a release: nothing was downloaded. Download one "
                f"of its releases: {_releases(pubs[0])} (e.g. 'bl pub download <release id>')."
            )
        pub = client.pub_with_release(str(release))
        if pub is None:
            return (
                f"No publication release has the id {release}: nothing was downloaded. "
                "'bl pub query' lists publications with their release ids."
            )
        rel: Doc = next((r for r in pub.get("releases") or [] if r.get("_id") == release), {})
        if rel.get("removed"):
            return (
                f"Release {release} of the publication {pub.get('name')!r} was removed: nothing "
                f"was downloaded. Its current releases: {_releases(pub)}."
            )
        return f"No data object of release {release} matches {shown}: nothing was downloaded."
    return (
        f"No data object matches {shown}: nothing was downloaded. Check the filters with "
        "'bl data query' (e.g. the subject, the datatype, the project)."
    )


def plan_datasets(
    client: Client,
    *,
    root: str | Path | None = None,
    layout: str | Layout | None = None,
    ids: Sequence[str] = (),
    lock: str | Path | None = None,
    existing: str = "skip",
    jobs: int = 8,
    limit: int | None = None,
    on_event: EventHandler | None = None,
    **filters: Any,
) -> Plan:
    """Resolve what to download where (see :meth:`Client.plan_download`); ``on_event`` gets
    ``planning`` events while the objects' files are resolved."""
    _check_existing(existing)
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        raise TypeError(f"unknown filter(s): {', '.join(unknown)}")
    token = client.token()
    pinned = Lockfile.load(Path(lock)) if lock is not None else None
    active = _active(filters) if pinned is None else {}
    if pinned is not None:
        ids = _pinned_ids(pinned, lock)
    root_path, lay, query = _where(pinned, root, layout, active, ids)
    docs, missing = _docs(client, active, ids, limit)
    if not docs and not missing:
        raise NotFound(_nothing_matches(client, active))
    objects, generated = _objects(client, docs, lay, pinned)
    for oid in missing:
        objects.append(
            PlanObject(
                id=oid,
                folder=((pinned.find(oid) or {}).get("folder") if pinned else None) or oid,
                failure=NotFound(f"data object {oid} was not found (or you cannot read it)"),
            )
        )
    downloader = Downloader(client.http, token)
    resolve_files(
        objects,
        root_path,
        manifest=lambda o: downloader.manifest(o.id),
        manifests=lambda objs: downloader.manifests([o.id for o in objs]),
        existing=existing,
        lock=Lockfile.open(root_path / LOCK_NAME),
        pinned=pinned,
        jobs=jobs,
        progress=_planning(on_event),
    )
    plan = Plan(
        root=root_path,
        layout=lay,
        objects=objects,
        existing=existing,
        server=client.base_url,
        query=query,
        generated=generated,
    )
    return finish_plan(plan, token)


def _pinned_ids(pinned: Lockfile, lock: str | Path | None) -> list[str]:
    ids = pinned.ids("dataset")
    if not ids:
        raise ConfigError(
            f"The lockfile {lock} lists no data objects (task downloads recorded there are "
            "fetched again with a task download)."
        )
    return list(ids)


def _where(
    pinned: Lockfile | None,
    root: str | Path | None,
    layout: str | Layout | None,
    active: Doc,
    ids: Sequence[str],
) -> tuple[Path, Layout, Doc]:
    """The root, the layout and the query to record: a lockfile's own unless overridden."""
    if pinned is not None:
        root_path = Path(root) if root is not None else pinned.root
        lay = layout if isinstance(layout, Layout) else resolve_layout(pinned.layout or None)
        return root_path, lay, pinned.query or {"ids": list(ids)}
    lay = layout if isinstance(layout, Layout) else resolve_layout(layout)
    query = dict(active)
    if ids:
        query["ids"] = list(ids)
    return Path(root or "."), lay, query


def _objects(
    client: Client, docs: list[Doc], lay: Layout, pinned: Lockfile | None
) -> tuple[list[PlanObject], dict[str, bytes]]:
    """A plan object per document (its folder by the layout, or where the lockfile put it), and
    the root-level files the layout generates."""
    datatypes = client.datatypes_by_id(sorted({str(d.get("datatype") or "") for d in docs}))
    want_projects = lay.bids or "project_name" in lay.template
    projects = (
        client.projects_by_id(sorted({str(d.get("project") or "") for d in docs}))
        if want_projects
        else {}
    )
    objects: list[PlanObject] = []
    generated: dict[str, bytes] = {}
    for doc in docs:
        oid = str(doc["_id"])
        dt = datatypes.get(str(doc.get("datatype")))
        pr = projects.get(str(doc.get("project")))
        fields = object_fields(
            doc,
            datatype_name=str(dt["name"]) if dt else None,
            project_name=str(pr["name"]) if pr else None,
        )
        folder = lay.folder(fields)
        if pinned is not None:
            folder = str((pinned.find(oid) or {}).get("folder") or folder)
        obj = PlanObject(
            id=oid,
            folder=folder,
            doc=doc,
            size=int(doc.get("size") or 0),
            route_prefix=_urls.dataset_files(oid),
        )
        status = doc.get("status")
        if status != "stored":
            obj.failure = BrainlifeError(f"its status is '{status}', not 'stored'")
        if lay.bids:
            obj.generated["_info.json"] = info_json(doc)
            pid = fields["project"]
            generated[f"proj-{pid}/dataset_description.json"] = dataset_description(
                pid, fields["project_name"], client.base_url
            )
        objects.append(obj)
    return objects, generated


def plan_tasks(
    client: Client,
    tasks: Iterable[tuple[str, str]],
    path: str,
    *,
    root: str | Path = ".",
    existing: str = "skip",
    jobs: int = 8,
    on_event: EventHandler | None = None,
) -> Plan:
    """The same ``path`` of several tasks, each ``(task_id, folder)``, file by file (resumable and
    verified) from our task manifest."""
    _check_existing(existing)
    tasks = list(tasks)
    token = client.token()
    clean = path.strip("/")
    objects = []
    for tid, folder in tasks:
        objects.append(
            PlanObject(
                id=tid,
                folder=folder,
                kind="task",
                route_prefix=_urls.task_files(tid, clean),
            )
        )

    def manifest(obj: PlanObject) -> Doc | None:
        route = _urls.task_manifest(obj.id)
        doc = client.http.request_json("GET", route, params={"p": clean}, token=token)
        if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
            raise NotFound(f"The server has no manifest for task {obj.id}.")
        kind = doc.get("type")
        if kind not in ("file", "folder"):
            # a server that does not say which it is: the .tar.gz stream decides (fallback)
            raise ProtocolError(
                f"The server's manifest of task {obj.id} says neither file nor folder."
            )
        if kind == "file":
            # the download of the path is the file itself: it lands as <folder>/<its name>
            obj.route_prefix = _urls.task_files(obj.id, clean.rpartition("/")[0])
        return doc

    root_path = Path(root)
    resolve_files(
        objects,
        root_path,
        manifest=manifest,
        existing=existing,
        lock=Lockfile.open(root_path / LOCK_NAME),
        jobs=jobs,
        progress=_planning(on_event),
    )
    plan = Plan(
        root=root_path,
        layout=resolve_layout("{id}"),
        objects=objects,
        existing=existing,
        server=client.base_url,
        query={"tasks": [t for t, _ in tasks], "path": path},
    )
    return finish_plan(plan, token)


def run_plan(
    client: Client,
    plan: Plan,
    *,
    jobs: int = 8,
    on_event: EventHandler | None = None,
    ignore_expiry: bool = False,
    policy: RetryPolicy | None = None,
) -> BulkResult:
    """Run a plan: refuse it first if it has layout problems, lacks disk space, or will outlive the
    token (unless ``ignore_expiry``)."""
    if plan.blocking:
        shown = "; ".join(f"{p.kind}: {p.message}" for p in plan.blocking[:5])
        more = f" (and {len(plan.blocking) - 5} more)" if len(plan.blocking) > 5 else ""
        if all(p.kind == "exists" for p in plan.blocking):
            raise ConfigError(f"Nothing was downloaded: {shown}{more}.", hint="existing-overwrite")
        raise ConfigError(
            f"The layout {plan.layout.template!r} does not work for these data objects: "
            f"{shown}{more}. Choose another layout (e.g. add {{id}}).",
            hint="layout",
        )
    if plan.free is not None and plan.free < plan.fetch_bytes:
        raise DiskFullError(
            f"Not enough disk space in {plan.root}: the download needs "
            f"{human_size(plan.fetch_bytes)} but only {human_size(plan.free)} is free.",
            needed=plan.fetch_bytes,
            free=plan.free,
        )
    warning = plan.token_warning()
    if warning and not ignore_expiry:
        raise AuthError(warning, hint="ignore-expiry")
    lock = Lockfile.open(plan.root / LOCK_NAME)
    lock.server, lock.query = plan.server, plan.query
    lock.layout = plan.layout.name if plan.layout.name != "template" else plan.layout.template
    engine = Engine(
        client.http,
        client.token(),
        plan,
        lock,
        jobs=jobs,
        on_event=on_event,
        policy=policy,
    )
    return engine.run()
