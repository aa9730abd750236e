"""`taskstore.TaskFiles`: every read of a task's outputs goes through `Archive.task_files`. With
an in-memory implementation (no folder, no file descriptor) the real routes serve a file, a range
of it, a folder's body with its ETag, and the task manifest; access stays the service's."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from brainlife.server.errors import NotFound
from brainlife.server.taskstore import TaskFiles, TaskPath
from brainlife.server.taskwalk import Entry
from brainlife.wire import routes
from tests.server._bytes_factories import auth, make_task


@dataclass(frozen=True)
class Joined:
    """A folder body: its files' paths and bytes, one after the other."""

    parts: tuple[tuple[str, bytes], ...]

    @property
    def etag(self) -> str:
        digest = hashlib.sha256(repr(self.parts).encode())
        return f'"mem-{digest.hexdigest()[:16]}"'

    def stream(self, *, chunk_size: int, strict: bool) -> Generator[bytes, None, bool]:
        for path, data in self.parts:
            yield path.encode() + b"\n" + data
        return True


class MemoryTaskFiles:
    """Task outputs in a dict: {task id: {relative path: bytes}}."""

    def __init__(self, tasks: dict[str, dict[str, bytes]]) -> None:
        self.tasks = tasks
        self.reads: list[str] = []

    def _under(self, path: TaskPath) -> dict[str, bytes]:
        files = self.tasks[path.task_id]
        if not path.is_dir:
            return {path.name: files[path.rel]}
        prefix = path.rel + "/" if path.rel else ""
        return {k[len(prefix) :]: v for k, v in sorted(files.items()) if k.startswith(prefix)}

    def stat(self, task_id: str, rel: str) -> TaskPath:
        files = self.tasks.get(task_id, {})
        if rel in files:
            size, is_dir = len(files[rel]), False
        elif not rel or any(k.startswith(rel + "/") for k in files):
            size, is_dir = 0, True
        else:
            raise NotFound(f"No such file or folder in task {task_id}: {rel!r}")
        etag = "" if is_dir else hashlib.sha256(files[rel]).hexdigest()[:16]
        return TaskPath(task_id, rel, is_dir, size, etag, root=task_id, real=rel)

    def files(self, path: TaskPath) -> Iterator[Entry]:
        for rel, data in self._under(path).items():
            yield Entry(
                rel=rel, real=f"{path.rel}/{rel}", is_dir=False, size=len(data), mode=0o644, mtime=0
            )

    def read_range(
        self, path: TaskPath, start: int, end: int, *, chunk_size: int, nonblocking: bool = False
    ) -> Iterator[bytes | None]:
        self.reads.append(path.rel)
        data = self.tasks[path.task_id][path.rel]
        for pos in range(start, end, chunk_size):
            yield data[pos : min(pos + chunk_size, end)]

    def digest(self, entry: Entry) -> tuple[int, str]:
        task_files = next(iter(self.tasks.values()))
        data = task_files[entry.real.lstrip("/")]
        return len(data), hashlib.sha256(data).hexdigest()

    def folder_body(self, path: TaskPath) -> Joined:
        return Joined(tuple(self._under(path).items()))

    def presign(self, path: TaskPath, *, filename: str, expires_in: int) -> str | None:
        return None


def test_task_routes_read_only_through_the_task_files_interface(archive, http):
    tid, folder = make_task(archive)
    shutil.rmtree(folder)  # no local folder: every byte must come from the interface
    out = {"out/a.txt": b"alpha\n" * 1000, "out/sub/b.bin": bytes(range(256)), "log.txt": b"ok\n"}
    memory = MemoryTaskFiles({tid: out})
    files: TaskFiles = memory  # mypy checks the protocol
    archive.task_files = files
    h = auth(archive)

    one = http.get(routes.TASK_DOWNLOAD_PATH.url(task_id=tid, path="out/a.txt"), headers=h)
    assert one.status_code == 200 and one.content == out["out/a.txt"]
    assert one.headers["etag"] == f'"{hashlib.sha256(out["out/a.txt"]).hexdigest()[:16]}"'
    part = http.get(
        routes.TASK_DOWNLOAD_PATH.url(task_id=tid, path="out/a.txt"),
        headers={**h, "Range": "bytes=6-11"},
    )
    assert part.status_code == 206 and part.content == b"alpha\n"
    assert memory.reads == ["out/a.txt", "out/a.txt"]

    body = http.get(routes.TASK_DOWNLOAD_PATH.url(task_id=tid, path="out"), headers=h)
    assert body.status_code == 200
    assert body.content == b"a.txt\n" + out["out/a.txt"] + b"sub/b.bin\n" + out["out/sub/b.bin"]
    assert body.headers["etag"].startswith('"mem-')
    assert body.headers["content-disposition"].endswith(f"{tid}.out.tar.gz")

    manifest = http.get(routes.TASK_MANIFEST_PATH.url(task_id=tid, path="out"), headers=h).json()
    assert manifest["type"] == "folder"
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == {
        "a.txt": hashlib.sha256(out["out/a.txt"]).hexdigest(),
        "sub/b.bin": hashlib.sha256(out["out/sub/b.bin"]).hexdigest(),
    }

    missing = http.get(routes.TASK_DOWNLOAD_PATH.url(task_id=tid, path="nope"), headers=h)
    assert missing.status_code == 404
    # access is still decided before the store is asked: another user's token gets the 404 of
    # an unknown task
    other = http.get(
        routes.TASK_DOWNLOAD_PATH.url(task_id=tid, path="out/a.txt"),
        headers=auth(archive, sub=6, gids=[]),
    )
    assert other.status_code == 404 and "couldn't find the task" in other.json()["message"]
