"""The Mongo ``find`` documents the official CLI sends, flag by flag (reference §4), built as plain
data so tests can pin them. One deliberate fix: ``-i`` and ``-q`` together are ANDed (the official
CLI ORs them into one ``$or``); each alone produces exactly the official document.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from brainlife.wire.tags import split_tags

__all__ = [
    "AppFilter",
    "DatasetFilter",
    "ReleaseFilter",
    "app_find",
    "dataset_find",
    "datatype_find",
    "escape_regex",
    "filter_of",
    "id_search_clauses",
    "in_list",
    "profile_matches",
    "project_find",
    "pub_find",
    "regex",
    "release_set",
    "resource_find",
    "sub_value",
]

_Filter = TypeVar("_Filter")
_SPECIAL = re.compile(r"[.*+?^${}()|\[\]\\]")


def escape_regex(text: str) -> str:
    """Escape regex metacharacters like the official CLI's ``escapeRegExp``."""
    return _SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def regex(text: str, *, escape: bool = True) -> dict[str, str]:
    return {"$regex": escape_regex(text) if escape else text, "$options": "ig"}


def id_search_clauses(
    id: str | None,
    query: str | None,
    *,
    fields: Sequence[str] = ("name", "desc"),
    escape: bool = True,
) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = []
    if id:
        clauses.append({"$or": [{"_id": id}]})
    if query:
        clauses.append({"$or": [{f: regex(query, escape=escape)} for f in fields]})
    return clauses


def in_list(values: Iterable[Any]) -> dict[str, list[Any]]:
    return {"$in": list(values)}


def sub_value(sub: Any) -> Any:
    """User ids are numbers in the auth service: send digit strings as numbers."""
    if isinstance(sub, str) and sub.isdigit():
        return int(sub)
    return sub


def profile_matches(profile: dict[str, Any], text: str) -> bool:
    """The official client-side user match: a case-insensitive substring of fullname, email or
    username."""
    needle = re.compile(escape_regex(text), re.I)
    return any(needle.search(str(profile.get(k) or "")) for k in ("fullname", "email", "username"))


def _with_and(base: dict[str, Any], clauses: list[dict[str, Any]]) -> dict[str, Any]:
    if clauses:
        base["$and"] = clauses
    return base


def project_find(
    *,
    id: str | None = None,
    query: str | None = None,
    admins: Sequence[str] | None = None,
    members: Sequence[str] | None = None,
    guests: Sequence[str] | None = None,
) -> dict[str, Any]:
    clauses: list[dict[str, Any]] = []
    if admins is not None:
        clauses.append({"admins": in_list(admins)})
    if members is not None:
        clauses.append({"members": in_list(members)})
    if guests is not None:
        clauses.append({"guests": in_list(guests)})
    clauses += id_search_clauses(id, query)
    return _with_and({"removed": False}, clauses)


def pub_find(
    *,
    id: str | None = None,
    query: str | None = None,
    authors: Sequence[str] | None = None,
    doi: str | None = None,
) -> dict[str, Any]:
    clauses: list[dict[str, Any]] = []
    if authors is not None:
        clauses.append({"authors": in_list(authors)})
    if doi:
        clauses.append({"doi": regex(doi)})
    clauses += id_search_clauses(id, query)
    return _with_and({"removed": False}, clauses)


def datatype_find(*, id: str | None = None, query: str | None = None) -> dict[str, Any]:
    return _with_and({}, id_search_clauses(id, query))


