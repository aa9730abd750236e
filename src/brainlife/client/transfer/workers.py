"""The worker pool every parallel download runs on: the bulk engine's units, and the files of one
data object (`bl data download ID`), so both take ``jobs`` and stop the same way."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from brainlife.client._exceptions import Cancelled

__all__ = ["run_parallel"]


def run_parallel(
    work: Iterable[Callable[[], None]], *, jobs: int, cancel: threading.Event
) -> BaseException | None:
    """Run every callable on ``jobs`` threads. The first error (other than :class:`Cancelled`,
    which only follows it) sets ``cancel``, so the others stop at their next chunk, and is
    returned once every thread has stopped; Ctrl-C in the caller does the same and is raised."""
    fatal: BaseException | None = None
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="bl-download")
    futures: set[Future[None]] = set()
    try:
        futures = {pool.submit(w) for w in work}
        while futures:
            done, futures = wait(futures, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                exc = fut.exception()
                if exc is not None and not isinstance(exc, Cancelled):
                    fatal = fatal or exc
                    cancel.set()
    except BaseException:
        cancel.set()
        raise
    finally:
        for fut in futures:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
    return fatal
