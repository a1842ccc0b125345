"""Notifications over HTTP: sending, the inbox, read state, workspace history.

Rules live in services/notifications.py; this module declares and shapes.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from aiohttp import web

from ..appkeys import DB, FANOUT, HUB
from ..models.requests import (
    ArchiveAll,
    ArchiveMany,
    InboxQuery,
    MarkSeen,
    NewNotification,
    PageQuery,
    ReadAll,
    ReadMany,
    SendHeaders,
    TimeCursor,
)
from ..models.resources import (
    InboxItem,
    InboxPage,
    Notification,
    NotificationPage,
    SeenAnswer,
    SendAnswer,
    SentNotification,
    UnreadCounts,
    Updated,
)
from ..services import notifications
from .jsonio import decode_cursor, page_of, path_uuid
from .routing import Routes, caller

routes = Routes("notifications")

NOT_IN_INBOX = "not_found: not in the caller's inbox, or the id is not a UUID"


def _before(raw: str | None) -> tuple[datetime, UUID] | None:
    cursor = decode_cursor(raw, TimeCursor)
    return (cursor.t, cursor.id) if cursor else None


def _time_cursor(last: Notification) -> TimeCursor:
    return TimeCursor(t=last.created_at, id=last.id)


@routes.post("/api/workspaces/{slug}/notifications", body=NewNotification, headers=SendHeaders, answer=SendAnswer,
             status=201, answer_headers={"Idempotent-Replayed": "`true` when this is the stored answer of an earlier "
                                                                "send with the same Idempotency-Key"},
             errors={403: "forbidden: a plain member broadcasting, or sending `critical: true`",
                     422: "validation_error: bad fields, or recipients who are not members "
                          "(details.recipients lists their ids)"})
async def send(request: web.Request, body: NewNotification, headers: SendHeaders) -> web.Response:
    """Send a notification: a broadcast, or to chosen members

    Any member may send to chosen members; a broadcast to the whole workspace
    needs admin or owner. One transaction writes the notification and every
    recipient's unread receipt (`delivery.state` "done"). A broadcast does
    not reach the sender, nor members who joined after it. Members who muted
    the workspace, or a prefix of the type, get no receipt unless the send is
    `critical` (admin or owner only); `recipient_count` counts who is to get
    one. A broadcast to more than `fanout.chunk` members answers at once with
    `delivery.state` "fanning_out": its receipts are written in chunks
    after the answer (GET the notification to follow `delivery`).
    """
    result = await notifications.send(request.app[DB], request.app[HUB], request.app[FANOUT], await caller(request),
                                      request.match_info["slug"], body, headers.idempotency_key)
    # The stored text itself: a replay answers the first send's exact bytes.
    response = web.Response(text=result.body, status=201, content_type="application/json")
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@routes.get("/api/workspaces/{slug}/notifications", query=PageQuery, answer=NotificationPage,
            errors={403: "forbidden: the caller's role is below admin"})
async def workspace_history(request: web.Request, query: PageQuery) -> NotificationPage:
    """Everything sent in a workspace, newest first (admin or owner)"""
    rows = await notifications.history(request.app[DB], await caller(request), request.match_info["slug"],
                                       query.limit + 1, _before(query.cursor))
    return page_of(NotificationPage, rows, query.limit, _time_cursor)


@routes.get("/api/workspaces/{slug}/notifications/{notification_id}", answer=SentNotification,
            errors={403: "forbidden: neither an admin nor the sender"})
async def get_sent(request: web.Request) -> SentNotification:
    """A sent notification with its delivery counts (admin, owner or the sender)"""
    nid = path_uuid(request, "notification_id")
    return await notifications.get_sent(request.app[DB], await caller(request), request.match_info["slug"], nid)


@routes.delete("/api/workspaces/{slug}/notifications/{notification_id}", answer=None, status=204,
               errors={403: "forbidden: neither an admin nor the sender"})
async def retract(request: web.Request) -> None:
    """Retract a notification: it and every receipt of it are deleted"""
    nid = path_uuid(request, "notification_id")
    await notifications.retract(request.app[DB], request.app[HUB], await caller(request), request.match_info["slug"], nid)


@routes.get("/api/notifications", query=InboxQuery, answer=InboxPage,
            errors={404: "not_found: the `workspace` filter names a workspace the caller is not in, or `after` "
                         "a notification outside the caller's workspaces"})
async def inbox(request: web.Request, query: InboxQuery) -> InboxPage:
    """The caller's inbox across their workspaces, newest first

    Archived items are left out unless `archived` says otherwise. With
    `after`, only items newer than that notification: the catch-up a
    reconnecting client makes, paged like any other list.
    """
    rows = await notifications.inbox(request.app[DB], await caller(request), limit=query.limit + 1,
                                     workspace_slug=query.workspace, status=query.status, type=query.type,
                                     before=_before(query.cursor), archived=query.archived, after=query.after)
    return page_of(InboxPage, rows, query.limit, _time_cursor)


@routes.get("/api/notifications/unread-count", answer=UnreadCounts)
async def unread_count(request: web.Request) -> UnreadCounts:
    """Unread and unseen counts, total and per workspace, computed from the receipts"""
    return await notifications.unread_count(request.app[DB], await caller(request))


@routes.post("/api/notifications/read", body=ReadMany, answer=Updated)
async def mark_read_many(request: web.Request, body: ReadMany) -> Updated:
    """Mark several notifications read

    Ids not in the caller's inbox, and ones already read, are skipped.
    """
    updated = await notifications.mark_read_many(request.app[DB], request.app[HUB], await caller(request), body.ids)
    return Updated(updated=updated)


@routes.post("/api/notifications/read-all", body=ReadAll, body_optional=True, answer=Updated,
             errors={404: "not_found: the `workspace` names a workspace the caller is not in"})
async def mark_all_read(request: web.Request, body: ReadAll) -> Updated:
    """Mark read everything unread, optionally in one workspace, up to a moment

    No body at all means everything everywhere.
    """
    updated = await notifications.mark_all_read(request.app[DB], request.app[HUB], await caller(request),
                                                body.workspace, body.before)
    return Updated(updated=updated)


@routes.post("/api/notifications/seen", body=MarkSeen, body_optional=True, answer=SeenAnswer,
             errors={404: "not_found: the `workspace` names a workspace the caller is not in"})
async def mark_seen(request: web.Request, body: MarkSeen) -> SeenAnswer:
    """The user looked at their notifications: clear the unseen badge

    Moves the seen cut-off of each membership (or the one named) forward to
    `until` (default, and at most, now), never back. Unread notifications
    created after the cut-off are unseen. No body at all means everywhere, now.
    """
    updated = await notifications.mark_seen(request.app[DB], request.app[HUB], await caller(request), body)
    return SeenAnswer(updated_workspaces=updated)


@routes.post("/api/notifications/archive", body=ArchiveMany, answer=Updated)
async def archive_many(request: web.Request, body: ArchiveMany) -> Updated:
    """Archive several notifications (and mark them read)

    Ids not in the caller's inbox, and ones already archived, are skipped.
    """
    updated = await notifications.archive_many(request.app[DB], request.app[HUB], await caller(request), body.ids)
    return Updated(updated=updated)


@routes.post("/api/notifications/archive-all", body=ArchiveAll, body_optional=True, answer=Updated,
             errors={404: "not_found: the `workspace` names a workspace the caller is not in"})
async def archive_all(request: web.Request, body: ArchiveAll) -> Updated:
    """Archive everything read (or everything), optionally in one workspace, up to a moment

    Archiving marks read. No body at all means everything read, everywhere.
    """
    updated = await notifications.archive_all(request.app[DB], request.app[HUB], await caller(request), body)
    return Updated(updated=updated)


@routes.post("/api/notifications/{notification_id}/archive", answer=InboxItem, errors={404: NOT_IN_INBOX})
async def archive(request: web.Request) -> InboxItem:
    """Archive one notification: out of the default inbox, and read"""
    nid = path_uuid(request, "notification_id")
    return await notifications.archive(request.app[DB], request.app[HUB], await caller(request), nid)


@routes.post("/api/notifications/{notification_id}/unarchive", answer=InboxItem, errors={404: NOT_IN_INBOX})
async def unarchive(request: web.Request) -> InboxItem:
    """Unarchive one notification: back in the inbox, still read"""
    nid = path_uuid(request, "notification_id")
    return await notifications.unarchive(request.app[DB], request.app[HUB], await caller(request), nid)


@routes.post("/api/notifications/{notification_id}/read", answer=InboxItem, errors={404: NOT_IN_INBOX})
async def mark_read(request: web.Request) -> InboxItem:
    """Mark one notification read (keeps the first read_at)"""
    nid = path_uuid(request, "notification_id")
    return await notifications.mark_read(request.app[DB], request.app[HUB], await caller(request), nid)


@routes.post("/api/notifications/{notification_id}/unread", answer=InboxItem, errors={404: NOT_IN_INBOX})
async def mark_unread(request: web.Request) -> InboxItem:
    """Mark one notification unread"""
    nid = path_uuid(request, "notification_id")
    return await notifications.mark_unread(request.app[DB], request.app[HUB], await caller(request), nid)


@routes.delete("/api/notifications/{notification_id}", answer=None, status=204, errors={404: NOT_IN_INBOX})
async def dismiss(request: web.Request) -> None:
    """Dismiss a notification: the caller's own receipt is deleted"""
    await notifications.dismiss(request.app[DB], request.app[HUB], await caller(request), path_uuid(request, "notification_id"))
