"""The SQLite adapter (aiosqlite): one writer connection, a few readers.

SQLite allows one writer at a time, so every write and every transaction
goes through the single writer connection, serialised by an asyncio lock and
opened with `BEGIN IMMEDIATE` (the write lock is taken up front, never
upgraded mid-transaction). Reads outside a transaction go to read-only
connections; in WAL mode they see the last committed state and never wait
behind a long write. Every connection opens an existing file only
(`mode=rw`): on a missing file `connect` fails with `DatabaseUnavailable`
and leaves nothing behind; `pulsestack migrate` (yoyo) creates the file.

A read first runs inline, on a read-only connection of the event loop's own
thread: the hot reads (a session lookup, an unread count, an inbox page)
take well under a millisecond, less than the hop to a worker thread and
back costs. So that a slow read cannot stall the loop, SQLite interrupts an
inline read after INLINE_BUDGET_S (a progress handler), and a busy database
makes it give up at once; either way the read runs again on one of a small
pool of aiosqlite reader threads, as every read did before.

Types: a result column gets its Python type from the type its table
column declares (the migrations spell them; db/base.py lists them), never
from its name. Every connection here opens with `PARSE_DECLTYPES`, and
sqlite3 runs the converter registered for the first word of the declared
type: `UUID TEXT` -> `uuid.UUID`, `TIMESTAMPTZ TEXT` -> aware UTC
`datetime`, `BOOLEAN` -> `bool`, `JSON TEXT` -> the decoded value; TEXT and
INTEGER need none. The declared type follows a column through an alias, a
join, RETURNING or a scalar subquery; an expression (`count(*)`, `1 AS x`)
declares nothing and comes back as SQLite returns it. Stored values: UUIDs
are canonical text, timestamps fixed-width UTC ISO-8601 text
(`2026-01-02T03:04:05.123456Z`, so text order is time order), booleans
0/1, JSON text. A dict parameter is sent as JSON text; so is a list, which
serves both a JSON column and `IN (:ids)`, read with `json_each`, so a
thousand ids are one bound value, not a thousand.

Constraint names: SQLite's "UNIQUE constraint failed: t.a, t.b" names the
columns, not the constraint. The adapter reads the schema's declared names
(`CONSTRAINT x PRIMARY KEY/UNIQUE (...)`, unique indexes) when it opens the
database and reports the one on those columns, so a violation carries the
same `constraint` as on Postgres.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import aiosqlite

from ..ids import isoformat_z
from ..metrics import SQLITE_WRITER_WAIT
from ..serialize import dumps
from .base import (
    Database,
    DatabaseError,
    DatabaseUnavailable,
    ForeignKeyViolation,
    IntegrityViolation,
    Row,
    Transaction,
    UniqueViolation,
    translating,
)
from .sqlfile import NamedQuery, blank_out_literals, rewrite_list_params

# How long a read may hold the event loop before it moves to a reader thread.
# unread-count with wrk (64 connections), A/B: every read on a thread ~1,100 req/s, inline first ~3,100.
INLINE_BUDGET_S = 0.002
# Why an inline read gives up: the progress handler stopped it, or the database is busy.
HAND_ON = frozenset({sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
PROGRESS_STEPS = 1000  # SQLite VM instructions between two looks at the clock


def to_sqlite(value: Any) -> Any:
    """One Python parameter value as SQLite stores it."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):  # always aware: Executor refuses naive ones
        return isoformat_z(value)
    if isinstance(value, (list, tuple, set, frozenset)):  # IN (:ids): ids as text, so no encoder callback
        return dumps([str(v) if isinstance(v, uuid.UUID) else v for v in value])
    if isinstance(value, dict):
        return dumps(value)
    return value


def _timestamptz(raw: bytes) -> datetime:
    return datetime.fromisoformat(raw.decode()).astimezone(UTC)


# Converters by the first word of a column's declared type; sqlite3 never
# calls one for NULL. The registry is sqlite3's, process-wide: these names
# are ours alone (TIMESTAMPTZ, not the TIMESTAMP that sqlite3 and yoyo use).
CONVERTERS: dict[str, Callable[[bytes], Any]] = {
    "UUID": lambda raw: uuid.UUID(raw.decode()),
    "TIMESTAMPTZ": _timestamptz,
    "BOOLEAN": lambda raw: raw != b"0",
    "JSON": json.loads,
}
for _name, _converter in CONVERTERS.items():
    sqlite3.register_converter(_name, _converter)


