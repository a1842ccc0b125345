"""Notifications and their receipts (sql/notifications.sql, sql/receipts.sql).

The fan-out functions write every receipt of a send with one statement; the
row count they return is the number of recipients.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from uuid import UUID

from ..db.base import Executor, Row


async def create_notification(db: Executor, *, id: UUID, workspace_id: UUID, sender_id: UUID | None, title: str,
                              message: str, type: str, broadcast: bool, created_at: datetime) -> None:
    await db.execute("create_notification", id=id, workspace_id=workspace_id, sender_id=sender_id, title=title,
                     message=message, type=type, broadcast=broadcast, created_at=created_at)


async def get_notification(db: Executor, workspace_id: UUID, notification_id: UUID) -> Row | None:
    return await db.fetch_one("get_notification", workspace_id=workspace_id, notification_id=notification_id)


async def fan_out_broadcast(db: Executor, *, notification_id: UUID, workspace_id: UUID, sender_id: UUID, created_at: datetime) -> int:
    return await db.execute("fan_out_broadcast", notification_id=notification_id, workspace_id=workspace_id,
                            sender_id=sender_id, created_at=created_at)


async def fan_out_direct(db: Executor, *, notification_id: UUID, workspace_id: UUID, user_ids: Collection[UUID], created_at: datetime) -> int:
    return await db.execute("fan_out_direct", notification_id=notification_id, workspace_id=workspace_id,
                            user_ids=list(user_ids), created_at=created_at)


async def count_unread_by_workspace(db: Executor, user_ids: Collection[UUID]) -> list[Row]:
    """Rows of (user_id, workspace_id, unread) for the users that have any unread."""
    return await db.fetch_all("count_unread_by_workspace", user_ids=list(user_ids))


async def delete_member_receipts(db: Executor, workspace_id: UUID, user_id: UUID) -> int:
    return await db.execute("delete_member_receipts", workspace_id=workspace_id, user_id=user_id)
