"""The dependencies that never block are coroutines, so FastAPI runs them on the event loop
instead of handing each to a worker thread (server/deps.py's docstring says why); those that
reach the database stay plain functions, in the thread pool, where blocking is harmless."""

from __future__ import annotations

import inspect

from brainlife.server import deps


def test_the_cheap_dependencies_run_on_the_event_loop() -> None:
    for dependency in (deps.get_archive, deps.get_finalizer, deps.required_principal):
        assert inspect.iscoroutinefunction(dependency), dependency.__name__


def test_the_dependencies_that_reach_the_database_stay_in_the_thread_pool() -> None:
    for dependency in (
        deps.get_session,
        deps.get_read_session,
        deps.optional_principal,
        deps.object_reader,
        deps.download_principal,
    ):
        assert not inspect.iscoroutinefunction(dependency), dependency.__name__
        assert not inspect.isasyncgenfunction(dependency), dependency.__name__
