"""`store.ByteStore`: the local store refuses bytes of another digest and leaves nothing, and
the download routes work through a store that has no local files (a minimal in-memory one)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from brainlife.server.services.ingest import verify_dataset
from brainlife.server.store import ByteStore, DigestMismatch, LocalStore
from brainlife.wire import routes
from tests.s3 import radosgw
from tests.server._bytes_factories import auth, make_dataset, make_project


class MemoryStore:
    """Blobs in a dict: no paths, no file descriptors."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.reads = 0

    def put_stream(self, chunks: Iterable[bytes], *, sha256: str | None = None) -> tuple[str, int]:
        data = b"".join(chunks)
        got = hashlib.sha256(data).hexdigest()
        if sha256 is not None and got != sha256:
            raise DigestMismatch(sha256, got, len(data))
        self.blobs[got] = data
        return got, len(data)

    def has(self, sha256: str) -> bool:
        return sha256 in self.blobs

    def size(self, sha256: str) -> int:
        return len(self.blobs[sha256])

    def read_range(
        self, sha256: str, start: int, end: int, *, chunk_size: int = 1 << 20
    ) -> Iterator[bytes]:
        data = self.blobs[sha256]
        if end > len(data):
            raise OSError(f"blob {sha256} is shorter than asked")
        for pos in range(start, end, chunk_size):
            self.reads += 1
            yield data[pos : min(pos + chunk_size, end)]

    def local_path(self, sha256: str) -> Path | None:
        return None

    def presign(self, sha256: str, *, filename: str, expires_in: int = 3600) -> str | None:
        return None


def test_memory_store_is_a_byte_store() -> None:
    store: ByteStore = MemoryStore()  # mypy checks the protocol; this checks it at run time too
    assert store.put_stream([b"ab", b"c"]) == (hashlib.sha256(b"abc").hexdigest(), 3)


def test_local_store_refuses_bytes_of_another_digest_and_leaves_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    wrong = hashlib.sha256(b"expected").hexdigest()
    with pytest.raises(DigestMismatch) as refused:
        store.put_stream(iter([b"other ", b"bytes"]), sha256=wrong)
    assert refused.value.size == len(b"other bytes")
    got = hashlib.sha256(b"other bytes").hexdigest()
    assert not store.has(got) and not store.has(wrong)
    assert list(store.tmp.iterdir()) == []
    assert [p for p in (tmp_path / "store").rglob("*") if p.is_file()] == []
    sha, size = store.put_stream([b"expected"], sha256=wrong)
    assert (sha, size) == (wrong, 8)
    assert b"".join(store.read_range(sha, 2, 6, chunk_size=3)) == b"pect"
    assert store.presign(sha, filename="x") is None


def test_routes_stream_from_a_store_without_local_files(archive, http) -> None:
    store = MemoryStore()
    archive.store = store
    files = [("a.bin", os.urandom(300_000)), ("dir/b.txt", b"hello\n"), ("empty", b"")]
    did = make_dataset(archive, make_project(archive), files)
    assert set(store.blobs) == {hashlib.sha256(data).hexdigest() for _, data in files}
    h = auth(archive)

    tar = http.get(routes.DATASET_DOWNLOAD.url(dataset_id=did), headers=h)
    assert tar.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(tar.content)) as t:
        got = {m.name: t.extractfile(m).read() for m in t.getmembers()}  # type: ignore[union-attr]
    assert got == dict(files)
    assert store.reads > 0

    part = http.get(
        routes.DATASET_DOWNLOAD.url(dataset_id=did), headers={**h, "Range": "bytes=1000-299999"}
    )
    assert part.status_code == 206
    assert part.content == tar.content[1000:300000]

    one = http.get(routes.DATASET_FILE.url(dataset_id=did, path="a.bin"), headers=h)
    assert one.status_code == 200 and one.content == files[0][1]
    tail = http.get(
        routes.DATASET_FILE.url(dataset_id=did, path="a.bin"), headers={**h, "Range": "bytes=-7"}
    )
    assert tail.status_code == 206 and tail.content == files[0][1][-7:]

    with archive.session() as session:
        report = verify_dataset(session, archive, did, rehash=True)
    assert report.ok


