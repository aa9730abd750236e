"""`S3Store`: the content store in an S3-compatible bucket (`bl serve --store s3://BUCKET`).

Every blob is one object, `<prefix>blobs/<sha256>`, written once per digest. The guarantee of
the local store holds here too: an object never holds bytes other than its name says.

- A write whose digest the caller names (an upload's staged file) goes straight to its final
  key as a multipart upload; the upload is completed only when the bytes streamed through
  have that digest, else aborted: S3 shows no object until completion, so a wrong or cut-off
  stream leaves nothing behind. A digest already in the bucket is only hashed, not sent again.
- A write of unknown digest (ingest) goes to `<prefix>tmp/<random>` the same way, then is
  copied server-side under its name and the temporary object deleted (a crash in between
  leaves a `tmp/` object: a bucket lifecycle rule may expire them).
- Parts are `part_size` bytes (default 16 MiB, above S3's 5 MiB floor), one part in memory
  per write. A blob smaller than one part is hashed in memory and sent as one PUT under its
  name, without asking first (rewriting a key with the bytes it holds changes nothing; one
  request per blob: the demo's ~1000 files went from 129 s to a fraction of it).

Reads are ranged GETs (`read_range`), which is what the tar streamer needs. `presign` gives a
SigV4 URL of short life with the file name as `Content-Disposition`, so per-file downloads
are redirected to the bucket and the bytes never pass through us.

Credentials and endpoint come the way boto3 reads them (`AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, profiles, roles);
`endpoint_url` overrides. boto3 is in the `server` extra and imported only here.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from brainlife.server.disposition import content_disposition
from brainlife.server.store import CHUNK, DigestMismatch

#: bytes per multipart part (S3: at least 5 MiB except the last, at most 10,000 parts:
#: 16 MiB parts reach 156 GiB; larger writes grow the part size)
PART_SIZE = 16 * 1024 * 1024
MAX_PARTS = 10_000
#: digests whose size `S3Store` remembers (about 100 bytes each)
KNOWN_MAX = 100_000


class StoreUnavailable(RuntimeError):
    """The bucket cannot be used (no credentials, endpoint unreachable, access denied)."""


def parse_store_url(url: str) -> tuple[str, str]:
    """(bucket, key prefix) of `s3://BUCKET[/PREFIX]`; ValueError with a fix otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"--store must be s3://BUCKET[/PREFIX], got {url!r}")
    bucket = parts.netloc
    if not (3 <= len(bucket) <= 63) or not all(c.isalnum() or c in "-." for c in bucket):
        raise ValueError(
            f"{bucket!r} is not a valid bucket name (3-63 lowercase letters, digits, '-', '.')"
        )
    prefix = parts.path.strip("/")
    return bucket, (prefix + "/" if prefix else "")


