"""What the websocket hub asks at each flush (sql/hub.sql): one query per
question for all the connected users it concerns, never one per user."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import NamedTuple
from uuid import UUID

from ..db import NamedQuery
from ..db.base import Executor
from ..models.resources import ChangedItem, InboxItem, UnreadCounts
from . import make, many, receipts

# A receipt as the fan-out writes it.
FRESH_RECEIPT = {"is_read": False, "read_at": None, "is_seen": False, "archived": False, "archived_at": None}


class NewReceipt(NamedTuple):
    notification_id: UUID
    user_id: UUID


class Membership(NamedTuple):
    workspace_id: UUID
    user_id: UUID


class ReceiptState(NamedTuple):
    user_id: UUID
    notification_id: UUID
    is_read: bool
    read_at: datetime | None
    archived_at: datetime | None

    def item(self) -> ChangedItem:
        return ChangedItem(id=self.notification_id, is_read=self.is_read, read_at=self.read_at,
                           archived=self.archived_at is not None, archived_at=self.archived_at)


async def list_connected_members(db: Executor, workspace_ids: Collection[UUID], user_ids: Collection[UUID]) -> list[Membership]:
    """Which of these users belong to which of these workspaces."""
    rows = await db.fetch_all("list_connected_members", workspace_ids=list(workspace_ids), user_ids=list(user_ids))
    return many(Membership, rows)


async def list_new_receipts(db: Executor, notification_ids: Collection[UUID], user_ids: Collection[UUID]) -> list[NewReceipt]:
    """Which of these users received which of these notifications."""
    rows = await db.fetch_all("list_new_receipts", notification_ids=list(notification_ids), user_ids=list(user_ids))
    return many(NewReceipt, rows)


async def list_notifications_by_ids(db: Executor, notification_ids: Collection[UUID]) -> list[InboxItem]:
    """New notifications as their recipients' inboxes show them, fresh from the send (unread), oldest first."""
    rows = await db.fetch_all("list_notifications_by_ids", notification_ids=list(notification_ids))
    return [make(InboxItem, {**row, **FRESH_RECEIPT}) for row in rows]


async def list_receipt_states(db: Executor, user_ids: Collection[UUID],
                              notification_ids: Collection[UUID]) -> list[ReceiptState]:
    """The receipts of these users for these notifications, as they are now (a superset of the pairs asked about)."""
    rows = await db.fetch_all("list_receipt_states", user_ids=list(user_ids), notification_ids=list(notification_ids))
    return many(ReceiptState, rows)


@dataclass(frozen=True)
class ConnectState:
    """What a connecting user's `ready` needs, read in one snapshot: their
    counts, and the ids and creation times of their receipts created after
    `since` (newest first, at most `limit`)."""

    counts: UnreadCounts
    recent: dict[UUID, datetime]


@cache
def connect_state_query(count_sql: str, recent_sql: str) -> NamedQuery:
    """count_unread_by_workspace (sql/receipts.sql, the very statement behind
    GET /api/notifications/unread-count) and list_recent_receipts
    (sql/hub.sql) as ONE statement, so that both read one snapshot on either
    dialect: a receipt is among the recent ones exactly when `ready` could
    count it. The two result sets come as one: the driver row `part` 0 joins
    each count row, part 1 each recent receipt (a FULL JOIN ON false, spelled
    with LEFT JOINs that SQLite has always had). Each column keeps the type
    its table declares through the CTEs, on SQLite too."""
    sql = f"""WITH counts AS (
{count_sql}
), recent AS (
{recent_sql}
)
SELECT c.workspace_id, c.unread, c.unseen, r.notification_id, r.created_at
  FROM (SELECT 0 AS part UNION ALL SELECT 1 AS part) AS p
  LEFT JOIN counts AS c ON p.part = 0
  LEFT JOIN recent AS r ON p.part = 1
 WHERE c.workspace_id IS NOT NULL OR r.notification_id IS NOT NULL"""
    return NamedQuery.dynamic("get_connect_state", sql, "many")


async def get_connect_state(db: Executor, user_id: UUID, *, since: datetime, limit: int) -> ConnectState:
    query = connect_state_query(db.queries["count_unread_by_workspace"].sql, db.queries["list_recent_receipts"].sql)
    rows = await db.fetch_all(query, user_ids=[user_id], since=since, limit=limit)
    # The same answer as receipts.count_unread makes of the same rows, so
    # `ready` says what GET /api/notifications/unread-count says.
    counts = receipts.unread_counts((r["workspace_id"], r["unread"], r["unseen"])
                                    for r in rows if r["workspace_id"] is not None)
    recent = {r["notification_id"]: r["created_at"] for r in rows if r["notification_id"] is not None}
    return ConnectState(counts, recent)
