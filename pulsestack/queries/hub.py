"""What the websocket hub asks at each flush (sql/hub.sql): one query per
question for all the connected users it concerns, never one per user."""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple
from uuid import UUID

from ..db.base import Executor
from ..models.resources import InboxItem
from . import column, make, many

# A receipt as the fan-out writes it.
FRESH_RECEIPT = {"is_read": False, "read_at": None, "is_seen": False, "archived": False, "archived_at": None}


class NewReceipt(NamedTuple):
    notification_id: UUID
    user_id: UUID


async def list_connected_members(db: Executor, workspace_ids: Collection[UUID], user_ids: Collection[UUID]) -> set[UUID]:
    """Which of these users belong to any of these workspaces."""
    rows = await db.fetch_all("list_connected_members", workspace_ids=list(workspace_ids), user_ids=list(user_ids))
    return set(column(rows, "user_id"))


async def list_new_receipts(db: Executor, notification_ids: Collection[UUID], user_ids: Collection[UUID]) -> list[NewReceipt]:
    """Which of these users received which of these notifications."""
    rows = await db.fetch_all("list_new_receipts", notification_ids=list(notification_ids), user_ids=list(user_ids))
    return many(NewReceipt, rows)


async def list_notifications_by_ids(db: Executor, notification_ids: Collection[UUID]) -> list[InboxItem]:
    """New notifications as their recipients' inboxes show them, fresh from the send (unread), oldest first."""
    rows = await db.fetch_all("list_notifications_by_ids", notification_ids=list(notification_ids))
    return [make(InboxItem, {**row, **FRESH_RECEIPT}) for row in rows]
