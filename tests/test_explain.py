"""The hot queries use the indexes they were written for, on both dialects.

A few thousand receipts are seeded (and ANALYZEd), then each hot statement's
plan is read with Database.explain: no full scan of notification_receipts,
and the named index doing the work.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import UUID_EXPR, make_members, make_user, make_workspace, seed_members

from pulsestack.db import NamedQuery
from pulsestack.ids import new_id, utcnow
from pulsestack.models.fields import type_prefixes
from pulsestack.queries import members, receipts
from pulsestack.queries.notifications import ALL_MEMBERS

MEMBERS = 10
NOTIFICATIONS = 300  # per member: enough that a sort of a user's whole inbox costs more than the index walk
OTHER_MEMBERS = 4000  # in other workspaces: one workspace's members are a small part of the table

async def seed_broadcasts(db, workspace_id, sender_id, count: int) -> None:
    """`count` broadcasts with their receipts, set-based (the product's own fan-out is tested elsewhere)."""
    uuid = UUID_EXPR[db.dialect]
    await db.execute(NamedQuery.dynamic("seed_notifications",
        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :count) "
        f"INSERT INTO notifications (id, workspace_id, sender_id, title, message, type, broadcast, created_at) "
        f"SELECT {uuid}, :workspace_id, :sender_id, 't', '', 'info', true, :now FROM s", "exec"),
        count=count, workspace_id=workspace_id, sender_id=sender_id, now=utcnow())
    await db.execute(NamedQuery.dynamic("seed_receipts",
        f"INSERT INTO notification_receipts (id, notification_id, user_id, workspace_id, is_read, created_at) "
        f"SELECT {uuid}, n.id, m.user_id, n.workspace_id, false, n.created_at "
        f"FROM notifications AS n JOIN workspace_members AS m ON m.workspace_id = n.workspace_id "
        f"WHERE n.workspace_id = :workspace_id AND m.user_id <> :sender_id", "exec"),
        workspace_id=workspace_id, sender_id=sender_id)


async def seed_mutes(db, workspace_id) -> None:
    """Every member of `workspace_id` mutes three prefixes (the whole workspace among them), set-based."""
    await db.execute(NamedQuery.dynamic("seed_mutes",
        "INSERT INTO workspace_mutes (workspace_id, user_id, type_prefix, until, created_at) "
        "SELECT m.workspace_id, m.user_id, p.prefix, NULL, :now FROM workspace_members AS m "
        "CROSS JOIN (SELECT '' AS prefix UNION ALL SELECT 'billing' UNION ALL SELECT 'chat.message') AS p "
        "WHERE m.workspace_id = :workspace_id", "exec"), workspace_id=workspace_id, now=utcnow())


@pytest.fixture
async def seeded(db):
    owner = await make_user(db)
    ws = await make_workspace(db, owner)
    member_ids = await make_members(db, ws.id, MEMBERS)
    other_ws = await make_workspace(db, owner)
    await seed_members(db, other_ws.id, OTHER_MEMBERS)
    await seed_mutes(db, other_ws.id)
    await seed_mutes(db, ws.id)
    await seed_broadcasts(db, ws.id, owner.id, NOTIFICATIONS)
    nid = await db.fetch_value(NamedQuery.dynamic("any_notification", "SELECT id FROM notifications WHERE workspace_id = :w ORDER BY id LIMIT 1", "scalar"), w=ws.id)
    await receipts.mark_all_read(db, member_ids[0], utcnow())
    await receipts.archive_all(db, member_ids[0], utcnow(), workspace_id=None, before=None, only_read=True)
    await members.mark_seen(db, member_ids[1], utcnow())
    if db.dialect == "postgres":
        # The run's Postgres database is shared by every test and emptied with DELETE, which
        # leaves tables and indexes at the size earlier tests grew them to (a race test writes
        # tens of thousands of receipts). Rewrite them compact, so the plans see this data alone.
        await db.execute(NamedQuery.dynamic(
            "compact", "VACUUM FULL users, workspaces, workspace_members, workspace_mutes, notifications, notification_receipts",
            "exec"))
    # Fresh statistics (and on Postgres a visibility map, which index-only scans need), as autovacuum would leave them.
    await db.execute(NamedQuery.dynamic("analyze", "VACUUM ANALYZE" if db.dialect == "postgres" else "ANALYZE", "exec"))
    return {"db": db, "ws": ws, "owner": owner, "user": member_ids[1], "nid": nid}


