"""The real S3 server of the tests: Ceph's radosgw started by `scripts/s3-start` (never a mock).

It runs from one folder per machine user (`BL_TEST_S3_DIR`, default `/tmp/bl-test-s3-<uid>`)
and is left running after the tests: `s3-start` is idempotent and locked, so every pytest
worker (and the next run) only reads its environment lines (~0.1 s), and the first one starts
it (~2-6 s, plus installing the Debian packages once). Each test gets its own bucket."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
S3_DIR = Path(os.environ.get("BL_TEST_S3_DIR") or f"/tmp/bl-test-s3-{os.getuid()}")


def start_radosgw() -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "s3-start"), str(S3_DIR)],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        timeout=900,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture(scope="session")
def s3_env() -> dict[str, str]:
    """AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3."""
    env = start_radosgw()
    return {k: v for k, v in env.items() if k.startswith("AWS_")}


def s3_client(env: dict[str, str], endpoint: str | None = None) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint or env["AWS_ENDPOINT_URL_S3"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
        config=Config(signature_version="s3v4"),
    )


@pytest.fixture
def bucket(s3_env: dict[str, str]) -> Iterator[str]:
    """A new bucket's name (emptied and removed afterwards)."""
    name = f"bl-test-{secrets.token_hex(6)}"
    yield name
    remove_bucket(s3_env, name)


def remove_bucket(env: dict[str, str], name: str) -> None:
    """Empty the bucket (a thousand keys a request: a demo's ~650 blobs one DELETE each took
    ~2 s) and remove it; a bucket that does not exist is left alone."""
    client = s3_client(env)
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            listed = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if listed:
                gone = client.delete_objects(Bucket=name, Delete={"Objects": listed, "Quiet": True})
                assert not gone.get("Errors"), gone["Errors"][:3]
        for up in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
            client.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
        client.delete_bucket(Bucket=name)
    except client.exceptions.NoSuchBucket:
        pass


def keys(env: dict[str, str], bucket: str) -> list[str]:
    client = s3_client(env)
    return sorted(
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for obj in page.get("Contents", [])
    )


def pending_uploads(env: dict[str, str], bucket: str) -> list[str]:
    got = s3_client(env).list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [u["Key"] for u in got]
