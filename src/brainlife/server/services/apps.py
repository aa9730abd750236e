"""The apps catalogue (`GET`/`POST /api/warehouse/app`) and the compute resources
(`GET /api/amaretti/resource`).

This archive keeps apps as brainlife describes them (what a task ran, what it takes and gives)
but runs none: `refuse_to_run` is the one answer of every route that would start one
(`POST /amaretti/instance`, `/amaretti/task`, `/warehouse/dataset/stage`), so that both CLIs
stop at once with a message instead of creating a task that never runs.

An app is added by a warehouse admin (`POST /app`); the document is checked here field by
field, so that what `bl app query` prints and what a later runner reads is well formed: every
input and output names an existing datatype, every `config` key of type `input` names an
input, ids are unique, and every list and string is bounded.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from brainlife.server.access import readable_apps, readable_resources
from brainlife.server.db import lock_writes
from brainlife.server.errors import BadRequest, Conflict, Forbidden
from brainlife.server.ids import new_object_id
from brainlife.server.models import App, AppProject, Datatype, Project, Resource
from brainlife.server.principal import Principal
from brainlife.server.query import ListParams
from brainlife.server.services.listing import Listing, run_listing
from brainlife.server.specs import APPS, RESOURCES
from brainlife.wire import is_object_id

#: inputs, outputs, config keys, tags and projects of one app
MAX_ITEMS = 64
MAX_CONFIG_KEYS = 256
MAX_NAME = 256
MAX_TEXT = 20_000
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_GITHUB = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")
_CONFIG_TYPES = ("input", "string", "number", "integer", "boolean", "enum")

RUN_REFUSED = (
    "This archive stores data and the apps' provenance but does not run apps: nothing was "
    "created. Run the app on brainlife.io (or a server with compute resources), then upload "
    "its outputs here with `bl data upload`."
)


class NotRunnable(Forbidden):
    """A request to start an app (an instance, a staging task, a task): this archive runs none.
    403, the server's refusal: not a 5xx, which would say the server failed (and clients retry
    some of those)."""


def refuse_to_run() -> None:
    raise NotRunnable(RUN_REFUSED)


def can_edit(principal: Principal | None, app: App) -> bool:
    if principal is None:
        return False
    return principal.is_admin("warehouse") or principal.sub_str in (app.extra or {}).get(
        "admins", []
    )


def list_apps(*, session: Session, principal: Principal | None, params: ListParams) -> Listing[App]:
    """Apps the caller may see (`access.readable_apps`) matching `params`. Removed apps are not
    hidden (the official CLI sends `removed: false`, as for projects)."""
    return run_listing(session, App, APPS, readable_apps(principal), params)


def list_resources(
    *, session: Session, principal: Principal, params: ListParams
) -> Listing[Resource]:
    return run_listing(session, Resource, RESOURCES, readable_resources(principal), params)


# --- adding an app -------------------------------------------------------------------------


def _text(doc: dict[str, Any], key: str, where: str, *, limit: int, required: bool = False) -> Any:
    value = doc.get(key)
    if value is None:
        if required:
            raise BadRequest(f"{where}{key} is required")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequest(f"{where}{key} must be a non-empty string")
    if len(value) > limit:
        raise BadRequest(f"{where}{key} has {len(value)} characters; at most {limit} are allowed")
    return value


def _flag(doc: dict[str, Any], key: str, where: str) -> bool:
    value = doc.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{where}{key} must be true or false")
    return value


def _list(value: Any, what: str, limit: int = MAX_ITEMS) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{what} must be a list")
    if len(value) > limit:
        raise BadRequest(f"{what} has {len(value)} entries; at most {limit} are allowed")
    return value


def _tags(value: Any, what: str) -> list[str]:
    tags = _list(value, what)
    for tag in tags:
        if not isinstance(tag, str) or not tag or len(tag) > 128:
            raise BadRequest(f"{what} must be strings of 1 to 128 characters")
    return tags


def _datatype(session: Session, value: Any, where: str) -> str:
    if not isinstance(value, str) or not is_object_id(value):
        raise BadRequest(f"{where}datatype must be a datatype id (24 hex digits)")
    if session.get(Datatype, value) is None:
        raise BadRequest(f"{where}datatype {value} is not a datatype of this archive")
    return value


def _ports(session: Session, value: Any, kind: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, port in enumerate(_list(value, kind)):
        where = f"{kind}[{n}]."
        if not isinstance(port, dict):
            raise BadRequest(f"{kind}[{n}] must be an object")
        pid = port.get("id")
        if not isinstance(pid, str) or not _ID.match(pid):
            raise BadRequest(f"{where}id must be 1 to 64 letters, digits, '_', '.' or '-'")
        if pid in seen:
            raise BadRequest(f"{kind}: id {pid!r} is used twice")
        seen.add(pid)
        doc: dict[str, Any] = {
            "id": pid,
            "datatype": _datatype(session, port.get("datatype"), where),
            "datatype_tags": _tags(port.get("datatype_tags"), f"{where}datatype_tags"),
            "desc": _text(port, "desc", where, limit=MAX_TEXT) or "",
        }
        if kind == "inputs":
            for key in ("optional", "multi", "advanced"):
                doc[key] = _flag(port, key, where)
            includes = _text(port, "includes", where, limit=MAX_TEXT)
            if includes is not None:
                doc["includes"] = includes
        else:
            doc["output_on_root"] = _flag(port, "output_on_root", where)
            doc["archive"] = port.get("archive", True) is not False
            doc["datatype_tags_pass"] = port.get("datatype_tags_pass")
            files = port.get("files")
            if files is not None:
                if not isinstance(files, dict) or len(files) > MAX_ITEMS:
                    raise BadRequest(f"{where}files must be an object of at most {MAX_ITEMS} keys")
                if not all(isinstance(v, str) and len(v) <= 1024 for v in files.values()):
                    raise BadRequest(f"{where}files: each value must be a relative path")
                doc["files"] = files
        out.append(doc)
    return out


def _config(value: Any, input_ids: set[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("config must be an object")
    if len(value) > MAX_CONFIG_KEYS:
        raise BadRequest(f"config has {len(value)} keys; at most {MAX_CONFIG_KEYS} are allowed")
    for key, entry in value.items():
        where = f"config.{key}: "
        if not isinstance(key, str) or not _ID.match(key):
            raise BadRequest(f"config: key {key[:70]!r} must be 1 to 64 letters, digits, '_.-'")
        if not isinstance(entry, dict):
            raise BadRequest(f'{where}must be an object such as {{"type": "string"}}')
        kind = entry.get("type")
        if kind not in _CONFIG_TYPES:
            raise BadRequest(f"{where}type must be one of {', '.join(_CONFIG_TYPES)}")
        input_id = entry.get("input_id")
        if kind == "input" and not (isinstance(input_id, str) and input_id in input_ids):
            raise BadRequest(f"{where}input_id must name one of the app's inputs")
        if len(repr(entry)) > MAX_TEXT:
            raise BadRequest(f"{where}is longer than {MAX_TEXT} characters")
    return value


def create_app(*, session: Session, principal: Principal, body: Any) -> App:
    """Add an app (warehouse admins only) and commit; refuses a second app of the same
    `github` service, whose tasks could not tell them apart."""
    if not principal.is_admin("warehouse"):
        raise Forbidden("Only a warehouse administrator can add apps to this archive.")
    if not isinstance(body, dict):
        raise BadRequest("The body must be an app document (a JSON object).")
    name = _text(body, "name", "", limit=MAX_NAME, required=True)
    github = _text(body, "github", "", limit=201, required=True)
    if not _GITHUB.match(github):
        raise BadRequest("github must be the app's repository as 'org/repo'")
    # no unique constraint holds this rule (removed apps keep their service): two requests at
    # once are told apart by the lock, held until the app is committed
    lock_writes(session, "app services")
    if session.scalar(select(App.id).where(App.github == github, App.removed.is_(False))):
        raise Conflict(f"An app for {github} already exists.")
    inputs = _ports(session, body.get("inputs"), "inputs")
    outputs = _ports(session, body.get("outputs"), "outputs")
    input_ids = {i["id"] for i in inputs}
    for n, out in enumerate(outputs):
        passed = out["datatype_tags_pass"]
        if passed is not None and not (isinstance(passed, str) and passed in input_ids):
            raise BadRequest(f"outputs[{n}].datatype_tags_pass must name one of the app's inputs")
    projects = _list(body.get("projects"), "projects")
    for pid in projects:
        if not isinstance(pid, str) or not is_object_id(pid) or session.get(Project, pid) is None:
            raise BadRequest(f"projects: {str(pid)[:40]!r} is not a project of this archive")
    now = datetime.now(UTC)
    app = App(
        id=new_object_id(now),
        name=name,
        desc=_text(body, "desc", "", limit=MAX_TEXT) or "",
        github=github,
        github_branch=_text(body, "github_branch", "", limit=128),
        doi=_text(body, "doi", "", limit=256),
        removed=False,
        user_id=principal.sub_str,
        create_date=now,
        inputs=inputs,
        outputs=outputs,
        config=_config(body.get("config"), input_ids),
        extra={
            "admins": [principal.sub_str],
            "tags": _tags(body.get("tags"), "tags"),
            "contributors": [],
            "stats": {},
        },
        projects=[AppProject(project_id=p, pos=n) for n, p in enumerate(dict.fromkeys(projects))],
    )
    session.add(app)
    session.commit()
    return app