def _rows(raw: list[sqlite3.Row]) -> list[Row]:
    if not raw:
        return []
    names = raw[0].keys()
    return [dict(zip(names, r, strict=True)) for r in raw]


@lru_cache(maxsize=4096)
def compile_sqlite(sql: str) -> str:
    """`:name` placeholders stay (sqlite3 binds them by name); lists become json_each."""
    return rewrite_list_params(
        sql,
        in_list=lambda name: f"IN (SELECT value FROM json_each(:{name}))",
        not_in_list=lambda name: f"NOT IN (SELECT value FROM json_each(:{name}))",
    )


_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)")
_UNIQUE_INDEX = re.compile(r"index '(.+)'")
_CHECK = re.compile(r"CHECK constraint failed: (\w+)$")
# A named primary key or unique constraint in a CREATE TABLE statement.
_DECLARED_KEY = re.compile(
    r'\bCONSTRAINT\s+"?(?P<name>\w+)"?\s+(?:PRIMARY\s+KEY|UNIQUE)\s*\((?P<columns>[^)]*)\)', re.IGNORECASE)


class ConstraintNames:
    """The declared name of each primary key, unique constraint and unique
    index, by table and columns (lower-cased, in index order), read from the
    schema when the database is opened. A key without a declared name is
    called what Postgres would call it: `<table>_pkey`, `<table>_<cols>_key`."""

    def __init__(self) -> None:
        self._names: dict[tuple[str, tuple[str, ...]], str] = {}

    def read(self, conn: sqlite3.Connection) -> None:
        names: dict[tuple[str, tuple[str, ...]], str] = {}
        for table, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall():
            t = table.lower()
            primary_key = tuple(c.lower() for (c,) in conn.execute(
                "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk", (table,)))
            if primary_key:
                names[t, primary_key] = f"{table}_pkey"
            for (index,) in conn.execute(
                    "SELECT name FROM pragma_index_list(?) WHERE \"unique\" AND origin = 'c'", (table,)).fetchall():
                columns = tuple(c for (c,) in conn.execute("SELECT name FROM pragma_index_info(?) ORDER BY seqno", (index,)))
                if None not in columns:  # an index on expressions is reported by its own name
                    names[t, tuple(c.lower() for c in columns)] = index
            for m in _DECLARED_KEY.finditer(blank_out_literals(sql or "")):
                columns = tuple(item.split()[0].strip('"`[]').lower() for item in m["columns"].split(","))
                names[t, columns] = m["name"]
        self._names = names

    def unique(self, table: str, columns: list[str]) -> str:
        key = (table.lower(), tuple(c.lower() for c in columns))
        return self._names.get(key) or f"{table}_{'_'.join(columns)}_key"


def _translate(exc: Exception, constraints: ConstraintNames) -> Exception:
    """A driver exception as one of db.base's errors."""
    if isinstance(exc, sqlite3.IntegrityError):
        msg = str(exc)
        if m := _UNIQUE.match(msg):
            if index := _UNIQUE_INDEX.fullmatch(m.group(1)):
                return UniqueViolation(msg, index.group(1))
            columns = [c.strip() for c in m.group(1).split(",")]  # "t.a, t.b"
            return UniqueViolation(msg, constraints.unique(columns[0].split(".")[0], [c.split(".")[-1] for c in columns]))
        if "FOREIGN KEY" in msg:  # SQLite does not say which one
            return ForeignKeyViolation(msg)
        check = _CHECK.search(msg)
        return IntegrityViolation(msg, check.group(1) if check else None)
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return DatabaseUnavailable(f"sqlite: {exc}")
    if isinstance(exc, (sqlite3.ProgrammingError, ValueError)) and "closed" in str(exc).lower():
        return DatabaseUnavailable(f"sqlite: {exc}")
    if isinstance(exc, sqlite3.Error):
        return DatabaseError(f"sqlite: {exc}")
    return exc


