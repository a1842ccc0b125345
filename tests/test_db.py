"""The Database interface behaves the same on both adapters."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from helpers import make_members, make_user, make_workspace, register

from pulsestack.db import (
    DatabaseConflict,
    DatabaseUnavailable,
    ForeignKeyViolation,
    IntegrityViolation,
    NamedQuery,
    UniqueViolation,
)
from pulsestack.ids import new_id, utcnow
from pulsestack.models.fields import type_prefixes
from pulsestack.queries import idempotency, members, notifications, receipts, sessions, users
from pulsestack.services import workspaces as workspaces_service


async def test_values_come_back_as_the_same_python_types(db):
    moment = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    uid = new_id()
    created = await users.create_user(db, id=uid, email="ann@example.com", password_hash="h", system_role="user", created_at=moment)
    fetched = await users.get_user(db, uid)
    for row in (created, fetched):
        assert row is not None
        assert row.model_dump() == {"id": uid, "email": "ann@example.com", "system_role": "user", "created_at": moment}
        assert isinstance(row.id, uuid.UUID)
        assert row.created_at.tzinfo is not None and row.created_at.utcoffset() == timedelta(0)


# One column of each type PulseStack declares, spelled per dialect as the
# migrations spell it (migrations/sqlite/0003_declared_types.sql).
TYPED_COLUMNS = {
    "postgres": "k integer, ref uuid, at timestamptz, archived boolean, label text, n integer, doc json",
    "sqlite": "k INTEGER, ref UUID TEXT, at TIMESTAMPTZ TEXT, archived BOOLEAN, label TEXT, n INTEGER, doc JSON TEXT",
}
INSERT_TYPED = NamedQuery.dynamic(
    "insert_typed", "INSERT INTO typed_values (k, ref, at, archived, label, n, doc) VALUES (:k, :ref, :at, :archived, :label, :n, :doc)",
    "exec")
SELECT_TYPED = NamedQuery.dynamic("select_typed", "SELECT ref, at, archived, label, n, doc FROM typed_values ORDER BY k", "many")


@pytest.fixture
async def typed_table(db, dialect):
    await db.execute(NamedQuery.dynamic("create_typed", f"CREATE TABLE typed_values ({TYPED_COLUMNS[dialect]})", "exec"))
    try:
        yield
    finally:
        await db.execute(NamedQuery.dynamic("drop_typed", "DROP TABLE typed_values", "exec"))


def python_types(row: dict) -> dict:
    return {k: type(v).__name__ for k, v in row.items()}


async def test_each_declared_type_comes_back_as_the_same_python_value(db, typed_table):
    moment = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    rows = [
        {"ref": new_id(), "at": moment, "archived": True, "label": "x", "n": 42,
         "doc": {"a": [1, "two", None, True], "b": {"c": 1.5}}},
        {"ref": new_id(), "at": moment + timedelta(microseconds=1), "archived": False, "label": "", "n": 0,
         "doc": [1, {"x": "y"}]},  # a list parameter bound to a JSON column
        {"ref": None, "at": None, "archived": None, "label": None, "n": None, "doc": None},
    ]
    async with db.transaction() as tx:
        for k, row in enumerate(rows):
            await tx.execute(INSERT_TYPED, k=k, **row)
        assert await tx.fetch_all(SELECT_TYPED) == rows  # the writer's connection
    fetched = await db.fetch_all(SELECT_TYPED)  # a reader's
    assert fetched == rows
    assert python_types(fetched[0]) == {"ref": "UUID", "at": "datetime", "archived": "bool", "label": "str", "n": "int", "doc": "dict"}
    assert python_types(fetched[1])["archived"] == "bool" and python_types(fetched[1])["doc"] == "list"
    assert fetched[0]["at"].utcoffset() == timedelta(0)
    assert set(python_types(fetched[2]).values()) == {"NoneType"}


async def test_types_follow_the_column_through_aliases_and_scalar_subqueries(db, typed_table):
    ref = new_id()
    await db.execute(INSERT_TYPED, k=1, ref=ref, at=utcnow(), archived=True, label="l", n=1, doc={"k": "v"})
    q = NamedQuery.dynamic(
        "aliased_typed",
        "SELECT t.archived AS is_archived, t.archived AS hidden, t.ref AS owner,"
        "       (SELECT s.ref FROM typed_values AS s WHERE s.k = 1) AS first_ref, count(*) AS n"
        "  FROM typed_values AS t GROUP BY t.archived, t.ref", "one")
    row = await db.fetch_one(q)
    assert row == {"is_archived": True, "hidden": True, "owner": ref, "first_ref": ref, "n": 1}
    assert type(row["hidden"]) is bool and type(row["n"]) is int


async def test_a_column_name_never_decides_the_type(db):
    q = NamedQuery.dynamic(
        "name_lookalikes", "SELECT 'x' AS stripe_customer_id, 'y' AS id, 'soon' AS starts_at, 2 AS is_big", "one")
    assert await db.fetch_one(q) == {"stripe_customer_id": "x", "id": "y", "starts_at": "soon", "is_big": 2}


async def test_aware_datetimes_in_other_zones_are_stored_as_utc(db):
    plus_two = timezone(timedelta(hours=2))
    uid = new_id()
    await users.create_user(db, id=uid, email="tz@example.com", password_hash="h", system_role="user",
                            created_at=datetime(2026, 5, 1, 12, 0, 0, 1, tzinfo=plus_two))
    assert (await users.get_user(db, uid)).created_at == datetime(2026, 5, 1, 10, 0, 0, 1, tzinfo=timezone.utc)


async def test_naive_datetimes_are_refused(db):
    with pytest.raises(TypeError, match="naive"):
        await users.create_user(db, id=new_id(), email="n@example.com", password_hash="h", system_role="user",
                                created_at=datetime(2026, 1, 1))


async def test_booleans_and_counts(db):
    owner = await make_user(db)
    ws = await make_workspace(db, owner)
    [member] = await make_members(db, ws.id, 1)
    nid = new_id()
    await notifications.create_notification(db, id=nid, workspace_id=ws.id, sender_id=owner.id, title="t", message="",
                                            type="info", broadcast=True, created_at=utcnow())
    row = await notifications.get_notification(db, ws.id, nid)
    assert row.broadcast is True
    assert await notifications.fan_out_broadcast(db, notification_id=nid, workspace_id=ws.id, sender_id=owner.id,
                                                 created_at=row.created_at, type_prefixes=type_prefixes("info"),
                                                 critical=False) == 1
    assert await receipts.count_unread_by_workspace(db, [member, owner.id]) == [(member, ws.id, 1, 1)]


@pytest.mark.parametrize("count", [0, 1, 1000])
async def test_list_parameters_of_any_length(db, count):
    owner = await make_user(db)
    ws = await make_workspace(db, owner)
    ids = await make_members(db, ws.id, min(count, 50))
    strangers = [new_id() for _ in range(max(0, count - len(ids)))]
    assert await members.list_member_ids_among(db, ws.id, ids + strangers) == set(ids)


async def test_execute_returns_the_row_count(db):
    owner = await make_user(db)
    ws = await make_workspace(db, owner)
    ids = await make_members(db, ws.id, 3)
    assert await members.update_member_role(db, ws.id, ids[0], "admin") == 1
    assert await members.update_member_role(db, ws.id, owner.id, "member") == 0  # never the owner
    assert await members.remove_member(db, ws.id, new_id()) == 0


async def test_transaction_commits_and_runs_after_commit_hooks(db):
    called = []
    uid = new_id()
    async with db.transaction() as tx:
        await users.create_user(tx, id=uid, email="c@example.com", password_hash="h", system_role="user", created_at=utcnow())
        tx.after_commit(lambda: called.append(uid))
        assert called == []  # not before the commit
    assert called == [uid]
    assert await users.get_user(db, uid) is not None


async def test_transaction_rolls_back_on_error_and_skips_hooks(db):
    called = []
    uid = new_id()
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await users.create_user(tx, id=uid, email="r@example.com", password_hash="h", system_role="user", created_at=utcnow())
            tx.after_commit(lambda: called.append(uid))
            raise RuntimeError("boom")
    assert called == []
    assert await users.get_user(db, uid) is None
    # The database is usable afterwards.
    async with db.transaction() as tx:
        await users.create_user(tx, id=uid, email="r@example.com", password_hash="h", system_role="user", created_at=utcnow())
    assert await users.get_user(db, uid) is not None


async def test_a_cancelled_transaction_commits_nothing_and_frees_the_writer(db):
    inside = asyncio.Event()
    uid = new_id()

    async def slow_request():
        async with db.transaction() as tx:
            await users.create_user(tx, id=uid, email="x@example.com", password_hash="h", system_role="user", created_at=utcnow())
            inside.set()
            await asyncio.Event().wait()  # a client that went away mid-request

    task = asyncio.create_task(slow_request())
    await asyncio.wait_for(inside.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await users.get_user(db, uid) is None
    other = await asyncio.wait_for(make_user(db, "after@example.com"), 10)
    assert await users.get_user(db, other.id) is not None


async def test_readers_see_the_last_commit_while_a_write_is_open(db):
    before = await make_user(db, "before@example.com")
    in_tx = asyncio.Event()
    release = asyncio.Event()
    uid = new_id()

    async def long_write():
        async with db.transaction() as tx:
            await users.create_user(tx, id=uid, email="during@example.com", password_hash="h", system_role="user", created_at=utcnow())
            in_tx.set()
            await release.wait()

    writer = asyncio.create_task(long_write())
    await asyncio.wait_for(in_tx.wait(), 10)
    # The write is open: reads do not queue behind it, and do not see it.
    assert await asyncio.wait_for(users.get_user(db, before.id), 10) is not None
    assert await asyncio.wait_for(users.get_user(db, uid), 10) is None
    release.set()
    await asyncio.wait_for(writer, 10)
    assert await users.get_user(db, uid) is not None


async def test_unique_violations_name_the_constraint_the_schema_declares(db):
    """The same name on both dialects: the one declared in the migrations."""

    async def violated(write) -> str:
        with pytest.raises(UniqueViolation) as err:
            await write
        return err.value.constraint

    owner = await make_user(db, "dup@example.com")
    assert await violated(make_user(db, "dup@example.com")) == "users_email_key"
    assert await violated(users.create_user(db, id=owner.id, email="other@example.com", password_hash="h",
                                            system_role="user", created_at=utcnow())) == "users_pkey"

    ws = await make_workspace(db, owner, slug="taken")
    assert await violated(make_workspace(db, owner, slug="taken")) == "workspaces_slug_key"
    assert await violated(members.add_member(db, id=new_id(), workspace_id=ws.id, user_id=owner.id, role="member",
                                             joined_at=utcnow())) == "workspace_members_workspace_id_user_id_key"

    now = utcnow()
    await idempotency.create_idempotency_key(db, owner.id, "k-1", "{}", now)
    assert await violated(idempotency.create_idempotency_key(db, owner.id, "k-1", "{}", now)) == "idempotency_keys_pkey"
    await sessions.create_session(db, id=new_id(), user_id=owner.id, token_hash="t", created_at=now, expires_at=now)
    assert await violated(sessions.create_session(db, id=new_id(), user_id=owner.id, token_hash="t", created_at=now,
                                                  expires_at=now)) == "sessions_token_hash_key"


async def test_check_violations_name_the_constraint(db):
    with pytest.raises(IntegrityViolation) as err:
        await make_user(db, "Upper@Example.com")
    assert err.value.constraint == "users_email_lower"


async def test_foreign_keys_are_enforced(db):
    owner = await make_user(db)
    ws = await make_workspace(db, owner)
    with pytest.raises(ForeignKeyViolation):
        await members.add_member(db, id=new_id(), workspace_id=ws.id, user_id=new_id(), role="member", joined_at=utcnow())


async def test_timestamps_compare_exactly_at_microseconds(db):
    user = await make_user(db)
    now = utcnow()
    for offset in (-1, 0, 1):
        await sessions.create_session(db, id=new_id(), user_id=user.id, token_hash=f"h{offset}", created_at=now,
                                      expires_at=now + timedelta(microseconds=offset))
    # expires_at <= now: exactly the -1 and the 0 microsecond ones.
    assert await sessions.delete_expired_sessions(db, now) == 2
    assert await sessions.get_session_user(db, "h1", now) is not None


async def test_calls_that_do_not_match_the_header_are_refused(db):
    with pytest.raises(TypeError, match="called with"):
        await db.fetch_one("get_user", id=new_id())
    with pytest.raises(TypeError, match="is :one"):
        await db.fetch_all("get_user", user_id=new_id())
    with pytest.raises(LookupError):
        await db.fetch_one("no_such_query")


async def test_dynamic_queries_run_like_named_ones(db):
    user = await make_user(db, "dyn@example.com")
    q = NamedQuery.dynamic("find_by_ids", "SELECT id, email FROM users WHERE id IN (:ids) ORDER BY email", "many")
    assert await db.fetch_all(q, ids=[user.id, new_id()]) == [{"id": user.id, "email": "dyn@example.com"}]


async def test_a_closed_database_is_unavailable(database_url):
    from pulsestack.db import open_database

    db = open_database(database_url)
    await db.connect()
    await db.close()
    with pytest.raises(DatabaseUnavailable):
        await db.ping()
    with pytest.raises(DatabaseUnavailable):
        await users.get_user(db, new_id())


@pytest.mark.parametrize("dialect", ["postgres"], indirect=True)  # SQLite has no connection to kill from outside
async def test_reads_survive_a_dropped_postgres_connection(db, dialect, database_url):
    import psycopg

    user = await make_user(db)
    assert await users.get_user(db, user.id) is not None  # the pool now holds a connection
    with psycopg.connect(database_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]
    assert killed >= 1
    assert (await users.get_user(db, user.id)).id == user.id


async def _confuse_protocol(db) -> None:
    """Leave the pool's one connection as asyncpg leaves one whose stream lost
    step (seen after a server restart): an unexpected server message puts its
    protocol in a state where the next operation raises InternalClientError
    ("cannot switch to state ...; another operation (...) is in progress")."""
    async with db._pool.acquire() as conn:
        stray_data_row = b"D" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big")
        conn._con._protocol.data_received(stray_data_row)


@pytest.mark.parametrize("dialect", ["postgres"], indirect=True)
async def test_a_connection_in_a_confused_protocol_state_is_unavailable_and_discarded(database_url):
    from pulsestack.db import open_database

    async with open_database(database_url, pool_size=1) as db:
        user = await make_user(db)
        await _confuse_protocol(db)
        # A write is never retried blindly: the caller hears "unavailable" (503).
        with pytest.raises(DatabaseUnavailable):
            await make_user(db)
        # The broken connection was thrown away: the next statement runs on a new one.
        assert (await users.get_user(db, user.id)).id == user.id

        await _confuse_protocol(db)
        with pytest.raises(DatabaseUnavailable):
            async with db.transaction() as tx:
                await users.get_user(tx, user.id)
        assert (await users.get_user(db, user.id)).id == user.id

        # A read that meets a broken connection is retried once on a new one.
        await _confuse_protocol(db)
        assert (await users.get_user(db, user.id)).id == user.id


LOCK_USER = NamedQuery.dynamic("t_lock_user", "SELECT id FROM users WHERE id = :id FOR UPDATE", "many")


@pytest.mark.parametrize("dialect", ["postgres"], indirect=True)  # SQLite's one writer never deadlocks
async def test_a_deadlock_rolls_one_transaction_back_as_a_conflict_to_retry(db, client, monkeypatch):
    """Two transactions lock two rows in opposite orders: Postgres ends the deadlock by rolling
    one back, which the adapter reports as DatabaseConflict, and the API as a 503 to retry."""
    a, b = await make_user(db), await make_user(db)
    both_hold_one = asyncio.Barrier(2)

    async def lock(first, second) -> None:
        async with db.transaction() as tx:
            await tx.fetch_all(LOCK_USER, id=first.id)
            await both_hold_one.wait()
            await tx.fetch_all(LOCK_USER, id=second.id)

    results = await asyncio.gather(lock(a, b), lock(b, a), return_exceptions=True)

    [conflict] = [r for r in results if r is not None]
    assert isinstance(conflict, DatabaseConflict) and isinstance(conflict, DatabaseUnavailable)
    assert "Deadlock" in str(conflict)

    # Through the API: the same answer as a database that does not answer, with its own message.
    async def rolled_back(*args, **kwargs):
        raise conflict

    monkeypatch.setattr(workspaces_service, "list_page", rolled_back)
    _, headers = await register(client)
    resp = await client.get("/api/workspaces", headers=headers)
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "unavailable"

