"""The fields of a data object a client may set (`desc`, `tags`, `datatype_tags`, `meta`),
checked and normalised in one place for every write route (uploads, `PUT /dataset/:id`).

Bounds: `desc` 10,000 characters; at most 100 tags and 100 datatype tags of 1-256 characters
each (duplicates dropped, order kept: they are association rows keyed by value); `meta` an
object of at most 64 KiB as JSON. brainlife stores `subject`, `session` and `run` as strings
(a numeric one is turned into a string, as its post-validate hook does); they are our indexed
columns, so they are at most 128 characters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from brainlife.server.errors import BadRequest

MAX_DESC = 10_000
MAX_TAGS = 100
MAX_TAG = 256
MAX_META_BYTES = 64 * 1024
MAX_META_KEY = 128
PROMOTED = ("subject", "session", "run")


@dataclass(frozen=True)
class ObjectFields:
    desc: str
    tags: list[str]
    datatype_tags: list[str]
    meta: dict[str, Any]


def clean_desc(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest("desc must be a string.")
    if len(value) > MAX_DESC:
        raise BadRequest(f"desc is longer than {MAX_DESC} characters.")
    return value


def clean_tags(value: Any, field: str) -> list[str]:
    """A list of distinct non-empty strings (order kept)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{field} must be a list of strings.")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item:
            raise BadRequest(f"{field} must hold non-empty strings; got {item!r}.")
        if len(item) > MAX_TAG:
            raise BadRequest(f"A {field} entry is longer than {MAX_TAG} characters.")
        if item not in out:
            out.append(item)
    if len(out) > MAX_TAGS:
        raise BadRequest(f"{field} holds more than {MAX_TAGS} entries.")
    return out


def clean_meta(value: Any) -> dict[str, Any]:
    """A metadata object; `subject`/`session`/`run` as strings (an empty one is dropped)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("meta must be a JSON object.")
    if len(json.dumps(value)) > MAX_META_BYTES:
        raise BadRequest(f"meta is larger than {MAX_META_BYTES} bytes as JSON.")
    meta = dict(value)
    for key in meta:
        if not key or len(key) > MAX_META_KEY or key.startswith("$") or "." in key:
            raise BadRequest(
                f"meta key {key[:40]!r} is not allowed: keys are 1-{MAX_META_KEY} characters, "
                "without '.' and not starting with '$'."
            )
    for key in PROMOTED:
        if key not in meta:
            continue
        item = meta[key]
        if item is None or item == "":
            del meta[key]
            continue
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise BadRequest(f"meta.{key} must be a string (or a number).")
        text = str(item)
        if len(text) > 128:
            raise BadRequest(f"meta.{key} is longer than 128 characters.")
        meta[key] = text
    return meta
