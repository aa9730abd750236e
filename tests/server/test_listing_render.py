"""The listing's rendering shortcuts (issue #11) produce what the plain path produced:

- `db.json_loads` (the JSON columns' decoder) returns what `json.loads` returns, and refuses
  what it refuses;
- `wire.format_date` without strftime gives strftime's text;
- `GET /api/warehouse/dataset` answers, byte for byte, the body built the plain way: ORM
  objects read by an engine with SQLAlchemy's default JSON decoding, each document built here
  (`_reference_doc`, independent of `documents`: the page is read as plain rows and rendered
  from one tuple) with its arrays from the object's relationships, dates through strftime, the
  envelope through `json.dumps` as `JSONResponse` calls it. Every field is exercised (tags,
  datatype_tags, publications, meta merged with the promoted columns, prov, removed, extra
  keys colliding with modelled ones, optional fields set and unset) through each of the page's
  statements (the general one, a release's, a tag range's, ids first past skipped rows); the
  release route (`/pub/datasets/:id`) too. On both engines (the PostgreSQL pass
  of scripts/test runs this module too).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from brainlife.server import documents
from brainlife.server.db import json_loads
from brainlife.server.models import Dataset
from brainlife.server.services import datasets
from brainlife.wire import format_date
from tests.server import factories as f

ALICE = 1

TEXTS = [
    "{}",
    "[]",
    '{"a": 1, "b": [1, 2.5, -3e-07, 1e+300, true, false, null]}',
    '{"subject":"0008","session":"1"}',
    '{"é": "ünïcødé ☃", "esc": "\\u00e9\\ud83d\\ude00\\n\\t\\"", "lone": "\\ud800"}',
    '{"big": 123456789012345678901234567890, "neg": -0, "f": 0.1}',
    '{"nested": {"x": {"y": {"z": [[], {}, [{}]]}}}}',
    '"a string"',
    "12",
    "null",
    "NaN",
    "[Infinity, -Infinity]",
    ' {"space": "before"}',
    '{"space": "after"} ',
    "\n[1]\n",
    "\ufeff{}",
    "{} {}",
    '{"a": 1,}',
    "",
    "   ",
    "{",
    '{"a": tru}',
    "[1, 2",
]


def _outcome(fn: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", repr(fn(value))
    except (ValueError, UnicodeDecodeError) as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("text", TEXTS)
def test_json_loads_is_json_loads(text: str) -> None:
    assert _outcome(json_loads, text) == _outcome(json.loads, text)
    raw = text.encode("utf-8", "surrogatepass")
    assert _outcome(json_loads, raw) == _outcome(json.loads, raw)


def test_json_loads_on_invalid_utf8_fails_as_json_loads() -> None:
    raw = b'{"a": "\xff"}'
    assert _outcome(json_loads, raw)[0] == _outcome(json.loads, raw)[0] == "UnicodeDecodeError"


def _strftime_date(value: datetime | None) -> str | None:
    """`wire.format_date` as it was: through strftime."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def test_format_date_is_strftime_text() -> None:
    rng = random.Random(11)
    zones = [None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))]
    dates = [
        datetime(1, 1, 1, 12, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1000, 1, 1),
        datetime(2024, 2, 29, 0, 0, 0, 999),
        datetime(9999, 12, 31, 23, 59, 59, 999999),
    ]
    for _ in range(5000):
        dates.append(
            datetime(
                rng.randint(2, 9998),
                rng.randint(1, 12),
                rng.randint(1, 28),
                rng.randint(0, 23),
                rng.randint(0, 59),
                rng.randint(0, 59),
                rng.randint(0, 999_999),
                tzinfo=rng.choice(zones),
            )
        )
    for value in dates:
        assert format_date(value) == _strftime_date(value), value
    assert format_date(None) is None


