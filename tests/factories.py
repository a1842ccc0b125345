"""Rows for tests, made through the project's own query functions."""

from __future__ import annotations

from uuid import UUID

from pulsestack.db import Database
from pulsestack.ids import new_id, utcnow
from pulsestack.models.resources import User, Workspace
from pulsestack.queries import members, users, workspaces


async def make_user(db: Database, email: str | None = None, system_role: str = "user") -> User:
    return await users.create_user(db, id=new_id(), email=email or f"u-{new_id().hex[-12:]}@example.com",
                                   password_hash="not-a-real-hash", system_role=system_role, created_at=utcnow())


async def make_workspace(db: Database, owner: User, slug: str | None = None) -> Workspace:
    slug = slug or f"ws-{new_id().hex[-10:]}"
    async with db.transaction() as tx:
        ws = await workspaces.create_workspace(tx, id=new_id(), name=slug.title(), slug=slug, owner_id=owner.id, created_at=utcnow())
        await members.add_member(tx, id=new_id(), workspace_id=ws.id, user_id=owner.id, role="owner", joined_at=utcnow())
    return ws


async def make_members(db: Database, workspace_id: UUID, count: int, role: str = "member") -> list[UUID]:
    """`count` new users, all members of the workspace; their ids in creation order."""
    ids = [new_id() for _ in range(count)]
    now = utcnow()
    async with db.transaction() as tx:
        for i in ids:
            await users.create_user(tx, id=i, email=f"m-{i.hex}@example.com", password_hash="x", system_role="user", created_at=now)
        await tx.execute_many("add_member", [
            {"id": new_id(), "workspace_id": workspace_id, "user_id": i, "role": role, "joined_at": now} for i in ids
        ])
    return ids
