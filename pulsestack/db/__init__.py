"""Database access: pick the adapter for a URL, load the named queries.

`open_database(url)` is the one factory; everything else in PulseStack works
with the `Database` interface of db/base.py and never learns the dialect.
"""

from __future__ import annotations

from pathlib import Path

from ..resources import sql_dir
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
)
from .sqlfile import NamedQuery, load_queries

__all__ = [
    "Database", "DatabaseConflict", "DatabaseError", "DatabaseUnavailable", "ForeignKeyViolation", "IntegrityViolation",
    "NamedQuery", "Row", "Transaction", "UniqueViolation", "dialect_of", "open_database", "sqlite_path",
]

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def dialect_of(url: str) -> str:
    """'sqlite' or 'postgres'; ValueError for any other scheme."""
    if url.startswith(SQLITE_PREFIX):
        return "sqlite"
    if url.startswith(POSTGRES_PREFIXES):
        return "postgres"
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise ValueError(f"unknown database scheme {scheme!r}: use sqlite:///path/to/file.db or postgresql://user@host:port/dbname")


def sqlite_path(url: str) -> Path:
    """The file of a sqlite:/// URL: sqlite:///./a.db is relative, sqlite:////abs/a.db absolute."""
    path = url[len(SQLITE_PREFIX):]
    if not path or path == ":memory:":
        raise ValueError("sqlite URL needs a file path (sqlite:///./pulsestack.db); "
                         "an in-memory database cannot be shared by the writer and readers")
    return Path(path)


def open_database(url: str, *, pool_size: int = 10, sqlite_readers: int = 4, busy_timeout_ms: int = 5000) -> Database:
    """An unconnected `Database` for `url`; `await db.connect()` (or `async with db`) opens it."""
    dialect = dialect_of(url)
    queries = load_queries(sql_dir(), dialect)
    if dialect == "sqlite":
        from .sqlite import SQLiteDatabase

        return SQLiteDatabase(sqlite_path(url), queries, readers=sqlite_readers, busy_timeout_ms=busy_timeout_ms)
    from .postgres import PostgresDatabase

    return PostgresDatabase(url, queries, pool_size=pool_size)
