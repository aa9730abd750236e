"""Peak RSS of `bl serve` while it is sent a 500 MB JSON body (issue #8).

Starts a real `bl serve` on an empty archive, streams a 500 MiB JSON login body (`Content-Length`
declared, as `curl --data-binary @big.json` sends it) to `POST /api/auth/local/auth` in 1 MiB
writes, and samples the server process's `/proc/<pid>/status` (VmRSS every 20 ms, VmHWM at the
end). Reports the answer, how much of the body the server let in before answering, and the RSS
before and at its peak.

    .venv/bin/python bench/bench_body_limit.py

To measure another checkout's server, put its `src` first on PYTHONPATH (the benchmark itself
only needs the standard library and bench/common.py).
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from common import bl_serve, say

BODY_BYTES = 500 * 1024 * 1024
WRITE = 1024 * 1024


def status_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            fields[line.split(":")[0]] = int(line.split()[1])
    return fields


def send_big_body(port: int) -> tuple[str, int, float]:
    """(status line, body bytes the server accepted before answering, seconds)."""
    prefix = b'{"username": "demo", "password": "'
    suffix = b'"}'
    filler = b"a" * WRITE
    head = (
        "POST /api/auth/local/auth HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {BODY_BYTES}\r\n\r\n"
    ).encode()
    sent = 0
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=300) as sock:
        sock.sendall(head)
        try:
            sock.sendall(prefix)
            sent = len(prefix)
            while sent < BODY_BYTES - len(suffix):
                piece = filler[: min(WRITE, BODY_BYTES - len(suffix) - sent)]
                sock.sendall(piece)
                sent += len(piece)
            sock.sendall(suffix)
            sent += len(suffix)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer.split(b"\r\n", 1)[0].decode(), sent, time.monotonic() - t0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, bl_serve(Path(tmp) / "data") as server:
        before = status_kib(server.pid)
        samples: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(status_kib(server.pid)["VmRSS"])
                stop.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        status, sent, seconds = send_big_body(server.port)
        stop.set()
        sampler.join()
        after = status_kib(server.pid)
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    say(f"answer: {status}")
    say(f"body bytes written before the server answered/closed: {sent:,} of {BODY_BYTES:,}")
    say(f"seconds: {seconds:.1f}")
    say(f"VmRSS before: {before['VmRSS'] / 1024:.0f} MiB")
    say(f"VmRSS peak (20 ms samples): {max(samples) / 1024:.0f} MiB")
    say(f"VmHWM at the end: {after['VmHWM'] / 1024:.0f} MiB (commit of the bench: {commit})")


if __name__ == "__main__":
    main()
