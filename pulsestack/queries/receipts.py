"""A user's receipts: inbox, read state, dismissal (sql/receipts.sql).

Every statement here is keyed by the user's id, so a user can only ever
read or change their own receipts, whatever ids they send.

The inbox page is the one query whose shape varies (optional workspace,
status and type filters, archived excluded, included or only, an optional
keyset cursor and catch-up bound), so it is built with pypika; each shape is
built once and cached. It walks (user_id, created_at, notification_id)
backwards from the cursor, so a page costs the same at any depth: in
receipts_inbox_active_idx, which holds only unarchived receipts, by default;
receipts_inbox_archived_idx for archived only; receipts_inbox_idx for both.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from functools import cache
from typing import NamedTuple
from uuid import UUID

from pypika import Case, Order, Parameter, Query, Table, Tuple
from pypika.terms import Not

from ..db import NamedQuery
from ..db.base import Executor
from ..models.resources import InboxItem, UnreadCounts, UnseenCounts
from . import column, many, one


class UnreadCount(NamedTuple):
    """One (user, workspace) with unread receipts, and how many of them are unseen."""

    user_id: UUID
    workspace_id: UUID
    unread: int
    unseen: int


@cache
def inbox_query(*, workspace: bool, status: str, type_: bool, cursor: bool, archived: str, after: bool) -> NamedQuery:
    r, n = Table("notification_receipts").as_("r"), Table("notifications").as_("n")
    w, m = Table("workspaces").as_("w"), Table("workspace_members").as_("m")
    # The slug and the seen cut-off come from correlated subqueries rather
    # than joins, so that receipts stay the driving table on SQLite too
    # (with a join its planner may loop over workspaces first and then sort).
    slug = Query.from_(w).select(w.slug).where(w.id == r.workspace_id)
    seen_until = Query.from_(m).select(m.seen_until).where((m.workspace_id == r.workspace_id) & (m.user_id == r.user_id))
    is_seen = Case().when(r.is_read | (r.created_at <= seen_until), True).else_(False)
    q = (
        Query.from_(r)
        .join(n).on(n.id == r.notification_id)
        .select(n.id, n.workspace_id, n.sender_id, n.title, n.message, n.type, n.broadcast, n.created_at, n.url, n.data,
                r.is_read, r.read_at, is_seen.as_("is_seen"), r.archived_at.isnotnull().as_("archived"), r.archived_at,
                slug.as_("workspace_slug"))
        .where(r.user_id == Parameter(":user_id"))
    )
    # The same terms as the partial indexes' WHERE, so both planners pick them.
    if archived == "exclude":
        q = q.where(r.archived_at.isnull())
    elif archived == "only":
        q = q.where(r.archived_at.isnotnull())
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
    if after:
        q = q.where(Tuple(r.created_at, r.notification_id) > Tuple(Parameter(":after_created_at"), Parameter(":after_id")))
    q = q.orderby(r.created_at, order=Order.desc).orderby(r.notification_id, order=Order.desc).limit(Parameter(":limit"))  # type: ignore[arg-type]  # pypika prints the placeholder
    name = (f"inbox_page(workspace={workspace}, status={status}, type={type_}, cursor={cursor}, "
            f"archived={archived}, after={after})")
    return NamedQuery.dynamic(name, q.get_sql(), "many")


async def list_inbox(db: Executor, user_id: UUID, *, limit: int, workspace_id: UUID | None = None, status: str = "all",
                     type: str | None = None, before: tuple[datetime, UUID] | None = None, archived: str = "exclude",
                     after: tuple[datetime, UUID] | None = None) -> list[InboxItem]:
    """One inbox page, newest first; `before` is the (created_at, notification id) of the previous page's last
    item, `after` that of the newest item the client already holds."""
    query = inbox_query(workspace=workspace_id is not None, status=status, type_=type is not None,
                        cursor=before is not None, archived=archived, after=after is not None)
    params: dict[str, object] = {"user_id": user_id, "limit": limit}
    if workspace_id is not None:
        params["workspace_id"] = workspace_id
    if type is not None:
        params["type"] = type
    if before is not None:
        params["before_created_at"], params["before_id"] = before
    if after is not None:
        params["after_created_at"], params["after_id"] = after
    return many(InboxItem, await db.fetch_all(query, **params))


async def get_inbox_item(db: Executor, user_id: UUID, notification_id: UUID) -> InboxItem | None:
    return one(InboxItem, await db.fetch_one("get_inbox_item", user_id=user_id, notification_id=notification_id))


async def mark_read(db: Executor, user_id: UUID, notification_id: UUID, now: datetime) -> int:
    return await db.execute("mark_read", user_id=user_id, notification_id=notification_id, now=now)


async def mark_unread(db: Executor, user_id: UUID, notification_id: UUID) -> int:
    return await db.execute("mark_unread", user_id=user_id, notification_id=notification_id)


async def mark_read_many(db: Executor, user_id: UUID, notification_ids: Collection[UUID], now: datetime) -> list[UUID]:
    """The ids that changed."""
    rows = await db.fetch_all("mark_read_many", user_id=user_id, notification_ids=list(notification_ids), now=now)
    return column(rows, "notification_id")


async def list_unread_ids(db: Executor, user_id: UUID, *, workspace_id: UUID | None, before: datetime | None,
                          limit: int) -> list[UUID]:
    rows = await db.fetch_all("list_unread_ids", user_id=user_id, workspace_id=workspace_id, before=before, limit=limit)
    return column(rows, "notification_id")


async def mark_all_read(db: Executor, user_id: UUID, now: datetime, *, workspace_id: UUID | None = None,
                        before: datetime | None = None) -> int:
    return await db.execute("mark_all_read", user_id=user_id, workspace_id=workspace_id, before=before, now=now)


async def archive(db: Executor, user_id: UUID, notification_id: UUID, now: datetime) -> int:
    return await db.execute("archive_receipt", user_id=user_id, notification_id=notification_id, now=now)


async def unarchive(db: Executor, user_id: UUID, notification_id: UUID) -> int:
    return await db.execute("unarchive_receipt", user_id=user_id, notification_id=notification_id)


async def archive_many(db: Executor, user_id: UUID, notification_ids: Collection[UUID], now: datetime) -> list[UUID]:
    """The ids that changed."""
    rows = await db.fetch_all("archive_receipts", user_id=user_id, notification_ids=list(notification_ids), now=now)
    return column(rows, "notification_id")


async def list_archivable_ids(db: Executor, user_id: UUID, *, workspace_id: UUID | None, before: datetime | None,
                              only_read: bool, limit: int) -> list[UUID]:
    rows = await db.fetch_all("list_archivable_ids", user_id=user_id, workspace_id=workspace_id, before=before,
                              only_read=only_read, limit=limit)
    return column(rows, "notification_id")


async def archive_all(db: Executor, user_id: UUID, now: datetime, *, workspace_id: UUID | None, before: datetime | None,
                      only_read: bool) -> int:
    return await db.execute("archive_all_receipts", user_id=user_id, workspace_id=workspace_id, before=before,
                            only_read=only_read, now=now)


async def delete_receipt(db: Executor, user_id: UUID, notification_id: UUID) -> int:
    return await db.execute("delete_receipt", user_id=user_id, notification_id=notification_id)


async def count_unread_by_workspace(db: Executor, user_ids: Collection[UUID]) -> list[UnreadCount]:
    """One row per (user, workspace) with unread receipts, for the given users, with its unseen count."""
    return many(UnreadCount, await db.fetch_all("count_unread_by_workspace", user_ids=list(user_ids)))


NO_UNREAD = UnreadCounts(total=0, workspaces={}, unseen=UnseenCounts(total=0, workspaces={}))


def unread_counts(rows: Iterable[tuple[UUID, int, int]]) -> UnreadCounts:
    """One user's (workspace_id, unread, unseen) rows as the answer: only non-zero entries."""
    unread: dict[UUID, int] = {}
    unseen: dict[UUID, int] = {}
    for workspace_id, n_unread, n_unseen in rows:
        unread[workspace_id] = n_unread
        if n_unseen:
            unseen[workspace_id] = n_unseen
    return UnreadCounts(total=sum(unread.values()), workspaces=unread,
                        unseen=UnseenCounts(total=sum(unseen.values()), workspaces=unseen))


async def count_unread(db: Executor, user_ids: Collection[UUID]) -> dict[UUID, UnreadCounts]:
    """Each given user's unread and unseen counts (users with nothing unread are left out: NO_UNREAD)."""
    by_user: dict[UUID, list[tuple[UUID, int, int]]] = {}
    for r in await count_unread_by_workspace(db, user_ids):
        by_user.setdefault(r.user_id, []).append((r.workspace_id, r.unread, r.unseen))
    return {user_id: unread_counts(rows) for user_id, rows in by_user.items()}


async def delete_member_receipts(db: Executor, workspace_id: UUID, user_id: UUID) -> int:
    return await db.execute("delete_member_receipts", workspace_id=workspace_id, user_id=user_id)
