"""The list parameters of a brainlife route as given in the query string: `find` (JSON),
`sort`, `select` (a mongoose projection, applied to the rendered documents), `skip` and
`limit`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from brainlife.server.errors import BadRequest
from brainlife.server.query import limits
from brainlife.wire import DEFAULT_LIMIT

#: The largest `limit` accepted (besides 0, "everything").
MAX_LIMIT = 100_000
#: The largest `skip` accepted (SQL's OFFSET is a 64-bit integer).
MAX_SKIP = 2**63 - 1


@dataclass(frozen=True)
class Projection:
    """A mongoose `select`: inclusion (`"name meta.subject"`) or exclusion (`"-config"`)."""

    include: bool
    paths: tuple[tuple[str, ...], ...]
    keep_id: bool = True

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        if self.include:
            out = _include(doc, _tree(self.paths))
            if self.keep_id and "_id" in doc:
                out = {"_id": doc["_id"], **out}
            return out
        out = dict(doc)
        for path in self.paths:
            _exclude(out, path)
        if not self.keep_id:
            out.pop("_id", None)
        return out


@dataclass(frozen=True)
class ListParams:
    find: dict[str, Any] = field(default_factory=dict)
    sort: tuple[tuple[str, int], ...] = ()
    select: Projection | None = None
    skip: int = 0
    #: None means "no limit" (`limit=0`)
    limit: int | None = DEFAULT_LIMIT


def parse_list_params(
    *,
    find: str | None = None,
    sort: str | None = None,
    select: str | None = None,
    skip: str | None = None,
    limit: str | None = None,
    default_sort: str | None = None,
) -> ListParams:
    """Parse the raw query-string values of a brainlife list route."""
    lim, skp = parse_limit_skip(limit, skip)
    return ListParams(
        find=parse_find(find),
        sort=parse_sort(sort if sort not in (None, "") else default_sort),
        select=parse_select(select),
        skip=skp,
        limit=lim or None,
    )


def parse_int(name: str, text: str | None, default: int, most: int = MAX_SKIP) -> int:
    if text is None or text.strip() == "":
        return default
    try:
        value = int(text.strip())
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {text[:40]!r}") from None
    if value < 0:
        raise BadRequest(f"{name} must not be negative, not {value}")
    if value > most:
        raise BadRequest(f"{name} must be at most {most}")
    return value


def parse_find(text: str | None) -> dict[str, Any]:
    if text is None or text.strip() in ("", "null"):
        return {}
    value = limits.loads("find", text)
    if not isinstance(value, dict):
        raise BadRequest(f"find must be a JSON object, not {type(value).__name__}")
    return value


def parse_sort(text: str | None) -> tuple[tuple[str, int], ...]:
    """`{"name": 1}` / `{"create_date": -1}` (JSON) or mongoose's `"-create_date name"`."""
    if text is None or not text.strip():
        return ()
    text = text.strip()
    if text.startswith("{"):
        spec = limits.loads("sort", text)
        if not isinstance(spec, dict):
            raise BadRequest("sort must be a JSON object or a list of field names")
        out = [(str(k), _direction(k, v)) for k, v in spec.items()]
    else:
        out = []
        for word in text.split():
            if word.startswith("-"):
                out.append((word[1:], -1))
            else:
                out.append((word.lstrip("+"), 1))
        for name, _ in out:
            limits.check_field("sort", name)
    if any(not name for name, _ in out):
        raise BadRequest(f"sort has an empty field name: {text[:100]!r}")
    if len(out) > limits.MAX_SORT_KEYS:
        raise BadRequest(f"sort has {len(out)} fields; at most {limits.MAX_SORT_KEYS} are allowed")
    return tuple(out)


def _direction(name: str, value: Any) -> int:
    if value in (1, -1) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.lower() in ("asc", "ascending", "1"):
        return 1
    if isinstance(value, str) and value.lower() in ("desc", "descending", "-1"):
        return -1
    raise BadRequest(f"sort direction of {name!r} must be 1 or -1, not {value!r}")


def parse_select(text: str | None) -> Projection | None:
    """A mongoose select string (`"name -_id"`), or a JSON object `{"name": 1}`."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    items: list[tuple[str, bool]] = []
    if text.startswith("{"):
        spec = limits.loads("select", text)
        if not isinstance(spec, dict):
            raise BadRequest("select must be a JSON object or a list of field names")
        items = [(str(k), bool(v)) for k, v in spec.items()]
    else:
        for word in text.replace(",", " ").split():
            if word.startswith("+"):
                continue  # "+field": un-hide a hidden field; nothing is hidden here
            items.append((word[1:], False) if word.startswith("-") else (word, True))
            limits.check_field("select", items[-1][0])
    keep_id = True
    paths_in, paths_out = [], []
    for name, inc in items:
        if not name or any(not part for part in name.split(".")):
            raise BadRequest(f"select has an invalid field name: {name!r}")
        if name == "_id":
            keep_id = inc
        elif inc:
            paths_in.append(tuple(name.split(".")))
        else:
            paths_out.append(tuple(name.split(".")))
    if paths_in and paths_out:
        raise BadRequest("select cannot mix included and excluded fields (except -_id)")
    if paths_in:
        return Projection(include=True, paths=tuple(paths_in), keep_id=keep_id)
    if paths_out or not keep_id:
        return Projection(include=False, paths=tuple(paths_out), keep_id=keep_id)
    return Projection(include=True, paths=(), keep_id=True)


def _tree(paths: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for part in path[:-1]:
            child = node.get(part)
            if child is True:
                break
            node = node.setdefault(part, {})
        else:
            node[path[-1]] = True
    return tree


def _include(value: Any, tree: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_include(v, tree) for v in value if isinstance(v, dict | list)]
    out = {}
    for key, sub in tree.items():
        if key not in value:
            continue
        if sub is True:
            out[key] = value[key]
        elif isinstance(value[key], dict | list):
            out[key] = _include(value[key], sub)
    return out


def _exclude(value: Any, path: tuple[str, ...]) -> None:
    if isinstance(value, list):
        for v in value:
            _exclude(v, path)
    elif isinstance(value, dict) and path[0] in value:
        if len(path) == 1:
            del value[path[0]]
        else:
            value[path[0]] = child = _copy(value[path[0]])
            _exclude(child, path[1:])


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def parse_limit_skip(limit: str | None, skip: str | None) -> tuple[int, int]:
    """`(limit, skip)` from raw parameters; limit defaults to 100 and 0 means everything."""
    lim = parse_int("limit", limit, DEFAULT_LIMIT)
    if lim > MAX_LIMIT:
        raise BadRequest(f"limit must be at most {MAX_LIMIT} (or 0 for everything), not {lim}")
    return lim, parse_int("skip", skip, 0, MAX_SKIP)
