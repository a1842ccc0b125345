"""Periodic clean-up: expired sessions and idempotency keys.

Both are already ignored once expired (every lookup compares with now); this
only keeps the tables from growing. It runs every hour in each server
process (first an hour after start-up); the deletes are idempotent, so
several processes doing it is harmless.
"""

from __future__ import annotations

import asyncio
import logging

from .db import Database, DatabaseError
from .ids import utcnow
from .queries import idempotency, sessions
from .services.notifications import IDEMPOTENCY_TTL

log = logging.getLogger(__name__)
INTERVAL_S = 3600


async def purge_once(db: Database) -> tuple[int, int]:
    """(sessions deleted, idempotency keys deleted)."""
    now = utcnow()
    return (await sessions.delete_expired_sessions(db, now),
            await idempotency.delete_expired_idempotency_keys(db, now - IDEMPOTENCY_TTL))


async def run_forever(db: Database) -> None:
    while True:
        await asyncio.sleep(INTERVAL_S)
        try:
            expired_sessions, expired_keys = await purge_once(db)
            if expired_sessions or expired_keys:
                log.info("housekeeping: deleted %d expired sessions, %d idempotency keys", expired_sessions, expired_keys)
        except DatabaseError as exc:  # includes unavailable: try again next time
            log.warning("housekeeping skipped: %s", exc)
