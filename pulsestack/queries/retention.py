"""Retention deletes and their dry-run counts (sql/retention.sql)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from ..db.base import Executor
from . import many


class DeletedReceipt(NamedTuple):
    user_id: UUID
    notification_id: UUID
    is_read: bool


async def delete_read_receipts_before(db: Executor, cutoff: datetime, batch: int) -> list[DeletedReceipt]:
    rows = await db.fetch_all("delete_read_receipts_before", cutoff=cutoff, batch=batch)
    return many(DeletedReceipt, rows)


async def delete_receipts_of_notifications_before(db: Executor, cutoff: datetime, batch: int) -> list[DeletedReceipt]:
    rows = await db.fetch_all("delete_receipts_of_notifications_before", cutoff=cutoff, batch=batch)
    return many(DeletedReceipt, rows)


async def delete_orphans_among(db: Executor, notification_ids: Collection[UUID], cutoff: datetime) -> int:
    if not notification_ids:
        return 0
    return await db.execute("delete_orphans_among", notification_ids=list(notification_ids), cutoff=cutoff)


async def delete_notifications_before(db: Executor, cutoff: datetime, batch: int) -> int:
    return await db.execute("delete_notifications_before", cutoff=cutoff, batch=batch)


async def count_read_receipts_before(db: Executor, cutoff: datetime, kept_since: datetime) -> int:
    return int(await db.fetch_value("count_read_receipts_before", cutoff=cutoff, kept_since=kept_since))


async def count_receipts_of_notifications_before(db: Executor, cutoff: datetime) -> int:
    return int(await db.fetch_value("count_receipts_of_notifications_before", cutoff=cutoff))


async def count_notifications_before(db: Executor, cutoff: datetime) -> int:
    return int(await db.fetch_value("count_notifications_before", cutoff=cutoff))


async def count_orphans_after_read_prune(db: Executor, cutoff: datetime, kept_since: datetime) -> int:
    return int(await db.fetch_value("count_orphans_after_read_prune", cutoff=cutoff, kept_since=kept_since))
