"""`pulsestack copy-db`: copy one PulseStack database into another (SQLite
to Postgres, Postgres to SQLite, or the same dialect), then verify it.

The steps, each refusing with a `CopyError` (one line) before anything is
written when it cannot go on:

1. The source must be a PulseStack database: its yoyo log lists our steps,
   in order, and none this code does not know (a newer source is refused).
2. The target must hold no row in any of our tables (a table it does not
   have yet counts as empty), and must not be at a step the source is not.
3. The target is migrated to exactly the source's step (yoyo applies the
   steps up to it), so both have the same tables and columns.
4. Each table is copied in foreign-key order, in one transaction of its
   own, streamed in batches of BATCH_ROWS (an SQLite cursor's fetchmany or
   a Postgres server-side cursor on the reading side; `COPY` through
   asyncpg's copy_records_to_table, or executemany, on the writing side),
   so memory stays flat whatever the size. The source is read in one
   snapshot (one read transaction for the whole copy).
5. Verification: per table, the row count and a SHA-256 over every row in
   primary-key order, each row in its canonical form (`canonical_row`),
   computed while the source is read and again by streaming the target.

Values are canonical Python values on the way through, as the adapters give
them (uuid.UUID, aware UTC datetimes at microsecond precision, bools,
decoded JSON): SQLite is read with the adapter's declared-type converters
and written with its `to_sqlite`; Postgres columns are already typed.

Not resumable, on purpose: a copy interrupted (Ctrl-C, kill, a lost
connection) leaves the tables finished so far committed and the one under
way rolled back; a rerun then refuses the target as not empty, and the
clean-up is to recreate the target (drop and create the Postgres database,
or delete the SQLite file) and run again. One transaction per table keeps
that simple and each table whole; a resumable copy would need to prove
that a half-written table matches the source up to a key, for a one-off
operation that takes about a minute per million receipts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from ..errors import first_line
from ..ids import isoformat_z
from ..resources import migrations_dir
from . import dialect_of, sqlite_path
from .sqlite import connection_args, to_sqlite

log = logging.getLogger("pulsestack.copy_db")

BATCH_ROWS = 10_000
PROGRESS_EVERY_S = 5.0  # a plain progress line this often for a big table (stderr not a terminal)

# Our tables in foreign-key order (a table only refers to tables before it),
# with their primary keys: the copy's and the checksum's order.
TABLES: dict[str, tuple[str, ...]] = {
    "users": ("id",),
    "sessions": ("id",),
    "workspaces": ("id",),
    "workspace_members": ("id",),
    "workspace_mutes": ("workspace_id", "user_id", "type_prefix"),
    "notifications": ("id",),
    "notification_receipts": ("id",),
    "fanout_jobs": ("notification_id",),
    "idempotency_keys": ("sender_id", "key"),
}

CLEAN_UP = ("to start again, recreate the target (Postgres: DROP DATABASE and CREATE DATABASE; "
            "SQLite: delete the file) and rerun copy-db")


class CopyError(Exception):
    """A reason to stop, as one line."""


def known_steps() -> list[str]:
    """Our migration step ids in order (the same on both dialects)."""
    return sorted(p.name.removesuffix(".sql") for p in migrations_dir("sqlite").glob("*.sql")
                  if not p.name.endswith(".rollback.sql"))


# --- canonical form ---------------------------------------------------------

def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _timestamp_text(value: datetime) -> str:
    if value.tzinfo is None:
        raise CopyError(f"a timestamp without a time zone: {value!r}")
    if value.utcoffset():
        return isoformat_z(value)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"  # isoformat_z without astimezone


def _other(value: Any) -> Any:
    """Subclasses (asyncpg's own UUID type) and everything else."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return _timestamp_text(value)
    return value  # bool, int, str as JSON spells them


_CANONICAL: dict[type, Callable[[Any], Any]] = {uuid.UUID: str, datetime: _timestamp_text, bool: bool, int: int, str: str}


def canonical_row(row: Sequence[Any], json_columns: Sequence[bool]) -> bytes:
    """One row as the bytes the checksum reads: a compact JSON array of its
    values in column order, UUIDs as lowercase text, timestamps as ISO-8601
    UTC with 6 fractional digits and Z, booleans true/false, NULL null, a
    JSON column's value as its compact sorted-keys text, then a newline."""
    values: list[Any] = []
    for v, j in zip(row, json_columns, strict=True):
        if v is None:
            values.append(None)
        elif j:
            values.append(_json_text(v))
        else:
            values.append(_CANONICAL.get(type(v), _other)(v))
    return _ENCODER.encode(values).encode() + b"\n"


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@dataclass
class TableSum:
    rows: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def add(self, batch: Sequence[Sequence[Any]], json_columns: Sequence[bool]) -> None:
        update = self.digest.update
        for row in batch:
            update(canonical_row(row, json_columns))
        self.rows += len(batch)

    def hexdigest(self) -> str:
        return str(self.digest.hexdigest())


# --- the two sides ----------------------------------------------------------

@dataclass(frozen=True)
class Columns:
    names: tuple[str, ...]
    json: tuple[bool, ...]


class Side:
    """One database, opened for copy-db: read its log, its tables, its rows."""

    dialect: str

    def __init__(self, url: str):
        self.url = url

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def applied_steps(self) -> list[str] | None:
        """The yoyo log's step ids in order of application; None without a log."""
        raise NotImplementedError
    async def tables(self) -> set[str]: raise NotImplementedError
    async def columns(self, table: str) -> Columns: raise NotImplementedError
    async def has_rows(self, table: str) -> bool: raise NotImplementedError
    async def count(self, table: str) -> int: raise NotImplementedError
    async def begin_snapshot(self) -> None: ...
    async def end_snapshot(self) -> None: ...
    def rows(self, table: str, columns: Columns) -> AsyncGenerator[list[tuple[Any, ...]], None]:
        """Every row of `table`, in primary-key order, in batches."""
        raise NotImplementedError
    async def write(self, table: str, columns: Columns, batches: AsyncIterator[list[tuple[Any, ...]]]) -> None:
        """Insert every batch, all in one transaction."""
        raise NotImplementedError


class SQLiteSide(Side):
    dialect = "sqlite"

    def __init__(self, url: str, *, create: bool = False):
        super().__init__(url)
        self.path = sqlite_path(url)
        self.create = create
        self.conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        if not self.path.exists():
            if not self.create:
                raise CopyError(f"no such file: {self.path}")
            return  # the migrations create it; copy_db opens it again after them
        self._connect()

    def _connect(self) -> None:
        try:
            self.conn = sqlite3.connect(**connection_args(str(self.path)))
            self.conn.execute("PRAGMA busy_timeout = 5000")
            if not self.create:
                self.conn.execute("PRAGMA query_only = ON")  # a source is only read
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            raise CopyError(f"cannot open {self.path}: {first_line(exc)}") from exc

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _c(self) -> sqlite3.Connection:
        assert self.conn is not None
        return self.conn

    async def tables(self) -> set[str]:
        if self.conn is None:
            return set()
        return {r[0] for r in self._c().execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    async def applied_steps(self) -> list[str] | None:
        if "_yoyo_migration" not in await self.tables():
            return None
        return [r[0] for r in self._c().execute("SELECT migration_id FROM _yoyo_migration ORDER BY applied_at_utc, migration_id")]

    async def columns(self, table: str) -> Columns:
        info = self._c().execute(f'PRAGMA table_info("{table}")').fetchall()
        return Columns(tuple(r[1] for r in info), tuple(str(r[2]).upper().split(" ")[0] == "JSON" for r in info))

    async def has_rows(self, table: str) -> bool:
        return self._c().execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone() is not None

    async def count(self, table: str) -> int:
        return int(self._c().execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])

    async def begin_snapshot(self) -> None:
        self._c().execute("BEGIN")
        self._c().execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts at the first read

    async def end_snapshot(self) -> None:
        if self.conn is not None and self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    async def rows(self, table: str, columns: Columns) -> AsyncGenerator[list[tuple[Any, ...]], None]:
        names = ", ".join(f'"{c}"' for c in columns.names)
        order = ", ".join(f'"{c}"' for c in TABLES[table])
        cursor = self._c().execute(f'SELECT {names} FROM "{table}" ORDER BY {order}')
        try:
            while batch := cursor.fetchmany(BATCH_ROWS):
                yield batch
                await asyncio.sleep(0)  # let a Ctrl-C and the other side's I/O through
        finally:
            cursor.close()

    async def write(self, table: str, columns: Columns, batches: AsyncIterator[list[tuple[Any, ...]]]) -> None:
        conn = self._c()
        names = ", ".join(f'"{c}"' for c in columns.names)
        marks = ", ".join("?" for _ in columns.names)
        sql = f'INSERT INTO "{table}" ({names}) VALUES ({marks})'
        json_cols = columns.json

        def convert(row: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(None if v is None else json.dumps(v, separators=(",", ":")) if j else to_sqlite(v)
                         for v, j in zip(row, json_cols, strict=True))

        conn.execute("BEGIN IMMEDIATE")
        try:
            async for batch in batches:
                conn.executemany(sql, map(convert, batch))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


class PostgresSide(Side):
    dialect = "postgres"

    def __init__(self, url: str):
        super().__init__(url)
        self.conn: asyncpg.Connection | None = None
        self._snapshot: Any = None
        self._types: dict[str, list[tuple[str, str]]] = {}  # table -> (column, data_type), in column order

    async def open(self) -> None:
        try:
            self.conn = await asyncpg.connect(self.url, timeout=10)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise CopyError(f"cannot connect: {first_line(exc)}") from exc

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    def _c(self) -> asyncpg.Connection:
        assert self.conn is not None
        return self.conn

    async def tables(self) -> set[str]:
        rows = await self._c().fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        return {r[0] for r in rows}

    async def applied_steps(self) -> list[str] | None:
        if "_yoyo_migration" not in await self.tables():
            return None
        rows = await self._c().fetch("SELECT migration_id FROM _yoyo_migration ORDER BY applied_at_utc, migration_id")
        return [r[0] for r in rows]

    async def _column_types(self, table: str) -> list[tuple[str, str]]:
        """(column, data_type) of `table`, in column order; read once (a side is reopened after
        migrating, so its schema does not change while it is open)."""
        if table not in self._types:
            rows = await self._c().fetch(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position", table)
            self._types[table] = [(r[0], r[1]) for r in rows]
        return self._types[table]

    async def columns(self, table: str) -> Columns:
        types = await self._column_types(table)
        return Columns(tuple(name for name, _ in types), tuple(kind in ("json", "jsonb") for _, kind in types))

    async def has_rows(self, table: str) -> bool:
        return await self._c().fetchval(f'SELECT EXISTS (SELECT 1 FROM "{table}")') is True

    async def count(self, table: str) -> int:
        return int(await self._c().fetchval(f'SELECT count(*) FROM "{table}"'))

    async def begin_snapshot(self) -> None:
        self._snapshot = self._c().transaction(isolation="repeatable_read", readonly=True)
        await self._snapshot.start()

    async def end_snapshot(self) -> None:
        if self._snapshot is not None:
            await self._snapshot.rollback()
            self._snapshot = None

    async def _order(self, table: str) -> str:
        # Text keys in byte order ("C"), as SQLite's BINARY sorts them, so both
        # sides list rows in the same order; uuid sorts as its lowercase text does.
        types = dict(await self._column_types(table))
        return ", ".join(f'"{c}" COLLATE "C"' if types.get(c) == "text" else f'"{c}"' for c in TABLES[table])

    async def rows(self, table: str, columns: Columns) -> AsyncGenerator[list[tuple[Any, ...]], None]:
        conn = self._c()
        names = ", ".join(f'"{c}"' for c in columns.names)
        sql = f'SELECT {names} FROM "{table}" ORDER BY {await self._order(table)}'
        own = not conn.is_in_transaction()
        tx = conn.transaction(readonly=True) if own else None
        if tx is not None:
            await tx.start()
        try:
            cursor = await conn.cursor(sql)
            json_cols = columns.json
            any_json = any(json_cols)
            while batch := await cursor.fetch(BATCH_ROWS):
                if any_json:  # no codec on this connection: json comes as text
                    yield [tuple(json.loads(v) if j and v is not None else v for v, j in zip(r, json_cols, strict=True))
                           for r in batch]
                else:
                    yield [tuple(r) for r in batch]
        finally:
            if tx is not None:
                await tx.rollback()

    async def write(self, table: str, columns: Columns, batches: AsyncIterator[list[tuple[Any, ...]]]) -> None:
        conn = self._c()
        json_cols = columns.json
        any_json = any(json_cols)
        async with conn.transaction():
            async for batch in batches:
                if any_json:
                    records: list[tuple[Any, ...]] = [
                        tuple(json.dumps(v, separators=(",", ":")) if j and v is not None else v
                              for v, j in zip(r, json_cols, strict=True)) for r in batch]
                else:
                    records = batch
                await conn.copy_records_to_table(table, records=records, columns=list(columns.names))


def side_for(url: str, *, target: bool = False) -> Side:
    try:
        dialect = dialect_of(url)
        return SQLiteSide(url, create=target) if dialect == "sqlite" else PostgresSide(url)
    except ValueError as exc:
        raise CopyError(str(exc)) from exc


# --- progress ---------------------------------------------------------------

class Progress:
    """Rows, rows/s and time left for one table: a tqdm bar on a terminal,
    log lines otherwise (one every PROGRESS_EVERY_S, and one at the end)."""

    def __init__(self, table: str, total: int, bar: bool):
        self.table, self.total = table, total
        self.done = 0
        self.started = self.last_line = time.monotonic()
        self.bar: Any = None
        if bar:
            from tqdm import tqdm  # type: ignore[import-untyped]

            self.bar = tqdm(total=total, desc=table, unit=" rows", unit_scale=True, file=sys.stderr, leave=True)

    def add(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last_line >= PROGRESS_EVERY_S:
            self.last_line = now
            rate = self.done / max(now - self.started, 1e-9)
            left = (self.total - self.done) / rate if rate else 0.0
            log.info("copy-db: %s: %d of %d rows, %.0f rows/s, about %.0f s left",
                     self.table, self.done, self.total, rate, left)

    def finish(self) -> float:
        elapsed = time.monotonic() - self.started
        if self.bar is not None:
            self.bar.close()
        log.info("copy-db: %s: %d rows in %.1f s (%.0f rows/s)", self.table, self.done, elapsed,
                 self.done / max(elapsed, 1e-9))
        return elapsed


# --- checks -----------------------------------------------------------------

async def source_step(source: Side) -> str:
    """The source's last applied step; CopyError unless it is a PulseStack database this code knows."""
    try:
        applied = await source.applied_steps()
    except (sqlite3.Error, asyncpg.PostgresError) as exc:
        raise CopyError(f"--from is not a PulseStack database: {first_line(exc)}") from exc
    if not applied:
        raise CopyError("--from is not a PulseStack database: it has no migration log (yoyo) with PulseStack's steps")
    known = known_steps()
    unknown = [s for s in applied if s not in known]
    if unknown:
        if any(s[:4].isdigit() for s in unknown) and set(applied) & set(known):
            raise CopyError(f"--from is at migration step {unknown[-1]}, newer than this pulsestack knows "
                            f"(latest {known[-1]}); run copy-db with the pulsestack that migrated it")
        raise CopyError(f"--from is not a PulseStack database: its migration log lists unknown steps ({', '.join(unknown)})")
    if sorted(applied) != known[:len(applied)]:
        raise CopyError(f"--from has an incomplete migration log ({', '.join(applied)}); run: pulsestack migrate on it first")
    return known[len(applied) - 1]


async def check_target(target: Side, step: str) -> list[str]:
    """Refuse a target with any row in our tables, or ahead of the source; the steps it lacks."""
    tables = await target.tables()
    full = [t for t in TABLES if t in tables and await target.has_rows(t)]
    if full:
        raise CopyError(f"--to is not empty (rows in {', '.join(full)}); copy-db only fills an empty database; "
                        f"nothing was changed. If an earlier copy-db was interrupted, {CLEAN_UP}")
    applied = await target.applied_steps() or []
    known = known_steps()
    wanted = known[:known.index(step) + 1]
    extra = [s for s in applied if s not in wanted]
    if extra:
        raise CopyError(f"--to is already migrated past the source's step {step} ({', '.join(extra)}); "
                        "use a new empty database as the target; nothing was changed")
    return [s for s in wanted if s not in applied]


# --- copy and verify --------------------------------------------------------

@dataclass
class TableReport:
    table: str
    rows: int
    checksum: str
    seconds: float = 0.0


async def _in_order(side: Side, table: str, names: tuple[str, ...] | None) -> Columns:
    """`side`'s columns of `table`, in the order `names` gives (the source's):
    both sides hash rows with their columns in one order."""
    cols = await side.columns(table)
    if names is None:
        return cols
    if set(names) != set(cols.names):
        raise CopyError(f"{table}: columns differ between --from and --to")
    is_json = dict(zip(cols.names, cols.json, strict=True))
    return Columns(names, tuple(is_json[n] for n in names))


async def _checksums(side: Side, tables: Sequence[str],
                     order: dict[str, tuple[str, ...]] | None = None) -> dict[str, TableSum]:
    sums: dict[str, TableSum] = {}
    for table in tables:
        cols = await _in_order(side, table, (order or {}).get(table))
        s = sums[table] = TableSum()
        async with aclosing(side.rows(table, cols)) as rows:
            async for batch in rows:
                s.add(batch, cols.json)
    return sums


def _compare(source: dict[str, TableSum], target: dict[str, TableSum]) -> list[TableReport]:
    bad = []
    for table, s in source.items():
        t = target[table]
        if s.rows != t.rows:
            bad.append(f"{table} (rows: {s.rows} in --from, {t.rows} in --to)")
        elif s.hexdigest() != t.hexdigest():
            bad.append(f"{table} (same {s.rows} rows, different contents)")
    if bad:
        raise CopyError(f"verification failed: {'; '.join(bad)}")
    return [TableReport(t, s.rows, s.hexdigest()) for t, s in source.items()]


async def _opened(url: str, which: str, *, target: bool = False) -> Side:
    side = side_for(url, target=target)
    try:
        await side.open()
    except CopyError as exc:
        raise CopyError(f"cannot open {which}: {exc}") from exc
    return side


async def verify_only(from_url: str, to_url: str) -> list[TableReport]:
    source = await _opened(from_url, "--from")
    try:
        target = await _opened(to_url, "--to")
        try:
            step = await source_step(source)
            target_steps = await target.applied_steps() or []
            if not target_steps or target_steps[-1] != step:
                raise CopyError(f"--to is not at the source's migration step {step}")
            present = await source.tables()  # one catalogue read, not one per table
            tables = [t for t in TABLES if t in present]
            await source.begin_snapshot()
            await target.begin_snapshot()
            try:
                order = {t: (await source.columns(t)).names for t in tables}
                return _compare(await _checksums(source, tables), await _checksums(target, tables, order))
            finally:
                await source.end_snapshot()
                await target.end_snapshot()
        finally:
            await target.close()
    finally:
        await source.close()


async def copy_db(from_url: str, to_url: str, *, bar: bool | None = None) -> list[TableReport]:
    """Copy, then verify; the tables' reports. Raises CopyError with one line."""
    from .migrate import apply_migrations_up_to  # yoyo, only when a copy runs

    if bar is None:
        bar = sys.stderr.isatty()
    if _same(from_url, to_url):
        raise CopyError("--from and --to are the same database")
    source = await _opened(from_url, "--from")
    try:
        step = await source_step(source)
        target = await _opened(to_url, "--to", target=True)
        try:
            missing = await check_target(target, step)
            if missing:
                await target.close()  # yoyo takes its own connection and lock
                try:
                    applied = await asyncio.to_thread(apply_migrations_up_to, to_url, step)
                except Exception as exc:
                    raise CopyError(f"cannot migrate --to: {first_line(exc)}") from exc
                log.info("copy-db: migrated --to to %s (%s)", step, ", ".join(applied) or "nothing to apply")
                target = await _opened(to_url, "--to", target=True)
                await check_target(target, step)  # still empty: nothing wrote meanwhile
            present = await source.tables()  # one catalogue read, not one per table
            tables = [t for t in TABLES if t in present]
            await source.begin_snapshot()
            try:
                sums: dict[str, TableSum] = {}
                seconds: dict[str, float] = {}
                order: dict[str, tuple[str, ...]] = {}
                for table in tables:
                    cols = await source.columns(table)
                    await _in_order(target, table, cols.names)  # the same columns
                    order[table] = cols.names
                    total = await source.count(table)
                    progress = Progress(table, total, bar)
                    s = sums[table] = TableSum()

                    async def batches(table: str = table, cols: Columns = cols, s: TableSum = s,
                                      progress: Progress = progress) -> AsyncGenerator[list[tuple[Any, ...]], None]:
                        async with aclosing(source.rows(table, cols)) as rows:
                            async for batch in rows:
                                s.add(batch, cols.json)
                                yield batch
                                progress.add(len(batch))

                    async with aclosing(batches()) as stream:
                        await target.write(table, cols, stream)
                    seconds[table] = progress.finish()
            finally:
                await source.end_snapshot()
            log.info("copy-db: verifying --to")
            reports = _compare(sums, await _checksums(target, tables, order))
            for r in reports:
                r.seconds = seconds[r.table]
            return reports
        finally:
            await target.close()
    finally:
        await source.close()


def _same(a: str, b: str) -> bool:
    try:
        if dialect_of(a) == dialect_of(b) == "sqlite":
            pa, pb = sqlite_path(a), sqlite_path(b)
            return pa == pb or (pa.exists() and pb.exists() and Path(pa).samefile(pb))
    except ValueError:
        return False
    return a == b
