"""Workspace members and roles (sql/members.sql)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from uuid import UUID

from ..db.base import Executor
from ..models.resources import Member
from . import column, many, one


async def add_member(db: Executor, *, id: UUID, workspace_id: UUID, user_id: UUID, role: str, joined_at: datetime) -> None:
    await db.execute("add_member", id=id, workspace_id=workspace_id, user_id=user_id, role=role, joined_at=joined_at)


async def get_member(db: Executor, workspace_id: UUID, user_id: UUID) -> Member | None:
    return one(Member, await db.fetch_one("get_member", workspace_id=workspace_id, user_id=user_id))


async def list_members(db: Executor, workspace_id: UUID, *, limit: int, after_user_id: UUID | None = None) -> list[Member]:
    """One page, ordered by user_id; pass the last user_id seen to get the next."""
    if after_user_id is None:
        rows = await db.fetch_all("list_members", workspace_id=workspace_id, limit=limit)
    else:
        rows = await db.fetch_all("list_members_after", workspace_id=workspace_id, after_user_id=after_user_id, limit=limit)
    return many(Member, rows)


async def list_member_ids_among(db: Executor, workspace_id: UUID, user_ids: Collection[UUID]) -> set[UUID]:
    return set(column(await db.fetch_all("list_member_ids_among", workspace_id=workspace_id, user_ids=list(user_ids)), "user_id"))


async def update_member_role(db: Executor, workspace_id: UUID, user_id: UUID, role: str) -> int:
    return await db.execute("update_member_role", workspace_id=workspace_id, user_id=user_id, role=role)


async def remove_member(db: Executor, workspace_id: UUID, user_id: UUID) -> int:
    return await db.execute("remove_member", workspace_id=workspace_id, user_id=user_id)


async def list_member_user_ids(db: Executor, workspace_id: UUID) -> list[UUID]:
    return column(await db.fetch_all("list_member_user_ids", workspace_id=workspace_id), "user_id")


async def mark_seen(db: Executor, user_id: UUID, until: datetime) -> int:
    """Every membership's seen cut-off forward to `until`; how many moved."""
    return await db.execute("mark_seen", user_id=user_id, until=until)


async def mark_seen_in(db: Executor, workspace_id: UUID, user_id: UUID, until: datetime) -> int:
    return await db.execute("mark_seen_in", workspace_id=workspace_id, user_id=user_id, until=until)
