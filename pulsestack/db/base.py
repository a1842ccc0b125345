"""The one database interface the rest of PulseStack sees.

`Database` (and the `Transaction` it opens) run named queries from sql/:

    row  = await db.fetch_one("get_user_by_email", email=email)      # :one
    rows = await db.fetch_all("list_members", workspace_id=ws_id)    # :many
    n    = await db.fetch_value("count_members", workspace_id=ws_id) # :scalar
    n    = await db.execute("delete_session", token_hash=h)          # :exec -> row count
    async with db.transaction() as tx:
        await tx.execute(...)
        tx.after_commit(lambda: hub.users_changed(ids))

Whatever the dialect, rows are plain dicts, and a column's Python type comes
from the type its table column declares, never from the column's name:

    Python value          Postgres column   SQLite declared type (migrations/sqlite/0003)
    uuid.UUID             uuid              UUID TEXT
    aware UTC datetime    timestamptz       TIMESTAMPTZ TEXT
    bool                  boolean           BOOLEAN
    str                   text              TEXT
    int                   integer           INTEGER
    dict, list, ...       json              JSON TEXT   (the decoded JSON value)

The type follows a column through aliases, joins, RETURNING and scalar
subqueries. A computed column (`count(*)`, `'x' AS y`) has no declared type:
counts come back as `int`s and text as `str`s on both, but a literal boolean
comes back as 1/0 on SQLite, so queries select typed columns, not literals.
Parameters take the same types (a dict, or a list bound to a JSON column, is
sent as JSON); a parameter written `IN (:ids)` takes a list.

Every named query is timed here, whichever the dialect (`_timed`): at
debug level it is logged with its name, duration and row count, and at any
level one that took at least `log.slow_query_ms` is a warning, with a plan
hint: its file and line in sql/ and the indexes its doc comment names. The time
includes any wait for a connection (SQLite's one writer, a busy pool),
since that is what the caller waited.

The adapters (sqlite.py, postgres.py) own everything dialect-specific:
placeholders, list expansion, type conversion, connection handling, and
turning driver errors into the errors below. Nothing outside db/ imports a
driver.
"""

from __future__ import annotations

import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, contextmanager
from datetime import datetime
from typing import Any, Literal

from .. import logs
from ..eventbus import EventBus, InProcessBus
from .sqlfile import NamedQuery

log = logging.getLogger(__name__)
query_log = logging.getLogger("pulsestack.db.queries")

Row = dict[str, Any]


class DatabaseError(Exception):
    """Base of the errors the adapters raise instead of driver exceptions."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached (down, restarting, connection dropped)."""


class DatabaseConflict(DatabaseUnavailable):
    """The database rolled the transaction back to end a conflict with another one
    (Postgres: a deadlock, a serialization failure). Nothing was written; the same
    request may simply be tried again, so it answers as `unavailable` does (503)."""


class IntegrityViolation(DatabaseError):
    """A constraint refused the write. `constraint` names it where known."""

    def __init__(self, message: str, constraint: str | None = None):
        super().__init__(message)
        self.constraint = constraint


class UniqueViolation(IntegrityViolation):
    """A primary key or unique constraint refused the write; `constraint` is
    its name as the migrations declare it, the same on both dialects
    (`users_pkey`, `users_email_key`, `idempotency_keys_pkey`, ...)."""


class ForeignKeyViolation(IntegrityViolation):
    """A foreign key refused the write (the referenced row does not exist).
    `constraint` is None on SQLite, which does not say which key failed."""


@contextmanager
def translating(translate: Callable[[Exception], Exception]) -> Iterator[None]:
    """Re-raise a driver exception as the db error `translate` maps it to;
    an exception it maps to itself passes through untouched."""
    try:
        yield
    except Exception as exc:
        translated = translate(exc)
        if translated is exc:
            raise
        raise translated from exc


_INDEX_NAME = re.compile(r"\b\w+_(?:idx|key|pkey)\b")


def plan_hint(query: NamedQuery) -> str:
    """Where a slow query is written, and the indexes its doc comment says it
    relies on: where to start with EXPLAIN."""
    indexes = list(dict.fromkeys(_INDEX_NAME.findall(query.doc)))
    return f"{query.source}, indexes {', '.join(indexes)}" if indexes else query.source


def _timed(query: NamedQuery, started: float, rows: int) -> None:
    """Log a query that ended now: a warning when slow, a debug line otherwise
    (formatted only when debug is on; the common case is two comparisons)."""
    seconds = time.perf_counter() - started
    if seconds >= logs.slow_query_s:
        query_log.warning("slow query %s: %.1f ms, %d rows (%s)", query.name, seconds * 1000, rows, plan_hint(query),
                          extra={"query": query.name, "duration_ms": round(seconds * 1000, 1), "rows": rows})
    elif query_log.isEnabledFor(logging.DEBUG):
        query_log.debug("query %s: %.1f ms, %d rows", query.name, seconds * 1000, rows,
                        extra={"query": query.name, "duration_ms": round(seconds * 1000, 1), "rows": rows})


_SHAPE_OF_METHOD = {"fetch_one": "one", "fetch_all": "many", "fetch_value": "scalar", "execute": "exec"}


