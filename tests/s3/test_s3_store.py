"""`S3Store` against a real radosgw: the `ByteStore` contract (nothing of a wrong digest is
left, once per digest, multipart for large blobs, range reads, presigned URLs)."""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from brainlife.server.s3store import S3Store, StoreUnavailable, parse_store_url
from brainlife.server.store import ByteStore, DigestMismatch
from tests.s3 import radosgw
from tests.s3.radosgw import keys, pending_uploads, s3_client

s3_env, bucket = radosgw.s3_env, radosgw.bucket  # the fixtures

MIB = 1024 * 1024
PART = 5 * MIB  # S3's smallest part: the tests' blobs go multipart at ~10 MiB


def make_store(env: dict[str, str], name: str) -> S3Store:
    return S3Store(name, prefix="arch/", client=s3_client(env), part_size=PART)


def calls(store: S3Store) -> list[str]:
    """The S3 operations the store's client makes from now on."""
    seen: list[str] = []

    def record(model: Any, **_: Any) -> None:
        seen.append(model.name)

    store.client.meta.events.register("before-call.s3", record)
    return seen


def pieces(data: bytes, n: int = 700_000) -> list[bytes]:
    return [data[i : i + n] for i in range(0, len(data), n)]


def test_s3_store_is_a_byte_store(s3_env, bucket) -> None:
    store: ByteStore = make_store(s3_env, bucket)
    assert store.put_stream([b"ab", b"c"]) == (hashlib.sha256(b"abc").hexdigest(), 3)
    assert keys(s3_env, bucket) == ["arch/blobs/" + hashlib.sha256(b"abc").hexdigest()]


@pytest.mark.parametrize("size", [1000, 12 * MIB])
def test_wrong_digest_leaves_nothing_in_the_bucket(s3_env, bucket, size: int) -> None:
    store = make_store(s3_env, bucket)
    data = os.urandom(size)
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(DigestMismatch) as refused:
        store.put_stream(pieces(data), sha256=wrong)
    assert refused.value.size == size
    assert refused.value.got == hashlib.sha256(data).hexdigest()
    assert keys(s3_env, bucket) == []
    assert pending_uploads(s3_env, bucket) == []  # the multipart upload was aborted


def test_a_stream_that_fails_midway_leaves_nothing(s3_env, bucket) -> None:
    store = make_store(s3_env, bucket)

    def broken() -> Any:
        yield os.urandom(11 * MIB)
        raise OSError("the source went away")

    with pytest.raises(OSError, match="went away"):
        store.put_stream(broken(), sha256="0" * 64)
    with pytest.raises(OSError, match="went away"):
        store.put_stream(broken())
    assert keys(s3_env, bucket) == []
    assert pending_uploads(s3_env, bucket) == []


def test_large_blob_of_unknown_digest_is_multipart_and_named_by_its_digest(s3_env, bucket) -> None:
    store = make_store(s3_env, bucket)
    data = os.urandom(12 * MIB + 123)
    seen = calls(store)
    sha, size = store.put_stream(pieces(data))
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert seen.count("UploadPart") == 3 and "CompleteMultipartUpload" in seen
    assert keys(s3_env, bucket) == [f"arch/blobs/{sha}"]  # the temporary object is gone
    head = s3_client(s3_env).head_object(Bucket=bucket, Key=f"arch/blobs/{sha}")
    assert head["ContentLength"] == len(data)
    assert store.has(sha) and store.size(sha) == len(data)
    assert b"".join(store.read_range(sha, 0, size)) == data


def test_a_known_digest_goes_straight_to_its_name_and_only_once(s3_env, bucket) -> None:
    store = make_store(s3_env, bucket)
    data = os.urandom(11 * MIB)
    sha = hashlib.sha256(data).hexdigest()
    seen = calls(store)
    assert store.put_stream(pieces(data), sha256=sha) == (sha, len(data))
    assert "CopyObject" not in seen and "PutObject" not in seen
    assert keys(s3_env, bucket) == [f"arch/blobs/{sha}"]
    seen.clear()
    assert store.put_stream(pieces(data), sha256=sha) == (sha, len(data))
    assert not {"PutObject", "UploadPart", "CreateMultipartUpload"} & set(seen)  # only hashed
    other = make_store(s3_env, bucket)  # another process: asks the bucket once
    seen = calls(other)
    assert other.put_stream(pieces(data), sha256=sha) == (sha, len(data))
    assert seen == ["HeadObject"]
    with pytest.raises(DigestMismatch):  # held already, yet other bytes are still refused
        store.put_stream([b"not it"], sha256=sha)
    seen = calls(store)
    store.put_stream(pieces(data))  # unknown digest, already held: no second object
    assert keys(s3_env, bucket) == [f"arch/blobs/{sha}"]
    assert "CopyObject" not in seen


def test_read_range(s3_env, bucket) -> None:
    store = make_store(s3_env, bucket)
    data = os.urandom(3 * MIB + 7)
    sha, _ = store.put_stream([data])
    got = list(store.read_range(sha, 100, 2 * MIB + 5, chunk_size=64 * 1024))
    assert b"".join(got) == data[100 : 2 * MIB + 5]
    assert max(len(c) for c in got) <= 64 * 1024
    assert list(store.read_range(sha, 5, 5)) == []
    assert b"".join(store.read_range(sha, len(data) - 3, len(data))) == data[-3:]
    with pytest.raises(OSError):
        b"".join(store.read_range(sha, len(data) - 3, len(data) + 10))
    missing = hashlib.sha256(b"missing").hexdigest()
    assert not store.has(missing)
    with pytest.raises(FileNotFoundError):
        store.size(missing)
    with pytest.raises(FileNotFoundError):
        b"".join(store.read_range(missing, 0, 1))
    with pytest.raises(ValueError):
        store.has("../../etc/passwd")
    assert store.local_path(sha) is None


