"""Users (sql/users.sql)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from ..db.base import Executor, Row


async def create_user(db: Executor, *, id: UUID, email: str, password_hash: str, system_role: str, created_at: datetime) -> Row:
    return await db.fetch_one("create_user", id=id, email=email, password_hash=password_hash,
                              system_role=system_role, created_at=created_at)


async def get_user(db: Executor, user_id: UUID) -> Row | None:
    return await db.fetch_one("get_user", user_id=user_id)


async def get_user_credentials_by_email(db: Executor, email: str) -> Row | None:
    return await db.fetch_one("get_user_credentials_by_email", email=email)


async def update_password_hash(db: Executor, user_id: UUID, password_hash: str) -> int:
    return await db.execute("update_password_hash", user_id=user_id, password_hash=password_hash)


async def set_system_role(db: Executor, user_id: UUID, system_role: str) -> int:
    return await db.execute("set_system_role", user_id=user_id, system_role=system_role)