# --- the same routes over a real S3 bucket (radosgw, `tests/s3/radosgw.py`) ---------------------

s3_env, bucket = radosgw.s3_env, radosgw.bucket  # the fixtures


def test_routes_over_s3_build_tars_from_ranged_reads_and_redirect_files(
    archive, http, s3_env, bucket
) -> None:
    from brainlife.server.s3store import S3Store

    store = S3Store(bucket, client=radosgw.s3_client(s3_env), part_size=5 * 1024 * 1024)
    ranged: list[str] = []
    store.client.meta.events.register(
        "provide-client-params.s3.GetObject",
        lambda params, **_: ranged.append(params.get("Range", "")),
    )
    archive.store = store
    archive.settings.presign_seconds = 120
    files = [("a.bin", os.urandom(300_000)), ("dir/b ü.txt", b"hello\n"), ("empty", b"")]
    did = make_dataset(archive, make_project(archive), files)
    assert radosgw.keys(s3_env, bucket) == sorted(
        f"blobs/{hashlib.sha256(data).hexdigest()}" for _, data in files
    )
    h = auth(archive)

    tar = http.get(routes.DATASET_DOWNLOAD.url(dataset_id=did), headers=h)
    assert tar.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(tar.content)) as t:
        got = {m.name: t.extractfile(m).read() for m in t.getmembers()}  # type: ignore[union-attr]
    assert got == dict(files)
    assert ranged and all(r.startswith("bytes=") for r in ranged)
    part = http.get(
        routes.DATASET_DOWNLOAD.url(dataset_id=did), headers={**h, "Range": "bytes=1000-299999"}
    )
    assert part.status_code == 206 and part.content == tar.content[1000:300000]

    url = routes.DATASET_FILE.url(dataset_id=did, path="dir/b ü.txt")
    one = http.get(url, headers=h, follow_redirects=False)
    assert one.status_code == 307 and one.content == b""
    assert one.headers["Cache-Control"] == "no-store"
    location = one.headers["Location"]
    assert location.startswith(s3_env["AWS_ENDPOINT_URL_S3"] + f"/{bucket}/blobs/")
    assert "X-Amz-Expires=120" in location and "Bearer" not in location
    with urllib.request.urlopen(location) as resp:  # no token: the URL is the credential
        assert resp.read() == b"hello\n"
        assert "filename*=UTF-8''b%20%C3%BC.txt" in resp.headers["Content-Disposition"]
    big = http.get(
        routes.DATASET_FILE.url(dataset_id=did, path="a.bin"), headers=h, follow_redirects=False
    )
    tail = urllib.request.Request(big.headers["Location"], headers={"Range": "bytes=-7"})
    with urllib.request.urlopen(tail) as resp:
        assert resp.status == 206 and resp.read() == files[0][1][-7:]
    # HEAD and a current copy are still answered by us, without a URL
    head = http.head(url, headers=h)
    assert head.status_code == 200 and head.headers["Content-Length"] == "6"
    same = http.get(
        url,
        headers={**h, "If-None-Match": f'"{hashlib.sha256(b"hello").hexdigest()}"'},
        follow_redirects=False,
    )
    assert same.status_code == 307
    hello = hashlib.sha256(b"hello\n").hexdigest()
    current = http.get(url, headers={**h, "If-None-Match": f'"{hello}"'})
    assert current.status_code == 304
    # no access, no URL
    assert http.get(url, follow_redirects=False).status_code in (401, 403, 404)

    with archive.session() as session:
        report = verify_dataset(session, archive, did, rehash=True)
    assert report.ok
