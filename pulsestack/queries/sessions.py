"""Sessions: API tokens, stored as SHA-256 hashes (sql/sessions.sql)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ..db.base import Executor
from ..models.resources import User
from . import make


@dataclass(frozen=True)
class SessionUser:
    """The user behind a valid token, and that token's session: who is
    calling (services call it the principal)."""

    user: User
    session_id: UUID
    expires_at: datetime

    @property
    def id(self) -> UUID:
        return self.user.id

    @property
    def is_system_admin(self) -> bool:
        return self.user.system_role == "admin"


async def create_session(db: Executor, *, id: UUID, user_id: UUID, token_hash: str, created_at: datetime,
                         expires_at: datetime) -> None:
    await db.execute("create_session", id=id, user_id=user_id, token_hash=token_hash, created_at=created_at,
                     expires_at=expires_at)


async def get_session_user(db: Executor, token_hash: str, now: datetime) -> SessionUser | None:
    row = await db.fetch_one("get_session_user", token_hash=token_hash, now=now)
    if row is None:
        return None
    session_id, expires_at = row.pop("session_id"), row.pop("expires_at")
    return SessionUser(make(User, row), session_id, expires_at)


async def delete_session(db: Executor, session_id: UUID) -> int:
    return await db.execute("delete_session", session_id=session_id)


async def delete_expired_sessions(db: Executor, now: datetime) -> int:
    return await db.execute("delete_expired_sessions", now=now)
