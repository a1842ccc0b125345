"""Workspace mutes (sql/mutes.sql).

Storage: one row per muted type prefix, all with the same `until`; the
prefix '' (EVERY_TYPE) mutes every type. These functions turn a `Mute`'s
`types: None` into that row and back, so nothing above this layer knows
the encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from ..db.base import Executor
from ..models.resources import Mute

EVERY_TYPE = ""
NOT_MUTED = Mute(muted=False, types=None, until=None)


async def lock_member_for_mute(db: Executor, workspace_id: UUID, user_id: UUID) -> UUID | None:
    """In a transaction that replaces the member's mute; None when the membership is gone."""
    locked: UUID | None = await db.fetch_value("lock_member_for_mute", workspace_id=workspace_id, user_id=user_id)
    return locked


async def get_mute(db: Executor, workspace_id: UUID, user_id: UUID, now: datetime) -> Mute:
    """The member's mute as of `now`: NOT_MUTED when there is none or it has ended."""
    rows = await db.fetch_all("list_mute_prefixes", workspace_id=workspace_id, user_id=user_id, now=now)
    if not rows:
        return NOT_MUTED
    prefixes = sorted(row["type_prefix"] for row in rows)
    return Mute(muted=True, types=None if EVERY_TYPE in prefixes else prefixes, until=rows[0]["until"])


async def delete_mute(db: Executor, workspace_id: UUID, user_id: UUID) -> int:
    return await db.execute("delete_mute", workspace_id=workspace_id, user_id=user_id)


async def add_mute(db: Executor, workspace_id: UUID, user_id: UUID, *, types: Sequence[str] | None,
                   until: datetime | None, created_at: datetime) -> int:
    """Write a mute (the member has none: delete_mute first); types None mutes every type.
    `types` must hold distinct prefixes."""
    prefixes = [EVERY_TYPE] if types is None else list(types)
    return await db.execute("add_mute_prefixes", workspace_id=workspace_id, user_id=user_id, type_prefixes=prefixes,
                            until=until, created_at=created_at)


async def delete_expired_mutes(db: Executor, now: datetime) -> int:
    """Housekeeping: every mute row whose `until` has passed."""
    return await db.execute("delete_expired_mutes", now=now)