def uses(plan: str, dialect: str, index: str) -> bool:
    if dialect == "postgres":  # Index Scan / Index Only Scan "using X", Bitmap Index Scan "on X"
        return f"using {index}" in plan or f"Bitmap Index Scan on {index}" in plan
    return f"INDEX {index}" in plan


def no_receipts_scan(plan: str, dialect: str) -> bool:
    if dialect == "postgres":
        return "Seq Scan on notification_receipts" not in plan
    return not any(line.startswith(("SCAN r", "SCAN notification_receipts")) for line in plan.splitlines())


async def plan(seeded, query, **params) -> str:
    return await seeded["db"].explain(query, **params)


INBOX_INDEX = {"exclude": "receipts_inbox_active_idx", "include": "receipts_inbox_idx", "only": "receipts_inbox_archived_idx"}


@pytest.mark.parametrize("archived", INBOX_INDEX)
async def test_inbox_pages_walk_the_inbox_index_of_their_archived_filter(seeded, dialect, archived):
    """The default page (archived excluded) walks the index of unarchived receipts only, so archived
    ones never lie between a page's rows; `only` has its own; `include` the full one."""
    u, now = seeded["user"], utcnow()
    for kwargs in ({}, {"status": "unread"}, {"before": (now, new_id())}, {"workspace_id": seeded["ws"].id, "status": "read"},
                   {"after": (now, new_id())}, {"before": (now, new_id()), "after": (now, new_id())}):
        query = receipts.inbox_query(workspace="workspace_id" in kwargs, status=kwargs.get("status", "all"),
                                     type_=False, cursor="before" in kwargs, archived=archived, after="after" in kwargs)
        params = {"user_id": u, "limit": 21}
        if "workspace_id" in kwargs:
            params["workspace_id"] = kwargs["workspace_id"]
        if "before" in kwargs:
            params["before_created_at"], params["before_id"] = kwargs["before"]
        if "after" in kwargs:
            params["after_created_at"], params["after_id"] = kwargs["after"]
        p = await plan(seeded, query, **params)
        assert uses(p, dialect, INBOX_INDEX[archived]), p
        assert no_receipts_scan(p, dialect), p
        if dialect == "sqlite":
            assert "TEMP B-TREE" not in p, p  # the index gives the order: no sort


async def test_unread_and_unseen_counts_read_only_the_partial_index(seeded, dialect):
    """Both counts are index-only reads of receipts_unread_idx. SQLite: two ranges, unread by (user,
    workspace), unseen by (user, workspace, created_at > seen_until) ("user" has a seen_until, so it
    runs); Postgres: one range per membership, counted twice."""
    p = await plan(seeded, "count_unread_by_workspace", user_ids=[seeded["user"]])
    assert no_receipts_scan(p, dialect), p
    if dialect == "sqlite":
        ranges = [line for line in p.splitlines() if "receipts_unread_idx" in line]
        assert ranges == ["SEARCH r USING COVERING INDEX receipts_unread_idx (user_id=? AND workspace_id=?)",
                          "SEARCH r USING COVERING INDEX receipts_unread_idx (user_id=? AND workspace_id=? AND created_at>?)"], p
    else:  # one pass per membership, both counts from the same index-only range (sql/postgres/receipts.sql)
        assert "Index Only Scan using receipts_unread_idx" in p, p
        assert "Heap Fetches" not in p or "Heap Fetches: 0" in p, p


async def test_read_all_uses_the_unread_index(seeded, dialect):
    p = await plan(seeded, "mark_all_read", user_id=seeded["user"], workspace_id=None, before=None, now=utcnow())
    assert uses(p, dialect, "receipts_unread_idx"), p
    assert no_receipts_scan(p, dialect), p