def _check_digest(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 digest: {sha256!r}")
    return sha256


class S3Store:
    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        client: Any = None,
        part_size: int = PART_SIZE,
        create_bucket: bool = True,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        #: sizes of blobs this process wrote or saw, so a write's follow-up `has`/`size` asks
        #: nothing (blobs are never changed, and an S3 store never removes one)
        self._known: OrderedDict[str, int] = OrderedDict()
        # the request threads (and `bl admin migrate`'s copiers) share the store: a look-up
        # and an eviction must not interleave
        self._known_lock = threading.Lock()
        self.client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(
                signature_version="s3v4",
                retries={"max_attempts": 5, "mode": "standard"},
                max_pool_connections=32,
            ),
        )
        self._ensure_bucket(create_bucket)

    @classmethod
    def from_url(cls, url: str, *, endpoint_url: str | None = None) -> S3Store:
        bucket, prefix = parse_store_url(url)
        return cls(bucket, prefix=prefix, endpoint_url=endpoint_url)

    def _ensure_bucket(self, create: bool) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in ("404", "NoSuchBucket") or not create:
                raise StoreUnavailable(
                    f"cannot use bucket {self.bucket!r} ({code or exc}): check the credentials "
                    "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and the endpoint "
                    "(AWS_ENDPOINT_URL_S3 or --s3-endpoint)"
                ) from None
        except BotoCoreError as exc:
            raise StoreUnavailable(
                f"cannot reach the S3 endpoint for bucket {self.bucket!r}: {exc}"
            ) from None
        try:
            self.client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise StoreUnavailable(
                    f"bucket {self.bucket!r} does not exist and cannot be created ({code})"
                ) from None

    def key(self, sha256: str) -> str:
        return f"{self.prefix}blobs/{_check_digest(sha256)}"

    # -- writes ----------------------------------------------------------------------------

    def put_stream(self, chunks: Iterable[bytes], *, sha256: str | None = None) -> tuple[str, int]:
        stream = iter(chunks)
        first, digest, size = bytearray(), hashlib.sha256(), 0
        for chunk in stream:
            digest.update(chunk)
            size += len(chunk)
            first += chunk
            if len(first) >= self.part_size:
                break
        else:
            # a small blob, whole in memory: one PUT under its name (writing the same bytes
            # again to a key that has them changes nothing: cheaper than asking first)
            got = digest.hexdigest()
            if sha256 is not None and got != sha256:
                raise DigestMismatch(sha256, got, size)
            self.client.put_object(Bucket=self.bucket, Key=self.key(got), Body=bytes(first))
            return self._remember(got, size)
        rest = itertools.chain([bytes(first)], stream)
        del first
        if sha256 is not None and self.has(sha256):
            return self._hash_only(rest, sha256)
        key = (
            self.key(sha256) if sha256 is not None else f"{self.prefix}tmp/{secrets.token_hex(16)}"
        )
        got, size = self._upload(key, rest, sha256)
        if sha256 is not None:
            return self._remember(got, size)
        final = self.key(got)
        try:
            if not self.has(got):
                self.client.copy(
                    {"Bucket": self.bucket, "Key": key}, self.bucket, final
                )  # managed: multipart copy past 5 GiB
        finally:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        return self._remember(got, size)

    def _remember(self, sha256: str, size: int) -> tuple[str, int]:
        with self._known_lock:
            self._known[sha256] = size
            self._known.move_to_end(sha256)
            while len(self._known) > KNOWN_MAX:
                self._known.popitem(last=False)
        return sha256, size

    def _known_size(self, sha256: str) -> int | None:
        with self._known_lock:
            return self._known.get(sha256)

    def _hash_only(self, chunks: Iterable[bytes], sha256: str) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
        got = digest.hexdigest()
        if got != sha256:
            raise DigestMismatch(sha256, got, size)
        return got, size

    def _upload(self, key: str, chunks: Iterable[bytes], sha256: str | None) -> tuple[str, int]:
        """Stream `chunks` to `key`; the object appears only if the digest is `sha256` (when
        given). Returns (sha256, size)."""
        digest, size = hashlib.sha256(), 0
        buf = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        part_size = self.part_size
        try:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                buf += chunk
                while len(buf) >= part_size:
                    if upload_id is None:
                        upload_id = self.client.create_multipart_upload(
                            Bucket=self.bucket, Key=key
                        )["UploadId"]
                    parts.append(self._part(key, upload_id, len(parts) + 1, buf[:part_size]))
                    del buf[:part_size]
                    if len(parts) == MAX_PARTS // 2:
                        part_size *= 4  # keep far from the 10,000-part limit
            got = digest.hexdigest()
            if sha256 is not None and got != sha256:
                raise DigestMismatch(sha256, got, size)
            if upload_id is None:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(buf))
                return got, size
            if buf or not parts:
                parts.append(self._part(key, upload_id, len(parts) + 1, buf))
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            upload_id = None
            return got, size
        finally:
            if upload_id is not None:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def _part(self, key: str, upload_id: str, number: int, data: bytearray) -> dict[str, Any]:
        resp = self.client.upload_part(
            Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=bytes(data)
        )
        return {"PartNumber": number, "ETag": resp["ETag"]}

    # -- reads -----------------------------------------------------------------------------

    def _head(self, sha256: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
            return head
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey"):
                return None
            raise

    def has(self, sha256: str) -> bool:
        if self._known_size(sha256) is not None:
            return True
        head = self._head(sha256)
        if head is not None:
            self._remember(sha256, int(head["ContentLength"]))
        return head is not None

    def size(self, sha256: str) -> int:
        known = self._known_size(sha256)
        if known is not None:
            return known
        head = self._head(sha256)
        if head is None:
            raise FileNotFoundError(f"blob {sha256} is not in bucket {self.bucket}")
        return self._remember(sha256, int(head["ContentLength"]))[1]

    def read_range(
        self, sha256: str, start: int, end: int, *, chunk_size: int = CHUNK
    ) -> Iterator[bytes]:
        if end <= start:
            return
        from botocore.exceptions import ClientError

        try:
            resp = self.client.get_object(
                Bucket=self.bucket, Key=self.key(sha256), Range=f"bytes={start}-{end - 1}"
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey"):
                raise FileNotFoundError(f"blob {sha256} is not in bucket {self.bucket}") from None
            if code == "InvalidRange":
                raise OSError(f"blob {sha256} is shorter than its manifest says") from None
            raise
        body = resp["Body"]
        remaining = end - start
        try:
            for data in body.iter_chunks(chunk_size):
                if len(data) > remaining:
                    data = data[:remaining]
                remaining -= len(data)
                yield data
                if remaining == 0:
                    return
        finally:
            body.close()
        if remaining:
            raise OSError(f"blob {sha256} is shorter than its manifest says")

    def local_path(self, sha256: str) -> Path | None:
        return None

    def presign(self, sha256: str, *, filename: str, expires_in: int = 3600) -> str | None:
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.key(sha256),
                "ResponseContentDisposition": content_disposition(filename),
            },
            ExpiresIn=max(1, int(expires_in)),
        )
        return url
