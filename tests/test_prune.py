"""Retention (services/retention.py, `pulsestack prune`, housekeeping's
retention.*) on both databases: what goes and what stays, bounded batches,
--dry-run, the CLI's per-table counts, and the pushes that follow."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from uuid import UUID

import aiohttp
import asyncpg
import pytest
from helpers import (
    HANG_GUARD_S,
    PASSWORD,
    Conn,
    Server,
    bearer,
    clean_env,
    connect,
    create_workspace,
    get_unread_count,
    join,
    make_members,
    make_user,
    make_workspace,
    poll,
    post_notification,
    register,
    run_cli,
    token_of,
    unique_email,
)

from pulsestack import housekeeping
from pulsestack.appkeys import HUB
from pulsestack.config import RetentionConfig
from pulsestack.db import NamedQuery
from pulsestack.db.postgres_bus import CHANNEL
from pulsestack.ids import new_id, utcnow
from pulsestack.services.retention import Pruned, prune

INSERT_NOTIFICATION = NamedQuery.dynamic(
    "t_insert_notification",
    "INSERT INTO notifications (id, workspace_id, sender_id, title, message, type, broadcast, created_at)"
    " VALUES (:id, :workspace_id, NULL, 't', '', 'info', false, :created_at)", "exec")
INSERT_RECEIPT = NamedQuery.dynamic(
    "t_insert_receipt",
    "INSERT INTO notification_receipts (id, notification_id, user_id, workspace_id, is_read, read_at, created_at)"
    " VALUES (:id, :notification_id, :user_id, :workspace_id, :is_read, :read_at, :created_at)", "exec")
ALL_NOTIFICATIONS = NamedQuery.dynamic("t_all_notifications", "SELECT id FROM notifications", "many")
ALL_RECEIPTS = NamedQuery.dynamic("t_all_receipts", "SELECT notification_id, user_id, is_read FROM notification_receipts", "many")
AGE_EVERYTHING = [
    NamedQuery.dynamic("t_age_notifications", "UPDATE notifications SET created_at = :at", "exec"),
    NamedQuery.dynamic("t_age_receipts", "UPDATE notification_receipts SET created_at = :at", "exec"),
]


async def rows(db) -> tuple[set, set]:
    """(notification ids, (notification, user, is_read) receipts) now in the database."""
    notifications = {r["id"] for r in await db.fetch_all(ALL_NOTIFICATIONS)}
    receipts = {(r["notification_id"], r["user_id"], bool(r["is_read"])) for r in await db.fetch_all(ALL_RECEIPTS)}
    return notifications, receipts


async def seed(db) -> dict[str, UUID]:
    """Two members a and b, and notifications of several ages:

    - old (40 days): a read 35 days ago, b unread
    - mid (20 days): a read 10 days ago, b read 15 days ago (all read, long ago)
    - recent (5 days): a read 1 day ago
    - new (now): a and b unread
    - lonely (50 days): no receipt at all (every one dismissed)
    """
    owner = await make_user(db)
    ws = await make_workspace(db, owner)
    a, b = await make_members(db, ws.id, 2)
    now = utcnow()
    ids = {"a": a, "b": b}
    days = timedelta(days=1)
    spec = {
        "old": (40, [(a, 35), (b, None)]),
        "mid": (20, [(a, 10), (b, 15)]),
        "recent": (5, [(a, 1)]),
        "new": (0, [(a, None), (b, None)]),
        "lonely": (50, []),
    }
    for name, (age, receipts) in spec.items():
        nid = ids[name] = new_id()
        created = now - age * days
        await db.execute(INSERT_NOTIFICATION, id=nid, workspace_id=ws.id, created_at=created)
        for user, read_days_ago in receipts:
            await db.execute(INSERT_RECEIPT, id=new_id(), notification_id=nid, user_id=user, workspace_id=ws.id,
                             is_read=read_days_ago is not None,
                             read_at=None if read_days_ago is None else now - read_days_ago * days, created_at=created)
    return ids


async def test_read_older_than_deletes_only_old_read_receipts_and_the_notifications_they_empty(db):
    s = await seed(db)
    pruned = await prune(db, read_older_than_days=7)
    assert (pruned.receipts, pruned.notifications) == (3, 1)
    assert pruned.users == set()  # only read receipts went: no count changed
    notifications, receipts = await rows(db)
    assert notifications == {s["old"], s["recent"], s["new"], s["lonely"]}  # mid lost every receipt
    assert receipts == {(s["old"], s["b"], False), (s["recent"], s["a"], True),
                        (s["new"], s["a"], False), (s["new"], s["b"], False)}
    assert (await prune(db, read_older_than_days=7)).receipts == 0


async def test_older_than_deletes_old_receipts_and_notifications_read_or_not(db):
    s = await seed(db)
    pruned = await prune(db, older_than_days=30)
    assert (pruned.receipts, pruned.notifications) == (2, 2)  # old's two receipts; old and lonely
    assert pruned.users == {s["b"]}  # b lost an unread receipt
    notifications, receipts = await rows(db)
    assert notifications == {s["mid"], s["recent"], s["new"]}
    assert {r[0] for r in receipts} == {s["mid"], s["recent"], s["new"]}
    assert len(receipts) == 5


async def test_both_options_together(db):
    s = await seed(db)
    pruned = await prune(db, older_than_days=30, read_older_than_days=7)
    assert (pruned.receipts, pruned.notifications) == (4, 3)
    notifications, receipts = await rows(db)
    assert notifications == {s["recent"], s["new"]}
    assert len(receipts) == 3


async def test_a_new_notification_without_receipts_is_not_taken_for_an_orphan(db):
    s = await seed(db)
    owner = await make_user(db)
    ws = await make_workspace(db, owner)
    in_flight = new_id()  # its fan-out has not written the receipts yet
    await db.execute(INSERT_NOTIFICATION, id=in_flight, workspace_id=ws.id, created_at=utcnow())
    await prune(db, older_than_days=1, read_older_than_days=1)
    notifications, _ = await rows(db)
    assert {in_flight, s["new"]} <= notifications


@pytest.mark.parametrize("options", [{"read_older_than_days": 7}, {"older_than_days": 30},
                                     {"older_than_days": 30, "read_older_than_days": 7}])
async def test_small_batches_run_several_times_and_end_the_same(db, options):
    await seed(db)
    before = await rows(db)
    whole = await prune(db, **options)
    after_whole = await rows(db)
    # Again from the same data, one row per batch.
    await db.execute(NamedQuery.dynamic("t_clear", "DELETE FROM notifications", "exec"))
    s = await seed(db)
    assert len((await rows(db))[1]) == len(before[1])
    small = await prune(db, batch=1, **options)
    assert small.batches > 1
    assert (small.receipts, small.notifications) == (whole.receipts, whole.notifications)
    after_small = await rows(db)
    assert (len(after_small[0]), len(after_small[1])) == (len(after_whole[0]), len(after_whole[1]))
    assert s["new"] in after_small[0]


@pytest.mark.parametrize("options", [{"read_older_than_days": 7}, {"older_than_days": 30},
                                     {"older_than_days": 30, "read_older_than_days": 7}])
async def test_dry_run_counts_what_would_go_and_changes_nothing(db, options):
    await seed(db)
    before = await rows(db)
    counted = await prune(db, dry_run=True, **options)
    assert counted.dry_run
    assert await rows(db) == before
    done = await prune(db, **options)
    assert (counted.receipts, counted.notifications) == (done.receipts, done.notifications)
    assert counted.summary().startswith("would delete ")


async def test_prune_needs_an_option(db):
    with pytest.raises(ValueError):
        await prune(db)


# --- the command ----------------------------------------------------------------


async def test_cli_prints_per_table_counts_dry_run_then_real(tmp_path, database_url, db):
    await seed(db)
    env = clean_env(PULSESTACK_DATABASE_URL=database_url)
    before = await rows(db)
    dry = await asyncio.to_thread(run_cli, tmp_path, "prune", "--older-than", "30", "--read-older-than", "7",
                                  "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == ["notification_receipts: would delete 4", "notifications: would delete 3"]
    assert await rows(db) == before
    real = await asyncio.to_thread(run_cli, tmp_path, "prune", "--older-than", "30", "--read-older-than", "7",
                                   "--batch", "1", env=env)
    assert real.returncode == 0, real.stderr
    assert "Traceback" not in real.stderr
    assert real.stdout.splitlines() == ["notification_receipts: deleted 4", "notifications: deleted 3"]
    notifications, receipts = await rows(db)
    assert (len(notifications), len(receipts)) == (2, 3)


def test_cli_prune_without_an_option_is_a_usage_error(tmp_path):
    result = run_cli(tmp_path, "prune", env=clean_env(PULSESTACK_DATABASE_URL="sqlite:///./nothing.db"))
    assert result.returncode == 2
    assert "--read-older-than" in result.stderr and "--older-than" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "nothing.db").exists()


def test_cli_prune_against_unreachable_postgres_is_one_line(tmp_path):
    result = run_cli(tmp_path, "prune", "--older-than", "30",
                     env=clean_env(PULSESTACK_DATABASE_URL="postgresql://postgres@127.0.0.1:1/postgres"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("pulsestack: ")


# Postgres only: SQLite has no bus between processes (docs/operations.md, Retention).
@pytest.mark.parametrize("dialect", ["postgres"], indirect=True)
async def test_cli_prune_on_postgres_notifies_the_running_servers(tmp_path, database_url, db):
    """The servers LISTEN on the bus channel (tests/test_ws_multiprocess.py shows them applying what
    they hear): the command's NOTIFY asks them to refresh the users who lost unread receipts."""
    s = await seed(db)
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[-1]))
        result = await asyncio.to_thread(run_cli, tmp_path, "prune", "--older-than", "30",
                                         env=clean_env(PULSESTACK_DATABASE_URL=database_url))
        assert result.returncode == 0, result.stderr
        payload = json.loads(await asyncio.wait_for(heard.get(), 10))
    finally:
        await listener.close()
    assert payload["r"] == [str(s["b"])]


