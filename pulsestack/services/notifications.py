"""Notifications: sending (the receipt pattern), the inbox, read state, and
a workspace's history.

A send is one transaction: the notification row, then ONE set-based
INSERT ... SELECT that writes every recipient's receipt (fan_out_broadcast
or fan_out_direct, which leave out members who muted the workspace or the
type, unless the send is critical), then the idempotency key with the
answer it produced. A broadcast to more than `fanout.chunk` members writes
a fan-out job instead of the receipts: it answers at once, `fanning_out`,
and services/fanout.py writes the receipts in chunks, each its own short
transaction, so neither the sender nor anyone else waits for all of them.
The hub hears about it only after the commit. Nothing here loops over
members or receipts in Python.

Inbox operations only ever touch the caller's own receipts: every query is
keyed by the caller's user id, so someone else's notification id simply is
not found (404) and bulk calls count only the caller's rows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from ..db import Database, ForeignKeyViolation, Transaction, UniqueViolation
from ..errors import Forbidden, NotFound, ValidationFailed
from ..hub import CHANGED_MAX, Hub
from ..ids import new_id, utcnow
from ..models.fields import ArchivedFilter, InboxStatus, type_prefixes
from ..models.requests import ArchiveAll, MarkSeen, NewNotification
from ..models.resources import Delivery, InboxItem, Notification, SendAnswer, SentNotification, UnreadCounts
from ..queries import fanout, idempotency, members, notifications, receipts, workspaces
from .accounts import Principal
from .fanout import FanOutWorker
from .workspaces import RANK, access

IDEMPOTENCY_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class SendResult:
    """The answer to a send, as JSON text: a replay returns these exact bytes."""

    body: str
    replayed: bool


async def send(db: Database, hub: Hub, worker: FanOutWorker, principal: Principal, slug: str,
               request: NewNotification, idempotency_key: str | None) -> SendResult:
    acc = await access(db, principal, slug)
    if request.broadcast and acc.rank < RANK["admin"]:
        raise Forbidden("broadcasting to the whole workspace needs the admin role")
    if request.critical and acc.rank < RANK["admin"]:
        raise Forbidden("a critical send, which reaches members who muted it, needs the admin role")
    now = utcnow()
    if idempotency_key is not None:
        stored = await idempotency.get_idempotent_response(db, principal.id, idempotency_key, now - IDEMPOTENCY_TTL)
        if stored is not None:
            return SendResult(stored, replayed=True)
    if request.recipients is not None:
        found = await members.list_member_ids_among(db, acc.id, request.recipients)
        if missing := [str(r) for r in request.recipients if r not in found]:
            # details.recipients: the ids that are not members, so a client can show or drop them.
            raise ValidationFailed(f"recipients who are not members of this workspace: {len(missing)}",
                                   {"recipients": missing})

    notification = Notification(
        id=new_id(), workspace_id=acc.id, sender_id=principal.id, title=request.title, message=request.message,
        type=request.type, broadcast=request.broadcast, created_at=now, url=request.url, data=request.data,
    )
    try:
        async with db.transaction() as tx:
            await notifications.create_notification(tx, **notification.model_dump())
            # A member removal in flight commits first, or waits for this
            # send: the fan-out never writes a receipt for someone who left.
            await workspaces.lock_workspace_for_fan_out(tx, acc.id)
            # Members who muted the workspace or this type get no receipt (the
            # fan-out's anti-join), unless the send is critical.
            prefixes, critical = type_prefixes(notification.type), request.critical
            if request.recipients is not None:
                count = await notifications.fan_out_direct(
                    tx, notification_id=notification.id, workspace_id=acc.id, user_ids=request.recipients,
                    created_at=now, type_prefixes=prefixes, critical=critical)
                delivery = Delivery(state="done", delivered=count)
            elif (count := await notifications.count_broadcast_audience(
                    tx, workspace_id=acc.id, sender_id=principal.id, created_at=now, type_prefixes=prefixes,
                    critical=critical)) > worker.chunk:
                # Too many to write before answering: a job writes them in chunks (services/fanout.py).
                await fanout.create_fanout_job(tx, notification_id=notification.id, workspace_id=acc.id,
                                               sender_id=principal.id, created_at=now, critical=critical,
                                               audience=count)
                delivery = Delivery(state="fanning_out", delivered=0)
            else:
                count = await notifications.fan_out_broadcast(
                    tx, notification_id=notification.id, workspace_id=acc.id, sender_id=principal.id,
                    created_at=now, type_prefixes=prefixes, critical=critical)
                delivery = Delivery(state="done", delivered=count)
            if delivery.state == "done":
                # Its recipients, and only they, have a new notification and a new count.
                tx.after_commit(lambda: hub.notification_sent(notification.id))
            else:  # the job's chunks tell the hub as they commit
                tx.after_commit(worker.wake)
            body = SendAnswer(notification=notification, recipient_count=count, delivery=delivery).model_dump_json()
            if idempotency_key is not None:
                await idempotency.delete_expired_idempotency_key(tx, principal.id, idempotency_key, now - IDEMPOTENCY_TTL)
                await idempotency.create_idempotency_key(tx, principal.id, idempotency_key, body, now)
    except ForeignKeyViolation:
        # The workspace was deleted after the access check (its notification
        # row has nothing to refer to): as if it had never been there.
        raise NotFound("no such workspace") from None
    except UniqueViolation as exc:
        if idempotency_key is None or not (exc.constraint or "").startswith("idempotency_keys_"):
            raise
        # A concurrent request with the same key committed first: answer as it did.
        stored = await idempotency.get_idempotent_response(db, principal.id, idempotency_key, now - IDEMPOTENCY_TTL)
        if stored is None:
            raise
        return SendResult(stored, replayed=True)
    return SendResult(body, replayed=False)


async def _workspace_filter(db: Database, principal: Principal, slug: str | None) -> UUID | None:
    """The id of an optional `workspace` filter; a workspace the caller is not in is 404."""
    return None if slug is None else (await access(db, principal, slug)).id


async def inbox(db: Database, principal: Principal, *, limit: int, workspace_slug: str | None, status: InboxStatus,
                type: str | None, before: tuple[datetime, UUID] | None, archived: ArchivedFilter,
                after: UUID | None) -> list[InboxItem]:
    workspace_id = await _workspace_filter(db, principal, workspace_slug)
    after_key = None
    if after is not None:
        # Catch-up: anything newer than a notification the client holds. It
        # must be one of the caller's workspaces' (even if since dismissed).
        created_at = await notifications.get_visible_created_at(db, principal.id, after)
        if created_at is None:
            raise NotFound("`after` names no notification of your workspaces; fetch the first page instead",
                           {"after": "no such notification"})
        after_key = (created_at, after)
    return await receipts.list_inbox(db, principal.id, limit=limit, workspace_id=workspace_id, status=status,
                                     type=type, before=before, archived=archived, after=after_key)


async def unread_count(db: Database, principal: Principal) -> UnreadCounts:
    return (await receipts.count_unread(db, [principal.id])).get(principal.id, receipts.NO_UNREAD)


async def mark_seen(db: Database, hub: Hub, principal: Principal, request: MarkSeen) -> int:
    """Move the seen cut-off forward (never back, and never past now)."""
    now = utcnow()
    until = now if request.until is None else min(request.until, now)
    workspace_id = await _workspace_filter(db, principal, request.workspace)
    if workspace_id is None:
        updated = await members.mark_seen(db, principal.id, until)
    else:
        updated = await members.mark_seen_in(db, workspace_id, principal.id, until)
    if updated:
        hub.users_changed([principal.id])
    return updated


async def _change_one(db: Database, hub: Hub, principal: Principal, notification_id: UUID,
                      change: Callable[[Transaction], Awaitable[int]]) -> InboxItem:
    async with db.transaction() as tx:
        changed = await change(tx)
        item = await receipts.get_inbox_item(tx, principal.id, notification_id)
        if item is None:
            raise NotFound("no such notification in your inbox")
        if changed:
            tx.after_commit(lambda: hub.receipts_changed(principal.id, [notification_id]))
    return item


async def mark_read(db: Database, hub: Hub, principal: Principal, notification_id: UUID) -> InboxItem:
    return await _change_one(db, hub, principal, notification_id,
                             lambda tx: receipts.mark_read(tx, principal.id, notification_id, utcnow()))


async def mark_unread(db: Database, hub: Hub, principal: Principal, notification_id: UUID) -> InboxItem:
    return await _change_one(db, hub, principal, notification_id,
                             lambda tx: receipts.mark_unread(tx, principal.id, notification_id))


async def archive(db: Database, hub: Hub, principal: Principal, notification_id: UUID) -> InboxItem:
    return await _change_one(db, hub, principal, notification_id,
                             lambda tx: receipts.archive(tx, principal.id, notification_id, utcnow()))


async def unarchive(db: Database, hub: Hub, principal: Principal, notification_id: UUID) -> InboxItem:
    return await _change_one(db, hub, principal, notification_id,
                             lambda tx: receipts.unarchive(tx, principal.id, notification_id))


async def _change_many(db: Database, hub: Hub, principal: Principal,
                       change: Callable[[Transaction], Awaitable[list[UUID]]]) -> int:
    async with db.transaction() as tx:
        changed = await change(tx)
        if changed:
            tx.after_commit(lambda: hub.receipts_changed(principal.id, changed))
    return len(changed)


async def mark_read_many(db: Database, hub: Hub, principal: Principal, notification_ids: list[UUID]) -> int:
    return await _change_many(db, hub, principal,
                              lambda tx: receipts.mark_read_many(tx, principal.id, notification_ids, utcnow()))


async def archive_many(db: Database, hub: Hub, principal: Principal, notification_ids: list[UUID]) -> int:
    return await _change_many(db, hub, principal,
                              lambda tx: receipts.archive_many(tx, principal.id, notification_ids, utcnow()))


async def _change_all(db: Database, hub: Hub, principal: Principal, peek: Callable[[Transaction], Awaitable[list[UUID]]],
                      change: Callable[[Transaction], Awaitable[int]]) -> int:
    """A change of every receipt that matches: the websockets hear which
    ones when they are few (read just before, in the same transaction),
    else to refresh."""
    async with db.transaction() as tx:
        first = await peek(tx)
        updated = await change(tx)
        if updated and updated == len(first) <= CHANGED_MAX:
            tx.after_commit(lambda: hub.receipts_changed(principal.id, first))
        elif updated:
            tx.after_commit(lambda: hub.inboxes_replaced([principal.id]))
    return updated


async def mark_all_read(db: Database, hub: Hub, principal: Principal, workspace_slug: str | None, before: datetime | None) -> int:
    workspace_id = await _workspace_filter(db, principal, workspace_slug)
    return await _change_all(
        db, hub, principal,
        lambda tx: receipts.list_unread_ids(tx, principal.id, workspace_id=workspace_id, before=before,
                                            limit=CHANGED_MAX + 1),
        lambda tx: receipts.mark_all_read(tx, principal.id, utcnow(), workspace_id=workspace_id, before=before))


async def archive_all(db: Database, hub: Hub, principal: Principal, request: ArchiveAll) -> int:
    workspace_id = await _workspace_filter(db, principal, request.workspace)
    only_read = request.status == "read"
    return await _change_all(
        db, hub, principal,
        lambda tx: receipts.list_archivable_ids(tx, principal.id, workspace_id=workspace_id, before=request.before,
                                                only_read=only_read, limit=CHANGED_MAX + 1),
        lambda tx: receipts.archive_all(tx, principal.id, utcnow(), workspace_id=workspace_id, before=request.before,
                                        only_read=only_read))


async def dismiss(db: Database, hub: Hub, principal: Principal, notification_id: UUID) -> None:
    async with db.transaction() as tx:
        if await receipts.delete_receipt(tx, principal.id, notification_id) == 0:
            raise NotFound("no such notification in your inbox")
        tx.after_commit(lambda: hub.receipts_removed(principal.id, [notification_id]))


async def history(db: Database, principal: Principal, slug: str, limit: int,
                  before: tuple[datetime, UUID] | None) -> list[Notification]:
    acc = await access(db, principal, slug, need="admin")
    return await notifications.list_workspace_notifications(db, acc.id, limit=limit, before=before)


async def _sent_notification(db: Database, principal: Principal, slug: str, notification_id: UUID) -> Notification:
    """The notification, if the caller is an admin of its workspace or its sender."""
    acc = await access(db, principal, slug)
    notification = await notifications.get_notification(db, acc.id, notification_id)
    if notification is None:
        raise NotFound("no such notification in this workspace")
    if acc.rank < RANK["admin"] and notification.sender_id != principal.id:
        raise Forbidden("only the sender or a workspace admin may do this")
    return notification


async def get_sent(db: Database, principal: Principal, slug: str, notification_id: UUID) -> SentNotification:
    notification = await _sent_notification(db, principal, slug, notification_id)
    # The job first: once it is gone, every receipt has been committed, so a count taken
    # after it is final (taken before, it could be a chunk short yet read as done).
    job = await fanout.get_fanout_progress(db, notification_id)
    counts = await notifications.count_notification_receipts(db, notification_id)
    if job is None:
        return SentNotification(notification=notification, recipient_count=counts.recipient_count,
                                read_count=counts.read_count,
                                delivery=Delivery(state="done", delivered=counts.recipient_count))
    # Still fanning out: the audience counted at send time, not the receipts written so far.
    return SentNotification(notification=notification, recipient_count=job.audience, read_count=counts.read_count,
                            delivery=Delivery(state="fanning_out", delivered=job.delivered))


async def retract(db: Database, hub: Hub, principal: Principal, slug: str, notification_id: UUID) -> None:
    notification = await _sent_notification(db, principal, slug, notification_id)
    async with db.transaction() as tx:
        # The job first, as a chunk takes its locks: job row, then (its receipts' foreign key)
        # the notification row. Deleting the notification first would lock them the other way
        # round, and on Postgres a chunk in flight and the retraction would deadlock.
        await fanout.delete_fanout_job(tx, notification_id)
        if await notifications.delete_notification(tx, notification_id):  # receipts cascade
            tx.after_commit(lambda: hub.notification_retracted(notification.workspace_id, notification_id))
