"""Periodic clean-up: expired sessions, idempotency keys and mutes.

Each is already ignored once expired (every lookup compares with now); this
only keeps the tables from growing. It runs every hour in each server
process (first an hour after start-up); the deletes are idempotent, so
several processes doing it is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

from .db import Database, DatabaseError
from .ids import utcnow
from .queries import idempotency, mutes, sessions
from .services.notifications import IDEMPOTENCY_TTL

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


async def run_forever(db: Database) -> None:
    while True:
        await asyncio.sleep(INTERVAL_S)
        try:
            purged = await purge_once(db)
            if any(purged):
                log.info("housekeeping: deleted %d expired sessions, %d idempotency keys, %d mute rows", *purged)
        except DatabaseError as exc:  # includes unavailable: try again next time
            log.warning("housekeeping skipped: %s", exc)
