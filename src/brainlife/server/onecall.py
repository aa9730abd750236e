"""A plain `def` route runs in one worker-thread call, its session and token check included.

Why: FastAPI hands every plain `def` dependency and the route function to a worker thread one
at a time, and each hand-over costs more than a cheap request's work: a route with a session
(a generator dependency: one hand-over to open it, one to close it), a login (one for the token
check) and its own body made four, ~0.4 ms each on this 2-core machine (a bare `def` route
answers in ~1.05 ms, an `async def` one in ~0.65 ms, with two `def` dependencies ~1.8 ms), and
`GET /api/auth/me` took 5.3-6.8 ms where the same work in one call took 3.0-3.2 ms (issue #11:
every listing pays it). So `OneCallRoute`, the route class of every API router, gives FastAPI an
`async def` stand-in for each `def` route: FastAPI still resolves what needs no thread (path and
query parameters, the `Request`, `async` dependencies such as the archive or the query slot, and
reads the raw body); the stand-in then makes one worker call that, in the order of the route's
parameters, opens its sessions (`deps.SessionDep`, `ShortSession`, `ReadSession`), checks its
token (`User`, `MaybeUser`, `ObjectReader`, `DownloadUser`: the very functions FastAPI would
call, so the rules are the same ones), parses its JSON body (`JsonBody`), runs the route, and
closes the sessions.

What changes for a route: its sessions close when it returns, as `ShortSession` always did,
instead of after the response is sent; a route must not hand a lazily evaluated body that still
reads the database to its response (none does: the download routes took `ShortSession` for that
very reason). A `def` route with a dependency of its own that needs a thread (taskfiles'
`Target`) still works: FastAPI resolves that dependency as before.
"""

from __future__ import annotations

import contextlib
import inspect
import typing
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.params import Depends
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from brainlife.server import deps
from brainlife.server.principal import Principal

#: the name under which the stand-in asks FastAPI for the request when the route does not
_REQUEST = "_one_call_request"


class _Call:
    """One worker call's state: its request, the sessions it opened, the read session the token
    check can reuse (a route's `ReadSession` declared before its login)."""

    def __init__(self, request: Request, stack: contextlib.ExitStack) -> None:
        self.request = request
        self.archive = request.app.state.archive
        self.stack = stack
        self.read: Session | None = None

    def session(self) -> Session:
        return self.stack.enter_context(self.archive.request_session())

    def read_session(self) -> Session:
        self.read = self.stack.enter_context(self.archive.read_session())
        return self.read

    def login(self, kind: deps.Login) -> Principal | None:
        """`deps.login` (which refuses a missing token unless `kind` is OPTIONAL), its check
        in the route's read session when one is open."""
        return deps.login(kind, self.request, self.archive, self.read)


Resolver = Callable[[_Call], Any]

#: the dependencies the worker call resolves itself, by the function FastAPI would have called
_RESOLVERS: dict[Callable[..., Any], Resolver] = {
    deps.get_session: _Call.session,
    deps.get_read_session: _Call.read_session,
    deps.required_principal: lambda call: call.login(deps.Login.REQUIRED),
    deps.optional_principal: lambda call: call.login(deps.Login.OPTIONAL),
    deps.object_reader: lambda call: call.login(deps.Login.READER),
    deps.download_principal: lambda call: call.login(deps.Login.DOWNLOAD),
}


class _Body:
    """Stands for a `JsonBody` parameter: parsed in the worker call, in its parameter's turn."""


def _resolver(annotation: Any) -> Resolver | type[_Body] | None:
    if typing.get_origin(annotation) is not typing.Annotated:
        return None
    for extra in typing.get_args(annotation)[1:]:
        if isinstance(extra, Depends):
            if extra.dependency is deps.json_request_body:
                return _Body
            return _RESOLVERS.get(extra.dependency)  # type: ignore[arg-type]
    return None


def one_call(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """The `async def` stand-in of a `def` route (see the module docstring)."""
    hints = typing.get_type_hints(endpoint, include_extras=True)
    signature = inspect.signature(endpoint)
    deferred: dict[str, Resolver | type[_Body]] = {}
    shown: list[inspect.Parameter] = []
    request_name = None
    for param in signature.parameters.values():
        annotation = hints.get(param.name, param.annotation)
        resolver = _resolver(annotation)
        if resolver is not None:
            deferred[param.name] = resolver
            continue
        if annotation is Request:
            request_name = param.name
        shown.append(param.replace(annotation=annotation))
    if request_name is None:
        shown.append(
            inspect.Parameter(_REQUEST, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
        )
    wants_body = _Body in deferred.values()

    def run(request: Request, raw: bytes, values: dict[str, Any]) -> Any:
        with contextlib.ExitStack() as stack:
            call = _Call(request, stack)
            for name, resolver in deferred.items():
                if resolver is _Body:
                    values[name] = deps.parse_json_request_body(raw)
                else:
                    values[name] = resolver(call)  # type: ignore[call-arg]
            return endpoint(**values)

    async def stand_in(**values: Any) -> Any:
        request: Request = values[request_name] if request_name else values.pop(_REQUEST)
        raw = await request.body() if wants_body else b""
        return await run_in_threadpool(run, request, raw, values)

    # no `__wrapped__`: FastAPI would follow it back to the `def` and run it in a thread
    for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(stand_in, attribute, getattr(endpoint, attribute))
    returns = hints.get("return", signature.return_annotation)
    stand_in.__signature__ = signature.replace(  # type: ignore[attr-defined]
        # `-> None` comes back from get_type_hints as NoneType, which FastAPI would take for a
        # response model (and refuse on a 204 route)
        parameters=shown,
        return_annotation=None if returns is type(None) else returns,
    )
    stand_in.one_call_of = endpoint  # type: ignore[attr-defined]
    return stand_in


class OneCallRoute(APIRoute):
    """The route class of the API routers: a `def` route runs as `one_call` makes it."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = one_call(endpoint)
        super().__init__(path, endpoint, **kwargs)
