"""Notifications over HTTP: sending, the inbox, read state, workspace history.

Rules live in services/notifications.py; this module parses and shapes.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from aiohttp import web

from ..appkeys import DB, HUB
from ..errors import BadRequest, ValidationFailed
from ..services import notifications
from ..services.notifications import MESSAGE_MAX, RECIPIENTS_MAX, TITLE_MAX, TYPE_PATTERN, Send
from .auth import caller
from .jsonio import (
    Invalid,
    decode_cursor,
    page_limit,
    page_of,
    path_uuid,
    read_json,
    respond,
    text,
    validate,
)

routes = web.RouteTableDef()

IDEMPOTENCY_KEY_MAX = 255
STATUSES = ("unread", "read", "all")


def uuid_list(max_items: int):
    def check(value) -> tuple[uuid.UUID, ...]:
        if not isinstance(value, list) or not 1 <= len(value) <= max_items:
            raise Invalid(f"must be a list of 1 to {max_items} ids")
        try:
            ids = [uuid.UUID(v) for v in value if isinstance(v, str)]
        except ValueError:
            ids = []
        if len(ids) != len(value):
            raise Invalid("every item must be an id (a UUID string)")
        return tuple(dict.fromkeys(ids))  # duplicates count once

    return check


def timestamp(value) -> datetime:
    """An ISO-8601 timestamp with a zone (`Z` or an offset)."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                return moment.astimezone(timezone.utc)
        except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 shifted out of range
            pass
    raise Invalid("must be an ISO-8601 timestamp with a time zone, e.g. 2026-01-02T03:04:05.123456Z")


def boolean(value) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


def _keyset(cursor: dict | None) -> tuple[datetime, uuid.UUID] | None:
    return (cursor["t"], cursor["id"]) if cursor else None


def _page(rows: list[dict], limit: int) -> dict:
    return page_of(rows, limit, lambda last: {"t": last["created_at"], "id": last["id"]})


CURSOR_KEYS = {"t": lambda v: timestamp(v), "id": uuid.UUID}


@routes.post("/api/workspaces/{slug}/notifications")
async def send(request: web.Request) -> web.Response:
    principal = await caller(request)
    body = await read_json(request)
    fields = validate(body, {
        "title": (text(1, TITLE_MAX), True),
        "message": (text(0, MESSAGE_MAX), False),
        "type": (text(1, 64, TYPE_PATTERN), False),
        "broadcast": (boolean, False),
        "recipients": (uuid_list(RECIPIENTS_MAX), False),
    })
    broadcast = fields.get("broadcast", False)
    if broadcast == ("recipients" in fields):
        problem = ("send broadcast: true or a list of recipients, not both" if broadcast
                   else "send broadcast: true, or a list of recipients")
        raise ValidationFailed("invalid request: broadcast, recipients", {"broadcast": problem, "recipients": problem})
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX:
        raise BadRequest(f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} characters")
    result = await notifications.send(
        request.app[DB], request.app[HUB], principal, request.match_info["slug"],
        Send(title=fields["title"], message=fields.get("message", ""), type=fields.get("type", "info"),
             recipients=fields.get("recipients")),
        key,
    )
    response = web.Response(text=result.body, status=201, content_type="application/json")
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@routes.get("/api/workspaces/{slug}/notifications")
async def workspace_history(request: web.Request) -> web.Response:
    principal = await caller(request)
    limit = page_limit(request)
    before = _keyset(decode_cursor(request, CURSOR_KEYS))
    rows = await notifications.history(request.app[DB], principal, request.match_info["slug"], limit + 1, before)
    return respond(_page(rows, limit))


@routes.get("/api/workspaces/{slug}/notifications/{notification_id}")
async def get_sent(request: web.Request) -> web.Response:
    principal = await caller(request)
    nid = path_uuid(request, "notification_id")
    return respond(await notifications.get_sent(request.app[DB], principal, request.match_info["slug"], nid))


@routes.delete("/api/workspaces/{slug}/notifications/{notification_id}")
async def retract(request: web.Request) -> web.Response:
    principal = await caller(request)
    nid = path_uuid(request, "notification_id")
    await notifications.retract(request.app[DB], request.app[HUB], principal, request.match_info["slug"], nid)
    return web.Response(status=204)


@routes.get("/api/notifications")
async def inbox(request: web.Request) -> web.Response:
    principal = await caller(request)
    limit = page_limit(request)
    before = _keyset(decode_cursor(request, CURSOR_KEYS))
    query = request.query
    status = query.get("status", "all")
    if status not in STATUSES:
        raise BadRequest("status must be one of: unread, read, all", {"status": status})
    type_ = query.get("type")
    if type_ is not None:
        try:
            text(1, 64, TYPE_PATTERN)(type_)
        except Invalid as exc:
            raise BadRequest(f"type {exc}", {"type": type_}) from None
    rows = await notifications.inbox(request.app[DB], principal, limit=limit + 1, workspace_slug=query.get("workspace"),
                                     status=status, type=type_, before=before)
    return respond(_page(rows, limit))


@routes.get("/api/notifications/unread-count")
async def unread_count(request: web.Request) -> web.Response:
    return respond(await notifications.unread_count(request.app[DB], await caller(request)))


@routes.post("/api/notifications/read")
async def mark_read_many(request: web.Request) -> web.Response:
    principal = await caller(request)
    fields = validate(await read_json(request), {"ids": (uuid_list(RECIPIENTS_MAX), True)})
    updated = await notifications.mark_read_many(request.app[DB], request.app[HUB], principal, list(fields["ids"]))
    return respond({"updated": updated})


@routes.post("/api/notifications/read-all")
async def mark_all_read(request: web.Request) -> web.Response:
    principal = await caller(request)
    # An empty body means "everything", so it is allowed here.
    body = await read_json(request) if request.can_read_body else {}
    fields = validate(body, {"workspace": (text(1, 64), False), "before": (timestamp, False)})
    updated = await notifications.mark_all_read(request.app[DB], request.app[HUB], principal,
                                                fields.get("workspace"), fields.get("before"))
    return respond({"updated": updated})


@routes.post("/api/notifications/{notification_id}/read")
async def mark_read(request: web.Request) -> web.Response:
    principal = await caller(request)
    nid = path_uuid(request, "notification_id")
    return respond(await notifications.mark_read(request.app[DB], request.app[HUB], principal, nid))


@routes.post("/api/notifications/{notification_id}/unread")
async def mark_unread(request: web.Request) -> web.Response:
    principal = await caller(request)
    nid = path_uuid(request, "notification_id")
    return respond(await notifications.mark_unread(request.app[DB], request.app[HUB], principal, nid))


@routes.delete("/api/notifications/{notification_id}")
async def dismiss(request: web.Request) -> web.Response:
    principal = await caller(request)
    await notifications.dismiss(request.app[DB], request.app[HUB], principal, path_uuid(request, "notification_id"))
    return web.Response(status=204)