async def test_archive_all_walks_only_unarchived_receipts(seeded, dialect):
    for only_read in (True, False):
        for query in ("archive_all_receipts", "list_archivable_ids"):
            params = {"now": utcnow()} if query == "archive_all_receipts" else {"limit": 101}
            p = await plan(seeded, query, user_id=seeded["user"], workspace_id=None, before=None, only_read=only_read,
                           **params)
            assert uses(p, dialect, "receipts_inbox_active_idx"), p
            assert no_receipts_scan(p, dialect), p


async def test_single_receipt_statements_use_the_unique_key(seeded, dialect):
    s, now = seeded, utcnow()
    statements = {
        "mark_read": {"user_id": s["user"], "notification_id": s["nid"], "now": now},
        "mark_unread": {"user_id": s["user"], "notification_id": s["nid"]},
        "mark_read_many": {"user_id": s["user"], "notification_ids": [s["nid"], new_id()], "now": now},
        "delete_receipt": {"user_id": s["user"], "notification_id": s["nid"]},
        "get_inbox_item": {"user_id": s["user"], "notification_id": s["nid"]},
        "archive_receipt": {"user_id": s["user"], "notification_id": s["nid"], "now": now},
        "unarchive_receipt": {"user_id": s["user"], "notification_id": s["nid"]},
        "archive_receipts": {"user_id": s["user"], "notification_ids": [s["nid"], new_id()], "now": now},
    }
    index = "notification_receipts_notification_id_user_id_key" if dialect == "postgres" else "sqlite_autoindex_notification_receipts_2"
    for query, params in statements.items():
        p = await plan(s, query, **params)
        assert uses(p, dialect, index), (query, p)
        assert no_receipts_scan(p, dialect), (query, p)


def chunk_of(seeded) -> dict:
    """A broadcast's parameters for one chunk's member range: from the seeded user on."""
    return {"sender_id": seeded["owner"].id, "after_user_id": seeded["user"], "upto_user_id": ALL_MEMBERS[1]}


def member_keys(dialect: str) -> tuple[str, str]:
    """The two indexes that lead with (workspace_id, user_id): the unique key, and the audience index
    that adds joined_at (a broadcast's members read from it alone, on SQLite without a row lookup)."""
    unique = "workspace_members_workspace_id_user_id_key" if dialect == "postgres" else "sqlite_autoindex_workspace_members_2"
    return unique, "workspace_members_audience_idx"


def uses_member_key(plan: str, dialect: str) -> bool:
    return any(uses(plan, dialect, index) for index in member_keys(dialect))


async def test_fan_out_reads_members_through_their_unique_key(seeded, dialect):
    s = seeded
    for query, extra in (("fan_out_broadcast", chunk_of(s)), ("fan_out_direct", {"user_ids": [s["user"]]})):
        p = await plan(s, query, notification_id=new_id(), workspace_id=s["ws"].id, created_at=utcnow(),
                       type_prefixes=type_prefixes("info"), critical=False, **extra)
        # A direct send's listed users may come through (user_id, workspace_id, seen_until) instead: also an equality probe.
        assert uses_member_key(p, dialect) or (query == "fan_out_direct" and uses(p, dialect, "workspace_members_user_idx")), p
        assert "Seq Scan on workspace_members" not in p and "SCAN m" not in p.splitlines(), p



async def test_fan_out_probes_each_members_mutes_through_their_primary_key(seeded, dialect):
    """The mutes anti-join inside the fan-out's INSERT ... SELECT is an index probe per member on
    workspace_mutes_pkey (workspace_id, user_id, type_prefix), never a scan of the mutes; the members
    are still read through an index (the unique key; a direct send may probe (user_id, workspace_id) instead)."""
    s = seeded
    for query, extra in (("fan_out_broadcast", chunk_of(s)), ("fan_out_direct", {"user_ids": [s["user"]]})):
        p = await plan(s, query, notification_id=new_id(), workspace_id=s["ws"].id, created_at=utcnow(),
                       type_prefixes=type_prefixes("billing.invoice"), critical=False, **extra)
        assert uses_member_key(p, dialect) or (query == "fan_out_direct" and uses(p, dialect, "workspace_members_user_idx")), p
        if dialect == "postgres":
            assert uses(p, dialect, "workspace_mutes_pkey"), p
            assert "Seq Scan on workspace_mutes" not in p and "Seq Scan on workspace_members" not in p, p
        else:  # a WITHOUT ROWID table's primary key is the table itself
            assert "SEARCH u USING PRIMARY KEY (workspace_id=? AND user_id=? AND type_prefix=?)" in p.splitlines(), p
            assert not any(line.startswith(("SCAN u", "SCAN m", "SCAN workspace_mutes")) for line in p.splitlines()), p


