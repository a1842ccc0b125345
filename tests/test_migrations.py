"""Migrations: apply from empty, re-apply as a no-op, roll back, and the two
dialects' schemas match (tables, columns, their types and nullability, keys,
indexes, constraint names); 0003 rebuilds SQLite's tables keeping every row."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import psycopg
import pytest
from helpers import make_members, make_user, make_workspace, with_database

from pulsestack.db import ForeignKeyViolation, NamedQuery, open_database
from pulsestack.db.migrate import apply_migrations, pending_migrations, rollback_migrations
from pulsestack.ids import new_id, utcnow
from pulsestack.models.fields import type_prefixes
from pulsestack.queries import idempotency, notifications, receipts, sessions
from pulsestack.resources import migrations_dir

TABLES = {"users", "sessions", "workspaces", "workspace_members", "notifications", "notification_receipts", "idempotency_keys",
          "workspace_mutes", "fanout_jobs"}
YOYO_TABLES = {"_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock"}
# The column types SQLite declares (its adapter converts by them) and the
# Postgres type of the same column; nothing else may appear on SQLite.
SQLITE_TYPE_ON_POSTGRES = {
    "UUID TEXT": "uuid",
    "TIMESTAMPTZ TEXT": "timestamp with time zone",
    "BOOLEAN": "boolean",
    "TEXT": "text",
    "INTEGER": "integer",
    "JSON TEXT": "json",
}


def step_ids(dialect: str) -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in migrations_dir(dialect).glob("*.sql") if not p.stem.endswith(".rollback")))


def test_both_dialects_have_the_same_steps():
    assert step_ids("postgres") == step_ids("sqlite")
    for dialect in ("postgres", "sqlite"):
        for step in step_ids(dialect):
            assert (migrations_dir(dialect) / f"{step}.rollback.sql").is_file(), f"{dialect}/{step} has no rollback"


def table_names(url: str) -> set[str]:
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url[len("sqlite:///"):]) as conn:
            return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_apply_from_empty_then_reapply_is_a_noop(empty_database_url, dialect):
    result = apply_migrations(empty_database_url)
    assert result.applied == step_ids(dialect)
    assert TABLES <= table_names(empty_database_url)
    assert pending_migrations(empty_database_url) == ()

    again = apply_migrations(empty_database_url)
    assert again.applied == ()
    assert TABLES <= table_names(empty_database_url)


def test_rollback_removes_everything_and_apply_works_again(empty_database_url, dialect):
    apply_migrations(empty_database_url)
    undone = rollback_migrations(empty_database_url)
    assert undone == tuple(reversed(step_ids(dialect)))
    assert table_names(empty_database_url) - YOYO_TABLES == set()
    assert pending_migrations(empty_database_url) == step_ids(dialect)

    assert apply_migrations(empty_database_url).applied == step_ids(dialect)
    assert TABLES <= table_names(empty_database_url)


def sqlite_schema(path: Path) -> dict:
    conn = sqlite3.connect(path)
    tables = sorted(t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'") if t not in YOYO_TABLES)
    columns, types, uniques, indexes, fks, constraints = {}, {}, set(), {}, set(), set()
    for t in tables:
        info = conn.execute(f"PRAGMA table_info({t})").fetchall()
        # A PRIMARY KEY column is NOT NULL in spirit even where SQLite's pragma says otherwise.
        columns[t] = [(c[1], bool(c[3]) or bool(c[5])) for c in info]
        types[t] = [(c[1], SQLITE_TYPE_ON_POSTGRES.get(c[2], c[2])) for c in info]
        [sql] = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (t,)).fetchone()
        constraints |= {(t, name) for name in re.findall(r"\bCONSTRAINT\s+(\w+)", re.sub(r"--[^\n]*", "", sql))}
        for _, name, unique, origin, partial in conn.execute(f"PRAGMA index_list({t})"):
            cols = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({name})"))
            if origin == "u":
                uniques.add((t, cols))
            elif origin == "c":
                indexes[name] = (t, cols, bool(unique), bool(partial))
        for fk in conn.execute(f"PRAGMA foreign_key_list({t})"):
            if fk[1] == 0:  # a composite key by its first column, as the Postgres side reads it
                fks.add((t, fk[3], fk[2], fk[6].upper()))
    conn.close()
    return {"columns": columns, "types": types, "uniques": uniques, "indexes": indexes, "foreign_keys": fks,
            "constraints": constraints}


def postgres_schema(url: str) -> dict:
    with psycopg.connect(url) as conn:
        tables = sorted(t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'") if t not in YOYO_TABLES)
        columns = {
            t: [(name, notnull) for name, notnull in conn.execute(
                "SELECT attname, attnotnull FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                (t,))]
            for t in tables
        }
        types = {
            t: [(name, pgtype) for name, pgtype in conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (t,))]
            for t in tables
        }
        constraints = {
            (t, name) for t, name in conn.execute(
                "SELECT conrelid::regclass::text, conname FROM pg_constraint"
                " WHERE connamespace = 'public'::regnamespace AND contype IN ('p', 'u', 'f', 'c')")
            if t in tables
        }
        uniques = {
            (t, tuple(cols))
            for t, cols in conn.execute(
                "SELECT c.conrelid::regclass::text, array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o)"
                " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o)"
                " FROM pg_constraint c WHERE c.contype = 'u' AND c.connamespace = 'public'::regnamespace")
        }
        indexes = {
            name: (t, tuple(cols), unique, partial)
            for name, t, cols, unique, partial in conn.execute(
                "SELECT i.relname, t.relname, array(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(n, o)"
                " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n ORDER BY k.o),"
                " x.indisunique, x.indpred IS NOT NULL"
                " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
                " WHERE t.relnamespace = 'public'::regnamespace AND NOT x.indisprimary"
                " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)")
        }
        fks = {
            (t, col, ref, {"c": "CASCADE", "n": "SET NULL", "a": "NO ACTION", "r": "RESTRICT", "d": "SET DEFAULT"}[action])
            for t, col, ref, action in conn.execute(
                "SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, c.confdeltype"
                " FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
                " WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace")
        }
    return {"columns": columns, "types": types, "uniques": uniques, "indexes": indexes, "foreign_keys": fks,
            "constraints": constraints}


def test_both_dialects_end_with_the_same_schema(sqlite_template, postgres_server, postgres_database):
    lite = sqlite_schema(sqlite_template)
    pg = postgres_schema(with_database(postgres_server.url, postgres_database))
    assert set(lite["columns"]) == TABLES
    for key in ("columns", "types", "uniques", "indexes", "foreign_keys", "constraints"):
        assert lite[key] == pg[key], key
    # Every primary key is named as Postgres names it, so a violation reports the same name.
    assert {("idempotency_keys", "idempotency_keys_pkey"), ("users", "users_pkey")} <= lite["constraints"]
    # The indexes the hot paths rely on are there, by name.
    assert pg["indexes"]["receipts_unread_idx"] == ("notification_receipts", ("user_id", "workspace_id", "created_at", "is_read"), False, True)
    assert pg["indexes"]["receipts_inbox_idx"][1] == ("user_id", "created_at", "notification_id")
    assert pg["indexes"]["receipts_inbox_active_idx"] == ("notification_receipts", ("user_id", "created_at", "notification_id"), False, True)
    # Retention (0006): read receipts by read_at (partial: the fan-out, writing unread receipts, never touches it), notifications by age.
    assert pg["indexes"]["receipts_read_at_idx"] == ("notification_receipts", ("read_at",), False, True)
    assert pg["indexes"]["notifications_created_idx"] == ("notifications", ("created_at",), False, False)
    # Fan-out jobs (0007): the oldest first.
    assert pg["indexes"]["fanout_jobs_created_idx"] == ("fanout_jobs", ("created_at", "notification_id"), False, False)
    assert pg["indexes"]["workspace_members_audience_idx"] == ("workspace_members", ("workspace_id", "user_id", "joined_at"), False, False)


async def read_everything(db) -> dict:
    tables = ("users", "sessions", "workspaces", "workspace_members", "notifications", "notification_receipts", "idempotency_keys")
    # Ordered by every column: the same rows in the same order on both dialects.
    return {t: await db.fetch_all(NamedQuery.dynamic(f"all_{t}", f"SELECT * FROM {t} ORDER BY 1, 2, 3", "many")) for t in tables}


async def test_the_declared_types_step_keeps_every_row_and_constraint(empty_database_url, dialect):
    apply_migrations(empty_database_url)
    async with open_database(empty_database_url) as db:
        owner = await make_user(db)
        ws = await make_workspace(db, owner)
        member, reader = await make_members(db, ws.id, 2)
        now = utcnow()  # after the members joined: a broadcast reaches those who joined by its time
        nid = new_id()
        await notifications.create_notification(db, id=nid, workspace_id=ws.id, sender_id=owner.id, title="t",
                                                message="m", type="info", broadcast=True, created_at=now)
        await notifications.fan_out_broadcast(db, notification_id=nid, workspace_id=ws.id, sender_id=owner.id, created_at=now,
                                              type_prefixes=type_prefixes("info"), critical=False)
        await receipts.mark_read(db, reader, nid, now)
        await sessions.create_session(db, id=new_id(), user_id=member, token_hash="h", created_at=now, expires_at=now)
        await idempotency.create_idempotency_key(db, owner.id, "k", '{"a": 1}', now)
        before = await read_everything(db)
    since = tuple(s for s in step_ids(dialect) if s >= "0003")  # 0003_declared_types and every later step
    assert rollback_migrations(empty_database_url, len(since)) == since[::-1]
    assert apply_migrations(empty_database_url).applied == since

    async with open_database(empty_database_url) as db:
        after = await read_everything(db)
        assert after == before
        assert [r["is_read"] for r in sorted(after["notification_receipts"], key=lambda r: r["user_id"] != reader)] == [True, False]
        # Foreign keys still hold and still cascade.
        with pytest.raises(ForeignKeyViolation):
            await sessions.create_session(db, id=new_id(), user_id=new_id(), token_hash="x", created_at=now, expires_at=now)
        await notifications.delete_notification(db, nid)
        assert (await read_everything(db))["notification_receipts"] == []


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_the_sqlite_rebuild_refuses_to_run_with_foreign_keys_on(empty_database_url):
    # With foreign keys on, dropping a table would first delete (and cascade) the rows that refer to it.
    apply_migrations(empty_database_url)
    rollback_migrations(empty_database_url, len([s for s in step_ids("sqlite") if s >= "0003"]))
    path = empty_database_url[len("sqlite:///"):]
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        with pytest.raises(sqlite3.IntegrityError, match="run_with_foreign_keys_off"):
            conn.executescript((migrations_dir("sqlite") / "0003_declared_types.sql").read_text())
        assert conn.execute("SELECT type FROM pragma_table_info('users') WHERE name = 'id'").fetchone() == ("TEXT",)
    finally:
        conn.close()
