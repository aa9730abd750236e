"""A bound on the query requests one server process works on at once (`QueryGate`).

Why: a listing is a few milliseconds of SQLite or PostgreSQL work and a few of Python (ORM
rows, documents, JSON). Without a bound, every request that arrives is handed to a thread of
the worker pool at once (anyio's 40), each checks out a database connection and materialises its
page: 50 concurrent `bl data query` clients made 40 threads share one GIL and one process
(each statement's time-budget check, `db._PROGRESS_STEPS`, waits for the GIL behind all the
others), the pool opened its overflow connections, each warming its own page cache, and one
process grew to 529 MiB with a p95 of 7.1 s. The work itself cannot go faster than the cores
allow; what a bound buys is that the requests beyond it wait in the event loop, holding no
thread, no connection and no rows, and are served in arrival order (anyio's semaphore is fair),
so that latency is the queue's length times the service time instead of every request slowing
every other one down.

`slots` is per process: with `bl serve --workers N` each worker has its own gate. The routes
that take a slot declare `QuerySlot` as their *first* parameter, so that the slot is taken
before any other dependency runs (the token check and the session are inside the bound); it is
released when the response has been sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends, Request

#: Requests per process in a query route at once. 4: a statement releases the GIL while the
#: database works, so 2 cores stay busy with a couple of requests per process; more only adds
#: threads contending for one GIL, connections and materialised pages.
DEFAULT_SLOTS = 4


class QueryGate:
    """At most `slots` requests inside; the others queue, first come, first served."""

    def __init__(self, slots: int = DEFAULT_SLOTS) -> None:
        if slots < 1:
            raise ValueError(f"a query gate needs at least one slot, not {slots}")
        self.slots = slots
        self._semaphore = anyio.Semaphore(slots)
        #: requests inside the gate now, and the most there ever were (for tests and benchmarks)
        self.inside = 0
        self.peak = 0

    async def __aenter__(self) -> None:
        await self._semaphore.acquire()
        self.inside += 1
        self.peak = max(self.peak, self.inside)

    async def __aexit__(self, *_exc: object) -> None:
        self.inside -= 1
        self._semaphore.release()


async def query_slot(request: Request) -> AsyncIterator[None]:
    gate: QueryGate = request.app.state.query_gate
    async with gate:
        yield


#: Declare it first in a query route's parameters (see the module docstring).
QuerySlot = Annotated[None, Depends(query_slot)]
