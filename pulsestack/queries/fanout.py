"""Fan-out jobs (sql/fanout.sql): a large broadcast's receipts, written in
chunks by services/fanout.py."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from ..db.base import Executor
from . import one


class Job(NamedTuple):
    """What the next chunk of a job needs."""

    notification_id: UUID
    workspace_id: UUID
    sender_id: UUID
    created_at: datetime
    critical: bool
    after_user_id: UUID | None
    type: str


class Progress(NamedTuple):
    audience: int
    delivered: int


async def create_fanout_job(db: Executor, *, notification_id: UUID, workspace_id: UUID, sender_id: UUID,
                            created_at: datetime, critical: bool, audience: int) -> None:
    await db.execute("create_fanout_job", notification_id=notification_id, workspace_id=workspace_id,
                     sender_id=sender_id, created_at=created_at, critical=critical, audience=audience)


async def lock_next_fanout_job(db: Executor) -> Job | None:
    """The oldest job (on Postgres, one no other process holds, locked until the transaction ends)."""
    return one(Job, await db.fetch_one("lock_next_fanout_job"))


async def get_chunk_end(db: Executor, workspace_id: UUID, after_user_id: UUID, chunk: int) -> UUID | None:
    """The last member key of the next `chunk` members after `after_user_id`; None when fewer are left."""
    value: UUID | None = await db.fetch_value("get_chunk_end", workspace_id=workspace_id, after_user_id=after_user_id,
                                              skip=chunk - 1)
    return value


async def update_fanout_job(db: Executor, notification_id: UUID, after_user_id: UUID, written: int) -> None:
    await db.execute("update_fanout_job", notification_id=notification_id, after_user_id=after_user_id,
                     written=written)


async def delete_fanout_job(db: Executor, notification_id: UUID) -> None:
    await db.execute("delete_fanout_job", notification_id=notification_id)


async def delete_workspace_fanout_jobs(db: Executor, workspace_id: UUID) -> None:
    await db.execute("delete_workspace_fanout_jobs", workspace_id=workspace_id)


async def get_fanout_progress(db: Executor, notification_id: UUID) -> Progress | None:
    """A job still under way, or None (done, or never a job)."""
    return one(Progress, await db.fetch_one("get_fanout_progress", notification_id=notification_id))


async def count_fanout_jobs(db: Executor) -> int:
    value: int = await db.fetch_value("count_fanout_jobs")
    return value
