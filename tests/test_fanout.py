"""The receipt pattern at the query level: one INSERT ... SELECT per send."""

from __future__ import annotations

import uuid

from helpers import make_members, make_user, make_workspace

from pulsestack.db import NamedQuery
from pulsestack.ids import new_id, utcnow
from pulsestack.models.fields import type_prefixes
from pulsestack.queries import members, notifications, receipts, workspaces

RECEIPTS = NamedQuery.dynamic(
    "receipts_of",
    "SELECT id, user_id, workspace_id, is_read, read_at, created_at FROM notification_receipts WHERE notification_id = :notification_id",
    "many",
)


async def send(db, ws, sender, *, to=None):
    nid, now = new_id(), utcnow()
    async with db.transaction() as tx:
        await notifications.create_notification(tx, id=nid, workspace_id=ws.id, sender_id=sender.id, title="hi",
                                                message="", type="info", broadcast=to is None, created_at=now)
        if to is None:
            count = await notifications.fan_out_broadcast(tx, notification_id=nid, workspace_id=ws.id,
                                                          sender_id=sender.id, created_at=now,
                                                          type_prefixes=type_prefixes("info"), critical=False)
        else:
            count = await notifications.fan_out_direct(tx, notification_id=nid, workspace_id=ws.id, user_ids=to, created_at=now,
                                                       type_prefixes=type_prefixes("info"), critical=False)
    return nid, now, count


async def test_broadcast_writes_one_unread_receipt_per_member_but_the_sender(db):
    owner = await make_user(db)
    ws = await make_workspace(db, owner)
    member_ids = await make_members(db, ws.id, 40)
    other_ws = await make_workspace(db, await make_user(db))
    await make_members(db, other_ws.id, 5)

    nid, now, count = await send(db, ws, owner)

    rows = await db.fetch_all(RECEIPTS, notification_id=nid)
    assert count == len(rows) == 40
    assert {r["user_id"] for r in rows} == set(member_ids)
    assert all(r["workspace_id"] == ws.id and r["created_at"] == now and r["is_read"] is False and r["read_at"] is None for r in rows)
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == 40 and all(isinstance(i, uuid.UUID) for i in ids)


async def test_direct_send_reaches_only_the_listed_members(db):
    owner = await make_user(db)
    ws = await make_workspace(db, owner)
    a, b, c = await make_members(db, ws.id, 3)
    stranger = await make_user(db)

    nid, _, count = await send(db, ws, owner, to=[a, c, stranger.id])

    assert count == 2
    assert {r["user_id"] for r in await db.fetch_all(RECEIPTS, notification_id=nid)} == {a, c}


async def test_receipt_ids_are_version_7_uuids_with_their_notifications_timestamp(db):
    owner = await make_user(db)
    ws = await make_workspace(db, owner)
    member_ids = await make_members(db, ws.id, 30)

    for to in (None, member_ids[:10]):  # broadcast, then direct
        nid, _, _ = await send(db, ws, owner, to=to)
        ids = [r["id"] for r in await db.fetch_all(RECEIPTS, notification_id=nid)]
        assert ids and len(set(ids)) == len(ids)
        for rid in ids:
            assert rid.version == 7 and rid.variant == uuid.RFC_4122, rid
            assert rid.int >> 80 == nid.int >> 80, (rid, nid)  # the 48-bit millisecond head
            assert rid.int & ((1 << 74) - 1) != nid.int & ((1 << 74) - 1)  # its own random bits


async def test_unread_counts_group_by_user_and_workspace(db):
    owner = await make_user(db)
    ws1, ws2 = await make_workspace(db, owner), await make_workspace(db, owner)
    [u] = await make_members(db, ws1.id, 1)
    await members.add_member(db, id=new_id(), workspace_id=ws2.id, user_id=u, role="member", joined_at=utcnow())
    for _ in range(3):
        await send(db, ws1, owner)
    await send(db, ws2, owner)

    counts = await receipts.count_unread_by_workspace(db, [u])
    assert sorted((r.workspace_id, r.unread) for r in counts) == sorted([(ws1.id, 3), (ws2.id, 1)])


async def test_member_receipts_and_workspace_deletion_take_receipts_along(db):
    owner = await make_user(db)
    ws1, ws2 = await make_workspace(db, owner), await make_workspace(db, owner)
    [u] = await make_members(db, ws1.id, 1)
    await members.add_member(db, id=new_id(), workspace_id=ws2.id, user_id=u, role="member", joined_at=utcnow())
    n1, _, _ = await send(db, ws1, owner)
    n2, _, _ = await send(db, ws2, owner)

    assert await receipts.delete_member_receipts(db, ws1.id, u) == 1
    assert await db.fetch_all(RECEIPTS, notification_id=n1) == []
    assert len(await db.fetch_all(RECEIPTS, notification_id=n2)) == 1

    assert await workspaces.delete_workspace(db, ws2.id) == 1
    assert await db.fetch_all(RECEIPTS, notification_id=n2) == []
