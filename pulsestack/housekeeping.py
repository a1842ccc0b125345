"""Periodic clean-up: expired sessions, idempotency keys and mutes; and,
when retention.read_days or retention.all_days is set, old receipts and
notifications (services/retention.py, the same prune as `pulsestack prune`),
after which the users whose unread receipts went get their new counts.

Each is already ignored once expired (every lookup compares with now); this
only keeps the tables from growing. It runs every hour in each server
process (first an hour after start-up); the deletes are idempotent, so
several processes doing it is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

from .config import RetentionConfig
from .db import Database, DatabaseError
from .hub import Hub
from .ids import utcnow
from .queries import idempotency, mutes, sessions
from .services.notifications import IDEMPOTENCY_TTL
from .services.retention import BATCH, Pruned, prune

log = logging.getLogger(__name__)
INTERVAL_S = 3600


class Purged(NamedTuple):
    sessions: int
    idempotency_keys: int
    mutes: int  # rows: one per muted type prefix


async def purge_once(db: Database) -> Purged:
    now = utcnow()
    return Purged(await sessions.delete_expired_sessions(db, now),
                  await idempotency.delete_expired_idempotency_keys(db, now - IDEMPOTENCY_TTL),
                  await mutes.delete_expired_mutes(db, now))


async def retain_once(db: Database, retention: RetentionConfig, hub: Hub | None = None,
                      batch: int = BATCH) -> Pruned | None:
    """The retention prune, when a retention.* setting asks for one (None
    otherwise); then the hub pushes new counts to the users it concerns
    (`refresh` and counts; every connected user when too many to list)."""
    if not retention.read_days and not retention.all_days:
        return None
    pruned = await prune(db, read_older_than_days=retention.read_days or None,
                         older_than_days=retention.all_days or None, batch=batch)
    if hub is not None and pruned.users:
        hub.inboxes_replaced(pruned.users)
    return pruned


async def run_forever(db: Database, retention: RetentionConfig, hub: Hub | None = None) -> None:
    while True:
        await asyncio.sleep(INTERVAL_S)
        try:
            purged = await purge_once(db)
            if any(purged):
                log.info("housekeeping: deleted %d expired sessions, %d idempotency keys, %d mute rows", *purged)
            pruned = await retain_once(db, retention, hub)
            if pruned:
                log.info("housekeeping: retention %s", pruned.summary())
        except DatabaseError as exc:  # includes unavailable: try again next time
            log.warning("housekeeping skipped: %s", exc)