@pytest.fixture
def varied(archive) -> dict[str, Any]:
    """Objects with every optional field set and unset, JSON of every kind, extra keys that
    collide with modelled ones, several dates and time zones, arrays of several lengths."""
    rng = random.Random(7)
    with archive.session() as s:
        mine = f.project(s, name="Mine", access="private", members=[ALICE], group_id=851)
        public = f.project(s, name="Public", access="public", admins=[2], group_id=900)
        hidden = f.project(s, name="Hidden", access="private", admins=[2], group_id=901)
        t1w = f.datatype(s, name="neuro/anat/t1w")
        dwi = f.datatype(s, name="neuro/dwi")
        pub = f.publication(s, hidden, name="Pub", releases=["1", "2"], authors=["2"])
        releases = [r.id for r in pub.releases]
        metas: list[dict[str, Any]] = [
            {},
            {"subject": "0001"},
            {"subject": "0002", "session": "1", "run": "3"},
            {"subject": 12, "session": 1.5, "note": "ünïcødé ☃ \u2028", "deep": {"a": [1, {}]}},
            {"session": "pre", "floats": [0.1, 1e-07, 1e300, -0.0], "big": 2**70},
        ]
        provs: list[dict[str, Any] | None] = [
            None,
            {"task_id": "5c0000000000000000000001"},
            {"task": {"_id": "5a497a00cc3e4ffedce6b522", "config": {"x": [1, 2, None]}}},
        ]
        extras: list[dict[str, Any]] = [
            {},
            {"download_count": 3},
            {"storage_config": {"path": "a/b"}, "archive_task_id": "t1", "desc": "not this one"},
            {"product": {"brainmask": True}, "tags": ["ignored"], "status": "ignored"},
        ]
        for i in range(90):
            project = (mine, public, hidden)[i % 3]
            row = f.dataset(
                s,
                project,
                t1w if i % 4 else dwi,
                meta=metas[i % len(metas)],
                tags=[f"t{j}" for j in range(i % 4)],
                datatype_tags=["acpc", "masked"][: i % 3],
                publications=releases[: i % 3] if project is hidden else [],
                status=("stored", "storing", "failed")[i % 3],
                removed=i % 11 == 0,
                size=None if i % 13 == 0 else rng.randint(0, 2**40),
                desc=f"object {i} ✓" if i % 2 else "",
                prov=provs[i % len(provs)],
                days=rng.randint(0, 4000),
                user_id=str(1 + i % 5),
            )
            row.extra = extras[i % len(extras)]
            if i % 5 == 1:
                row.status_msg = f"message {i}"
            if i % 4 == 2:
                zone = timezone(timedelta(hours=(i % 9) - 4))
                micros = 123456 * (i % 8)
                row.update_date = datetime(2020, 1 + i % 12, 1 + i % 28, i % 24, 7, 9, micros, zone)
            if i % 7 == 3:
                row.create_date = datetime(2019, 5, 6, 7, 8, 9, 999999, tzinfo=UTC)
        s.commit()
    return {"mine": mine.id, "public": public.id, "t1w": t1w.id, "release": releases[0]}


@pytest.fixture
def alice(archive) -> dict[str, str]:
    claims = {"sub": ALICE, "gids": [851, 0], "scopes": {}, "profile": {"username": "alice"}}
    return {"Authorization": "Bearer " + archive.signer.sign(claims, 60_000)}


def _reference_doc(row: Dataset) -> dict[str, Any]:
    """A data object's document as brainlife serves it (brainlife-server.md §1, §3.1), built
    the plain way from an ORM object: modelled fields in brainlife's order, `meta` with the
    promoted subject/session/run added when it lacks them, optional fields only when set,
    then the keys of `extra` that no modelled field holds."""
    meta = dict(row.meta or {})
    for key in ("subject", "session", "run"):
        if getattr(row, key) is not None:
            meta.setdefault(key, getattr(row, key))
    doc: dict[str, Any] = {
        "_id": row.id,
        "user_id": row.user_id,
        "project": row.project_id,
        "datatype": row.datatype_id,
        "datatype_tags": [t.tag for t in sorted(row.datatype_tags, key=lambda t: t.pos)],
        "tags": [t.tag for t in sorted(row.tags, key=lambda t: t.pos)],
        "meta": meta,
        "desc": row.desc,
    }
    if row.storage is not None:
        doc["storage"] = row.storage
    doc.update(status=row.status, removed=row.removed, size=row.size)
    doc["publications"] = [p.release_id for p in sorted(row.publications, key=lambda p: p.pos)]
    doc.update(create_date=_strftime_date(row.create_date), __v=0)
    if row.status_msg is not None:
        doc["status_msg"] = row.status_msg
    if row.update_date is not None:
        doc["update_date"] = _strftime_date(row.update_date)
    if row.prov is not None:
        doc["prov"] = row.prov
    for key, value in (row.extra or {}).items():
        if key not in doc:
            doc[key] = value
    return doc


