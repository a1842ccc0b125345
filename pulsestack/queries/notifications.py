"""Notifications and their receipts (sql/notifications.sql, sql/receipts.sql).

The fan-out functions write a send's receipts with one statement, mutes
applied in it; the row count they return is the number of receipts written.
A broadcast's statement covers a range of member keys: all of them for a
small broadcast, one chunk's for a large one's job (services/fanout.py).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from ..db.base import Executor
from ..models.resources import Notification
from . import many, one

# The whole member key range, as (after, upto]: every user id is above the
# first and at most the second.
ALL_MEMBERS = (UUID(int=0), UUID(int=(1 << 128) - 1))


class ReceiptCounts(NamedTuple):
    recipient_count: int
    read_count: int


async def create_notification(db: Executor, *, id: UUID, workspace_id: UUID, sender_id: UUID | None, title: str,
                              message: str, type: str, broadcast: bool, created_at: datetime, url: str | None = None,
                              data: dict[str, Any] | None = None) -> None:
    await db.execute("create_notification", id=id, workspace_id=workspace_id, sender_id=sender_id, title=title,
                     message=message, type=type, broadcast=broadcast, created_at=created_at, url=url, data=data)


async def get_notification(db: Executor, workspace_id: UUID, notification_id: UUID) -> Notification | None:
    return one(Notification, await db.fetch_one("get_notification", workspace_id=workspace_id, notification_id=notification_id))


async def get_visible_created_at(db: Executor, user_id: UUID, notification_id: UUID) -> datetime | None:
    """The notification's created_at, if it is in one of the user's workspaces."""
    value: datetime | None = await db.fetch_value("get_visible_created_at", user_id=user_id, notification_id=notification_id)
    return value


async def fan_out_broadcast(db: Executor, *, notification_id: UUID, workspace_id: UUID, sender_id: UUID,
                            created_at: datetime, type_prefixes: Sequence[str], critical: bool,
                            members: tuple[UUID, UUID] = ALL_MEMBERS) -> int:
    """Receipts for every member but the sender whose user id is in the range
    `members` (after, upto] and who joined by `created_at`, except those with a
    live mute of one of `type_prefixes` (models.fields.type_prefixes of the
    notification's type), unless `critical`. A member who already has a
    receipt for it is left as they are."""
    after, upto = members
    return await db.execute("fan_out_broadcast", notification_id=notification_id, workspace_id=workspace_id,
                            sender_id=sender_id, created_at=created_at, type_prefixes=list(type_prefixes),
                            critical=critical, after_user_id=after, upto_user_id=upto)


async def count_broadcast_audience(db: Executor, *, workspace_id: UUID, sender_id: UUID, created_at: datetime,
                                   type_prefixes: Sequence[str], critical: bool) -> int:
    """How many receipts fan_out_broadcast would write over ALL_MEMBERS now."""
    value: int = await db.fetch_value("count_broadcast_audience", workspace_id=workspace_id, sender_id=sender_id,
                                      created_at=created_at, type_prefixes=list(type_prefixes), critical=critical)
    return value


async def fan_out_direct(db: Executor, *, notification_id: UUID, workspace_id: UUID, user_ids: Collection[UUID],
                         created_at: datetime, type_prefixes: Sequence[str], critical: bool) -> int:
    """Receipts for the listed members, with the mutes applied as fan_out_broadcast does."""
    return await db.execute("fan_out_direct", notification_id=notification_id, workspace_id=workspace_id,
                            user_ids=list(user_ids), created_at=created_at, type_prefixes=list(type_prefixes),
                            critical=critical)


async def list_workspace_notifications(db: Executor, workspace_id: UUID, *, limit: int,
                                       before: tuple[datetime, UUID] | None = None) -> list[Notification]:
    """Newest first; `before` is the (created_at, id) of the last row of the previous page."""
    if before is None:
        rows = await db.fetch_all("list_workspace_notifications", workspace_id=workspace_id, limit=limit)
    else:
        rows = await db.fetch_all("list_workspace_notifications_before", workspace_id=workspace_id,
                                  before_created_at=before[0], before_id=before[1], limit=limit)
    return many(Notification, rows)


async def count_notification_receipts(db: Executor, notification_id: UUID) -> ReceiptCounts:
    row = await db.fetch_one("count_notification_receipts", notification_id=notification_id)
    assert row is not None  # an aggregate always answers one row
    return ReceiptCounts(**row)


async def delete_notification(db: Executor, notification_id: UUID) -> int:
    return await db.execute("delete_notification", notification_id=notification_id)
