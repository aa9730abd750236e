"""A part fetched in pieces (``segments``) and what a later run makes of it when it continues
with one stream (our server sends the bytes itself, e.g. after the archive moved off S3): the
sidecar's ``ranges`` say which bytes are real, so only the complete prefix is trusted, the rest
is cut, and a sidecar whose ranges do not make sense discards the part."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from brainlife.client.transfer import files as _transfer
from brainlife.client.transfer import segments
from brainlife.client.transfer.segments import STREAMS, STREAMS_VARIABLE, streams_for
from tests.client.test_transfer import FakeHttp

PIECE = 1 << 20


def _part_in_pieces(target: Path, data: bytes, ranges: list[list[int]], extra: dict) -> None:
    """What a killed run in pieces leaves: the ranges written in place, holes of zeros."""
    part, side = _transfer.part_path(target), _transfer.sidecar_path(target)
    with open(part, "wb") as fh:
        for a, b in ranges:
            fh.seek(a)
            fh.write(data[a:b])
    doc = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "etag": ""}
    side.write_text(json.dumps({**doc, "ranges": ranges, **extra}))


def test_one_stream_continues_a_part_in_pieces_from_its_complete_prefix(
    tmp_path: Path,
) -> None:
    data = os.urandom(4 * PIECE + 123)
    target = tmp_path / "f.nii.gz"
    _part_in_pieces(target, data, [[0, PIECE], [2 * PIECE, 3 * PIECE]], {})
    http = FakeHttp(data)
    res = _transfer.fetch_file(  # type: ignore[arg-type]
        http, "t", "/f", target, size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    assert target.read_bytes() == data
    assert http.requests[0]["Range"] == f"bytes={PIECE}-"  # the prefix, not the part's length
    assert len(http.requests) == 1  # no corrupt file fetched again
    assert res.resumed == PIECE and res.transferred == len(data) - PIECE
    assert not _transfer.part_path(target).exists()
    assert not _transfer.sidecar_path(target).exists()


@pytest.mark.parametrize(
    "ranges",
    [
        [[0, 10**12]],  # past the end
        [[5, 3]],  # backwards
        [[0, "x"]],
        "0-100",
        [[0, True]],
    ],
)
def test_a_sidecar_whose_ranges_make_no_sense_discards_the_part(
    tmp_path: Path, ranges: object
) -> None:
    data = os.urandom(2 * PIECE)
    target = tmp_path / "f.nii.gz"
    _part_in_pieces(target, data, [[0, PIECE]], {})
    side = _transfer.sidecar_path(target)
    side.write_text(json.dumps({**json.loads(side.read_text()), "ranges": ranges}))
    http = FakeHttp(data)
    res = _transfer.fetch_file(  # type: ignore[arg-type]
        http, "t", "/f", target, size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    assert "Range" not in http.requests[0]
    assert res.resumed == 0
    assert target.read_bytes() == data


def test_holes_are_cut_into_pieces_in_file_order() -> None:
    p = segments.PIECE
    size = 3 * p + 10
    assert segments._holes([], size) == [(0, p), (p, 2 * p), (2 * p, 3 * p), (3 * p, size)]
    assert segments._holes([[0, p], [2 * p, 2 * p + 5]], size) == [
        (p, 2 * p),
        (2 * p + 5, 3 * p + 5),
        (3 * p + 5, size),
    ]
    assert segments._holes([[0, size]], size) == []
    assert segments.prefix_of([[0, 7], [9, 12]]) == 7
    assert segments.prefix_of([[3, 7]]) == 0
    assert segments.valid_ranges([[9, 12], [0, 7], [7, 9]], 12) == [[0, 12]]


@pytest.mark.parametrize(
    ("url", "streams"),
    [
        ("http://127.0.0.1:7480/bucket/ab?X-Amz-Signature=s", 1),
        ("http://127.8.9.10/bucket/ab", 1),
        ("http://[::1]:9000/bucket/ab", 1),
        ("http://localhost:9000/bucket/ab", 1),
        ("http://minio.localhost/bucket/ab", 1),
        ("https://s3.us-east-1.amazonaws.com/bucket/ab?X-Amz-Signature=s", STREAMS),
        ("http://10.0.0.5:7480/bucket/ab", STREAMS),
        ("http://[2001:db8::1]/bucket/ab", STREAMS),
        ("not a url at all", STREAMS),
    ],
)
def test_streams_for_a_store_on_this_machine_or_over_the_network(
    url: str, streams: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(STREAMS_VARIABLE, raising=False)
    assert streams_for(url) == streams


@pytest.mark.parametrize(
    ("given", "streams"), [("1", 1), ("6", 6), ("9999", 16), ("0", None), ("x", None)]
)
def test_the_variable_sets_the_streams_when_it_is_a_whole_number(
    given: str, streams: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1 or more is taken as given (1: never in pieces); anything else leaves the rule."""
    monkeypatch.setenv(STREAMS_VARIABLE, given)
    assert streams_for("http://127.0.0.1/b/k") == (streams or 1)
    assert streams_for("https://s3.example.org/b/k") == (streams or STREAMS)
