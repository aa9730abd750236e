"""A large file from a presigned URL comes in pieces, over several connections (issue #11;
`client/transfer/segments.py`), and keeps every guarantee of the one-stream path: a kill keeps
the completed pieces (recorded in the part's sidecar) and the rerun fetches only the rest, a
corrupted byte is caught by the sha256 and the file fetched again, and a presigned URL that
expires mid-file is replaced by a fresh one. The real `bl` against `bl serve --store s3://…` on
radosgw, through the relay of test_s3_serve (which sees every request sent to the store)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from brainlife.client.transfer.segments import PIECE, SEGMENTED_MIN, STREAMS, STREAMS_VARIABLE
from tests.bulk._cli import bl_cmd, summary
from tests.s3 import radosgw
from tests.s3.test_s3_serve import World, s3_world, server_bytes_written, tagged_id

s3_env = radosgw.s3_env  # the fixture
#: four and a half pieces: more pieces than streams, and a short last one
SIZE = 4 * PIECE + PIECE // 2
assert SIZE >= SEGMENTED_MIN and SIZE > STREAMS * PIECE


@pytest.fixture(scope="module")
def world(s3_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    for w in s3_world(s3_env, tmp_path_factory.mktemp("s3pieces"), SIZE, "s3pieces"):
        # The store is on loopback here, where `bl` fetches in one stream by default
        # (`segments.streams_for`: a store on this machine shares its cores); a remote store
        # gets STREAMS connections. These tests are about the pieces: they ask for them.
        w.env[STREAMS_VARIABLE] = str(STREAMS)
        yield w


@pytest.fixture(scope="module")
def oid(world: World) -> str:
    return tagged_id(world, "s3pieces")


def sent_bytes(world: World) -> bytes:
    return (Path(world.env["HOME"]).parent / "upload" / "t1.nii.gz").read_bytes()


def download(world: World, oid: str, out: Path) -> list[str]:
    return [*bl_cmd("data", "download", "-i", oid, "-d", str(out), "--jobs", "1"), "--json"]


def run_download(world: World, oid: str, out: Path) -> subprocess.CompletedProcess[str]:
    """`bl data download` of the object into ``out``, to its end."""
    return subprocess.run(
        download(world, oid, out), env=world.env, capture_output=True, text=True, timeout=300
    )


def exchanges(world: World, n: int) -> tuple[list[str], list[int]]:
    """The store's requests since the ``n``-th, and its answers' statuses."""
    seen = world.relay.requests[n:]
    return seen, world.relay.answers[-len(seen) :]


def ranges_of(requests: list[str]) -> list[tuple[int, int]]:
    """The closed ranges (`bytes=a-b`, as [a, b + 1)) the requests asked the store for."""
    out = []
    for req in requests:
        m = re.search(r"range=bytes=(\d+)-(\d+)$", req)
        assert m, f"not a request for a piece: {req}"
        out.append((int(m.group(1)), int(m.group(2)) + 1))
    return out


def test_a_large_file_comes_in_pieces_over_several_connections(
    world: World, oid: str, tmp_path: Path
) -> None:
    n = len(world.relay.requests)
    written = server_bytes_written(world.server.process.pid)
    r = run_download(world, oid, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / oid / "t1.nii.gz").read_bytes() == sent_bytes(world)
    assert server_bytes_written(world.server.process.pid) - written < SIZE // 20
    asked = ranges_of(world.relay.requests[n:])
    # every byte asked for once (a URL that expired mid-run asks its piece again from where
    # it stopped: those overlap nothing already received)
    pieces = sorted({a for a, _ in asked if a % PIECE == 0})
    assert pieces == list(range(0, SIZE, PIECE))
    assert max(b for _, b in asked) == SIZE
    assert all(b - a <= PIECE for a, b in asked)
    assert summary(r.stdout)["bytes_transferred"] == SIZE
    assert not list((tmp_path / "out").rglob("*.bl-part*"))


def test_killed_download_keeps_its_pieces_and_fetches_only_the_rest(
    world: World, oid: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = download(world, oid, out)
    world.relay.cut_after(PIECE // 2, stall=60.0)  # one piece stalls until the kill
    proc = subprocess.Popen(args, env=world.env, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 120
    kept: list[list[int]] = []
    while sum(b - a for a, b in kept) < SIZE - PIECE:  # every piece but the stalled one
        assert proc.poll() is None, "the download ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
        for side in out.rglob("*.bl-part.json"):
            with contextlib.suppress(ValueError, OSError):  # read while it is replaced
                kept = json.loads(side.read_text()).get("ranges") or []
    proc.kill()
    proc.wait()
    assert not (out / oid / "t1.nii.gz").exists()
    n = len(world.relay.requests)
    again = subprocess.run(args, env=world.env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    asked = ranges_of(world.relay.requests[n:])
    assert asked
    for a, b in asked:  # only what the killed run had not recorded
        assert not any(a < end and start < b for start, end in kept), (asked, kept)
    s = summary(again.stdout)
    assert s["bytes_transferred"] <= SIZE - sum(b - a for a, b in kept)
    assert s["bytes_resumed"] == sum(b - a for a, b in kept)
    assert (out / oid / "t1.nii.gz").read_bytes() == sent_bytes(world)
    assert not list(out.rglob("*.bl-part*"))


def test_a_corrupted_byte_is_caught_and_the_file_fetched_again(
    world: World, oid: str, tmp_path: Path
) -> None:
    n = len(world.relay.requests)
    world.relay.corrupt_next(1)
    r = run_download(world, oid, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / oid / "t1.nii.gz").read_bytes() == sent_bytes(world)
    starts = [a for a, _ in ranges_of(world.relay.requests[n:])]
    assert starts.count(0) == 2  # the whole file again, from zero
    assert summary(r.stdout)["bytes_transferred"] >= 2 * SIZE


def test_a_file_corrupted_every_time_fails_and_leaves_nothing_looking_complete(
    world: World, oid: str, tmp_path: Path
) -> None:
    n = len(world.relay.requests)
    world.relay.corrupt_next(1000)
    try:
        r = run_download(world, oid, tmp_path / "out")
    finally:
        world.relay.corrupt_next(0)
    assert r.returncode != 0
    assert "arrived corrupt" in r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out" / oid / "t1.nii.gz").exists()
    starts = [a for a, _ in ranges_of(world.relay.requests[n:])]
    assert starts.count(0) == 2  # fetched in pieces, then once more from zero, then given up


def test_a_url_expiring_mid_file_is_replaced_for_every_connection(
    world: World, oid: str, tmp_path: Path
) -> None:
    n = len(world.relay.requests)
    world.relay.cut_after(PIECE // 4, stall=3.0)  # the 2 s URL expires while one piece stalls
    r = run_download(world, oid, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    seen, statuses = exchanges(world, n)
    refused = [req for req, st in zip(seen, statuses, strict=True) if st in (400, 403)]
    assert refused, (seen, statuses)
    sig = lambda req: re.search(r"X-Amz-Signature=(\w+)", req).group(1)  # type: ignore[union-attr]  # noqa: E731
    assert len({sig(req) for req in seen}) >= 2  # a fresh URL, asked of our server
    # the stalled piece continued where its bytes stopped, with the fresh URL
    resumed = [(a, b) for a, b in ranges_of(seen) if a % PIECE == PIECE // 4]
    assert resumed
    assert (tmp_path / "out" / oid / "t1.nii.gz").read_bytes() == sent_bytes(world)
    assert summary(r.stdout)["bytes_transferred"] == SIZE


def test_a_store_that_ignores_range_is_read_in_one_stream(
    world: World, oid: str, tmp_path: Path
) -> None:
    n = len(world.relay.requests)
    world.relay.ignore_range_next()  # the first piece's GET comes back whole (200)
    r = run_download(world, oid, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    seen, statuses = exchanges(world, n)
    assert 200 in statuses, (seen, statuses)
    assert re.search(r"range=bytes=\d+-\d+$", seen[0]), seen  # it was asked for a piece
    # then one stream: an open range from what the pieces had completed (or the whole file)
    assert re.search(r"range=(bytes=\d+-)?$", seen[-1]), seen
    assert (tmp_path / "out" / oid / "t1.nii.gz").read_bytes() == sent_bytes(world)
    assert not list((tmp_path / "out").rglob("*.bl-part*"))


def test_a_store_on_this_machine_is_read_in_one_stream_by_default(
    world: World, oid: str, tmp_path: Path
) -> None:
    """Without the variable, the presigned URL's loopback host makes one GET of the whole file
    (`segments.streams_for`), and the file arrives whole and verified all the same."""
    env = {k: v for k, v in world.env.items() if k != STREAMS_VARIABLE}
    n = len(world.relay.requests)
    r = subprocess.run(
        download(world, oid, tmp_path / "out"), env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / oid / "t1.nii.gz").read_bytes() == sent_bytes(world)
    seen = world.relay.requests[n:]
    assert len(seen) == 1 and re.search(r"range=(bytes=0-)?$", seen[0]), seen
