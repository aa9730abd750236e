"""Adding datatypes to the catalogue (brainlife's `POST /warehouse/datatype`; `bl admin datatype
add`). Who: archive admins (`warehouse` admin scope) or a token with brainlife's
`datatype.create` scope; `bl admin` works on the data folder.

A datatype's file list is what uploads are checked against, so it is checked hard here: a name
of lowercase path segments (`neuro/anat/t1w`), unique; 1-100 files, each with a unique `id`
(the `--<id> PATH` flag of `bl data upload`) and exactly one of `filename` / `dirname`, a plain
name (no `/`, no `..`, no leading `.`) so that no upload can write outside its object; optional
`desc`, `ext`, `required` (default true); datatype tags `{datatype_tag, desc}`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from brainlife.server.catalogue import datatype_extra
from brainlife.server.db import lock_writes
from brainlife.server.errors import BadRequest, Conflict, Forbidden
from brainlife.server.models import Datatype
from brainlife.server.principal import Principal
from brainlife.server.services.project_writes import new_oid

NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}(/[a-z0-9][a-z0-9_.-]{0,63}){0,7}")
FILE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,254}")
MAX_FILES = 100
MAX_TAGS = 200
MAX_DESC = 64 * 1024


def may_create(principal: Principal) -> bool:
    return principal.is_admin("warehouse") or principal.has_scope("warehouse", "datatype.create")


def _str(value: Any, what: str, limit: int, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise BadRequest(f"{what} must be a{' non-empty' if required else ''} string.")
    if len(value) > limit:
        raise BadRequest(f"{what} is too long (at most {limit} characters).")
    return value


def _files(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_FILES:
        raise BadRequest(f"files must be a list of 1 to {MAX_FILES} file descriptions.")
    out, ids, names = [], set(), set()
    for i, f in enumerate(value):
        where = f"files[{i}]"
        if not isinstance(f, dict):
            raise BadRequest(f"{where} must be an object {{id, filename or dirname, …}}.")
        fid = f.get("id")
        if not isinstance(fid, str) or not FILE_ID.fullmatch(fid):
            raise BadRequest(f"{where}.id must be 1-64 letters, digits, '_' or '-'.")
        if fid in ids:
            raise BadRequest(f"{where}.id {fid!r} is used twice.")
        kinds = [k for k in ("filename", "dirname") if f.get(k) is not None]
        if len(kinds) != 1:
            raise BadRequest(f"{where} needs exactly one of filename and dirname.")
        name = f[kinds[0]]
        if not isinstance(name, str) or not FILE_NAME.fullmatch(name) or ".." in name:
            raise BadRequest(
                f"{where}.{kinds[0]} must be a plain file name (no '/', no '..', not hidden)."
            )
        if name in names:
            raise BadRequest(f"{where}.{kinds[0]} {name!r} is used twice.")
        required = f.get("required", True)
        if not isinstance(required, bool):
            raise BadRequest(f"{where}.required must be true or false.")
        entry: dict[str, Any] = {
            "id": fid,
            kinds[0]: name,
            "desc": _str(f.get("desc"), f"{where}.desc", 4096),
            "required": required,
        }
        if f.get("ext") is not None:
            entry["ext"] = _str(f.get("ext"), f"{where}.ext", 64)
        ids.add(fid)
        names.add(name)
        out.append(entry)
    return out


def _tags(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise BadRequest(f"datatype_tags must be a list of at most {MAX_TAGS} tags.")
    out = []
    for i, t in enumerate(value):
        if isinstance(t, str):
            t = {"datatype_tag": t}
        if not isinstance(t, dict):
            raise BadRequest(f"datatype_tags[{i}] must be {{datatype_tag, desc}}.")
        tag = _str(t.get("datatype_tag"), f"datatype_tags[{i}].datatype_tag", 256, required=True)
        out.append({"datatype_tag": tag, "desc": _str(t.get("desc"), "desc", 4096)})
    return out


def add_datatype(session: Session, body: Any, *, principal: Principal | None = None) -> Datatype:
    """Check and add a datatype (flushed). `principal` None: `bl admin` on the data folder."""
    if principal is not None and not may_create(principal):
        raise Forbidden("Only the archive's administrators may add datatypes.")
    if not isinstance(body, dict):
        raise BadRequest("A datatype is a JSON object {name, desc, files, datatype_tags}.")
    name = body.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise BadRequest(
            f"Invalid datatype name {str(name)[:80]!r}: lowercase segments separated by '/', "
            "e.g. 'neuro/anat/t1w'."
        )
    lock_writes(session, "datatype names")  # two requests for one new name: one is told so
    if session.scalar(select(Datatype.id).where(Datatype.name == name)):
        raise Conflict(f"The archive already has a datatype {name!r}.")
    validator = body.get("validator")
    if validator is not None:
        validator = _str(validator, "validator", 256)
    extra = datatype_extra(_files(body.get("files")), _tags(body.get("datatype_tags")), validator)
    extra["readme"] = _str(body.get("readme"), "readme", MAX_DESC)
    row = Datatype(
        id=new_oid(),
        name=name,
        desc=_str(body.get("desc"), "desc", MAX_DESC),
        create_date=datetime.now(UTC),
        extra=extra,
    )
    session.add(row)
    session.flush()
    return row