async def test_a_broadcasts_audience_is_counted_from_two_ranges_without_a_probe_per_member(seeded, dialect):
    """count_broadcast_audience (every send of a broadcast runs it): the workspace's members are one
    range of their unique key, and its live mutes one range of workspace_mutes_pkey, never a scan."""
    s = seeded
    p = await plan(s, "count_broadcast_audience", workspace_id=s["ws"].id, sender_id=s["owner"].id, created_at=utcnow(),
                   type_prefixes=type_prefixes("billing.invoice"), critical=False)
    if dialect == "postgres":
        assert uses_member_key(p, dialect), p
        assert uses(p, dialect, "workspace_mutes_pkey"), p
        assert "Seq Scan on workspace_mutes" not in p and "Seq Scan on workspace_members" not in p, p
    else:  # the members' joined_at from the audience index, not a row lookup each
        lines = p.splitlines()
        assert "SEARCH m USING COVERING INDEX workspace_members_audience_idx (workspace_id=?)" in lines, p
        assert "SEARCH u USING PRIMARY KEY (workspace_id=?)" in lines, p
        assert not any(line.startswith(("SCAN u", "SCAN m", "SCAN workspace_")) for line in lines), p


async def test_a_fan_out_chunk_finds_its_end_in_the_members_unique_key(seeded, dialect):
    """A large broadcast's job finds where its next chunk ends by walking (workspace_id, user_id) from
    the last key it did: at most a chunk's worth of index entries, however far into the workspace."""
    p = await plan(seeded, "get_chunk_end", workspace_id=seeded["ws"].id, after_user_id=seeded["user"], skip=4)
    assert uses_member_key(p, dialect), p
    assert "Sort" not in p and "USE TEMP B-TREE" not in p, p


async def test_the_next_fan_out_job_is_found_without_walking_the_notifications(seeded, dialect):
    """Each chunk starts by taking the oldest job: its type comes from one notification by primary
    key (a join let SQLite's planner scan every notification instead, 4 ms a chunk at 100,000)."""
    p = await plan(seeded, "lock_next_fanout_job")
    if dialect == "postgres":  # a subplan per job row (the test's few hundred notifications are scanned, not probed)
        assert "SubPlan" in p and "Join" not in p, p
    else:
        assert not any(line.lstrip("|-` ").startswith(("SCAN n", "SCAN notifications")) for line in p.splitlines()), p
        assert "SEARCH n USING INDEX sqlite_autoindex_notifications_1 (id=?)" in p, p


async def test_retention_deletes_find_their_rows_through_the_retention_indexes(seeded, dialect):
    """prune's batches (sql/retention.sql): read receipts by receipts_read_at_idx (partial), old
    notifications by notifications_created_idx and their receipts by the (notification, user) key;
    no batch scans notification_receipts."""
    cutoff = utcnow() - timedelta(days=30)
    p = await plan(seeded, "delete_read_receipts_before", cutoff=cutoff, batch=5000)
    assert uses(p, dialect, "receipts_read_at_idx"), p
    assert no_receipts_scan(p, dialect), p
    for query in ("delete_receipts_of_notifications_before", "delete_notifications_before"):
        p = await plan(seeded, query, cutoff=cutoff, batch=5000)
        # SQLite may instead skip-scan notifications_workspace_created_idx when there are
        # few workspaces (two here): a range on created_at in each, as good.
        assert uses(p, dialect, "notifications_created_idx") or (
            dialect == "sqlite" and "notifications_workspace_created_idx (ANY(workspace_id) AND created_at<?)" in p), p
        assert no_receipts_scan(p, dialect), p
