"""`POST /api/warehouse/dataset/downscript`: the bash script the official `bl bids download`
runs (brainlife-cli.md §6.2) to fetch data objects in brainlife's layout:

    proj-<project>/README
    proj-<project>/bids/dataset_description.json
    proj-<project>/sub-<subject>[.ses-<session>]/dt-<datatype>[.tag-<t>…][.run-<run>].id-<id>/
        <the object's files>, _info.json

with `curl` (piped into `tar -x`) per object, one after the other, `set -euo pipefail`.

Unlike brainlife.io's, the script does not carry the user's login: it carries a token of its
own (`tokens.DATASETS_CLAIM`), valid `TOKEN_TTL` and good only for reading the objects it
lists, through the data-object listing and download routes, and only while its user may still
read them (`access.readable_datasets`); every other route refuses it (`deps.optional_principal`).
A script left in a shell history or a shared folder gives nothing else away.

Everything from the archive that reaches the script (host, names, README, paths) is written as
a single-quoted shell word (`shlex.quote`), and every folder name is made of safe components
(`safe_component`): no object can make the script write outside the folder it runs in or run a
command. At most `MAX_OBJECTS` objects per script (the token lists them); the script says how to
get the next ones (a larger `limit` is cut to it, so that the official CLI, which cannot show an
error answer, still gets a script that says so).
"""

from __future__ import annotations

import json
import re
import shlex
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from brainlife.server.archive import Archive
from brainlife.server.errors import BadRequest
from brainlife.server.models import Datatype, Project
from brainlife.server.principal import Principal
from brainlife.server.query import ListParams, parse_find
from brainlife.server.query.params import MAX_SKIP
from brainlife.server.services import datasets
from brainlife.server.tokens import DATASETS_CLAIM
from brainlife.wire import Document, routes

#: data objects in one script
MAX_OBJECTS = 1000
#: how long a script's token reads its objects
TOKEN_TTL = timedelta(hours=6)
BIDS_VERSION = "1.9.0"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe_component(value: Any) -> str:
    """A value as part of one folder name: control characters dropped, `/` and `\\` become
    `-` and `<>:"|?*` `_` (as our client's `safe_name`), leading dots, dashes and spaces
    dropped; empty if nothing is left."""
    if value is None:
        return ""
    text = _CONTROL.sub("", str(value)).replace("/", "-").replace("\\", "-")
    return re.sub(r'[<>:"|?*]', "_", text).lstrip(" .-").rstrip(" .")[:100]


def object_folder(doc: Document, datatype_name: str) -> str:
    """brainlife's `dataset_to_filename`, relative to the script's folder."""
    meta = doc.get("meta") or {}
    path = f"proj-{safe_component(doc.get('project'))}/sub-{safe_component(meta.get('subject'))}"
    session = safe_component(meta.get("session"))
    if session:
        path += f".ses-{session}"
    path += f"/dt-{safe_component(datatype_name)}"
    for tag in doc.get("datatype_tags") or []:
        clean = safe_component(str(tag).lstrip("!"))
        if clean:
            path += f".tag-{clean}"
    run = safe_component(meta.get("run"))
    if run:
        path += f".run-{run}"
    return path + f".id-{safe_component(doc.get('_id'))}"


def _request(body: Any) -> tuple[dict[str, Any], int, int]:
    if not isinstance(body, dict):
        raise BadRequest('The body must be {"find": {…}, "limit": n, "skip": n}.')
    find = body.get("find", {})
    if not isinstance(find, dict):
        raise BadRequest("find must be an object (a Mongo filter of data objects).")
    limits = []
    for key, default in (("limit", 100), ("skip", 0)):
        value = body.get(key, default)
        text = value.strip() if isinstance(value, str) else ""
        if text.isascii() and text.isdigit() and len(text) <= 30:  # not '²', not 10 KB of 9s
            value = int(text)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadRequest(f"{key} must be a whole number of at least 0.")
        if key == "skip" and value > MAX_SKIP:  # SQL's OFFSET is a 64-bit integer
            raise BadRequest(f"skip must be at most {MAX_SKIP}.")
        limits.append(value)
    limit, skip = limits
    # a larger (or no) limit gets the first MAX_OBJECTS and the script's closing line says how
    # to get the rest: the official CLI would show an error answer only as a Node stack trace
    limit = MAX_OBJECTS if limit == 0 else min(limit, MAX_OBJECTS)
    # `find` is checked like the parameter of every list route (depth, sizes, operators)
    return parse_find(json.dumps(find)), limit, skip


