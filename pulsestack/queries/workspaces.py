"""Workspaces (sql/workspaces.sql)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from ..db.base import Executor
from ..models.resources import MyWorkspace, Workspace, WorkspaceSummary
from . import make, many, one


async def create_workspace(db: Executor, *, id: UUID, name: str, slug: str, owner_id: UUID, created_at: datetime) -> Workspace:
    row = await db.fetch_one("create_workspace", id=id, name=name, slug=slug, owner_id=owner_id, created_at=created_at)
    assert row is not None  # INSERT ... RETURNING
    return make(Workspace, row)


async def get_workspace_by_slug(db: Executor, slug: str) -> Workspace | None:
    return one(Workspace, await db.fetch_one("get_workspace_by_slug", slug=slug))


async def get_workspace_membership(db: Executor, slug: str, user_id: UUID) -> MyWorkspace | None:
    """The workspace with the user's role, or None when it is missing or the user is no member."""
    return one(MyWorkspace, await db.fetch_one("get_workspace_membership", slug=slug, user_id=user_id))


async def list_workspaces_for_user(db: Executor, user_id: UUID) -> list[WorkspaceSummary]:
    return many(WorkspaceSummary, await db.fetch_all("list_workspaces_for_user", user_id=user_id))


async def list_workspaces_page(db: Executor, user_id: UUID, *, limit: int,
                               after: tuple[str, UUID] | None = None) -> list[MyWorkspace]:
    """One page by (name, id); `after` is the previous page's last (name, id)."""
    if after is None:
        rows = await db.fetch_all("list_workspaces_page", user_id=user_id, limit=limit)
    else:
        rows = await db.fetch_all("list_workspaces_page_after", user_id=user_id, after_name=after[0], after_id=after[1],
                                  limit=limit)
    return many(MyWorkspace, rows)


async def rename_workspace(db: Executor, workspace_id: UUID, name: str) -> Workspace | None:
    return one(Workspace, await db.fetch_one("rename_workspace", workspace_id=workspace_id, name=name))


async def lock_workspace_for_fan_out(db: Executor, workspace_id: UUID) -> UUID | None:
    """In a send's transaction, before its fan-out: a member removal waits for it, or it for the removal."""
    locked: UUID | None = await db.fetch_value("lock_workspace_for_fan_out", workspace_id=workspace_id)
    return locked


async def lock_workspace_for_member_removal(db: Executor, workspace_id: UUID) -> UUID | None:
    """In a removal's transaction, before it deletes; None when the workspace is gone."""
    locked: UUID | None = await db.fetch_value("lock_workspace_for_member_removal", workspace_id=workspace_id)
    return locked


async def delete_workspace(db: Executor, workspace_id: UUID) -> int:
    return await db.execute("delete_workspace", workspace_id=workspace_id)
