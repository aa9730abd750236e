"""`responses.JSONDocument` renders what Starlette's `JSONResponse` rendered, faster (orjson),
and falls back to the standard library for what orjson refuses."""

from __future__ import annotations

import json
import math
import random
import struct

from starlette.responses import JSONResponse

from brainlife.server.responses import JSONDocument


def stdlib(content) -> bytes:
    return JSONResponse(content).body


def test_a_document_renders_to_the_same_bytes() -> None:
    doc = {
        "datasets": [
            {
                "_id": "5a497a0086dc283cf0480ff9",
                "desc": 'T1 for sub-0001 — ünïcode, "quotes", back\\slash, tab\t, newline\n',
                "meta": {"subject": "0001", "age": 31, "weight": 70.5, "ok": True, "x": None},
                "tags": ["a", "b"],
                "size": 2**40,
                "emoji": "🧠",
                "control": "\u0001\u001f",
            }
        ],
        "count": 1,
    }
    assert JSONDocument(doc).body == stdlib(doc)


def test_a_float_reads_back_as_the_same_double_whatever_its_spelling() -> None:
    rng = random.Random(11)
    values = [0.1, 1e-07, 2.5e-05, 1e16, 1e22, 5e-324, 1.7976931348623157e308, -0.0]
    for _ in range(20_000):
        bits = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        values.append(bits if math.isfinite(bits) else 1.0)
        values.append(rng.random() * 10 ** rng.randint(-30, 30))
    body = JSONDocument(values).body
    assert json.loads(body) == values
    assert [math.copysign(1, v) for v in json.loads(body)] == [math.copysign(1, v) for v in values]


def test_what_orjson_refuses_falls_back_to_the_standard_library() -> None:
    big = {"n": 2**70}  # beyond 64 bits
    assert JSONDocument(big).body == stdlib(big)
    keys = {1: "one"}  # a key that is not a string
    assert json.loads(JSONDocument(keys).body) == {"1": "one"}


def test_the_routes_answer_with_json_documents(http, monkeypatch) -> None:
    """The app's default response class (a route returning a dict) and the listing's own."""
    rendered: list[object] = []
    real = JSONDocument.render

    def render(self, content):
        rendered.append(content)
        return real(self, content)

    monkeypatch.setattr(JSONDocument, "render", render)
    r = http.get("/api/warehouse/health")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert rendered == [r.json()]
    r = http.get("/api/warehouse/datatype?limit=1")
    assert r.status_code == 200 and rendered[-1] == r.json()