def _previous_body(archive: Any, ids: list[str], count: int, size: int | None) -> bytes:
    """The page as the plain path renders it: these objects through an engine of its own
    (SQLAlchemy's default JSON decoding), `_reference_doc`, the envelope (`size` when given)."""
    engine = create_engine(archive.engine.url)
    try:
        with Session(engine) as s:
            rows = {r.id: r for r in s.scalars(select(Dataset).where(Dataset.id.in_(ids)))}
            docs = [_reference_doc(rows[i]) for i in ids]
            page: dict[str, Any] = {"datasets": docs, "count": count}
            if size is not None:
                page["size"] = size
    finally:
        engine.dispose()
    return json.dumps(
        page, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def _pages(http: Any, varied: dict[str, Any], alice: dict[str, str]) -> list[Any]:
    """The listing's answers for finds that take each of its page statements, at three
    (skip, limit)s."""
    finds: list[dict[str, Any]] = [
        {},
        {"removed": False},
        {"project": varied["mine"]},
        {"project": varied["public"], "datatype": varied["t1w"]},
        {"publications": varied["release"]},
        {"publications": varied["release"], "datatype": varied["t1w"]},
        {"tags": {"$all": ["t1"]}, "removed": False},
        # one range of the tag index (PostgreSQL: `dataset_plans.tag_page`)
        {"project": varied["mine"], "removed": False, "datatype": varied["t1w"], "tags": "t1"},
        {"meta.subject": "0002"},
        {"_id": {"$in": []}},
    ]
    answers = []
    for find in finds:
        for skip, limit in ((0, 100), (0, 7), (5, 7)):
            r = http.get(
                "/api/warehouse/dataset",
                params={"find": json.dumps(find), "skip": str(skip), "limit": str(limit)},
                headers=alice,
            )
            assert r.status_code == 200, r.text
            answers.append(r)
    return answers


@pytest.mark.parametrize("one_query", [1000, 3])
def test_the_listing_body_is_the_previous_paths(
    http, archive, varied, alice, monkeypatch: pytest.MonkeyPatch, one_query: int
) -> None:
    """(With pages over `one_query` objects, their arrays are read in three statements.)"""
    monkeypatch.setattr(datasets, "_ONE_QUERY", one_query)
    pages = 0
    for r in _pages(http, varied, alice):
        body = r.json()
        ids = [d["_id"] for d in body["datasets"]]
        pages += bool(ids)
        assert r.content == _previous_body(archive, ids, body["count"], body["size"]), r.url
    assert pages >= 25  # the finds match objects: the comparison is not of empty pages


def test_the_release_route_body_is_the_previous_paths(http, archive, varied) -> None:
    """`/pub/datasets/:id` (its own listing: anyone may read a release) renders the same
    documents."""
    for skip, limit in ((0, 100), (1, 2)):
        r = http.get(
            f"/api/warehouse/pub/datasets/{varied['release']}",
            params={"skip": str(skip), "limit": str(limit)},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        ids = [d["_id"] for d in body["datasets"]]
        assert ids
        # (this route's body goes through FastAPI's encoder, which spells some numbers its own
        # way: `1e-7`; compared as JSON read back, values and key order)
        previous = json.loads(_previous_body(archive, ids, body["count"], None))
        assert json.dumps(body) == json.dumps(previous)


def test_a_changed_document_fails_the_comparison(
    http, archive, varied, alice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comparison sees a document's change, even of key order only: `tags` moved after
    `meta` fails it."""
    render = documents.dataset_values_doc

    def moved(*args: Any) -> dict[str, Any]:
        doc = render(*args)
        tags = doc.pop("tags")
        out: dict[str, Any] = {}
        for key, value in doc.items():
            out[key] = value
            if key == "meta":
                out["tags"] = tags
        return out

    monkeypatch.setattr(documents, "dataset_values_doc", moved)
    r = _pages(http, varied, alice)[0]
    body = r.json()
    ids = [d["_id"] for d in body["datasets"]]
    assert ids
    assert r.json() == json.loads(_previous_body(archive, ids, body["count"], body["size"]))
    assert r.content != _previous_body(archive, ids, body["count"], body["size"])
