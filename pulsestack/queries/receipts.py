"""A user's receipts: inbox, read state, dismissal (sql/receipts.sql).

Every statement here is keyed by the user's id, so a user can only ever
read or change their own receipts, whatever ids they send.

The inbox page is the one query whose shape varies (optional workspace,
status and type filters, an optional keyset cursor), so it is built with
pypika; each of its 16 shapes is built once and cached. It walks
receipts_inbox_idx (user_id, created_at, notification_id) backwards from the
cursor, so a page costs the same at any depth.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from functools import cache
from typing import NamedTuple
from uuid import UUID

from pypika import Order, Parameter, Query, Table, Tuple
from pypika.terms import Not

from ..db import NamedQuery
from ..db.base import Executor
from ..models.resources import InboxItem
from . import many, one


class UnreadCount(NamedTuple):
    """One (user, workspace) with unread receipts."""

    user_id: UUID
    workspace_id: UUID
    unread: int


@cache
def inbox_query(*, workspace: bool, status: str, type_: bool, cursor: bool) -> NamedQuery:
    r, n, w = Table("notification_receipts").as_("r"), Table("notifications").as_("n"), Table("workspaces").as_("w")
    # The slug comes from a correlated subquery rather than a join, so that
    # receipts stay the driving table on SQLite too (with a join its planner
    # may loop over workspaces first and then sort).
    slug = Query.from_(w).select(w.slug).where(w.id == r.workspace_id)
    q = (
        Query.from_(r)
        .join(n).on(n.id == r.notification_id)
        .select(n.id, n.workspace_id, n.sender_id, n.title, n.message, n.type, n.broadcast, n.created_at,
                r.is_read, r.read_at, slug.as_("workspace_slug"))
        .where(r.user_id == Parameter(":user_id"))
    )
    if workspace:
        q = q.where(r.workspace_id == Parameter(":workspace_id"))
    if status == "unread":
        q = q.where(Not(r.is_read))
    elif status == "read":
        q = q.where(r.is_read)
    if type_:
        q = q.where(n.type == Parameter(":type"))
    if cursor:
        q = q.where(Tuple(r.created_at, r.notification_id) < Tuple(Parameter(":before_created_at"), Parameter(":before_id")))
    q = q.orderby(r.created_at, order=Order.desc).orderby(r.notification_id, order=Order.desc).limit(Parameter(":limit"))  # type: ignore[arg-type]  # pypika prints the placeholder
    name = f"inbox_page(workspace={workspace}, status={status}, type={type_}, cursor={cursor})"
    return NamedQuery.dynamic(name, q.get_sql(), "many")


async def list_inbox(db: Executor, user_id: UUID, *, limit: int, workspace_id: UUID | None = None, status: str = "all",
                     type: str | None = None, before: tuple[datetime, UUID] | None = None) -> list[InboxItem]:
    """One inbox page, newest first; `before` is the (created_at, notification id) of the previous page's last item."""
    query = inbox_query(workspace=workspace_id is not None, status=status, type_=type is not None, cursor=before is not None)
    params: dict[str, object] = {"user_id": user_id, "limit": limit}
    if workspace_id is not None:
        params["workspace_id"] = workspace_id
    if type is not None:
        params["type"] = type
    if before is not None:
        params["before_created_at"], params["before_id"] = before
    return many(InboxItem, await db.fetch_all(query, **params))


async def get_inbox_item(db: Executor, user_id: UUID, notification_id: UUID) -> InboxItem | None:
    return one(InboxItem, await db.fetch_one("get_inbox_item", user_id=user_id, notification_id=notification_id))


async def mark_read(db: Executor, user_id: UUID, notification_id: UUID, now: datetime) -> int:
    return await db.execute("mark_read", user_id=user_id, notification_id=notification_id, now=now)


async def mark_unread(db: Executor, user_id: UUID, notification_id: UUID) -> int:
    return await db.execute("mark_unread", user_id=user_id, notification_id=notification_id)


async def mark_read_many(db: Executor, user_id: UUID, notification_ids: Collection[UUID], now: datetime) -> int:
    return await db.execute("mark_read_many", user_id=user_id, notification_ids=list(notification_ids), now=now)


async def mark_all_read(db: Executor, user_id: UUID, now: datetime, *, workspace_id: UUID | None = None,
                        before: datetime | None = None) -> int:
    return await db.execute("mark_all_read", user_id=user_id, workspace_id=workspace_id, before=before, now=now)


async def delete_receipt(db: Executor, user_id: UUID, notification_id: UUID) -> int:
    return await db.execute("delete_receipt", user_id=user_id, notification_id=notification_id)


async def count_unread_by_workspace(db: Executor, user_ids: Collection[UUID]) -> list[UnreadCount]:
    """One row per (user, workspace) with unread receipts, for the given users."""
    return many(UnreadCount, await db.fetch_all("count_unread_by_workspace", user_ids=list(user_ids)))


async def delete_member_receipts(db: Executor, workspace_id: UUID, user_id: UUID) -> int:
    return await db.execute("delete_member_receipts", workspace_id=workspace_id, user_id=user_id)
