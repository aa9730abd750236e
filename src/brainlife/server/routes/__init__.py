"""Thin routes: parse the request, call a service, serialize the result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter

from brainlife.server.routes import params
from brainlife.wire.routes import Route

F = TypeVar("F", bound=Callable[..., Any])


def download(router: APIRouter, *paths: Route) -> Callable[[F], F]:
    """Register a download route for GET and HEAD on each of `paths` (a HEAD answers the
    headers a GET would: length, ETag, name), with the download routes' `?at=` documented."""

    def register(fn: F) -> F:
        for route in paths:
            router.get(route.path, openapi_extra=params.DOWNLOAD)(fn)
            router.head(route.path, openapi_extra=params.DOWNLOAD)(fn)
        return fn

    return register
