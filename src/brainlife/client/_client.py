"""`Client`: typed methods over brainlife's routes (auth, warehouse, amaretti).

```python
from brainlife.client import Client

with Client() as bl:                      # BLHOST and ~/.config/<host>/.jwt, like `bl`
    for ds in bl.iter_datasets(project="O3D", datatype="neuro/anat/t1w"):
        bl.download_dataset(ds["_id"], f"t1/{ds['meta']['subject']}")
```
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from brainlife import __version__
from brainlife.client import _jwt, _urls
from brainlife.client._config import Config, read_token_file, resolve_config, write_token_file
from brainlife.client._exceptions import (
    ApiError,
    AuthError,
    BrainlifeError,
    ConfigError,
    Conflict,
    GaveUp,
    NotFound,
    PermissionDenied,
    ProtocolError,
    UploadRefused,
)
from brainlife.client._http import HttpClient, RetryPolicy, Transport
from brainlife.client._queries import (
    AppFilter,
    DatasetFilter,
    ReleaseFilter,
    app_find,
    dataset_find,
    datatype_find,
    filter_of,
    in_list,
    profile_matches,
    project_find,
    pub_find,
    release_set,
    resource_find,
    sub_value,
)
from brainlife.wire import DEFAULT_LIMIT, is_object_id

# The transfer modules are imported by the methods that move bytes: a query starts without them.
if TYPE_CHECKING:
    from brainlife.client.transfer import projectfiles
    from brainlife.client.transfer.bulkupload import BulkUpload
    from brainlife.client.transfer.engine import BulkResult, EventHandler
    from brainlife.client.transfer.layout import Layout
    from brainlife.client.transfer.lockfile import VerifyReport
    from brainlife.client.transfer.plan import Plan
    from brainlife.client.transfer.single import DownloadResult, Progress
    from brainlife.client.transfer.tasks import ProgressFor, TaskRun
    from brainlife.client.transfer.upload import UploadPlan, UploadResult

__all__ = ["Client", "DatasetPage", "LoginResult", "verify_download"]

Doc = dict[str, Any]
DAY_MS = 24 * 60 * 60 * 1000
#: the longest token lifetime asked for (a server caps it further: `bl serve --max-token-days`)
MAX_TTL_DAYS = 100 * 366


def _ttl_ms(ttl_days: float) -> int:
    """A token lifetime in days as the milliseconds brainlife's API takes."""
    if not (0 < ttl_days <= MAX_TTL_DAYS):  # also NaN
        raise ConfigError(
            f"A token lifetime must be a positive number of days, at most {MAX_TTL_DAYS} "
            f"(got {ttl_days:g})."
        )
    return max(1, int(ttl_days * DAY_MS))


@dataclass
class DatasetPage:
    """One page of ``GET /dataset``: the rows and the server's total ``count``."""

    datasets: list[Doc]
    count: int | None
    skip: int
    limit: int


@dataclass
class LoginResult:
    jwt: str
    sub: Any
    expires: datetime | None
    token_path: Path | None


def _envelope(doc: Any, key: str, route: str) -> list[Doc]:
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise ProtocolError(
            f"The server's answer to {route} has no '{key}' list; is it a "
            "brainlife server (check BLHOST)?"
        )
    return list(doc[key])


