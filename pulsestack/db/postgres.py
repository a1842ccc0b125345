"""The PostgreSQL adapter (asyncpg): a connection pool, prepared statements.

`:name` placeholders become `$1, $2, ...` once per query (a name used twice
is one parameter); `IN (:ids)` becomes `= ANY(:ids)` so a list is one array
parameter whatever its length. asyncpg returns each column as its Postgres
type says: `uuid.UUID` for uuid, aware UTC `datetime` for timestamptz, `bool`,
`str`, `int`; so rows need no conversion. For json and jsonb, every pooled
connection gets a codec when it opens (`_init_connection`): values come back
decoded and parameters (a dict, or a list bound to a JSON column) are sent
as JSON, spelled as the SQLite adapter spells them. asyncpg prepares and
caches each statement per connection on first use.

The pool opens connections lazily: the server starts, and answers /readyz
with 503, while the database is down. A read that fails because its pooled
connection was dropped (server restart, pg_terminate_backend) is retried once
on a fresh connection; a write is never retried blindly. A connection whose
protocol lost step (asyncpg's InternalClientError, "another operation is in
progress", seen after a server restart) counts as dropped too, and is
terminated rather than handed back to the pool, which opens a new one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache
from typing import Any, TypeVar

import asyncpg

from .. import metrics
from ..eventbus import EventBus
from ..serialize import dumps
from .base import (
    Database,
    DatabaseConflict,
    DatabaseError,
    DatabaseUnavailable,
    ForeignKeyViolation,
    IntegrityViolation,
    Row,
    Transaction,
    UniqueViolation,
    translating,
)
from .postgres_bus import PostgresBus
from .sqlfile import NamedQuery, rewrite_list_params, scan_placeholders

R = TypeVar("R")

# Errors that mean "the connection or the server is gone", not "your SQL is wrong".
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,  # admin shutdown, pg_terminate_backend
    asyncpg.InternalClientError,  # the connection's protocol lost step; see _discarding_if_lost
)


@lru_cache(maxsize=4096)
def compile_postgres(sql: str) -> tuple[str, tuple[str, ...]]:
    """(SQL with $n placeholders, parameter names in $n order)."""
    sql = rewrite_list_params(
        sql,
        in_list=lambda name: f"= ANY(:{name})",
        not_in_list=lambda name: f"<> ALL(:{name})",
    )
    order: list[str] = []
    out, last = [], 0
    for start, end, name in scan_placeholders(sql):
        if name not in order:
            order.append(name)
        out.append(sql[last:start])
        out.append(f"${order.index(name) + 1}")
        last = end
    out.append(sql[last:])
    return "".join(out), tuple(order)


def _args(query: NamedQuery, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    sql, order = compile_postgres(query.sql)
    return sql, [list(v) if isinstance(v, (tuple, set, frozenset)) else v for v in (params[n] for n in order)]


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, asyncpg.UniqueViolationError):
        return UniqueViolation(str(exc), exc.constraint_name)
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return ForeignKeyViolation(str(exc), exc.constraint_name)
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityViolation(str(exc), getattr(exc, "constraint_name", None))
    if isinstance(exc, _UNAVAILABLE):
        return DatabaseUnavailable(f"postgres: {exc.__class__.__name__}: {exc}")
    if isinstance(exc, asyncpg.TransactionRollbackError):  # deadlock_detected, serialization_failure
        return DatabaseConflict(f"postgres: {exc.__class__.__name__}: {exc}")
    if isinstance(exc, asyncpg.PostgresError):
        return DatabaseError(f"postgres: {exc}")
    return exc


@contextmanager
def _discarding_if_lost(conn: asyncpg.Connection) -> Iterator[None]:
    """Terminate `conn` when its protocol lost step: asyncpg would go on
    failing every statement on it, and the pool would hand it out again.
    A terminated connection is replaced by a new one on the next acquire."""
    try:
        yield
    except asyncpg.InternalClientError:
        conn.terminate()
        raise


async def _init_connection(conn: asyncpg.Connection) -> None:
    """The pool's hook for each new connection: JSON in and out as Python
    values (asyncpg's default is text both ways)."""
    for json_type in ("json", "jsonb"):
        await conn.set_type_codec(json_type, schema="pg_catalog", encoder=dumps, decoder=json.loads)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset hook: nothing to reset (see PostgresDatabase.connect)."""


def _rowcount(status: str) -> int:
    # "UPDATE 3", "DELETE 0", "INSERT 0 5": the count is the last word.
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


async def _fetch(conn: asyncpg.Connection, query: NamedQuery, params: Mapping[str, Any]) -> list[Row]:
    sql, args = _args(query, params)
    return [dict(r) for r in await conn.fetch(sql, *args)]


async def _execute(conn: asyncpg.Connection, query: NamedQuery, params: Mapping[str, Any]) -> int:
    sql, args = _args(query, params)
    return _rowcount(await conn.execute(sql, *args))


class PostgresTransaction(Transaction):
    def __init__(self, conn: asyncpg.Connection, queries: Mapping[str, NamedQuery]):
        super().__init__(queries)
        self._conn = conn

    async def _fetch(self, query: NamedQuery, params: Mapping[str, Any]) -> list[Row]:
        with translating(_translate), _discarding_if_lost(self._conn):
            return await _fetch(self._conn, query, params)

    async def _execute(self, query: NamedQuery, params: Mapping[str, Any]) -> int:
        with translating(_translate), _discarding_if_lost(self._conn):
            return await _execute(self._conn, query, params)

    async def _execute_many(self, query: NamedQuery, rows: list[Mapping[str, Any]]) -> None:
        sql, order = compile_postgres(query.sql)
        with translating(_translate), _discarding_if_lost(self._conn):
            await self._conn.executemany(sql, [[r[n] for n in order] for r in rows])


class PostgresDatabase(Database):
    dialect = "postgres"

    def __init__(self, dsn: str, queries: Mapping[str, NamedQuery], *, pool_size: int = 10, connect_timeout: float = 5.0):
        super().__init__(queries)
        self.dsn = dsn
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._pool: asyncpg.Pool | None = None

    async def connect(self) -> None:
        # min_size=0: creating the pool opens no connection, so a database that
        # is down at start-up makes /readyz answer 503 instead of a crash.
        # reset: asyncpg's default runs `RESET ALL; UNLISTEN *; ...` on every
        # release, a round trip per query. Pooled connections hold no session
        # state here (no SET, no LISTEN: the event bus has its own), and an
        # open transaction is still rolled back on release.
        self._pool = asyncpg.create_pool(
            self.dsn, min_size=0, max_size=self._pool_size, timeout=self._connect_timeout,
            command_timeout=60, init=_init_connection, reset=_keep_session,
        )
        await self._pool
        metrics.watch_pool(self)

    def pool_stats(self) -> tuple[int, int, int] | None:
        """(connections open, of those in use, the most allowed), for /metrics; None when closed."""
        pool = self._pool
        if pool is None:
            return None
        size = pool.get_size()
        return size, size - pool.get_idle_size(), pool.get_max_size()

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise DatabaseUnavailable("the Postgres pool is not open")
        return self._pool

    async def _on_fresh_connection(self, op: Callable[[asyncpg.Connection, NamedQuery, Mapping[str, Any]], Awaitable[R]],
                                   query: NamedQuery, params: Mapping[str, Any]) -> R:
        pool = self._require_pool()
        attempts = 1 if query.writes else 2
        for attempt in range(attempts):
            try:
                with translating(_translate):
                    async with pool.acquire() as conn:
                        with _discarding_if_lost(conn):
                            return await op(conn, query, params)
            except DatabaseUnavailable:
                if attempt + 1 == attempts:
                    raise
                # The pooled connection was dropped or discarded; the pool replaces it.
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _fetch(self, query: NamedQuery, params: Mapping[str, Any]) -> list[Row]:
        return await self._on_fresh_connection(_fetch, query, params)

    async def _execute(self, query: NamedQuery, params: Mapping[str, Any]) -> int:
        return await self._on_fresh_connection(_execute, query, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        pool = self._require_pool()
        with translating(_translate):
            conn = await pool.acquire()
        try:
            tx = PostgresTransaction(conn, self.queries)
            with _discarding_if_lost(conn):
                async with conn.transaction():
                    yield tx
        except _UNAVAILABLE as exc:  # dropped or lost step while beginning, committing or rolling back
            raise _translate(exc) from exc
        finally:
            await pool.release(conn)
        tx._run_after_commit()

    def event_bus(self, interval_s: float) -> EventBus:
        """LISTEN/NOTIFY on connections of its own (db/postgres_bus.py)."""
        return PostgresBus(self.dsn, interval_s)

    async def ping(self) -> None:
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                with _discarding_if_lost(conn):
                    await conn.fetchval("SELECT 1")
        except Exception as exc:
            raise DatabaseUnavailable(f"postgres: {exc.__class__.__name__}: {exc}") from exc

    async def prepare(self, query: str | NamedQuery) -> None:
        q = self.queries[query] if isinstance(query, str) else query
        sql, _ = compile_postgres(q.sql)
        with translating(_translate):
            async with self._require_pool().acquire() as conn:
                with _discarding_if_lost(conn):
                    await conn.prepare(sql)

    async def explain(self, query: str | NamedQuery, /, **params: Any) -> str:
        q = self.queries[query] if isinstance(query, str) else query
        sql, args = _args(q, params)
        async with self._require_pool().acquire() as conn:
            with _discarding_if_lost(conn):
                # Plain EXPLAIN plans without executing, so writes change nothing.
                return "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))
