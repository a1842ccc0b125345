"""Retention: delete old receipts and notifications in bounded batches.

One implementation for `pulsestack prune` and for housekeeping's
`retention.read_days` / `retention.all_days`:

- `older_than_days`: every receipt (read or not) of a notification created
  more than that many days ago, then those notifications.
- `read_older_than_days`: read receipts read more than that many days ago;
  a notification left with no receipt at all goes too.

Each batch deletes at most `batch` receipts (and the notifications they
leave empty) in one short transaction, so no statement holds SQLite's one
writer for long; between batches other writes get their turn. docs/
operations.md ("Retention") says why BATCH is 1,000. `dry_run` counts what
would go with the same filters and writes nothing.

A notification is only deleted when it was created before the cut-off of
the option that ran (at least a day ago), so one whose fan-out is still in
flight is never taken for an orphan.

The caller pushes the new counts: `Pruned.users` are the users who lost
unread receipts (their unread counts changed). Read receipts going changes
no count; their inboxes lose old read items at the next load.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from ..db import Database
from ..db.base import Executor
from ..ids import utcnow
from ..queries import retention as q
from ..queries.retention import DeletedReceipt

BATCH = 1000  # about 50 ms of SQLite writer per batch: docs/operations.md, "Retention"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Pruned:
    receipts: int = 0
    notifications: int = 0
    batches: int = 0
    dry_run: bool = False
    users: set[UUID] = field(default_factory=set)  # lost unread receipts: their counts changed

    def __bool__(self) -> bool:
        return bool(self.receipts or self.notifications)

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return f"{verb} {self.receipts} from notification_receipts, {self.notifications} from notifications"


async def prune(db: Database, *, read_older_than_days: int | None = None, older_than_days: int | None = None,
                batch: int = BATCH, dry_run: bool = False, now: datetime | None = None) -> Pruned:
    if read_older_than_days is None and older_than_days is None:
        raise ValueError("prune: give read_older_than_days, older_than_days or both")
    if batch < 1:
        raise ValueError("prune: batch must be at least 1")
    now = utcnow() if now is None else now
    result = Pruned(dry_run=dry_run)
    kept_since = EPOCH  # what --older-than leaves: notifications (and receipts) created since
    if older_than_days is not None:
        cutoff = kept_since = now - timedelta(days=older_than_days)
        if dry_run:
            result.receipts += await q.count_receipts_of_notifications_before(db, cutoff)
            result.notifications += await q.count_notifications_before(db, cutoff)
        else:
            await _delete_batches(db, result, cutoff, batch, q.delete_receipts_of_notifications_before)
            while deleted := await q.delete_notifications_before(db, cutoff, batch):
                result.notifications += deleted
                result.batches += 1
    if read_older_than_days is not None:
        cutoff = now - timedelta(days=read_older_than_days)
        if dry_run:
            result.receipts += await q.count_read_receipts_before(db, cutoff, kept_since)
            result.notifications += await q.count_orphans_after_read_prune(db, cutoff, kept_since)
        else:
            await _delete_batches(db, result, cutoff, batch, q.delete_read_receipts_before)
    return result


async def _delete_batches(db: Database, result: Pruned, cutoff: datetime, batch: int,
                          delete_receipts: Callable[[Executor, datetime, int], Awaitable[list[DeletedReceipt]]]) -> None:
    while True:
        async with db.transaction() as tx:
            gone = await delete_receipts(tx, cutoff, batch)
            orphans = await q.delete_orphans_among(tx, {r.notification_id for r in gone}, cutoff)
        if not gone:
            return
        result.batches += 1
        result.receipts += len(gone)
        result.notifications += orphans
        result.users.update(r.user_id for r in gone if not r.is_read)
        if len(gone) < batch:
            return