# --- housekeeping -----------------------------------------------------------------


async def test_housekeeping_does_nothing_without_retention_settings(db):
    await seed(db)
    before = await rows(db)
    assert await housekeeping.retain_once(db, RetentionConfig()) is None
    assert await rows(db) == before


async def test_housekeeping_prune_pushes_the_new_unread_count_to_a_connected_socket(client, db):
    _, owner = await register(client)
    ws = await create_workspace(client, owner)
    _, reader = await join(client, owner, ws["slug"])
    await post_notification(client, owner, ws["slug"])
    await post_notification(client, owner, ws["slug"])
    conn = await connect(client, reader)
    assert conn.state["total"] == 2
    for query in AGE_EVERYTHING:  # both notifications are 40 days old now
        await db.execute(query, at=utcnow() - timedelta(days=40))

    pruned = await housekeeping.retain_once(db, RetentionConfig(all_days=30), client.app[HUB])
    assert isinstance(pruned, Pruned) and pruned.notifications == 2
    assert (await conn.until_unread(0))["total"] == 0
    assert (await get_unread_count(client, reader))["total"] == 0


# Postgres only: SQLite has no bus between processes (docs/operations.md, Retention).
@pytest.mark.parametrize("dialect", ["postgres"], indirect=True)
async def test_cli_prune_on_postgres_reaches_a_running_servers_socket(tmp_path, database_url, db):
    """End to end: `pulsestack serve` in a subprocess on the same Postgres database, a socket
    connected to it, then `pulsestack prune` in another process: the socket gets its new count."""
    env = clean_env(PULSESTACK_DATABASE_URL=database_url)
    server = Server(tmp_path, "--no-migrate", "--port", "0", env=env)
    try:
        base = await asyncio.to_thread(server.serving_base)
        async with aiohttp.ClientSession(base) as http:
            async def listening() -> bool:  # the server's own bus listener has sent its LISTEN
                async with http.get("/metrics") as resp:
                    return "\npulsestack_eventbus_connected 1.0\n" in await resp.text()

            await poll(listening, "the server's event-bus listener")

            async def post(path: str, body: dict, headers: dict | None = None) -> dict:
                async with http.post(path, json=body, headers=headers) as resp:
                    assert resp.status == 201, await resp.text()
                    return await resp.json()

            owner = bearer((await post("/api/auth/register", {"email": unique_email(), "password": PASSWORD}))["token"])
            reader_email = unique_email()
            reader = bearer((await post("/api/auth/register", {"email": reader_email, "password": PASSWORD}))["token"])
            ws = await post("/api/workspaces", {"name": "Old news"}, owner)
            await post(f"/api/workspaces/{ws['slug']}/members", {"email": reader_email, "role": "member"}, owner)
            await post(f"/api/workspaces/{ws['slug']}/notifications", {"title": "old", "broadcast": True}, owner)
            sock = await http.ws_connect("/ws")
            await sock.send_json({"type": "auth", "token": token_of(reader)})
            ready = await sock.receive_json(timeout=HANG_GUARD_S)
            assert ready["type"] == "ready" and ready["unread"]["total"] == 1, ready
            conn = Conn(sock, ready)
            for query in AGE_EVERYTHING:
                await db.execute(query, at=utcnow() - timedelta(days=40))

            result = await asyncio.to_thread(run_cli, tmp_path, "prune", "--older-than", "30", env=env)
            assert result.returncode == 0, result.stderr
            assert result.stdout.splitlines() == ["notification_receipts: deleted 1", "notifications: deleted 1"]
            assert (await conn.until_unread(0))["total"] == 0
            await sock.close()
        code, err = await asyncio.to_thread(server.stop)
        assert code == 0, err
    finally:
        server.kill()