def _bind(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as sqlite3 binds them by name."""
    return {k: to_sqlite(v) for k, v in params.items()}


Translate = Callable[[Exception], Exception]


async def _fetch(conn: aiosqlite.Connection, sql: str, bound: Mapping[str, Any], translate: Translate) -> list[Row]:
    # execute_fetchall: one hop to the connection's thread, not three
    # (execute, fetchall, close); it matters for short hot reads.
    with translating(translate):
        raw = await conn.execute_fetchall(sql, bound)
    return _rows(list(raw))


async def _execute(conn: aiosqlite.Connection, query: NamedQuery, params: Mapping[str, Any], translate: Translate) -> int:
    with translating(translate):
        async with conn.execute(compile_sqlite(query.sql), _bind(params)) as cur:
            return cur.rowcount


class SQLiteTransaction(Transaction):
    def __init__(self, conn: aiosqlite.Connection, queries: Mapping[str, NamedQuery], translate: Translate):
        super().__init__(queries)
        self._conn = conn
        self._translate = translate

    async def _fetch(self, query: NamedQuery, params: Mapping[str, Any]) -> list[Row]:
        return await _fetch(self._conn, compile_sqlite(query.sql), _bind(params), self._translate)

    async def _execute(self, query: NamedQuery, params: Mapping[str, Any]) -> int:
        return await _execute(self._conn, query, params, self._translate)

    async def _execute_many(self, query: NamedQuery, rows: list[Mapping[str, Any]]) -> None:
        bound = [_bind(r) for r in rows]
        with translating(self._translate):
            await self._conn.executemany(compile_sqlite(query.sql), bound)


def connection_args(path: str) -> dict[str, Any]:
    """How every connection here opens the file: an existing file only
    (`mode=rw`: a missing one is an error, never a new empty database; only
    migrations create it), result types from declared column types, and no
    implicit transactions (sqlite3 opens none; we say BEGIN ourselves)."""
    return {"database": Path(path).absolute().as_uri() + "?mode=rw", "uri": True,
            "detect_types": sqlite3.PARSE_DECLTYPES, "isolation_level": None}


class InlineReader:
    """A read-only connection used on the event loop's thread, for reads that
    finish within INLINE_BUDGET_S; `fetch` answers None for any other."""

    def __init__(self, path: str):
        # busy_timeout 0: never wait on the loop; the reader threads wait instead.
        self.conn = sqlite3.connect(**connection_args(path))
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA query_only = ON")
        self.conn.execute("PRAGMA busy_timeout = 0")
        self._deadline = 0.0
        self.conn.set_progress_handler(lambda: time.perf_counter() > self._deadline, PROGRESS_STEPS)

    def fetch(self, sql: str, bound: Mapping[str, Any]) -> list[Row] | None:
        self._deadline = time.perf_counter() + INLINE_BUDGET_S
        try:
            raw = self.conn.execute(sql, bound).fetchall()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in HAND_ON:  # primary code of an extended one
                return None  # a reader thread takes it
            raise
        return _rows(raw)

    def close(self) -> None:
        self.conn.close()


class SQLiteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: str | Path, queries: Mapping[str, NamedQuery], *, readers: int = 4, busy_timeout_ms: int = 5000):
        super().__init__(queries)
        self.path = str(path)
        self._reader_count = max(1, readers)
        self._busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        self._inline: InlineReader | None = None
        self._constraints = ConstraintNames()
        self._translate: Translate = partial(_translate, constraints=self._constraints)

    async def _open(self, *pragmas: str) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(**connection_args(self.path))
        conn.row_factory = sqlite3.Row  # rows carry their column names
        for pragma in (f"busy_timeout = {self._busy_timeout_ms}", "foreign_keys = ON", *pragmas):
            await conn.execute(f"PRAGMA {pragma}")
        return conn

    async def connect(self) -> None:
        try:
            # Open once synchronously first: a file that cannot be opened fails
            # here, cleanly, instead of inside aiosqlite's worker thread (whose
            # failure path races with the event loop closing).
            first = sqlite3.connect(**connection_args(self.path))
            try:
                self._constraints.read(first)
            finally:
                first.close()
            # WAL: readers see the last commit while the writer works.
            # synchronous=NORMAL is safe in WAL mode (no corruption; a crash of
            # the process loses nothing, a power cut at most the last commits).
            self._writer = await self._open("journal_mode = WAL", "synchronous = NORMAL")
            for _ in range(self._reader_count):
                reader = await self._open("query_only = ON")
                self._all_readers.append(reader)
                self._readers.put_nowait(reader)
            self._inline = InlineReader(self.path)
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            if not Path(self.path).exists():  # noqa: ASYNC240 (once, on a failed start-up)
                raise DatabaseUnavailable(
                    f"SQLite database file {self.path} does not exist; run `pulsestack migrate` first") from exc
            raise DatabaseUnavailable(f"cannot open SQLite database {self.path!r}: {exc}") from exc

    async def close(self) -> None:
        conns = [c for c in (self._writer, *self._all_readers) if c is not None]
        self._writer, self._all_readers = None, []
        if self._inline is not None:
            inline, self._inline = self._inline, None
            inline.close()
        self._readers = asyncio.Queue()
        for conn in conns:
            await conn.close()

    def _require_writer(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise DatabaseUnavailable("the SQLite database is not open")
        return self._writer

    @asynccontextmanager
    async def _reader(self) -> AsyncIterator[aiosqlite.Connection]:
        self._require_writer()
        conn = await self._readers.get()
        try:
            yield conn
        finally:
            if conn in self._all_readers:
                self._readers.put_nowait(conn)

    @asynccontextmanager
    async def _writer_turn(self) -> AsyncIterator[aiosqlite.Connection]:
        """The writer connection, once no other write holds it; how long that
        took is the metric pulsestack_sqlite_writer_wait_seconds."""
        started = time.perf_counter()
        async with self._write_lock:
            SQLITE_WRITER_WAIT.observe(time.perf_counter() - started)
            yield self._require_writer()

    async def _fetch(self, query: NamedQuery, params: Mapping[str, Any]) -> list[Row]:
        sql, bound = compile_sqlite(query.sql), _bind(params)  # once, whichever connection runs it
        if query.writes:  # e.g. INSERT ... RETURNING
            async with self._writer_turn() as writer:
                return await _fetch(writer, sql, bound, self._translate)
        if self._inline is not None:
            with translating(self._translate):
                rows = self._inline.fetch(sql, bound)
            if rows is not None:
                return rows
        async with self._reader() as conn:
            return await _fetch(conn, sql, bound, self._translate)

    async def _execute(self, query: NamedQuery, params: Mapping[str, Any]) -> int:
        async with self._writer_turn() as writer:
            return await _execute(writer, query, params, self._translate)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SQLiteTransaction]:
        async with self._writer_turn() as conn:
            try:
                await conn.execute("BEGIN IMMEDIATE")
            except asyncio.CancelledError:
                # The BEGIN still runs on the connection's thread: a rollback queued behind it
                # ends that transaction, or the next one to take the writer could not begin.
                await asyncio.shield(conn.rollback())
                raise
            tx = SQLiteTransaction(conn, self.queries, self._translate)
            try:
                yield tx
                # Shielded: a cancelled request must not leave the writer mid-COMMIT.
                await asyncio.shield(conn.commit())
            except BaseException:
                if conn.in_transaction:
                    await asyncio.shield(conn.rollback())
                raise
        tx._run_after_commit()

    async def ping(self) -> None:
        async with self._reader() as conn:
            try:
                await conn.execute("SELECT 1")
            except (sqlite3.Error, ValueError) as exc:
                raise DatabaseUnavailable(f"sqlite: {exc}") from exc

    async def prepare(self, query: str | NamedQuery) -> None:
        q = self.queries[query] if isinstance(query, str) else query
        nulls = {p: (json.dumps([]) if p in q.list_params else None) for p in q.params}
        # EXPLAIN compiles the statement (resolving every table, column and
        # function) without running it.
        async with self._write_lock:
            await self._require_writer().execute("EXPLAIN " + compile_sqlite(q.sql), nulls)

    async def explain(self, query: str | NamedQuery, /, **params: Any) -> str:
        q = self.queries[query] if isinstance(query, str) else query
        bound = _bind(params)
        async with self._write_lock, self._require_writer().execute("EXPLAIN QUERY PLAN " + compile_sqlite(q.sql), bound) as cur:
            return "\n".join(row[3] for row in await cur.fetchall())
