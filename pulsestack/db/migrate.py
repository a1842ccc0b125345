"""Schema migrations with yoyo: plain-SQL steps in migrations/<dialect>/.

The same steps can be applied without Python by a DBA (`yoyo apply
--database postgresql+psycopg://... migrations/postgres`, or psql -f); this
module only points yoyo at the right folder for a database URL. yoyo is
synchronous (psycopg 3 / sqlite3), so call these before the event loop
starts, or from a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from yoyo import get_backend, read_migrations

from ..resources import migrations_dir
from . import dialect_of, sqlite_path


def yoyo_url(url: str) -> str:
    """Our database URL in yoyo's spelling (psycopg 3 driver for Postgres)."""
    if dialect_of(url) == "sqlite":
        sqlite_path(url)  # validates
        return url
    return "postgresql+psycopg://" + url.split("://", 1)[1]


@dataclass(frozen=True)
class MigrationResult:
    applied: tuple[str, ...]
    pending_before: int


def _backend_and_migrations(url: str) -> tuple[Any, Any]:
    backend = get_backend(yoyo_url(url))
    migrations = read_migrations(str(migrations_dir(dialect_of(url))))
    return backend, migrations


def apply_migrations(url: str) -> MigrationResult:
    """Apply every pending step, under yoyo's lock; a no-op when up to date."""
    backend, migrations = _backend_and_migrations(url)
    try:
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        return MigrationResult(tuple(m.id for m in pending), len(pending))
    finally:
        backend.connection.close()


def rollback_migrations(url: str, steps: int | None = None) -> tuple[str, ...]:
    """Roll back the last `steps` applied steps (all of them when None)."""
    backend, migrations = _backend_and_migrations(url)
    try:
        with backend.lock():
            to_rollback = backend.to_rollback(migrations)
            if steps is not None:
                to_rollback = to_rollback[:steps]
            backend.rollback_migrations(to_rollback)
        return tuple(m.id for m in to_rollback)
    finally:
        backend.connection.close()


def pending_migrations(url: str) -> tuple[str, ...]:
    backend, migrations = _backend_and_migrations(url)
    try:
        return tuple(m.id for m in backend.to_apply(migrations))
    finally:
        backend.connection.close()


def apply_migrations_up_to(url: str, last: str) -> tuple[str, ...]:
    """Apply the pending steps up to and including `last` (none after it),
    under yoyo's lock: `copy-db` brings its target to its source's step."""
    backend, migrations = _backend_and_migrations(url)
    try:
        ids = [m.id for m in migrations]
        if last not in ids:
            raise ValueError(f"unknown migration step {last!r}")
        wanted_ids = set(ids[:ids.index(last) + 1])
        wanted = migrations.filter(lambda m: m.id in wanted_ids)
        with backend.lock():
            pending = backend.to_apply(wanted)
            backend.apply_migrations(pending)
        return tuple(m.id for m in pending)
    finally:
        backend.connection.close()


@dataclass(frozen=True)
class StepStatus:
    id: str
    applied_at: datetime | None  # UTC, as yoyo recorded it; None: pending


def migration_status(url: str) -> list[StepStatus]:
    """Every step of the dialect in order, applied (and when) or pending.
    Changes nothing: a SQLite file that does not exist yet is not created,
    and yoyo's own tables are not created where it never ran."""
    dialect = dialect_of(url)
    migrations = read_migrations(str(migrations_dir(dialect)))
    if dialect == "sqlite" and not sqlite_path(url).exists():
        return [StepStatus(m.id, None) for m in migrations]
    when = _applied_at(url)
    return [StepStatus(m.id, _utc(when[m.hash]) if m.hash in when else None) for m in migrations]


_APPLIED_SQL = "SELECT migration_hash, CAST(applied_at_utc AS TEXT) FROM _yoyo_migration"


def _applied_at(url: str) -> dict[str, str]:
    """{migration hash: applied_at_utc} from yoyo's table, read with the plain
    driver: yoyo's backend would create its lock table on connecting."""
    if dialect_of(url) == "sqlite":
        import sqlite3

        lite = sqlite3.connect(f"file:{sqlite_path(url)}?mode=ro", uri=True)
        try:
            if not lite.execute("SELECT 1 FROM sqlite_master WHERE name = '_yoyo_migration'").fetchone():
                return {}
            return {h: t for h, t in lite.execute(_APPLIED_SQL).fetchall()}
        finally:
            lite.close()
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as pg:
        row = pg.execute("SELECT to_regclass('_yoyo_migration')").fetchone()
        if row is None or row[0] is None:
            return {}
        return {h: t for h, t in pg.execute(_APPLIED_SQL).fetchall()}


def _utc(value: str | None) -> datetime | None:
    if value is None:
        return None
    when = datetime.fromisoformat(value)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
