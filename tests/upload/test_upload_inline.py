"""A small data object travels in one request (`transfer.upload._create`, `wire.uploads`),
against a real `bl serve`: no PUT and no finalize request, the bytes and manifest right, and an
answer lost on the way sent again without making a second object."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from brainlife.client import Client, ServerUnavailable
from brainlife.client._http import HttpClient
from brainlife.client.transfer import upload as upload_module
from brainlife.server.demo.world import TP_PROJECT
from brainlife.wire.uploads import UPLOAD_INLINE_MAX
from tests.conftest import LiveServer


def _plan(c: Client, f: Path, subject: str):  # type: ignore[no-untyped-def]
    return c.plan_upload(
        project=TP_PROJECT, datatype="neuro/anat/t1w", files={"t1": f}, subject=subject
    )


def _count(c: Client, token: str, subject: str) -> int:
    find = f'{{"meta.subject": "{subject}", "removed": false}}'
    doc = c.http.request_json(
        "GET", "/api/warehouse/dataset", params={"find": find, "limit": "0"}, token=token
    )
    return int(doc["count"])


class Recorder:
    """The client's transport, recording every request as (method, path): the requests are
    real, sent through the pool it wraps."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.made: list[tuple[str, str]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.made.append((method, urlsplit(url).path))
        return self.pool.request(method, url, **kwargs)

    def clear(self) -> None:
        self.pool.clear()


def _recorded(c: Client) -> Recorder:
    recorder = Recorder(c.http.pool)
    c.http.pool = recorder
    return recorder


def test_a_small_object_is_one_request(token: str, tmp_path: Path, server: LiveServer) -> None:
    f = tmp_path / "t1.nii.gz"
    f.write_bytes(b"one request " * 1000)
    with Client(server.url, token=token) as c:
        plan = _plan(c, f, "inline-1")
        recorder = _recorded(c)
        result = c.upload(plan)
        assert recorder.made == [("POST", "/api/warehouse/upload")]
        assert result.dataset["status"] == "stored" and result.sent == f.stat().st_size
        assert not c.upload_state(plan).exists()
        manifest = c.http.request_json(
            "GET", f"/api/warehouse/dataset/manifest/{result.dataset['_id']}", token=token
        )
    assert manifest["files"] == [
        {
            "path": "t1.nii.gz",
            "size": f.stat().st_size,
            "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
        }
    ]


def test_an_object_over_the_inline_bound_takes_the_long_path(
    token: str, tmp_path: Path, server: LiveServer
) -> None:
    f = tmp_path / "t1.nii.gz"
    f.write_bytes(b"x" * (UPLOAD_INLINE_MAX + 1))
    with Client(server.url, token=token) as c:
        plan = _plan(c, f, "inline-2")
        recorder = _recorded(c)
        result = c.upload(plan)
    assert [m for m, _p in recorder.made] == ["POST", "PUT", "POST"], recorder.made
    assert result.dataset["status"] == "stored"


def test_a_lost_answer_sent_again_makes_one_object(
    token: str, tmp_path: Path, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server makes the object, the answer never arrives (the client is told the server
    is unreachable): the client sends the request again with the same id and gets the same
    object."""
    f = tmp_path / "t1.nii.gz"
    f.write_bytes(b"lost answer " * 1000)
    real = HttpClient.request_json
    lost: list[str] = []

    def request_json(self: HttpClient, method: str, path: str, **kw: Any) -> Any:
        doc = real(self, method, path, **kw)
        if method == "POST" and path.endswith("/upload") and not lost:
            lost.append(doc["_id"])
            raise ServerUnavailable("the answer was lost")
        return doc

    monkeypatch.setattr(HttpClient, "request_json", request_json)
    with Client(server.url, token=token) as c:
        result = c.upload(_plan(c, f, "inline-3"))
        assert lost and result.dataset["_id"]
        assert _count(c, token, "inline-3") == 1


def test_a_file_changed_after_hashing_is_refused_before_sending(
    token: str, tmp_path: Path, server: LiveServer
) -> None:
    f = tmp_path / "t1.nii.gz"
    f.write_bytes(b"before " * 1000)
    with Client(server.url, token=token) as c:
        plan = _plan(c, f, "inline-4")
        f.write_bytes(b"after! " * 1000)
        with pytest.raises(upload_module.SourceChanged, match="changed after it was hashed"):
            c.upload(plan)
        assert _count(c, token, "inline-4") == 0