def _dataset_description(project: Project | None, project_id: str) -> str:
    doc = {
        "Name": project.name if project is not None else project_id,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
    }
    return json.dumps(doc, indent=4)


def downscript(
    *, session: Session, archive: Archive, principal: Principal, body: Any, base_url: str
) -> str:
    """The script for the objects of `body`'s find the caller may read (`skip`/`limit` as in
    `GET /dataset`, no sort: `_id` order)."""
    find, limit, skip = _request(body)
    params = ListParams(find=find, sort=(), select=None, skip=skip, limit=limit)
    page = datasets.list_datasets(session=session, principal=principal, params=params)
    docs = datasets.dataset_documents(session, page.rows)
    stored = [d for d in docs if d.get("status") == "stored"]
    now = datetime.now(UTC)
    token = archive.signer.sign(
        {"sub": principal.sub, DATASETS_CLAIM: [str(d["_id"]) for d in stored]},
        TOKEN_TTL.total_seconds() * 1000,
    )
    datatype_ids = sorted({str(d.get("datatype")) for d in docs})
    names = {
        dtid: name
        for dtid, name in session.execute(
            select(Datatype.id, Datatype.name).where(Datatype.id.in_(datatype_ids))
        )
    }
    project_ids = sorted({str(d.get("project")) for d in docs})
    projects = {
        p.id: p for p in session.scalars(select(Project).where(Project.id.in_(project_ids)))
    }
    q = shlex.quote
    expires = (now + TOKEN_TTL).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "#!/bin/bash",
        f"# brainlife download script: {len(stored)} data objects from {base_url}",
        f"# made {now.strftime('%Y-%m-%d %H:%M UTC')}. Its token is not your login: it reads",
        f"# only these objects, until {expires}.",
        "set -euo pipefail",
        f"host={q(base_url.rstrip('/'))}",
        f"auth={q('Authorization: Bearer ' + token)}",
        "# curl trusts what the official CLI was told to trust too (NODE_EXTRA_CA_CERTS: extra",
        "# certificates, such as bl serve --tls's), besides its usual bundle",
        'if [ -n "${NODE_EXTRA_CA_CERTS:-}" ]; then',
        '    bundle="$(mktemp)"',
        "    trap 'rm -f \"$bundle\"' EXIT",
        '    for f in "${CURL_CA_BUNDLE:-}" /etc/ssl/certs/ca-certificates.crt '
        "/etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do",
        '        if [ -n "$f" ] && [ -r "$f" ]; then cat "$f" >> "$bundle"; break; fi',
        "    done",
        '    cat "$NODE_EXTRA_CA_CERTS" >> "$bundle"',
        '    export CURL_CA_BUNDLE="$bundle"',
        "fi",
        'fetch() { curl -fsSL --retry 3 -H "$auth" "$host$1"; }',
        "",
    ]
    for pid in project_ids:
        project = projects.get(pid)
        folder = f"proj-{safe_component(pid)}"
        readme = ""
        if project is not None:
            readme = str((project.extra or {}).get("readme") or "") or project.desc
        lines += [
            f"mkdir -p {q(folder + '/bids')}",
            f"printf '%s\\n' {q(readme)} > {q(folder + '/README')}",
            f"printf '%s\\n' {q(_dataset_description(project, pid))} "
            f"> {q(folder + '/bids/dataset_description.json')}",
        ]
    for n, doc in enumerate(docs, 1):
        dsid = str(doc["_id"])
        if doc.get("status") != "stored":
            status = doc.get("status")
            lines.append(f"echo {q(f'skipping {dsid}: its status is {status}, not stored')} >&2")
            continue
        folder = object_folder(doc, names.get(str(doc.get("datatype")), "unknown"))
        info = routes.DATASETS.url() + "?single=true&find=" + quote(json.dumps({"_id": dsid}))
        lines += [
            f"echo {q(f'({n}/{len(docs)}) {folder}')}",
            f"mkdir -p {q(folder)}",
            f"fetch {q(routes.DATASET_DOWNLOAD.url(dataset_id=dsid))} | tar -C {q(folder)} -x",
            f"fetch {q(info)} > {q(folder + '/_info.json')}",
        ]
    more = (page.count or 0) - skip - len(docs)
    if more > 0:
        hint = f"{more} more data objects match: run again with --skip {skip + len(docs)}."
        lines.append(f"echo {q(hint)} >&2")
    return "\n".join(lines) + "\n"