def test_presigned_url_names_the_file_and_expires(s3_env, bucket) -> None:
    store = make_store(s3_env, bucket)
    data = b"voxels " * 1000
    sha, _ = store.put_stream([data])
    url = store.presign(sha, filename="t1 träck.nii.gz", expires_in=60)
    assert url is not None and s3_env["AWS_SECRET_ACCESS_KEY"] not in url
    with urllib.request.urlopen(url) as resp:
        assert resp.read() == data
        disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''t1%20tr%C3%A4ck.nii.gz" in disposition
    ranged = urllib.request.Request(url, headers={"Range": "bytes=7-13"})
    with urllib.request.urlopen(ranged) as resp:
        assert resp.status == 206 and resp.read() == data[7:14]
    tampered = url.replace(sha, hashlib.sha256(b"other").hexdigest())
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered)
    assert refused.value.code == 403
    short = store.presign(sha, filename="x", expires_in=1)
    assert short is not None
    time.sleep(2.5)
    with pytest.raises(urllib.error.HTTPError) as expired:
        urllib.request.urlopen(short)
    assert expired.value.code == 403


def test_store_urls_and_unusable_buckets(s3_env, bucket) -> None:
    assert parse_store_url("s3://my-archive") == ("my-archive", "")
    assert parse_store_url("s3://my-archive/lab/a/") == ("my-archive", "lab/a/")
    for bad in ("my-archive", "s3://", "s3://ab", "file:///tmp/x", "s3://Bad_Name"):
        with pytest.raises(ValueError):
            parse_store_url(bad)
    store = make_store(s3_env, bucket)  # made when missing
    assert s3_client(s3_env).head_bucket(Bucket=bucket)
    assert store.bucket == bucket
    wrong = dict(s3_env, AWS_SECRET_ACCESS_KEY="not-the-secret")
    with pytest.raises(StoreUnavailable, match="credentials"):
        S3Store(bucket, client=s3_client(wrong))
    with pytest.raises(StoreUnavailable, match="reach"):
        S3Store(bucket, client=s3_client(s3_env, endpoint="http://127.0.0.1:9"))


def test_bl_serve_refuses_an_unusable_store_with_a_message(tmp_path, s3_env) -> None:
    from click.testing import CliRunner

    from brainlife.cli.main import cli

    runner = CliRunner()
    data = ["serve", "--data-dir", str(tmp_path / "data"), "--port", "0"]
    r = runner.invoke(cli, [*data, "--s3-endpoint", "http://127.0.0.1:9"])
    assert r.exit_code == 2 and "--s3-endpoint goes with --store" in r.output
    r = runner.invoke(cli, [*data, "--store", "bucket-without-scheme"])
    assert r.exit_code == 1 and "s3://BUCKET" in str(r.exception) + r.output
    r = runner.invoke(
        cli, [*data, "--store", "s3://bl-unreachable", "--s3-endpoint", "http://127.0.0.1:9"]
    )
    assert r.exit_code == 1 and "cannot reach the S3 endpoint" in str(r.exception) + r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_a_tar_of_many_small_blobs_reads_them_ahead_and_keeps_every_byte(s3_env, bucket) -> None:
    # A tar from the bucket: its small files are read whole, several at once, ahead of the
    # writer (one GET each); a large one streams in its place. Whole, ranged (starting and
    # ending inside files) and non-blocking, the bytes are those of the same tar made by
    # tarfile from the files' bytes; a tar cut short leaves no read running.
    import io
    import tarfile

    from brainlife.server import tarstream
    from brainlife.server.tarstream import TarLayout, TarMember

    store = make_store(s3_env, bucket)
    files = [(f"d/{i:02}.json", os.urandom(1 + i * 997)) for i in range(24)]
    files.insert(7, ("big.nii.gz", os.urandom(tarstream.AHEAD_MAX + 12_345)))
    files.insert(9, ("empty.txt", b""))
    members = []
    for path, data in files:
        sha, size = store.put_stream([data])
        members.append(TarMember(path, size, sha))
    layout = TarLayout(members, 1_500_000_000)
    got_calls = calls(store)
    whole = b"".join(layout.iter_bytes(store, chunk_size=64 * 1024))
    assert len(whole) == layout.size
    with tarfile.open(fileobj=io.BytesIO(whole)) as tar:
        assert [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()] == files  # type: ignore[union-attr]
    assert got_calls.count("GetObject") == len([d for _, d in files if d])  # one GET a file
    for start, end in [(700, layout.size), (5_000, 90_000), (layout.size - 2000, layout.size)]:
        part = b"".join(
            c for c in layout.iter_chunks(store, start, end, 64 * 1024, nonblocking=True) if c
        )
        assert part == whole[start:end]
    # the small files of a range are read ahead (a local store's never: `pread` needs no
    # thread); a tar cut short (the client went away) drops the reads not started
    ahead = tarstream._Ahead.for_range(store, layout.segments, 0, 0, layout.size)
    assert ahead is not None and len(ahead.todo) == len(files) - 2  # not the big, not the empty
    first = ahead.take(ahead.todo[0][0])
    assert first is not None and first.result() == files[0][1]
    started = list(ahead.running.values())
    assert len(started) == tarstream.AHEAD
    ahead.close()
    assert not ahead.running  # nothing left to take; a read already running ends on its own
    assert all(r.cancelled() or r.running() or r.done() for r in started)
    assert all(len(r.result()) > 0 for r in started if not r.cancelled())
