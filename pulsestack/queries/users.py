"""Users (sql/users.sql)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ..db.base import Executor
from ..models.resources import User
from . import make, one


@dataclass(frozen=True)
class Credentials:
    """A user with their password hash: for login only, never answered."""

    user: User
    password_hash: str


async def create_user(db: Executor, *, id: UUID, email: str, password_hash: str, system_role: str, created_at: datetime) -> User:
    row = await db.fetch_one("create_user", id=id, email=email, password_hash=password_hash,
                             system_role=system_role, created_at=created_at)
    assert row is not None  # INSERT ... RETURNING
    return make(User, row)


async def get_user(db: Executor, user_id: UUID) -> User | None:
    return one(User, await db.fetch_one("get_user", user_id=user_id))


async def get_user_credentials_by_email(db: Executor, email: str) -> Credentials | None:
    row = await db.fetch_one("get_user_credentials_by_email", email=email)
    if row is None:
        return None
    password_hash = row.pop("password_hash")
    return Credentials(make(User, row), password_hash)


async def update_password_hash(db: Executor, user_id: UUID, password_hash: str) -> int:
    return await db.execute("update_password_hash", user_id=user_id, password_hash=password_hash)


async def set_system_role(db: Executor, user_id: UUID, system_role: str) -> int:
    return await db.execute("set_system_role", user_id=user_id, system_role=system_role)
