"""Idempotency keys of sends (sql/idempotency.sql)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from ..db.base import Executor


async def get_idempotent_response(db: Executor, sender_id: UUID, key: str, since: datetime) -> str | None:
    response: str | None = await db.fetch_value("get_idempotent_response", sender_id=sender_id, key=key, since=since)
    return response


async def delete_expired_idempotency_key(db: Executor, sender_id: UUID, key: str, before: datetime) -> int:
    return await db.execute("delete_expired_idempotency_key", sender_id=sender_id, key=key, before=before)


async def create_idempotency_key(db: Executor, sender_id: UUID, key: str, response: str, created_at: datetime) -> None:
    await db.execute("create_idempotency_key", sender_id=sender_id, key=key, response=response, created_at=created_at)


async def delete_expired_idempotency_keys(db: Executor, before: datetime) -> int:
    return await db.execute("delete_expired_idempotency_keys", before=before)
