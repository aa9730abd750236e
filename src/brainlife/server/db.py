"""Engine and sessions. SQLite gets WAL, foreign keys, a busy timeout, RE2 as its REGEXP and a
query time budget; PostgreSQL gets the same budget and no JIT; other URLs pass through.

The time budget: a session made by `make_sessionmaker(engine, query_timeout=…)` (the one
request handlers use, `Archive.request_session`) runs each statement for at most that many
seconds, the rows' fetching included, and a statement over budget raises `QueryTimeout` (a
400: the query must be narrowed; nothing in this archive takes seconds when asked
precisely). Sessions without it (the CLI, migrations, the demo build) have no budget. On
SQLite a progress handler, called every few thousand virtual-machine steps, checks the
deadline set when the statement starts; an interrupted statement is rolled back by SQLite
and the connection stays usable. The GIL is only held for those checks and for the REGEXP
calls, which RE2 keeps linear, so other requests (`/health`) are served meanwhile.

On PostgreSQL the budget is the connection's `statement_timeout`, set when a connection is
taken from the pool for a session whose budget differs from the one the connection has (none
for a session without one), and remembered with the connection. It used to be a
`SET LOCAL` per transaction: one more round trip to the server per request, and on a loaded
2-core machine each round trip is a wake-up of two processes (about 1 ms; issue #11). A
server's connections almost all serve requests, so the setting is made once per connection.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import Connection, Engine, ExceptionContext
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from brainlife.server.errors import BadRequest, Conflict, QueryTimeout

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def make_engine(url: str) -> Engine:
    from sqlalchemy import create_engine

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # A small pool keeps each connection's page cache warm; WAL lets readers run beside
        # the one writer.
        kwargs["pool_size"] = 8
        kwargs["max_overflow"] = 16
        # last in, first out: the connections the query gate (`gate`) keeps busy are the ones
        # reused, with their caches warm; the others stay idle and small
        kwargs["pool_use_lifo"] = True
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    elif url.startswith("postgresql"):
        # No JIT: the planner prices the per-row JSON subqueries of a find (query/jsonpath.py)
        # high, so a rich find over a few thousand rows spent seconds compiling LLVM code for
        # milliseconds of execution (0.28 s vs 0.05 s for one JSON path over the demo).
        # Parallel plans only where they save more than their start: a listing page's arrays
        # (three index scans of 100 ids, serial cost ~3,500, 2.5 ms) got a Gather Merge at
        # 10,000,000 objects that took 10-23 ms, its workers' start-up 7-8 ms of it. At ~0.7 µs
        # per cost unit here, that start is ~10,000 units where PostgreSQL assumes 1,000; with
        # 10,000 a plan goes parallel only when the work saved pays for the workers.
        kwargs["connect_args"] = {"options": "-c jit=off -c parallel_setup_cost=10000"}
    if url.startswith(("sqlite", "postgresql")):
        kwargs["json_deserializer"] = json_loads
    engine = create_engine(url, **kwargs)
    if url.startswith("postgresql"):
        event.listen(engine, "engine_connect", _postgresql_budget)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "before_cursor_execute", _start_statement)
        event.listen(engine, "commit", _end_statement)
        event.listen(engine, "rollback", _end_statement)
        event.listen(engine.pool, "checkin", _checkin)
    event.listen(engine, "handle_error", _translate_error)
    return engine


#: the C scanner `json.loads` uses (`json.JSONDecoder().scan_once`)
_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def json_loads(data: str | bytes) -> Any:
    """`json.loads` for the JSON columns' values, as the drivers give them (psycopg: bytes,
    sqlite3: text), with the same results. A listing page decodes ~300 of them (each object's
    `meta`, `prov`, `extra`); `json.loads` of bytes first guesses their encoding and strips
    whitespace around the value, which took about half of its time (issue #11). The values we
    store are compact text written by `json.dumps`: one value from the first character to the
    last is decoded here; anything else (surrounding whitespace, a byte order mark, not JSON at
    all) goes to `json.loads` itself, which accepts or refuses it as before."""
    text = data if isinstance(data, str) else str(data, "utf-8", "surrogatepass")
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return json.loads(data)
    if end != len(text):
        return json.loads(data)
    return value


#: execution option: the seconds one statement may run (see the module docstring)
QUERY_TIMEOUT = "brainlife_query_timeout"
#: the connection's `statement_timeout` in milliseconds (0: none), in its pool record's `info`
_PG_TIMEOUT = "brainlife_statement_timeout"
#: SQLite virtual-machine steps between two deadline checks (a few milliseconds of work). A
#: check is a Python call, which must take the GIL: while other requests run Python code it may
#: wait for it (up to the 5 ms switch interval), so checks are kept rare enough that such waits
#: cannot slow a statement down much, and frequent enough to stop it within milliseconds.
_PROGRESS_STEPS = 50_000
_DEADLINE = "brainlife_deadline"
#: SQLite's refusals of a statement too big to prepare: the find must be smaller
_TOO_BIG = (
    "expression tree is too large",
    "too many sql variables",
    "parser stack overflow",
    "too many terms",
    "string or blob too big",
)


class _Deadline:
    """The running statement's deadline on one SQLite connection (None: no budget)."""

    __slots__ = ("at", "budget")

    def __init__(self) -> None:
        self.at: float | None = None
        self.budget = 0.0

    def passed(self) -> bool:
        return self.at is not None and time.monotonic() > self.at


class _OverBudget(Exception):
    """Raised by REGEXP once the deadline has passed (see `_sqlite_connect`)."""


def _postgresql_budget(conn: Connection) -> None:
    """Give the connection the `statement_timeout` of the session's budget (see the module
    docstring), outside any transaction: a session-level SET made inside one would be undone by
    the session's ROLLBACK. The pool record's `info` is cleared when its connection is replaced,
    and a new connection has none."""
    budget = conn.get_execution_options().get(QUERY_TIMEOUT)
    wanted = max(1, round(budget * 1000)) if budget else 0
    try:
        record = conn.connection
    except SQLAlchemyError:
        return
    if record.info.get(_PG_TIMEOUT, 0) == wanted:
        return
    raw: Any = record.dbapi_connection
    statement = f"SET statement_timeout = {wanted}"
    error = conn.dialect.loaded_dbapi.Error
    try:
        autocommit = raw.autocommit
        raw.autocommit = True  # psycopg: no BEGIN (the connection is idle, just checked out)
        raw.execute(statement)
        raw.autocommit = autocommit
    except error as exc:
        # a connection that cannot take a SET is broken (its server went away): back to the
        # pool invalidated, so that the next checkout connects again, and the error raised as
        # SQLAlchemy raises a driver's
        record.invalidate(exc)
        raise DBAPIError.instance(statement, None, exc, error, connection_invalidated=True) from exc
    record.info[_PG_TIMEOUT] = wanted


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    from brainlife.server.query.regex import sqlite_regexp

    _sqlite_pragmas(dbapi_connection)
    deadline = _Deadline()
    record.info[_DEADLINE] = deadline
    dbapi_connection.set_progress_handler(deadline.passed, _PROGRESS_STEPS)

    def regexp(pattern: str, value: Any) -> bool | None:
        # One call may take a while on a long text (linear, but a large pattern costs per
        # character) and a statement over few rows runs few VM steps: the deadline is also
        # checked here, and an exception stops the statement like the progress handler.
        if deadline.passed():
            raise _OverBudget
        return sqlite_regexp(pattern, value)

    # replaces the REGEXP SQLAlchemy registers (Python's backtracking `re`)
    dbapi_connection.create_function("regexp", 2, regexp, deterministic=True)


def _deadline(conn: Connection) -> _Deadline | None:
    try:
        info = conn.connection.info
    except SQLAlchemyError:  # closed or invalidated: no statement of it runs any more
        return None
    found: _Deadline | None = info.get(_DEADLINE)
    return found


def _start_statement(
    conn: Connection, _cursor: Any, _stmt: str, _params: Any, context: Any, _many: bool
) -> None:
    deadline = _deadline(conn)
    if deadline is None:
        return
    options = context.execution_options if context is not None else conn.get_execution_options()
    budget = options.get(QUERY_TIMEOUT)
    deadline.budget = budget or 0.0
    deadline.at = time.monotonic() + budget if budget else None


def _end_statement(conn: Connection) -> None:
    """COMMIT and ROLLBACK are never interrupted (the deadline stays set after a statement so
    that fetching its rows counts too)."""
    deadline = _deadline(conn)
    if deadline is not None:
        deadline.at = None


def _checkin(_dbapi_connection: Any, record: Any) -> None:
    deadline = record.info.get(_DEADLINE)
    if deadline is not None:
        deadline.at = None


_TAKEN_NAME = "That username is taken (usernames are unique ignoring case)."
_TAKEN_EMAIL = "That e-mail address belongs to another account (unique ignoring case)."
_TAKEN_TASK = (
    "The task's upload was finalized by another request at the same time: ask again to get "
    "its data object."
)
_TAKEN_SERVICE = "A live app for that github service already exists."
#: the unique constraints that back a service's rule (migration 0019), by PostgreSQL's
#: constraint name and by what SQLite's message names ("index 'x'" or "table.column"): the
#: service checks first under `lock_writes`, so one fires only for a writer that did not
#: (or a difference of case the check and the index see alike), and it is the same 409
UNIQUE_RULES = {
    "ux_users_username_lower": _TAKEN_NAME,
    "uq_users_username": _TAKEN_NAME,
    "users.username": _TAKEN_NAME,
    "ux_users_email_lower": _TAKEN_EMAIL,
    "uq_users_email": _TAKEN_EMAIL,
    "users.email": _TAKEN_EMAIL,
    "ix_finalize_jobs_task_id": _TAKEN_TASK,
    "finalize_jobs.task_id": _TAKEN_TASK,
    "ux_apps_github_live": _TAKEN_SERVICE,
    "apps.github": _TAKEN_SERVICE,
}


def _unique_rule(original: BaseException) -> str | None:
    """The message of the `UNIQUE_RULES` constraint a unique violation names, if it is one."""
    if getattr(original, "sqlstate", None) == "23505":
        return UNIQUE_RULES.get(getattr(getattr(original, "diag", None), "constraint_name", ""))
    text = str(original)
    prefix = "UNIQUE constraint failed: "
    if not text.startswith(prefix):
        return None
    name = text[len(prefix) :].strip()
    if name.startswith("index '") and name.endswith("'"):
        name = name[len("index '") : -1]
    return UNIQUE_RULES.get(name)


def _translate_error(context: ExceptionContext) -> None:
    """Database refusals caused by the request, as the 400s they are."""
    original = context.original_exception
    text = str(original).lower()
    deadline = _deadline(context.connection) if context.connection is not None else None
    if deadline is not None and deadline.passed():  # "interrupted", or REGEXP's _OverBudget
        budget = deadline.budget
        deadline.at = None
        raise QueryTimeout(budget) from original
    if getattr(original, "sqlstate", None) == "57014" or getattr(original, "pgcode", None) == (
        "57014"
    ):  # PostgreSQL: statement_timeout
        context_options = getattr(context.execution_context, "execution_options", None) or {}
        options = context.connection.get_execution_options() if context.connection else {}
        raise QueryTimeout(
            context_options.get(QUERY_TIMEOUT) or options.get(QUERY_TIMEOUT)
        ) from original
    if "nul (0x00)" in text or getattr(original, "sqlstate", None) == "22P05":
        # PostgreSQL text and jsonb cannot hold U+0000: nothing stored has it, none can be stored
        raise BadRequest(
            "text with a NUL character (\\u0000) cannot be stored or matched by this "
            "archive's database (PostgreSQL); remove it"
        ) from original
    if isinstance(original, OverflowError) or getattr(original, "sqlstate", None) == "22003":
        # a number beyond the column's integer type (SQLite's 64 bits, PostgreSQL's INTEGER):
        # it names no row and cannot be stored
        raise BadRequest(
            "a number in the request is out of the range this archive's database can store or "
            f"compare (user and group ids are at most {2**31 - 1}); use a smaller one"
        ) from original
    taken = _unique_rule(original)
    if taken is not None:
        raise Conflict(taken) from original
    if any(reason in text for reason in _TOO_BIG):
        raise BadRequest(
            f"the query is too large for the database ({original}); narrow it"
        ) from original


def _sqlite_pragmas(dbapi_connection: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    # 16 MiB of page cache per connection and no memory map: each connection has its own cache
    # and its own map, and both count in the process's RSS (a map's pages once per
    # connection). With 64 MiB + 256 MiB, 50 concurrent listings over a 1.3 GB archive grew
    # one process to 5 GiB (3.6 GiB of it mapped file pages). The kernel's page cache, shared
    # by all connections and processes, keeps the file's hot pages in memory either way.
    cur.execute("PRAGMA cache_size=-16384")
    cur.execute("PRAGMA mmap_size=0")
    cur.close()


def make_sessionmaker(
    engine: Engine, *, query_timeout: float | None = None, autocommit: bool = False
) -> sessionmaker[Any]:
    """Sessions on `engine`; with `query_timeout`, each statement has that many seconds; with
    `autocommit`, each statement is its own transaction (for sessions that only read)."""
    options: dict[str, Any] = {}
    if query_timeout:
        options[QUERY_TIMEOUT] = query_timeout
    if autocommit:
        options["isolation_level"] = "AUTOCOMMIT"
    bound = engine.execution_options(**options) if options else engine
    return sessionmaker(bind=bound, expire_on_commit=False)


def lock_writes(session: Session, name: str) -> None:
    """Wait for, then hold until the session's transaction ends, the lock of the writers
    named `name` (say "accounts"): a check-then-insert made under it (a free username, the next
    group id) cannot race another request's, which would otherwise pass the same check and
    fail on the unique constraint (a 500) or, without one, make a duplicate.

    On PostgreSQL a transaction-level advisory lock (its key a digest of `name`); each
    statement after it sees what the previous holder committed (READ COMMITTED). On SQLite,
    which has one writer at a time, a write statement that changes nothing: it opens the
    transaction and takes the database's write lock (waiting up to the busy timeout), so the
    reads that follow see the latest commit. Call it before the session's first read of what
    it guards."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        digest = hashlib.sha256(b"brainlife writers\x00" + name.encode()).digest()
        key = int.from_bytes(digest[:8], "big") >> 1
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:
        connection.execute(text("UPDATE groups SET active = active WHERE 0 = 1"))