@dataclass(frozen=True)
class DatasetFilter:
    """Which data objects: the filters of ``bl data query``, one typed value that the CLI's
    commands hand over whole (``Client.query_datasets(DatasetFilter(project="P"))``; the same
    names as keywords work too). ``datatype`` and ``project`` are a name or an id (the client
    resolves them); ``tags`` and ``datatype_tags`` exclude with ``!tag``."""

    id: str | None = None
    query: str | None = None
    datatype: str | None = None
    datatype_tags: Sequence[str] = ()
    tags: Sequence[str] = ()
    project: str | None = None
    pub: str | None = None
    subject: str | None = None
    session: str | None = None
    run: str | None = None
    taskid: str | None = None

    def given(self) -> dict[str, Any]:
        """The filters set (not None, empty text or an empty list), by name."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: v for name, v in values.items() if v not in (None, "", (), [])}


def dataset_find(
    filters: DatasetFilter, *, datatype_id: str | None = None, project_id: str | None = None
) -> dict[str, Any]:
    """``bl data query``'s find, with ``filters``' datatype and project given as ids."""
    clauses: list[dict[str, Any]] = []
    if filters.pub:
        clauses.append({"publications": filters.pub})
    for field, values in (("tags", filters.tags), ("datatype_tags", filters.datatype_tags)):
        wanted, unwanted = split_tags(values)
        if wanted:
            clauses.append({field: {"$all": wanted}})
        if unwanted:
            clauses.append({field: {"$nin": unwanted}})
    if project_id:
        clauses.append({"project": project_id})
    if datatype_id:
        clauses.append({"datatype": datatype_id})
    for field, value in (
        ("meta.subject", filters.subject),
        ("meta.session", filters.session),
        ("meta.run", filters.run),
        ("prov.task_id", filters.taskid),
    ):
        if value:
            clauses.append({field: value})
    clauses += id_search_clauses(filters.id, filters.query)
    base: dict[str, Any] = {} if filters.pub else {"removed": False}
    return _with_and(base, clauses)


@dataclass(frozen=True)
class ReleaseFilter:
    """Which stored data objects of the publication's project a release freezes, as ``bl pub
    release`` takes them: ``datatype`` (a name or an id, resolved by the client; none: every
    datatype), ``datatype_tags`` and ``tags`` (``!tag`` excludes), and any of ``subjects``,
    ``sessions``, ``runs`` and ``ids``."""

    datatype: str | None = None
    datatype_tags: Sequence[str] = ()
    tags: Sequence[str] = ()
    subjects: Sequence[str] = ()
    sessions: Sequence[str] = ()
    runs: Sequence[str] = ()
    ids: Sequence[str] = ()


def filter_of(kind: type[_Filter], given: _Filter | None, fields: dict[str, Any]) -> _Filter:
    """A client method's filter, given whole (a ``kind``) or as keywords (its fields), not
    both; an unknown keyword is a ``TypeError``, as it was when the methods listed them."""
    if given is None:
        return kind(**fields)
    if fields:
        raise TypeError(f"Give the filters as a {kind.__name__} or as keywords, not both.")
    return given


def release_set(filters: ReleaseFilter, *, datatype_id: str | None = None) -> dict[str, Any]:
    """One set of a release, as ``bl pub release`` sends it: brainlife's set keys (``datatype``,
    ``datatype_tags``, ``tags`` with ``!`` negation, ``subjects``) and ``bl serve``'s (``sessions``,
    ``runs``, ``ids``) when given. Without a datatype the set takes every datatype."""
    out: dict[str, Any] = {
        "datatype_tags": list(filters.datatype_tags),
        "tags": list(filters.tags),
        "subjects": list(filters.subjects),
    }
    if datatype_id:
        out["datatype"] = datatype_id
    for key, values in (
        ("sessions", filters.sessions),
        ("runs", filters.runs),
        ("ids", filters.ids),
    ):
        if values:
            out[key] = list(values)
    return out


@dataclass(frozen=True)
class AppFilter:
    """Which apps, as ``bl app query`` takes them: an id, text of the name or description, a
    DOI, and datatypes (a name or an id, resolved by the client) the app takes or gives; one
    starting with ``!`` excludes the apps taking (giving) it."""

    id: str | None = None
    query: str | None = None
    doi: str | None = None
    input_datatypes: Sequence[str] = ()
    output_datatypes: Sequence[str] = ()


def app_find(
    *,
    id: str | None = None,
    query: str | None = None,
    doi: str | None = None,
    inputs: Sequence[tuple[str, bool]] = (),
    outputs: Sequence[tuple[str, bool]] = (),
) -> dict[str, Any]:
    """``bl app query``'s find (reference §4.6). ``inputs``/``outputs``: (datatype id,
    negated) pairs; a negated one (``!neuro/dwi``) excludes the apps taking (giving) it, which
    the official CLI means to send and never does (its datatype look-up fails on the ``!``)."""
    clauses: list[dict[str, Any]] = []
    if doi:
        clauses.append({"doi": doi})
    for key, pairs in (("inputs", inputs), ("outputs", outputs)):
        for datatype, negated in pairs:
            match = {"$elemMatch": {"datatype": datatype}}
            clauses.append({key: {"$not": match} if negated else match})
    clauses.extend(id_search_clauses(id, query))
    find: dict[str, Any] = {"removed": False}
    if clauses:
        find["$and"] = clauses
    return find


def resource_find(
    *,
    id: str | None = None,
    query: str | None = None,
    status: str | None = None,
    service: str | None = None,
) -> dict[str, Any]:
    """``bl resource query``'s find (reference §4.7)."""
    clauses: list[dict[str, Any]] = []
    if status:
        clauses.append({"status": status})
    if service:
        clauses.append({"config.services": {"$elemMatch": {"name": service}}})
    clauses.extend(id_search_clauses(id, query))
    return {"$and": clauses} if clauses else {}