class Executor(ABC):
    """Runs named queries; shared by `Database` and `Transaction`."""

    queries: Mapping[str, NamedQuery]

    def _resolve(self, query: str | NamedQuery, method: str, params: Mapping[str, Any]) -> NamedQuery:
        if isinstance(query, str):
            try:
                query = self.queries[query]
            except KeyError:
                raise LookupError(f"no named query {query!r} in sql/") from None
        expected = _SHAPE_OF_METHOD[method]
        if query.shape != expected:
            raise TypeError(f"{query.name} is :{query.shape}; call it with the method for that shape, not {method}()")
        if set(params) != set(query.params):
            raise TypeError(f"{query.name}({', '.join(query.params)}) called with ({', '.join(params)})")
        for name, value in params.items():
            if isinstance(value, datetime) and value.tzinfo is None:
                raise TypeError(f"{query.name}: naive datetime for :{name}; pass an aware UTC datetime")
        return query

    async def fetch_one(self, query: str | NamedQuery, /, **params: Any) -> Row | None:
        rows = await self._timed_fetch(self._resolve(query, "fetch_one", params), params)
        if len(rows) > 1:
            raise DatabaseError(f"{query if isinstance(query, str) else query.name} is :one but returned {len(rows)} rows")
        return rows[0] if rows else None

    async def fetch_all(self, query: str | NamedQuery, /, **params: Any) -> list[Row]:
        return await self._timed_fetch(self._resolve(query, "fetch_all", params), params)

    async def fetch_value(self, query: str | NamedQuery, /, **params: Any) -> Any:
        rows = await self._timed_fetch(self._resolve(query, "fetch_value", params), params)
        return next(iter(rows[0].values())) if rows else None

    async def execute(self, query: str | NamedQuery, /, **params: Any) -> int:
        """Run a `:exec` query; returns the number of rows it changed."""
        q = self._resolve(query, "execute", params)
        started = time.perf_counter()
        count = await self._execute(q, params)
        _timed(q, started, count)
        return count

    async def _timed_fetch(self, query: NamedQuery, params: Mapping[str, Any]) -> list[Row]:
        started = time.perf_counter()
        rows = await self._fetch(query, params)
        _timed(query, started, len(rows))
        return rows

    @abstractmethod
    async def _fetch(self, query: NamedQuery, params: Mapping[str, Any]) -> list[Row]: ...

    @abstractmethod
    async def _execute(self, query: NamedQuery, params: Mapping[str, Any]) -> int: ...


class Transaction(Executor):
    """One open transaction. Callbacks given to `after_commit` run once it
    has committed, in order, and never if it rolled back: that is where
    services tell the hub about a change."""

    def __init__(self, queries: Mapping[str, NamedQuery]):
        self.queries = queries
        self._after_commit: list[Callable[[], Any]] = []

    def after_commit(self, callback: Callable[[], Any]) -> None:
        self._after_commit.append(callback)

    async def execute_many(self, query: str | NamedQuery, rows: Iterable[Mapping[str, Any]]) -> None:
        """Run a `:exec` query once per parameter mapping, in this transaction."""
        rows = list(rows)
        if not rows:
            return
        q = self._resolve(query, "execute", rows[0])
        for r in rows:
            if set(r) != set(q.params):
                raise TypeError(f"{q.name}({', '.join(q.params)}) called with ({', '.join(r)})")
        started = time.perf_counter()
        await self._execute_many(q, rows)
        _timed(q, started, len(rows))

    @abstractmethod
    async def _execute_many(self, query: NamedQuery, rows: list[Mapping[str, Any]]) -> None: ...

    def _run_after_commit(self) -> None:
        for callback in self._after_commit:
            try:
                callback()
            except Exception:  # the data is committed; a failed hook must not turn that into an error
                log.exception("after-commit callback %r failed", callback)


class Database(Executor):
    """A connected database: the dialect adapters implement this."""

    dialect: Literal["sqlite", "postgres"]

    def __init__(self, queries: Mapping[str, NamedQuery]):
        self.queries = queries

    @abstractmethod
    async def connect(self) -> None:
        """Open connections. Must not fail when the server is down: `ping`
        and every query then raise `DatabaseUnavailable` until it is back."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """`async with db.transaction() as tx:` commits on exit, rolls back on error."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise `DatabaseUnavailable` unless a trivial query succeeds now."""

    @abstractmethod
    async def prepare(self, query: str | NamedQuery) -> None:
        """Compile `query` on the server without running it (raises on bad SQL)."""

    @abstractmethod
    async def explain(self, query: str | NamedQuery, /, **params: Any) -> str:
        """The plan the database would use for `query` with these parameters
        (EXPLAIN on Postgres, EXPLAIN QUERY PLAN on SQLite), one step a line.
        Writes are planned, never run."""

    def event_bus(self, interval_s: float) -> EventBus:
        """How this database's server processes tell each other about changes
        (eventbus.py). This one hears nothing: SQLite has one server process
        per database file."""
        return InProcessBus()

    async def execute_many(self, query: str | NamedQuery, rows: Iterable[Mapping[str, Any]]) -> None:
        """Run a `:exec` query once per parameter mapping, all in one transaction."""
        async with self.transaction() as tx:
            await tx.execute_many(query, rows)

    async def __aenter__(self) -> Database:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
