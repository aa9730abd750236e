"""The demo's project files: a small tree beside O3D's data objects (a README, protocol
documents, a QC table) and one folder of `EVENT_LOGS` tiny files, more than one listing page
(`wire.projectfiles.MAX_PAGE`), so that paging is exercised against the demo."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy.orm import Session

from brainlife.server.archive import Archive
from brainlife.server.demo.world import O3D_PROJECT, SUB, utc
from brainlife.server.models import ProjectFile

#: files in O3D's `logs/events/` (event-0001.txt …)
EVENT_LOGS = 1200
#: distinct contents among them (identical bytes are one blob in the content store)
_LOG_KINDS = 12

O3D_FILES: dict[str, bytes] = {
    "README.txt": (
        b"O3D: Open Diffusion Data and Derivatives\n\n"
        b"docs/      acquisition protocol and consent template\n"
        b"qc/        quality-control summary of every subject\n"
        b"logs/      scanner event logs, one file per session\n"
    ),
    "docs/protocol.pdf": b"%PDF-1.4\n% O3D acquisition protocol (demo)\n"
    + bytes(range(256)) * 8
    + b"\n%%EOF\n",
    "docs/consent-template.txt": b"Consent template (demo).\n",
    "qc/summary.tsv": b"subject\tsnr\tmotion_mm\n"
    + b"".join(f"{n:04d}\t{20 + n % 7}.{n % 10}\t0.{n % 9}\n".encode() for n in range(1, 22)),
}


def event_log(n: int) -> bytes:
    return f"event log, kind {n % _LOG_KINDS}\nscan start\nscan end\n".encode()


def demo_files() -> dict[str, bytes]:
    """Every demo project file of O3D: path → bytes."""
    files = dict(O3D_FILES)
    for n in range(1, EVENT_LOGS + 1):
        files[f"logs/events/event-{n:04d}.txt"] = event_log(n)
    return files


def add_project_files(session: Session, archive: Archive) -> None:
    when = utc(2025, 3, 10, 12)
    stored: set[str] = set()
    for i, (path, data) in enumerate(sorted(demo_files().items())):
        sha256 = hashlib.sha256(data).hexdigest()
        if sha256 not in stored:
            archive.store.put_stream([data], sha256=sha256)
            stored.add(sha256)
        session.add(
            ProjectFile(
                project_id=O3D_PROJECT,
                path=path,
                sha256=sha256,
                size=len(data),
                mtime=when + timedelta(seconds=i),
                user_id=SUB["hayashis"],
            )
        )