class Client:
    """A brainlife.io (or `bl serve`) client. Host, token and CA bundle come from the arguments,
    else from BLHOST, BL_TOKEN / the token file, and BL_CA_BUNDLE / NODE_EXTRA_CA_CERTS."""

    def __init__(
        self,
        host: str | None = None,
        *,
        token: str | None = None,
        ca_bundle: str | os.PathLike[str] | None = None,
        timeout: float = 60.0,
        retries: int | None = None,
        backoff: float | None = None,
        give_up_after: float | None = None,
        retry: RetryPolicy | None = None,
        transport: Transport | None = None,
    ) -> None:
        """Every retry rule is ``retry`` (a :class:`RetryPolicy`; the defaults when None), with
        ``retries`` (of a plain request: a query fails within seconds when the server is down),
        ``backoff`` (the first pause of every retry) and ``give_up_after`` replacing its values
        when given. Downloads retry until the server has not answered for ``give_up_after``
        seconds (any answer or body bytes reset the clock; see
        :class:`~brainlife.client._http.Liveness`), then raise :class:`GaveUp`. Requests go
        through ``transport`` (a ``urllib3.PoolManager``-like object; one of our own when None)."""
        self.config: Config = resolve_config(host, ca_bundle=ca_bundle)
        self._explicit_token = token or os.environ.get("BL_TOKEN") or None
        policy = retry or RetryPolicy()
        if retries is not None:
            policy = replace(policy, retries=retries)
        if backoff is not None:
            policy = replace(policy, backoff=backoff, cut_backoff=backoff)
        if give_up_after is not None:
            policy = replace(policy, give_up_after=give_up_after)
        self.http = HttpClient(
            self.config.base_url,
            ca_files=self.config.ca_files,
            timeout=timeout,
            policy=policy,
            user_agent=f"brainlife-python/{__version__}",
            transport=transport,
        )

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        return self.config.base_url

    # -- token ----------------------------------------------------------------------------
    def stored_token(self) -> str | None:
        """The explicit token (argument or BL_TOKEN), else the token file's, else None."""
        return self._explicit_token or read_token_file(self.config.token_path)

    def _checked(self, token: str) -> str:
        claims = _jwt.decode_claims(token)
        if claims is None:
            raise AuthError(
                "Your access token cannot be decoded. Please log in again: run 'bl login'."
            )
        if _jwt.is_expired(claims):
            when = _jwt.expires_at(claims)
            stamp = when.astimezone().strftime("%Y-%m-%d %H:%M") if when else "?"
            raise AuthError(
                f"Your access token expired on {stamp}. Please log in again: run 'bl login'."
            )
        return token

    def token(self) -> str:
        """A usable token, or AuthError saying how to get one."""
        token = self.stored_token()
        if not token:
            raise AuthError(
                f"You are not logged in (no token in {self.config.token_path}). "
                "Run 'bl login' first."
            )
        return self._checked(token)

    def _optional_token(self) -> str | None:
        token = self.stored_token()
        return self._checked(token) if token else None

    def claims(self) -> dict[str, Any]:
        return _jwt.decode_claims(self.token()) or {}

    def _get_list(
        self, route: str, key: str, params: Doc, *, token: str | None = None
    ) -> list[Doc]:
        """``GET route`` and its ``{key: [...]}`` list; anonymous unless a token is given or
        stored."""
        token = token or self._optional_token()
        return _envelope(
            self.http.request_json("GET", route, params=params, token=token), key, route
        )

    def _write(self, method: str, route: str, body: Doc | None) -> Doc:
        """A request that changes the archive (with the token), answered by a JSON object: a
        409 answer, the object's state forbidding the change, is a :class:`Conflict` (reads
        keep 409 as ``ApiError``: a download of an object not stored)."""
        try:
            doc = self.http.request_json(method, route, json_body=body, token=self.token())
        except ApiError as exc:
            if exc.status != 409 or isinstance(exc, Conflict):
                raise
            said = exc.server_message or str(exc)
            raise Conflict(said, status=409, server_message=exc.server_message) from None
        if not isinstance(doc, dict):
            raise ProtocolError(f"The server's answer to {method} {route} is not a JSON object.")
        return doc

    # -- auth -----------------------------------------------------------------------------
    def login(
        self, username: str, password: str, *, ttl_days: float = 7, save: bool = True
    ) -> LoginResult:
        """``POST /api/auth/local/auth``; saves the token where both CLIs read it."""
        body = {"username": username, "password": password, "ttl": _ttl_ms(ttl_days)}
        try:
            doc = self.http.request_json("POST", _urls.LOGIN, json_body=body)
        except (AuthError, PermissionDenied, ApiError) as exc:
            if exc.status not in (400, 401, 403, 429):
                raise
            reason = exc.server_message.strip().rstrip(".") or "incorrect username or password"
            raise AuthError(f"Login failed: {reason}.") from None
        jwt = doc.get("jwt") if isinstance(doc, dict) else None
        if not isinstance(jwt, str) or not jwt:
            raise ProtocolError("The server's login answer has no token.")
        path = None
        if save:
            write_token_file(self.config.token_path, jwt)
            path = self.config.token_path
        self._explicit_token = None if save else self._explicit_token
        claims = _jwt.decode_claims(jwt) or {}
        return LoginResult(
            jwt=jwt,
            sub=doc.get("sub", claims.get("sub")),
            expires=_jwt.expires_at(claims),
            token_path=path,
        )

    def refresh(self, *, ttl_days: float = 1, save: bool = True) -> str:
        """``POST /api/auth/refresh {ttl}``: a fresh token for a still-valid one."""
        doc = self.http.request_json(
            "POST",
            _urls.REFRESH,
            json_body={"ttl": _ttl_ms(ttl_days)},
            token=self.token(),
        )
        jwt = doc.get("jwt") if isinstance(doc, dict) else None
        if not isinstance(jwt, str) or not jwt:
            raise ProtocolError("The server's refresh answer has no token.")
        if save:
            write_token_file(self.config.token_path, jwt)
        return jwt

    def logout(self) -> bool:
        """Delete the token file; True when there was one."""
        try:
            self.config.token_path.unlink()
        except FileNotFoundError:
            return False
        return True

    # -- profiles -------------------------------------------------------------------------
    def profile_list(self, find: Doc | None = None) -> list[Doc]:
        """``GET /api/auth/profile/list`` (all rows, ``limit=0``)."""
        route = _urls.PROFILES
        params = {
            "limit": "0",
            "offset": "0",
            "find": find if find is not None else {"active": True},
        }
        return self._get_list(route, "profiles", params)

    def profiles(self, *, id: str | None = None, query: str | None = None) -> list[Doc]:
        """Active profiles, filtered client-side like ``bl profile query``."""
        rows = self.profile_list()
        if id:
            rows = [p for p in rows if str(p.get("sub")) == str(id)]
        if query:
            rows = [p for p in rows if profile_matches(p, query)]
        return rows

    def profiles_by_sub(self, subs: Sequence[Any]) -> dict[str, Doc]:
        """Only the profiles named (one request): ``{str(sub): profile}``."""
        wanted = sorted({str(s) for s in subs if s is not None and s != ""})
        if not wanted:
            return {}
        rows = self.profile_list({"sub": in_list(sub_value(s) for s in wanted)})
        return {str(p.get("sub")): p for p in rows}

    def resolve_users(self, text: str) -> list[str]:
        """Subs (as strings) of the active users whose name, email or username contains ``text``."""
        subs = [str(p["sub"]) for p in self.profile_list() if profile_matches(p, text)]
        if not subs:
            raise NotFound(f"No active user matches '{text}'. Try 'bl profile query -q {text}'.")
        return subs

    def user_sub(self, name: str) -> str:
        """The sub (a string) of the active user whose username, e-mail or sub is exactly
        ``name``."""
        for p in self.profile_list():
            if name in (str(p.get("sub")), p.get("username"), p.get("email")):
                return str(p["sub"])
        raise NotFound(f"No active user '{name}'. Try 'bl profile query -q {name}'.")

    # -- tokens ---------------------------------------------------------------------------
    def tokens(self) -> list[Doc]:
        """The ids and dates of the tokens the server issued to you (``bl serve``'s
        ``GET /api/auth/tokens``)."""
        return self._get_list(_urls.TOKENS, "tokens", {}, token=self.token())

    def revoke_token(self, jti: str) -> Doc:
        """Revoke one of your tokens (``DELETE /api/auth/token/<id>``): the server refuses it
        from then on."""
        doc: Doc = self.http.request_json("DELETE", _urls.token(jti), token=self.token())
        return doc

    # -- projects -------------------------------------------------------------------------
    def create_project(
        self,
        *,
        name: str,
        desc: str | None = None,
        readme: str | None = None,
        access: str | None = None,
        listed: bool | None = None,
        admins: Sequence[str] | None = None,
        members: Sequence[str] | None = None,
        guests: Sequence[str] | None = None,
        refresh_token: bool = True,
    ) -> Doc:
        """``POST /api/warehouse/project``: a new project, of which you are an admin.

        Its auth group only reaches your token's ``gids`` through a new token, so with
        ``refresh_token`` (and a saved token, not ``BL_TOKEN``) the saved token is then
        refreshed for the rest of its life, as brainlife's web page does after creating a
        project. A failed refresh does not undo the project (``bl refresh`` later does it)."""
        body = _project_body(
            name=name,
            desc=desc,
            readme=readme,
            access=access,
            listed=listed,
            admins=admins,
            members=members,
            guests=guests,
        )
        doc: Doc = self.http.request_json(
            "POST", _urls.PROJECTS, json_body=body, token=self.token()
        )
        if not isinstance(doc, dict) or not doc.get("_id"):
            raise ProtocolError("The server's answer to creating a project has no _id.")
        if refresh_token and not self._explicit_token:
            self._refresh_for_rest_of_life()
        return doc

    def _refresh_for_rest_of_life(self) -> None:
        expires = _jwt.expires_at(self.claims())
        left = (expires.timestamp() - time.time()) if expires else DAY_MS / 1000
        with contextlib.suppress(BrainlifeError):
            self.refresh(ttl_days=max(left, 60) / 86400)

    def update_project(self, project_id: str, **fields: Any) -> Doc:
        """``PUT /api/warehouse/project/<id>`` with the fields given (``name``, ``desc``,
        ``readme``, ``access``, ``listed``, ``admins``/``members``/``guests`` as lists of
        subs): project admins only."""
        body = _project_body(**fields)
        doc: Doc = self.http.request_json(
            "PUT", _urls.project(project_id), json_body=body, token=self.token()
        )
        return doc

    def participants(self, project_id: str) -> Doc:
        """``GET /api/warehouse/participant/<project>``: ``{project, subjects, columns}``."""
        doc: Doc = self.http.request_json(
            "GET", _urls.participants(project_id), token=self._optional_token()
        )
        return doc

    def set_participants(
        self,
        project_id: str,
        *,
        subjects: Sequence[Doc] | None = None,
        columns: Doc | None = None,
    ) -> Doc:
        """``PUT /api/warehouse/participant/<project>``: replace the table's subjects and/or
        column descriptions (project admins only)."""
        body: Doc = {}
        if subjects is not None:
            body["subjects"] = list(subjects)
        if columns is not None:
            body["columns"] = columns
        doc: Doc = self.http.request_json(
            "PUT", _urls.participants(project_id), json_body=body, token=self.token()
        )
        return doc

    def projects(
        self,
        *,
        id: str | None = None,
        query: str | None = None,
        admin: str | None = None,
        member: str | None = None,
        guest: str | None = None,
        skip: int = 0,
        limit: int = DEFAULT_LIMIT,
    ) -> list[Doc]:
        find = project_find(
            id=id,
            query=query,
            admins=self.resolve_users(admin) if admin else None,
            members=self.resolve_users(member) if member else None,
            guests=self.resolve_users(guest) if guest else None,
        )
        return self.find_projects(find, skip=skip, limit=limit)

    def find_projects(self, find: Doc, *, skip: int = 0, limit: int = DEFAULT_LIMIT) -> list[Doc]:
        params = {"find": find, "sort": {"name": 1}, "skip": str(skip), "limit": str(limit)}
        return self._get_list(_urls.PROJECTS, "projects", params)

    def projects_by_id(self, ids: Sequence[str]) -> dict[str, Doc]:
        wanted = sorted({i for i in ids if i})
        if not wanted:
            return {}
        rows = self.find_projects({"_id": in_list(wanted)}, limit=0)
        return {str(p["_id"]): p for p in rows}

    def resolve_project(self, project: str) -> Doc:
        """The one project with this id, or whose name/description matches this text."""
        if is_object_id(project):
            rows = self.projects(id=project)
        else:
            rows = self.projects(query=project)
            exact = [p for p in rows if str(p.get("name", "")).lower() == project.lower()]
            rows = exact if len(exact) == 1 else rows
        if not rows:
            if not self.stored_token():
                raise AuthError(
                    f"No project matches '{project}' among those shown to anyone: you are not "
                    f"logged in (no token in {self.config.token_path}). Run 'bl login' first."
                )
            raise NotFound(
                f"No project matches '{project}' (or you cannot see it: a private project shows "
                "only to its admins, members and guests; ask one of its admins to add you). "
                "Try 'bl project query'."
            )
        if len(rows) > 1:
            names = ", ".join(f"{p.get('name')} ({p.get('_id')})" for p in rows[:5])
            raise BrainlifeError(
                f"'{project}' matches {len(rows)} projects: {names}. Pass the project id instead."
            )
        return rows[0]

    # -- datatypes ------------------------------------------------------------------------
    def datatypes(
        self,
        *,
        id: str | None = None,
        query: str | None = None,
        skip: int | None = None,
        limit: int | None = None,
    ) -> list[Doc]:
        return self.find_datatypes(datatype_find(id=id, query=query), skip=skip, limit=limit)

    def find_datatypes(
        self,
        find: Doc,
        *,
        skip: int | None = None,
        limit: int | None = None,
        sort: str | None = "name",
    ) -> list[Doc]:
        route = _urls.DATATYPES
        params: dict[str, Any] = {"find": find, "sort": sort}
        if skip is not None:
            params["skip"] = str(skip)
        if limit is not None:
            params["limit"] = str(limit)
        return self._get_list(route, "datatypes", params)

    def datatypes_by_id(self, ids: Sequence[str]) -> dict[str, Doc]:
        wanted = sorted({i for i in ids if i})
        if not wanted:
            return {}
        rows = self.find_datatypes({"_id": in_list(wanted)}, limit=0, sort=None)
        return {str(d["_id"]): d for d in rows}

    def resolve_datatype(self, datatype: str) -> Doc:
        """The datatype with this id or exact name."""
        find = {"_id": datatype} if is_object_id(datatype) else {"name": datatype}
        rows = self.find_datatypes(find, limit=1, sort=None)
        if not rows:
            names = [str(d.get("name")) for d in self.find_datatypes({}, limit=0, sort=None)]
            import difflib  # only for this error

            close = difflib.get_close_matches(datatype, names, n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise NotFound(
                f"No datatypes found matching '{datatype}'.{hint} Try 'bl datatype query'."
            )
        return rows[0]

    # -- publications ---------------------------------------------------------------------
    def pubs(
        self,
        *,
        id: str | None = None,
        query: str | None = None,
        author: str | None = None,
        doi: str | None = None,
        skip: int = 0,
        limit: int = DEFAULT_LIMIT,
    ) -> list[Doc]:
        find = pub_find(
            id=id, query=query, doi=doi, authors=self.resolve_users(author) if author else None
        )
        params = {"find": find, "sort": {"name": 1}, "skip": str(skip), "limit": str(limit)}
        return self._get_list(_urls.PUBS, "pubs", params)

    def releases(self, pub_id: str, *, include_removed: bool = False) -> list[Doc]:
        """The releases of one publication."""
        rows = self.pubs(id=pub_id)
        if not rows:
            raise NotFound(f"No publication with id {pub_id}.")
        releases = rows[0].get("releases") or []
        return [r for r in releases if include_removed or not r.get("removed")]

    def pub_with_release(self, release_id: str) -> Doc | None:
        """The publication holding the release ``release_id`` (removed or not), or None."""
        params = {"find": {"releases._id": release_id}, "limit": "1"}
        rows = self._get_list(_urls.PUBS, "pubs", params)
        return rows[0] if rows else None

    def resolve_user(self, text: str) -> str:
        """One user's sub (as a string): ``text`` is a sub, or a username, e-mail or full name
        matching exactly one active user (an exact username or e-mail wins)."""
        if text.isdigit():
            return text
        rows = [p for p in self.profile_list() if profile_matches(p, text)]
        exact = [
            p
            for p in rows
            if text.lower() in (str(p.get(k) or "").lower() for k in ("username", "email"))
        ]
        rows = exact or rows
        if not rows:
            raise NotFound(f"No active user matches '{text}'. Try 'bl profile query -q {text}'.")
        if len(rows) > 1:
            names = ", ".join(f"{p.get('username')} ({p.get('sub')})" for p in rows[:5])
            raise BrainlifeError(
                f"'{text}' matches {len(rows)} users: {names}. Give the username or user id."
            )
        return str(rows[0]["sub"])

    def create_pub(
        self,
        *,
        project: str,
        name: str,
        desc: str | None = None,
        authors: Sequence[str] = (),
        contributors: Sequence[str] = (),
        license: str | None = None,
        doi: str | None = None,
        tags: Sequence[str] = (),
    ) -> Doc:
        """``POST /api/warehouse/pub``: a new publication of ``project`` (id or name; you must be
        one of its admins). ``authors`` and ``contributors`` are user ids, usernames or names
        (default author: you). Returns the publication document (its ``_id``)."""
        body: Doc = {"project": str(self.resolve_project(project)["_id"]), "name": name}
        if desc is not None:
            body["desc"] = desc
        if authors:
            body["authors"] = [self.resolve_user(a) for a in authors]
        if contributors:
            body["contributors"] = [self.resolve_user(c) for c in contributors]
        if license is not None:
            body["license"] = license
        if doi is not None:
            body["doi"] = doi
        if tags:
            body["tags"] = list(tags)
        doc = self._write("POST", _urls.PUBS, body)
        if not isinstance(doc, dict) or not isinstance(doc.get("_id"), str):
            raise ProtocolError("The server's answer to a new publication has no '_id'.")
        return doc

    def release_pub(
        self,
        pub_id: str,
        name: str,
        filters: ReleaseFilter | None = None,
        *,
        desc: str | None = None,
        dry_run: bool = False,
        **fields: Any,
    ) -> Doc:
        """Freeze the publication's data objects that match ``filters`` (a
        :class:`ReleaseFilter`, or its fields as keywords: ``datatype``, ``datatype_tags``,
        ``tags``, ``subjects``, ``sessions``, ``runs``, ``ids``; ``!tag`` excludes) as a new
        release ``name``: only ``stored`` objects of the publication's project that are not
        removed. The release never changes afterwards. With ``dry_run``, nothing is written
        and the answer says exactly what would be released. Returns ``{dry_run, pub, release,
        count, size, subjects, sessions}`` (``release`` is the release's document,
        ``release["sets"]`` the count and size per datatype). Raises :class:`NotFound` when
        nothing matches, :class:`Conflict` when the name is taken. Needs ``bl serve`` (its
        ``/pub/release`` route)."""
        filters = filter_of(ReleaseFilter, filters, fields)
        datatype = filters.datatype
        one = release_set(
            filters, datatype_id=str(self.resolve_datatype(datatype)["_id"]) if datatype else None
        )
        body: Doc = {"name": name, "sets": [one], "dry_run": dry_run}
        if desc is not None:
            body["desc"] = desc
        try:
            doc = self._write("POST", _urls.pub_release(pub_id), body)
        except NotFound as exc:
            said = exc.server_message
            if said == "Not Found" or said.startswith(("No such route", "Cannot POST")):
                raise BrainlifeError(
                    f"The server at {self.base_url} has no release route (POST "
                    f"{_urls.pub_release(pub_id)}): releases are made on a 'bl serve' archive "
                    "serving its own routes (extensions); on brainlife.io, use its web page."
                ) from None
            raise
        if not isinstance(doc, dict) or not isinstance(doc.get("release"), dict):
            raise ProtocolError("The server's answer to a release has no 'release'.")
        return doc

    # -- data objects ---------------------------------------------------------------------
    def dataset_find(self, filters: DatasetFilter | None = None, /, **fields: Any) -> Doc:
        """The ``find`` of ``bl data query`` (resolving a datatype name and a project name):
        ``filters``, or the same filters as keywords (``dataset_find(project="P")``)."""
        filters = filter_of(DatasetFilter, filters, fields)
        datatype, project = filters.datatype, filters.project
        return dataset_find(
            filters,
            datatype_id=str(self.resolve_datatype(datatype)["_id"]) if datatype else None,
            project_id=str(self.resolve_project(project)["_id"]) if project else None,
        )

    def find_datasets(
        self, find: Doc, *, skip: int = 0, limit: int = DEFAULT_LIMIT, select: str | None = None
    ) -> DatasetPage:
        """One page of ``GET /api/warehouse/dataset`` (no sort, like the official CLI)."""
        route = _urls.DATASETS
        params = {"find": find, "skip": str(skip), "limit": str(limit), "select": select}
        doc = self.http.request_json("GET", route, params=params, token=self.token())
        rows = _envelope(doc, "datasets", route)
        count = doc.get("count")
        return DatasetPage(rows, count if isinstance(count, int) else None, skip, limit)

    def query_datasets(
        self,
        filters: DatasetFilter | None = None,
        /,
        *,
        skip: int = 0,
        limit: int = DEFAULT_LIMIT,
        **fields: Any,
    ) -> DatasetPage:
        """One page of data objects; filters as :meth:`dataset_find`."""
        return self.find_datasets(self.dataset_find(filters, **fields), skip=skip, limit=limit)

    def iter_datasets(
        self,
        filters: DatasetFilter | None = None,
        /,
        *,
        page_size: int = DEFAULT_LIMIT,
        **fields: Any,
    ) -> Iterator[Doc]:
        """Every matching data object, fetched page by page as you iterate; filters as
        :meth:`dataset_find`."""
        find = self.dataset_find(filters, **fields)
        skip = 0
        while True:
            page = self.find_datasets(find, skip=skip, limit=page_size)
            yield from page.datasets
            skip += len(page.datasets)
            if len(page.datasets) < page_size or (page.count is not None and skip >= page.count):
                return

    def dataset(self, dataset_id: str) -> Doc:
        rows = self.find_datasets({"_id": dataset_id}).datasets
        if len(rows) != 1:
            raise NotFound(
                f"Couldn't find the data object with id {dataset_id} (or you cannot read it)."
            )
        return rows[0]

    def update_dataset(
        self,
        dataset_id: str,
        *,
        desc: str | None = None,
        tags: Sequence[str] | None = None,
        datatype_tags: Sequence[str] | None = None,
        meta: Mapping[str, Any] | None = None,
        restore: bool = False,
    ) -> Doc:
        """Change a data object: each given field replaces the old one, except ``meta``, which
        is merged into the object's (a ``None`` value removes a key); ``restore`` brings back a
        removed object (project admins). Returns the changed object. Raises ``Conflict`` for an
        object in a release (never changed) or removed (restore it first)."""
        body: dict[str, Any] = {}
        if desc is not None:
            body["desc"] = desc
        if tags is not None:
            body["tags"] = list(tags)
        if datatype_tags is not None:
            body["datatype_tags"] = list(datatype_tags)
        if meta is not None:
            merged = {**(self.dataset(dataset_id).get("meta") or {}), **meta}
            body["meta"] = {k: v for k, v in merged.items() if v is not None}
        if restore:
            body["removed"] = False
        if not body:
            raise ConfigError("Nothing to change: give a description, tags, datatype tags or meta.")
        doc = self._dataset_write("PUT", dataset_id, body)
        return dict(doc)

    def remove_dataset(self, dataset_id: str) -> int:
        """Remove a data object (brainlife's soft delete: ``removed: true``; the bytes stay and
        a project admin can restore it). Returns 1, or 0 if it was removed already."""
        doc = self._dataset_write("DELETE", dataset_id, None)
        return int(doc.get("removed") or 0)

    def _dataset_write(self, method: str, dataset_id: str, body: Doc | None) -> Doc:
        """A change of one data object; an unknown id says which, and where to find ids
        (brainlife's own words, "couldn't find the dataset specified", name neither)."""
        try:
            return self._write(method, _urls.dataset(dataset_id), body)
        except NotFound as exc:
            said = exc.server_message or str(exc)
            error = NotFound(
                f"No data object {dataset_id} that you can see ({said}); 'bl data query' lists "
                "them with their ids."
            )
            error.status, error.server_message = exc.status, exc.server_message
            raise error from None

    def dataset_history(self, dataset_id: str) -> list[Doc]:
        """Who changed a data object, when and what, oldest first (our server's route)."""
        route = _urls.dataset_history(dataset_id)
        return _envelope(self.http.request_json("GET", route, token=self.token()), "events", route)

    def download_dataset(
        self,
        dataset_id: str,
        dest: str | os.PathLike[str] | None = None,
        *,
        progress: Progress | None = None,
        jobs: int = 8,
    ) -> DownloadResult:
        """Download one data object into ``dest`` (default: a folder named after its id),
        ``jobs`` files at a time, retried by the client's :class:`RetryPolicy` like a bulk run."""
        token = self.token()
        ds = self.dataset(dataset_id)
        status = ds.get("status")
        if status != "stored":
            raise BrainlifeError(
                f"Data object {dataset_id} cannot be downloaded: its status is "
                f"'{status}', not 'stored'."
            )
        from brainlife.client.transfer.single import Downloader, object_mtime

        target = Path(dest) if dest is not None else Path(dataset_id)
        self.http.liveness.reset()
        return Downloader(self.http, token).dataset(
            dataset_id, target, progress=progress, mtime=object_mtime(ds), jobs=jobs
        )

    # -- project files ----------------------------------------------------------------------
    def project_files(self, project_id: str, prefix: str = "") -> Doc:
        """One folder of a project's plain files, every page joined: ``{"prefix", "folders",
        "objects"}`` (each object: Name, Key, Size, LastModified, ETag = its sha256)."""
        from brainlife.client.transfer import projectfiles

        return projectfiles.list_folder(self.http, self.token(), project_id, prefix)

    def download_project_files(
        self,
        project_id: str,
        path: str,
        directory: str | os.PathLike[str] = ".",
        *,
        jobs: int = 4,
        on_file: Callable[[str], None] | None = None,
    ) -> projectfiles.FilesResult:
        """Download a project file (``docs/a.pdf`` → ``directory/a.pdf``) or a folder (``docs/``:
        its files at their paths under ``directory``; ``""``: the whole tree), resumable, each
        file checked against its size and sha256; files already there and identical are kept."""
        from brainlife.client.transfer import projectfiles

        self.http.liveness.reset()
        return projectfiles.download(
            self.http, self.token(), project_id, path, Path(directory), jobs=jobs, on_file=on_file
        )

    def put_project_file(self, project_id: str, local: str | os.PathLike[str], remote: str) -> Doc:
        """Store a local file as the project file ``remote`` (project admins and members);
        returns its listing entry."""
        from brainlife.client.transfer import projectfiles

        return projectfiles.put(self.http, self.token(), project_id, Path(local), remote)

    def remove_project_file(self, project_id: str, remote: str) -> None:
        from brainlife.client.transfer import projectfiles

        projectfiles.remove(self.http, self.token(), project_id, remote)

    # -- tasks ----------------------------------------------------------------------------
    def tasks(
        self,
        find: Doc | None = None,
        *,
        select: str | None = None,
        sort: str | None = None,
        skip: int | None = None,
        limit: int | None = DEFAULT_LIMIT,
    ) -> list[Doc]:
        """``GET /api/amaretti/task`` (``{tasks}``, no count)."""
        route = _urls.TASKS
        params: dict[str, Any] = {
            "find": find or {},
            "select": select,
            "sort": sort,
            "skip": None if skip is None else str(skip),
            "limit": None if limit is None else str(limit),
        }
        return self._get_list(route, "tasks", params, token=self.token())

    # -- apps and resources ------------------------------------------------------------------
    def apps(
        self,
        filters: AppFilter | None = None,
        /,
        *,
        skip: int = 0,
        limit: int = DEFAULT_LIMIT,
        **fields: Any,
    ) -> list[Doc]:
        """``GET /api/warehouse/app`` as ``bl app query`` asks it: ``filters`` (an
        :class:`AppFilter`), or its fields as keywords (``apps(query="freesurfer")``). A
        datatype (name or id) starting with ``!`` excludes the apps taking (giving) it."""
        filters = filter_of(AppFilter, filters, fields)

        def resolved(names: Sequence[str]) -> list[tuple[str, bool]]:
            out = []
            for name in names:
                negated = name.startswith("!")
                datatype = self.resolve_datatype(name[1:] if negated else name)
                out.append((str(datatype["_id"]), negated))
            return out

        find = app_find(
            id=filters.id,
            query=filters.query,
            doi=filters.doi,
            inputs=resolved(filters.input_datatypes),
            outputs=resolved(filters.output_datatypes),
        )
        params = {"find": find, "sort": "name", "skip": str(skip), "limit": str(limit)}
        return self._get_list(_urls.APPS, "apps", params)

    def resolve_app(self, app: str) -> Doc:
        """The one app with this id, or whose name or description contains ``app``."""
        rows = self.apps(id=app) if is_object_id(app) else self.apps(query=app, limit=0)
        if not rows and not is_object_id(app):
            rows = [a for a in self.apps(limit=0) if a.get("github") == app]
        if not rows:
            raise NotFound(f"No app matches '{app}'. Try 'bl app query -q {app}'.")
        if len(rows) > 1:
            names = ", ".join(f"{a.get('name')} ({a.get('_id')})" for a in rows[:5])
            raise ApiError(f"Several apps match '{app}': {names}. Give the app's id.")
        return rows[0]

    def resources(
        self,
        *,
        id: str | None = None,
        query: str | None = None,
        status: str | None = None,
        service: str | None = None,
        skip: int = 0,
        limit: int = DEFAULT_LIMIT,
    ) -> list[Doc]:
        """``GET /api/amaretti/resource`` as ``bl resource query`` asks it (needs a login)."""
        params = {
            "find": resource_find(id=id, query=query, status=status, service=service),
            "sort": {"name": 1},
            "skip": str(skip),
            "limit": str(limit),
        }
        return self._get_list(_urls.RESOURCES, "resources", params, token=self.token())

    def create_instance(self, *, name: str, desc: str, group_id: int) -> Doc:
        """``POST /api/amaretti/instance``: where a task would run (a `bl serve` archive runs
        no apps and refuses it with a message saying so)."""
        body = {"name": name, "desc": desc, "config": {"brainlife": True}, "group_id": group_id}
        doc = self.http.request_json("POST", _urls.INSTANCES, json_body=body, token=self.token())
        if not isinstance(doc, dict):
            raise ProtocolError(f"The server's answer to {_urls.INSTANCES} is not a document.")
        return doc

    def wait_task(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        poll: float = 3.0,
        archive_poll: float = 5.0,
        on_status: Callable[[Doc], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[Doc]:
        """Wait, as ``bl app wait`` does, until the task has finished and each of its outputs
        to archive is a stored data object; return those objects. A failed task or a failed
        archive raises ApiError; ``timeout`` seconds without getting there raise GaveUp."""
        started = time.monotonic()

        def waited() -> None:
            if timeout is not None and time.monotonic() - started >= timeout:
                raise GaveUp(
                    f"Task {task_id} is not done after {timeout:g} s (it is {status}); "
                    "its outputs are not all archived yet."
                )

        while True:
            rows = self.tasks({"_id": task_id}, limit=1)
            if not rows:
                raise NotFound(f"No task {task_id} (or it is not yours to read).")
            task = rows[0]
            status = str(task.get("status"))
            if on_status is not None:
                on_status(task)
            if status in ("failed", "stopped", "removed"):
                msg = task.get("status_msg") or ""
                raise ApiError(f"Task {task_id} {status}: {msg}".rstrip(": "))
            if status == "finished":
                break
            waited()
            sleep(poll)
        outputs = (task.get("config") or {}).get("_outputs") or []
        expected = sum(1 for o in outputs if isinstance(o, dict) and o.get("archive"))
        if expected == 0:
            return []
        while True:
            objects = self.find_datasets({"prov.task_id": task_id}, limit=0).datasets
            if any(d.get("status") == "failed" for d in objects):
                raise ApiError(f"An output of task {task_id} failed to archive.")
            stored = [d for d in objects if d.get("status") == "stored"]
            if len(stored) >= expected:
                return stored
            status = f"finished, {len(stored)} of {expected} outputs archived"
            waited()
            sleep(archive_poll)

    def download_task_path(
        self,
        task_id: str,
        path: str,
        *,
        output: str | os.PathLike[str] | None = None,
        directory: str | os.PathLike[str] | None = None,
        extract: bool = False,
        progress: Progress | None = None,
        existing: str = "skip",
    ) -> DownloadResult:
        """Download a file or folder of a task. A folder comes as a .tar.gz: saved as is into
        ``output`` (or ``directory``/<server's file name>, made safe, never over another file
        unless ``existing="overwrite"``), or extracted into ``directory``."""
        from brainlife.client.transfer.single import Downloader

        self.http.liveness.reset()
        return Downloader(self.http, self.token()).task_path(
            task_id,
            path,
            output=Path(output) if output is not None else None,
            directory=Path(directory) if directory is not None else None,
            extract=extract,
            progress=progress,
            existing=existing,
        )

    def download_task_archive(
        self,
        task_id: str,
        path: str,
        output: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        existing: str = "skip",
    ) -> DownloadResult:
        """Save ``path`` of a task as is into ``output`` (a folder arrives as .tar.gz), resumable,
        and record it in ``bl-lock.json`` beside it; a rerun keeps an archive the server says is
        unchanged (304 to its ETag: the result's method is ``"present"``)."""
        from brainlife.client.transfer.single import Downloader
        from brainlife.client.transfer.taskarchives import download_task_archive

        self.http.liveness.reset()
        return download_task_archive(
            Downloader(self.http, self.token()),
            task_id,
            path,
            Path(output),
            server=self.base_url,
            progress=progress,
            existing=existing,
        )

    # -- bulk downloads -------------------------------------------------------------------
    def plan_download(
        self,
        *,
        root: str | os.PathLike[str] | None = None,
        layout: str | Layout | None = None,
        ids: Sequence[str] = (),
        lock: str | os.PathLike[str] | None = None,
        existing: str = "skip",
        jobs: int = 8,
        limit: int | None = None,
        on_event: EventHandler | None = None,
        **filters: Any,
    ) -> Plan:
        """What a bulk download would do: the matching data objects (``filters`` of
        :meth:`dataset_find`, and/or ``ids``; or exactly the set of a lockfile), their folders
        under ``root`` by ``layout`` (``id``, ``seed``, ``brainlife`` or a template such as
        ``{project}/{subject}/{id}``), their files, what is already on disk, and the problems
        that stop the run. ``root`` defaults to ``.`` (with ``lock``: the lockfile's folder).
        ``on_event`` gets ``planning`` events (``done``, ``total``: objects resolved, at most
        two a second). Nothing is written."""
        from brainlife.client.transfer.planning import plan_datasets

        return plan_datasets(
            self,
            root=Path(root) if root is not None else None,
            layout=layout,
            ids=ids,
            lock=Path(lock) if lock is not None else None,
            existing=existing,
            jobs=jobs,
            limit=limit,
            on_event=on_event,
            **filters,
        )

    def plan_task_download(
        self,
        tasks: Sequence[tuple[str, str]],
        path: str,
        *,
        root: str | os.PathLike[str] = ".",
        existing: str = "skip",
        jobs: int = 8,
        on_event: EventHandler | None = None,
    ) -> Plan:
        """The same ``path`` of several tasks (``(task_id, folder)`` pairs), file by file."""
        from brainlife.client.transfer.planning import plan_tasks

        return plan_tasks(
            self, tasks, path, root=Path(root), existing=existing, jobs=jobs, on_event=on_event
        )

    def plan_task_folders(
        self,
        tasks: Sequence[tuple[str, str]],
        path: str,
        *,
        root: str | os.PathLike[str] = ".",
        existing: str = "skip",
    ) -> Plan | None:
        """:meth:`plan_task_download`, or None when the server has no task manifest (then
        :meth:`download_tasks` with ``extract`` streams each folder's .tar.gz)."""
        from brainlife.client.transfer.tasks import plan_task_folders

        return plan_task_folders(self, tasks, path, Path(root), existing)

    def download_tasks(
        self,
        tasks: Sequence[tuple[str, str]],
        path: str,
        *,
        root: str | os.PathLike[str] = ".",
        extract: bool = False,
        existing: str = "skip",
        progress: ProgressFor | None = None,
        on_task: Callable[[str, str], None] | None = None,
        on_failed: Callable[[str, BrainlifeError], None] | None = None,
    ) -> TaskRun:
        """``path`` of several tasks (``(task_id, name)`` pairs, see :func:`name_tasks`) one
        after the other, past failed ones (see ``result.failed``): extracted into
        ``root``/<name>, or saved as ``root``/<name>.tar.gz."""
        from brainlife.client.transfer.tasks import download_tasks

        return download_tasks(
            self,
            tasks,
            path,
            Path(root),
            extract=extract,
            existing=existing,
            progress=progress,
            on_task=on_task,
            on_failed=on_failed,
        )

    def download(
        self,
        plan: Plan,
        *,
        jobs: int = 8,
        on_event: EventHandler | None = None,
        ignore_expiry: bool = False,
        attempts: int | None = None,
        backoff: float | None = None,
    ) -> BulkResult:
        """Run a plan: files in parallel over one connection pool, resumed and verified, identical
        content fetched once and hard-linked; ``bl-lock.json`` kept at the root. One failed object
        does not stop the others (see ``result.failed``). ``attempts`` and ``backoff`` replace
        the client's :class:`RetryPolicy` values for cut-off bodies in this run."""
        from brainlife.client.transfer.planning import run_plan

        policy = self.http.policy
        if attempts is not None:
            policy = replace(policy, attempts=attempts)
        if backoff is not None:
            policy = replace(policy, cut_backoff=backoff)
        return run_plan(
            self,
            plan,
            jobs=jobs,
            on_event=on_event,
            ignore_expiry=ignore_expiry,
            policy=policy,
        )

    # -- uploads --------------------------------------------------------------------------
    def plan_upload(
        self,
        *,
        project: str,
        datatype: str,
        files: dict[str, str | os.PathLike[str]] | None = None,
        folder: str | os.PathLike[str] | None = None,
        meta: Doc | None = None,
        subject: str | None = None,
        session: str | None = None,
        run: str | None = None,
        tags: Sequence[str] = (),
        datatype_tags: Sequence[str] = (),
        desc: str = "",
        on_bytes: Callable[[int], None] | None = None,
    ) -> UploadPlan:
        """Plan one data object's upload: the project and datatype resolved, ``files`` (datatype
        file id → local path) and/or the ``folder`` holding the datatype's file names matched
        against the datatype's file list and hashed (``on_bytes`` hears the bytes read; files of
        ``HASH_WHILE_SENDING`` bytes or more are hashed while they are sent instead). Raises
        :class:`UploadRefused` for files that do not fit, before a byte is sent. ``subject``,
        ``session`` and ``run`` go into ``meta`` (a run also adds the tag ``run-<run>``, as the
        official CLI does)."""
        from brainlife.client.transfer.upload import (
            HASH_WHILE_SENDING,
            UploadPlan,
            hash_sources,
            match_files,
        )

        proj = self.resolve_project(project)
        dtype = self.resolve_datatype(datatype)
        sources = match_files(dtype, files or {}, folder)
        merged: Doc = dict(meta or {})
        for key, value in (("subject", subject), ("session", session), ("run", run)):
            if value is not None:
                merged[key] = str(value)
        all_tags = list(dict.fromkeys([*tags, *([f"run-{run}"] if run is not None else [])]))
        plan = UploadPlan(
            project=str(proj["_id"]),
            datatype=str(dtype["_id"]),
            datatype_name=str(dtype.get("name") or dtype["_id"]),
            files=sources,
            meta=merged,
            tags=all_tags,
            datatype_tags=list(dict.fromkeys(datatype_tags)),
            desc=desc,
        )
        hash_sources(sources, self.upload_state(plan), on_bytes, defer_from=HASH_WHILE_SENDING)
        return plan

    def upload_state(self, plan: UploadPlan) -> Path:
        """The state file that lets ``plan``'s upload resume (see ``transfer.upload``)."""
        from brainlife.client.transfer.upload import state_dir

        return state_dir(self.config.token_path) / f"{plan.key(self.base_url)}.json"

    def upload(
        self,
        plan: UploadPlan,
        *,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> UploadResult:
        """Upload a planned data object, resuming an interrupted run of the same plan; the new
        object's document (``result.dataset``) once every file is stored, never a half object."""
        from brainlife.client.transfer.units import Meter
        from brainlife.client.transfer.upload import run_upload

        meter = Meter(progress, plan.size)
        return run_upload(
            self.http, self.token(), plan, meter, state=self.upload_state(plan), cancel=cancel
        )

    def plan_bulk_upload(
        self,
        root: str | os.PathLike[str],
        *,
        layout: str,
        project: str,
        datatype: str,
        tags: Sequence[str] = (),
        datatype_tags: Sequence[str] = (),
        meta: Doc | None = None,
        desc: str = "",
    ) -> BulkUpload:
        """Plan a tree of data objects (``transfer.bulkupload``): one per folder matching
        ``layout`` (``seed`` or a template such as ``{subject}/{session}``), each checked against
        the datatype and hashed, and those the project already holds marked ``existing``."""
        from brainlife.client.transfer.bulkupload import (
            BulkUpload,
            find_existing,
            layout_fields,
            plan_items,
            scan_tree,
        )

        base = Path(root)
        if not base.is_dir():
            raise UploadRefused(f"{base} is not a folder.")
        proj = self.resolve_project(project)
        dtype = self.resolve_datatype(datatype)
        found, unmatched = scan_tree(base, layout)
        if not found and not unmatched:
            template = layout_fields(layout)[0]
            depth = template.count("/") + 1
            raise UploadRefused(
                f"Nothing to upload: {base} has no folder {depth} level(s) down, where the "
                f"layout {template!r} puts each data object's files.",
                hint="layout",
            )
        bulk = BulkUpload(
            str(proj["_id"]), str(dtype["_id"]), str(dtype.get("name")), unmatched=unmatched
        )
        bulk.items = plan_items(
            found,
            bulk.project,
            dtype,
            tags=tags,
            datatype_tags=datatype_tags,
            meta=meta,
            desc=desc,
        )
        objects = self._all_objects(bulk.project, bulk.datatype)
        find_existing(self.http, self.token(), bulk.items, objects)
        return bulk

    def plan_bids_upload(
        self, root: str | os.PathLike[str], *, project: str, tags: Sequence[str] = ()
    ) -> BulkUpload:
        """Plan a BIDS tree's upload (``transfer.bids``): one object per image as brainlife's
        bids-walker maps them, checked against each datatype and hashed; objects the project
        already holds marked ``existing``; images that do not fit (or whose datatype this
        archive lacks) refused with why."""
        from brainlife.client.transfer.bids import walk_bids
        from brainlife.client.transfer.bulkupload import BulkUpload, BulkUploadItem, find_existing
        from brainlife.client.transfer.upload import UploadPlan, hash_sources, match_files

        base = Path(root)
        if not base.is_dir():
            raise UploadRefused(f"{base} is not a folder.")
        proj = self.resolve_project(project)
        bulk = BulkUpload(str(proj["_id"]), "", "bids")
        datatypes: dict[str, Doc | None] = {}
        found = walk_bids(base)
        if not found:
            raise UploadRefused(
                f"No BIDS image found in {base}: a BIDS tree holds sub-<label>/[ses-<label>/]"
                "anat|dwi|func|fmap/ folders of images, e.g. sub-01/anat/sub-01_T1w.nii.gz."
            )
        for obj in found:
            item = BulkUploadItem(base / obj.source, {"datatype": obj.datatype})
            bulk.items.append(item)
            if obj.refused:
                item.refused = obj.refused
                continue
            if obj.datatype not in datatypes:
                try:
                    datatypes[obj.datatype] = self.resolve_datatype(obj.datatype)
                except NotFound:
                    datatypes[obj.datatype] = None
            dtype = datatypes[obj.datatype]
            if dtype is None:
                item.refused = f"this archive has no datatype {obj.datatype}"
                continue
            try:
                item.plan = UploadPlan(
                    project=bulk.project,
                    datatype=str(dtype["_id"]),
                    datatype_name=obj.datatype,
                    files=match_files(dtype, obj.files),
                    meta=obj.meta,
                    tags=list(dict.fromkeys([*tags, *obj.tags])),
                    datatype_tags=obj.datatype_tags,
                    desc=obj.source,
                )
                hash_sources(item.plan.files)
            except UploadRefused as exc:
                item.refused, item.plan = str(exc), None
        for dtype in datatypes.values():
            if dtype is None:
                continue
            group = [i for i in bulk.items if i.plan and i.plan.datatype == dtype["_id"]]
            objects = self._all_objects(bulk.project, str(dtype["_id"]))
            find_existing(self.http, self.token(), group, objects)
        return bulk

    def _all_objects(self, project: str, datatype: str) -> list[Doc]:
        objects: list[Doc] = []
        find = {"project": project, "datatype": datatype, "removed": False}
        while True:
            page = self.find_datasets(
                find, skip=len(objects), limit=1000, select="meta status removed"
            )
            objects.extend(page.datasets)
            if len(page.datasets) < 1000:
                return objects

    def bulk_upload(
        self,
        bulk: BulkUpload,
        *,
        jobs: int = 4,
        on_event: Callable[[str, Doc], None] | None = None,
    ) -> Doc:
        """Upload what ``bulk`` still needs on ``jobs`` workers; the summary."""
        from brainlife.client.transfer.bulkupload import run_bulk_upload

        def one(plan: UploadPlan, cancel: threading.Event) -> Doc:
            return self.upload(plan, cancel=cancel).dataset

        self.http.ensure_pool_size(jobs)
        return run_bulk_upload(one, bulk, jobs=jobs, on_event=on_event or (lambda _k, _d: None))


def _project_body(**fields: Any) -> Doc:
    """The fields that were given (None: not sent); role lists as lists of sub strings."""
    body: Doc = {}
    for key, value in fields.items():
        if value is None:
            continue
        body[key] = [str(v) for v in value] if key in ("admins", "members", "guests") else value
    return body


def verify_download(root: str | os.PathLike[str], *, fast: bool = False) -> VerifyReport:
    """Check a downloaded tree offline against its ``bl-lock.json`` (a folder, or the lockfile)."""
    from brainlife.client.transfer.lockfile import LOCK_NAME, Lockfile, verify_tree

    path = Path(root)
    lock_path = path if path.is_file() else path / LOCK_NAME
    lock = Lockfile.load(lock_path)
    return verify_tree(lock.root, lock, fast=fast)
